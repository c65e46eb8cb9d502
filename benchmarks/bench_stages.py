"""Where the time goes: milliseconds per frame of each stage, run one after another.

    python benchmarks/bench_stages.py [VIDEO] [--detect-size 320]

Stages run sequentially here (no overlap), so their sum is more than the pipeline's time per
frame: the pipeline decodes in a background thread while it detects and classifies.
"""

from __future__ import annotations

import argparse
import time

import av
import numpy as np
from common import WOLFGANG, machine

from emotrace.faces.classify import ExpressionClassifier
from emotrace.faces.detect import YuNetDetector
from emotrace.faces.pose import HeadPose
from emotrace.faces.quality import face_quality
from emotrace.faces.track import IoUTracker


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("video", nargs="?", default=str(WOLFGANG))
    ap.add_argument("--detect-size", type=int, default=320)
    args = ap.parse_args()
    t = {}
    start = time.perf_counter()
    with av.open(args.video) as c:
        c.streams.video[0].thread_type = "AUTO"
        frames = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    t["decode + to BGR"] = time.perf_counter() - start
    detector = YuNetDetector(max_side=args.detect_size or None)
    clf = ExpressionClassifier()
    tracker = IoUTracker()
    start = time.perf_counter()
    dets = [detector(f) for f in frames]
    t[f"detect (YuNet, longer side {args.detect_size})"] = time.perf_counter() - start
    start = time.perf_counter()
    for i, d in enumerate(dets):
        tracker.update(d.boxes, i / 24)
    t["track"] = time.perf_counter() - start
    pose = HeadPose()
    start = time.perf_counter()
    for f, d in zip(frames, dets):
        pose.facing(pose(d.landmarks, f.shape[1], f.shape[0]))
    t["head pose (solvePnP, 5 landmarks)"] = time.perf_counter() - start
    start = time.perf_counter()
    for f, d in zip(frames, dets):
        face_quality(f, d.boxes)
    t["face quality (box luma, Laplacian)"] = time.perf_counter() - start
    start = time.perf_counter()
    crops = np.concatenate([clf.crops(f, d) for f, d in zip(frames, dets)])
    t[f"crop ({clf.card.crop})"] = time.perf_counter() - start
    start = time.perf_counter()
    x = clf.preprocess(crops)
    t["preprocess"] = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(0, len(x), 32):
        clf._sess.run(clf._outputs, {clf.card.input_name: x[i : i + 32]})
    t["classify (ONNX Runtime, batch 32)"] = time.perf_counter() - start
    n = len(frames)
    print(f"# {args.video}: {n} frames, {len(crops)} faces, {machine()}")
    for name, sec in t.items():
        print(f"{name:38s} {1000 * sec / n:6.2f} ms/frame")
    print(f"{'sum':38s} {1000 * sum(t.values()) / n:6.2f} ms/frame")


if __name__ == "__main__":
    main()
