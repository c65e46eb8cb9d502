"""Batch throughput: 1 vs 2 workers, process pool vs local Ray, on the same recordings.

    python benchmarks/bench_batch.py [--copies 2] [--engines local,ray] [--workers 1,2]

The recordings are the 10 StyleTalk source videos (256x256, 30 frames/s, 212 s in all),
linked `--copies` times under different names, analysed at every frame. Each configuration
starts from an empty output folder; the time includes starting the workers (and Ray) and
loading the models in each, as a user would see it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
from common import SHARED, machine

from emotrace.batch import read_manifest, run_batch

SOURCES = sorted((SHARED / "data" / "video" / "styletalk" / "source_video").glob("*.mp4"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--engines", default="local,ray")
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "in"
        inputs.mkdir()
        for c in range(args.copies):
            for src in SOURCES:
                (inputs / f"{src.stem}_{c}.mp4").symlink_to(src)
        for engine in args.engines.split(","):
            for workers in map(int, args.workers.split(",")):
                out = Path(tmp) / f"{engine}{workers}"
                started = time.perf_counter()
                summary = run_batch([inputs], out, engine=engine, workers=workers, progress=False)
                wall = time.perf_counter() - started
                m = read_manifest(out)
                frames = int(m["frames"].sum())
                rows.append({"engine": engine, "workers": workers, "recordings": summary.done,
                             "failed": summary.failed, "video_s": round(m["seconds"].sum(), 1),
                             "wall_s": round(wall, 1), "frames/s": round(frames / wall, 1),
                             "x real time": round(m["seconds"].sum() / wall, 1)})
                print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    for engine in df["engine"].unique():
        sub = df[df["engine"] == engine]
        base = sub[sub["workers"] == sub["workers"].min()]["wall_s"].iloc[0]
        df.loc[sub.index, "speed-up"] = (base / sub["wall_s"]).round(2)
    print(f"\nmachine: {machine()}")
    print(df.to_string(index=False))


if __name__ == "__main__":
    main()
