"""The webcam loop at 640x480: frames/s and per-frame processing time, from a video file.

    python benchmarks/bench_webcam.py [--frames 600]

The source is WolfgangLanger_Pexels.mp4 letterboxed to 640x480 (a webcam's usual size),
played through OpenCV's capture like a camera. Measured: the loop as `emotrace webcam` runs it
(read, detect, track, classify, smooth, draw the overlay) without a window, and the same with
`--headless --output` (encoding every annotated frame to H.264). Targets: >= 25 frames/s, and
no frame near the 0.33 s ceiling.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import av
import cv2
import numpy as np
from common import WOLFGANG, machine

from emotrace.apps.webcam import EmotionRecognizer, run_live
from emotrace.outputs.annotate import VideoWriter


def make_640x480(out: Path, frames: int) -> Path:
    writer = VideoWriter(out, 640, 480, 24.0)
    n = 0
    while n < frames:  # loop the clip until enough frames
        with av.open(str(WOLFGANG)) as c:
            for f in c.decode(video=0):
                img = cv2.copyMakeBorder(f.to_ndarray(format="bgr24"), 60, 60, 0, 0,
                                         cv2.BORDER_CONSTANT)
                writer.write(img, n / 24.0)
                n += 1
                if n >= frames:
                    break
    return writer.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=600)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = make_640x480(Path(tmp) / "webcam640x480.mp4", args.frames)
        print(f"machine: {machine()}; source 640x480, {args.frames} frames")
        for label, kwargs in (("window loop, no display", {"headless": False}),
                              ("--headless --output (H.264)", {"headless": True,
                                                                "output": Path(tmp) / "o.mp4"})):
            rec = EmotionRecognizer()
            rec.analyze(np.zeros((480, 640, 3), np.uint8))  # warm-up
            if kwargs["headless"]:
                stats = run_live(rec, str(source), **kwargs)
            else:
                stats = _loop_without_display(rec, source)
            lat = np.array(stats.latencies)
            print(f"{label}: {stats.frames / stats.wall:.1f} frames/s; processing per frame "
                  f"median {np.median(lat) * 1e3:.1f} ms, "
                  f"p99 {np.percentile(lat, 99) * 1e3:.1f} ms, "
                  f"max {lat.max() * 1e3:.1f} ms")


def _loop_without_display(rec: EmotionRecognizer, source: Path):
    """run_live's loop minus cv2.imshow (this machine has no display): capture, analyse, draw."""
    import time

    from emotrace.apps.webcam import LiveStats, open_source, overlay

    cap = open_source(str(source))
    stats = LiveStats()
    started = time.perf_counter()
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        t0 = time.perf_counter()
        overlay(frame, rec.analyze(frame), 0.0)
        stats.latencies.append(time.perf_counter() - t0)
        stats.frames += 1
    stats.wall = time.perf_counter() - started
    return stats


if __name__ == "__main__":
    main()
