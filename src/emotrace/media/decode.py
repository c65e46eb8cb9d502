"""Streaming video decode with PyAV: timestamps from the stream, memory bounded.

`read_frames` decodes in a background thread into a small bounded queue, so decoding overlaps
the analysis and memory does not grow with the video's length. Timestamps are each frame's
presentation time (pts x time base) relative to the stream's start, so variable frame rate
video keeps its real timing.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from emotrace.errors import InputError
from emotrace.results import VideoInfo

VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"}


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise InputError(path, "no such file")
    if not path.is_file():
        raise InputError(path, "not a file")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise InputError(
            path, f"not a readable video: truncated, corrupt or not a video file "
            f"(FFmpeg: {exc.strerror or exc})"
        ) from None
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror or exc})") from None
    if not container.streams.video:
        container.close()
        raise InputError(path, "has no video stream")
    return container


def probe(path: str | Path) -> VideoInfo:
    """Header facts of a video; an `InputError` naming the file when it is not one."""
    path = Path(path)
    with _open(path) as container:
        return _info(path, container)


def _info(path: Path, container: av.container.InputContainer) -> VideoInfo:
    stream = container.streams.video[0]
    ctx = stream.codec_context
    fps = float(stream.average_rate or stream.guessed_rate or 0.0)
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    else:
        duration = 0.0
    n_frames = int(stream.frames or 0) or (round(duration * fps) if fps and duration else 0)
    return VideoInfo(
        path=str(path), width=int(ctx.width), height=int(ctx.height), fps=fps,
        duration=duration, n_frames=n_frames, codec=ctx.name,
        has_audio=bool(container.streams.audio),
    )


@dataclass
class Frame:
    index: int  # ordinal of the decoded frame in the stream, from 0
    timestamp: float  # seconds from the stream's start
    image: np.ndarray  # HxWx3 uint8 BGR


class FrameReader:
    """Iterate the frames of a video (all, or sampled at `fps` per second), decoded ahead.

    After iteration, `frames_decoded` says how many frames the stream gave; if the stream
    ended well before its header said it would, iteration raises `InputError` (truncated).
    """

    _END = object()

    def __init__(self, path: str | Path, fps: float | None = None, prefetch: int = 8) -> None:
        if fps is not None and fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.path = Path(path)
        self.fps = fps
        self.prefetch = prefetch
        self._container = _open(self.path)
        self.info = _info(self.path, self._container)
        self.frames_decoded = 0
        self.last_timestamp = 0.0

    def _decode(self, out: queue.Queue, stop: threading.Event) -> None:
        try:
            stream = self._container.streams.video[0]
            stream.thread_type = "AUTO"
            start = stream.start_time or 0
            base = float(stream.time_base) if stream.time_base else 0.0
            next_t = 0.0
            for frame in self._container.decode(stream):
                if stop.is_set():
                    break
                index = self.frames_decoded
                self.frames_decoded += 1
                if frame.pts is not None and base:
                    t = (frame.pts - start) * base
                else:  # no pts: fall back to the nominal rate
                    t = index / self.info.fps if self.info.fps else float(index)
                self.last_timestamp = t
                if self.fps is not None:
                    if t + 1e-6 < next_t:
                        continue  # not sampled: skip the costly conversion to an array
                    next_t += 1.0 / self.fps * max(1, int((t - next_t) * self.fps) + 1)
                out.put(Frame(index, t, frame.to_ndarray(format="bgr24")))
            out.put(self._END)
        except Exception as exc:  # noqa: BLE001 -- handed to the consumer, raised there
            out.put(exc)

    def __iter__(self) -> Iterator[Frame]:
        frames: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        worker = threading.Thread(target=self._decode, args=(frames, stop), daemon=True)
        worker.start()
        try:
            while (item := frames.get()) is not self._END:
                if isinstance(item, Exception):
                    if isinstance(item, av.error.FFmpegError):
                        raise InputError(self.path, f"decoding failed at frame "
                                         f"{self.frames_decoded} ({item})") from None
                    raise item
                yield item
        finally:
            stop.set()
            while worker.is_alive():  # unblock a producer waiting on a full queue
                try:
                    frames.get_nowait()
                except queue.Empty:
                    worker.join(0.05)
            self._container.close()
        self._check_complete()

    def _check_complete(self) -> None:
        if self.frames_decoded == 0:
            raise InputError(self.path, "no frame could be decoded")
        # Header frame counts are not exact (edit lists, dropped frames), so judge by time: a
        # stream whose last frame comes well before the header's duration was cut short.
        info = self.info
        period = 1.0 / info.fps if info.fps else 0.1
        tolerance = max(3 * period, 0.02 * info.duration)
        if info.duration and self.last_timestamp < info.duration - tolerance:
            raise InputError(
                self.path,
                f"truncated: decoded {self.frames_decoded} of about {info.n_frames} frames "
                f"(stream ends at {self.last_timestamp:.1f} s of {info.duration:.1f} s)",
            )


def read_frames(path: str | Path, fps: float | None = None) -> FrameReader:
    return FrameReader(path, fps)
