"""Classifier throughput: faces per second at batch 1 and batch 32 on real aligned faces.

    python benchmarks/bench_classifier.py [--model mobilefacenet-rafdb] [--seconds 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import WOLFGANG, machine

from emotrace.faces.classify import ExpressionClassifier
from emotrace.faces.detect import YuNetDetector
from emotrace.media.decode import FrameReader


def real_faces(n: int = 64) -> list[tuple[np.ndarray, object]]:
    """The first `n` frames of the video that have a face, with their detections."""
    detector, found = YuNetDetector(), []
    for frame in FrameReader(WOLFGANG):
        det = detector(frame.image)
        if len(det):
            found.append((frame.image, det))
        if len(found) == n:
            break
    return found


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="mobilefacenet-rafdb")
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    clf = ExpressionClassifier(args.model)
    crops = np.concatenate([clf.crops(img, det) for img, det in real_faces()])
    print(f"# {args.model} on {machine()}")
    for batch in (1, 32):
        clf(crops[:batch], batch)  # warm-up
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < args.seconds:
            for i in range(0, len(crops), batch):
                clf(crops[i : i + batch], batch)
                done += len(crops[i : i + batch])
        elapsed = time.perf_counter() - start
        print(f"batch {batch:2d}: {done / elapsed:7.1f} faces/s  "
              f"({1000 * elapsed / done:.2f} ms/face, "
              "preprocessing included)")


if __name__ == "__main__":
    main()
