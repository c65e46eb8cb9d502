"""How well and how fast `emotrace highlights` finds a known emotional span.

Builds the reaction recordings of scripts/make_reactions.py (real clips; all five viewers react
during episode seconds 6-11, viewers 1 and 2 also during 14-16.5), runs the highlights for 1
viewer and for all 5, and reports, per run,
the moments, precision (share of the moments' time inside a known span), recall (share of the
spans covered), and the speed in recording-seconds analysed per wall-clock second.

    python benchmarks/bench_highlights.py [--pad 0] [--fps 10] [--model NAME]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, machine

from emotrace import Analyzer
from emotrace.highlights import find_highlights
from emotrace.highlights.moments import MomentSettings

spec = importlib.util.spec_from_file_location("make_reactions",
                                              ROOT / "scripts" / "make_reactions.py")
make_reactions = importlib.util.module_from_spec(spec)
sys.modules["make_reactions"] = make_reactions
spec.loader.exec_module(make_reactions)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pad", type=float, default=0.0)
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--model", default=None, help="expression model (default: the default)")
    args = parser.parse_args()
    spans = make_reactions.SPANS
    analyzer = Analyzer(classifier=args.model) if args.model else Analyzer()
    with tempfile.TemporaryDirectory() as tmp:
        rec = [(make_reactions.build(v, Path(tmp) / f"{v.name}.mp4"), v)
               for v in make_reactions.VIEWERS]
        print(f"machine: {machine()}; model {analyzer.classifier.card.name}; spans {spans}; "
              f"pad {args.pad:g} s; "
              f"analysed at {args.fps:g} frames/s")
        for n in (1, len(rec)):
            chosen = rec[:n]
            started = time.perf_counter()
            result = find_highlights([p for p, _ in chosen], [v.offset for _, v in chosen],
                                     analyzer, fps=args.fps, progress=False,
                                     moment_settings=MomentSettings(pad_s=args.pad))
            elapsed = time.perf_counter() - started
            found = sum(m.duration for m in result.moments)
            hit = sum(max(0.0, min(m.end, b) - max(m.start, a))
                      for m in result.moments for a, b in spans)
            seconds = sum(v.length for _, v in chosen)
            print(f"\n{n} viewer(s): precision {hit / found if found else 0:.2f}, recall "
                  f"{hit / sum(b - a for a, b in spans):.2f}; {seconds:.0f} s of recordings in "
                  f"{elapsed:.1f} s ({seconds / elapsed:.0f}x real time)")
            print(result.moments_table().to_string(index=False, float_format=lambda x: f"{x:.2f}"))


if __name__ == "__main__":
    main()
