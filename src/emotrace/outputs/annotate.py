"""Annotated frames and videos: each face's box, track id, label and probability bars."""

from __future__ import annotations

import contextlib
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from emotrace.outputs.files import naming
from emotrace.outputs.plots import COLORS_BGR
from emotrace.results import FrameAnalysis


def draw(image: np.ndarray, analysis: FrameAnalysis, show_bars: bool = True) -> np.ndarray:
    """Draw each face's box, track id, top emotion and probability bars onto a BGR image."""
    out = image.copy()
    labels = analysis.emotions.labels
    scale = max(0.7, min(out.shape[:2]) / 720)
    for i in range(len(analysis)):
        x1, y1, x2, y2 = analysis.detections.boxes[i].round().astype(int)
        probs = analysis.emotions.probs[i]
        top = labels[int(probs.argmax())]
        color = COLORS_BGR.get(top, (255, 255, 255))
        cv2.rectangle(out, (x1, y1), (x2, y2), color, max(1, int(2 * scale)))
        tid = analysis.track_ids[i]
        text = f"{f'#{tid} ' if tid >= 0 else ''}{top} {probs.max():.0%}"
        cv2.putText(out, text, (x1, max(12, y1 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale,
                    color, max(1, int(2 * scale)), cv2.LINE_AA)
        if show_bars:
            bar_x = x2 + 6 if x2 + 130 * scale < out.shape[1] else max(0, x1 - int(130 * scale))
            for j, (label, p) in enumerate(zip(labels, probs, strict=True)):
                y = y1 + int(j * 16 * scale)
                cv2.rectangle(out, (bar_x, y), (bar_x + int(60 * scale * p), y + int(11 * scale)),
                              COLORS_BGR.get(label, (200, 200, 200)), -1)
                cv2.putText(out, label[:7], (bar_x + int(64 * scale), y + int(10 * scale)),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.38 * scale, (255, 255, 255), 1,
                            cv2.LINE_AA)
    return out


class VideoWriter:
    """Write BGR frames to an H.264 MP4 with PyAV, each at its own timestamp.

    Frames go to a temporary file renamed into place by `close()` (or left for a `FileSet` by
    `finish()`); `abort()` removes it, so a failed run leaves no video that looks whole. An
    OSError (a full disk) names the video, not the temporary file.
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: float = 30.0,
                 preset: str = "veryfast") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.part.mp4")
        self._container = av.open(str(self._tmp), mode="w")
        rate = Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(30)
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.width, self._stream.height = width - width % 2, height - height % 2
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"preset": preset, "crf": "23"}  # x264 speed/size trade-off
        self._stream.codec_context.time_base = Fraction(1, 90000)
        self._last_pts = -1

    def write(self, image: np.ndarray, timestamp: float) -> None:
        h, w = self._stream.height, self._stream.width
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:h, :w]), format="bgr24")
        pts = max(round(timestamp * 90000), self._last_pts + 1)
        frame.pts, frame.time_base = pts, Fraction(1, 90000)
        self._last_pts = pts
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except OSError as exc:  # a full disk: say which video, not its temporary name
            raise naming(self.path, exc) from exc

    def close(self) -> Path:
        """Flush the encoder and move the video into place; on failure nothing is left."""
        tmp = self.finish()
        try:
            tmp.replace(self.path)
        except BaseException as exc:
            self.abort()
            if isinstance(exc, OSError):
                raise naming(self.path, exc) from exc
            raise
        return self.path

    def finish(self) -> Path:
        """Flush the encoder and close the file, leaving it under its temporary name (which
        this returns), for a `FileSet` to move into place with other outputs; on failure
        nothing is left."""
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
        except BaseException as exc:
            self.abort()
            if isinstance(exc, OSError):
                raise naming(self.path, exc) from exc
            raise
        return self._tmp

    def abort(self) -> None:
        """Remove the temporary file (a failed close of a broken file is no news)."""
        try:
            with contextlib.suppress(Exception):
                self._container.close()
        finally:
            self._tmp.unlink(missing_ok=True)
