"""How large and how fast the highlights report is for a big study.

A synthetic audience (`--viewers` viewers, each `--seconds` long, two groups, a 5 s reaction
every 5 minutes; no stills: no recordings exist) is turned into report.html; the script
reports the time to write it and its size, and, where a `chromium` binary exists, the time
headless Chromium takes to load and draw it and to move the cursor over every chart.

    python benchmarks/bench_report.py [--viewers 50] [--seconds 1800]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from common import ROOT, machine

from emotrace.highlights import HighlightsResult
from emotrace.highlights.groups import compare_groups, group_views
from emotrace.highlights.moments import MomentSettings, aggregate, pick_moments
from emotrace.highlights.quality import grade
from emotrace.highlights.reactions import ViewerSignals
from emotrace.highlights.report import write_report

sys.path.insert(0, str(ROOT / "tests"))
from browser import CHROMIUM, headless_chromium, wait_for  # noqa: E402

MEASURES = {"face_share": 1.0, "face_size": 120.0, "brightness": 120.0, "contrast": 40.0,
            "sharpness": 200.0, "clipped": 0.0, "frame_rate": 10.0, "gaps": 0.0,
            "attention": 0.9}


def viewer(name: str, group: str, seconds: int, rng) -> ViewerSignals:
    intensity = rng.normal(0.2, 0.1, seconds).clip(0)
    for start in range(60, seconds - 10, 300):
        intensity[start:start + 5] = rng.normal(3.0, 0.3, 5)
    happy = np.clip(intensity / 4, 0, 1)
    table = pd.DataFrame({"time": np.arange(seconds, dtype=float), "attention": 0.9,
                          "missing": False, "neutral": 1 - happy, "happy": happy,
                          "expressiveness": happy, "dominant": "happy",
                          "intensity": intensity}, index=pd.RangeIndex(seconds, name="step"))
    table["reacting"] = table["intensity"] >= 1.5
    return ViewerSignals(name, f"{name}.mp4", 0.0, 1.0, ("neutral", "happy"), table, {},
                         (0,), "model", {"group": group}, MEASURES, grade(MEASURES))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=1800)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    viewers = [viewer(f"v{i}", "ab"[i % 2], args.seconds, rng) for i in range(args.viewers)]
    settings = MomentSettings()
    agg = aggregate(viewers, settings.smooth_s)
    moments = pick_moments(agg, viewers, settings)
    result = HighlightsResult(viewers, agg, moments, groups=group_views(viewers, settings),
                              differences=compare_groups(moments, viewers, n_boot=200))
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        page = write_report(result, Path(tmp) / "report.html", thumbnails=False)
        print(f"{args.viewers} viewers x {args.seconds} s, {len(moments)} moments: written in "
              f"{time.perf_counter() - start:.1f} s, {page.stat().st_size / 1e6:.2f} MB")
        if CHROMIUM is None:
            print("no chromium binary: the browser timings are left out")
            return
        with headless_chromium(Path(tmp) / "profile", 1400, 1000) as browser:
            for domain in ("Runtime", "Log", "Page"):
                browser.call(f"{domain}.enable")
            start = time.perf_counter()
            browser.call("Page.navigate", url=page.as_uri())
            wait_for(lambda: browser.evaluate("document.readyState === 'complete' && "
                                              "!!window.emotrace"), 60, "the page")
            print(f"loaded and drawn in {time.perf_counter() - start:.2f} s "
                  f"(errors: {browser.errors() or 'none'})")
            start = time.perf_counter()
            browser.evaluate("for (let i = 0; i < 20; i++) window.emotrace.seek(i * 30)")
            print(f"a seek (the cursor over every chart): "
                  f"{(time.perf_counter() - start) / 20 * 1000:.1f} ms")


if __name__ == "__main__":
    main()
