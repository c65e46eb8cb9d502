"""Streaming video decode with PyAV: timestamps from the stream, memory bounded.

`read_frames` decodes in a background thread into a small bounded queue, so decoding overlaps
the analysis and memory does not grow with the video's length. Timestamps are each frame's
presentation time (pts x time base) relative to the stream's start, so variable frame rate
video keeps its real timing.

Frames come as they are to be shown: a stream stored sideways or mirrored with a display matrix
(as phones record) is turned and mirrored as the matrix says (media/orientation.py), and
`probe` reports the shown width and height. A stream
that ends before its header says, or whose decoding fails part way, gives the frames that did
decode and says so in `FrameReader.partial`; only a file with no decodable frame is refused.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from emotrace.errors import InputError
from emotrace.media.orientation import UPRIGHT, Orientation, from_matrix, from_rotation
from emotrace.media.paths import path_problem
from emotrace.results import VideoInfo

VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"}


def _open(path: Path) -> av.container.InputContainer:
    if problem := path_problem(path):
        raise InputError(path, problem)
    if path.stat().st_size == 0:
        raise InputError(path, "not a readable video: empty (0 bytes)")
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
        audio = bool(container.streams.audio)
        container.close()
        raise InputError(path, "has no video stream" + (" (only sound)" if audio else ""))
    if _is_still_image(container):
        codec = container.streams.video[0].codec_context.name
        kind = {"mjpeg": "JPEG"}.get(codec, codec.upper())
        container.close()
        raise InputError(path, f"is a still image ({kind}), not a video; `emotrace images` "
                               "reads it")
    return container


def _is_still_image(container: av.container.InputContainer) -> bool:
    """FFmpeg opens a photo (whatever its name says) as a one-frame "image sequence": its
    image2 demuxer, or a `<codec>_pipe` one when it sniffs the format from the bytes."""
    name = container.format.name
    return name in ("image2", "image2pipe") or name.endswith("_pipe")


def probe(path: str | Path) -> VideoInfo:
    """Header facts of a video (width and height upright); an `InputError` naming the file
    when it is not one."""
    path = Path(path)
    with _open(path) as container:
        return _info(path, container, display_orientation(container))


def display_orientation(container: av.container.InputContainer) -> Orientation:
    """How the video stream's frames are to be shown (media/orientation.py): its display
    matrix, turn and mirror (read from the first frame, so this consumes it: use a container
    of its own), else an old file's `rotate` tag (clockwise degrees)."""
    stream = container.streams.video[0]
    try:
        frame = next(container.decode(stream), None)
    except (av.error.FFmpegError, ValueError):
        frame = None  # no first frame: reading the frames will say why
    sides: Any = frame.side_data if frame is not None else {}  # (its stub knows one key)
    matrix = bytes(sides["DISPLAYMATRIX"]) if "DISPLAYMATRIX" in sides else b""
    if len(matrix) == 36:  # 9 int32
        shown = from_matrix(np.frombuffer(matrix, np.int32).tolist())
        if shown != UPRIGHT:
            return shown
    if tag := stream.metadata.get("rotate"):
        try:
            return from_rotation(-float(tag))
        except ValueError:
            pass
    return UPRIGHT


def _info(path: Path, container: av.container.InputContainer,
          orientation: Orientation = UPRIGHT) -> VideoInfo:
    stream = container.streams.video[0]
    ctx = stream.codec_context
    width, height = int(ctx.width), int(ctx.height)
    if orientation.swaps_sides:
        width, height = height, width
    fps = float(stream.average_rate or stream.guessed_rate or 0.0)
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    else:
        duration = 0.0
    n_frames = int(stream.frames or 0) or (round(duration * fps) if fps and duration else 0)
    return VideoInfo(
        path=str(path), width=width, height=height, fps=fps,
        duration=duration, n_frames=n_frames, codec=ctx.name,
        has_audio=bool(container.streams.audio),
    )


@dataclass
class Frame:
    index: int  # ordinal of the decoded frame in the stream, from 0
    timestamp: float  # seconds from the stream's start
    image: np.ndarray  # HxWx3 uint8 BGR


class FrameReader:
    """Iterate the frames of a video (all, or sampled at `fps` per second), decoded ahead,
    each as it is to be shown (the stream's display matrix applied: turn and mirror).

    After iteration, `frames_decoded` says how many frames the stream gave, and `partial`
    why the stream gave fewer than its header promised ("" when it did not): it ended early
    (a lost tail) or decoding failed part way (the frames before are kept). A video with no
    decodable frame raises `InputError`.
    """

    _END = object()

    def __init__(self, path: str | Path, fps: float | None = None, prefetch: int = 8) -> None:
        if fps is not None and not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be > 0, got {fps}")
        self.path = Path(path)
        self.fps = fps
        self.prefetch = prefetch
        with _open(self.path) as first:
            self.orientation = display_orientation(first)
        self._container = _open(self.path)
        self.info = _info(self.path, self._container, self.orientation)
        self.frames_decoded = 0
        self.last_timestamp = 0.0
        self.partial = ""

    @property
    def frames_expected(self) -> int:
        """The frame count the header promises (0 when it does not say)."""
        return self.info.n_frames

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
                image = self.orientation.apply(frame.to_ndarray(format="bgr24"))
                out.put(Frame(index, t, image))
            out.put(self._END)
        except av.error.FFmpegError as exc:
            if self.frames_decoded:  # what decoded before the damage is kept
                self.partial = (f"decoding failed after frame {self.frames_decoded} "
                                f"(FFmpeg: {exc.strerror or exc})")
                out.put(self._END)
            else:
                out.put(exc)
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
                        raise InputError(self.path, f"no frame could be decoded "
                                         f"(FFmpeg: {item.strerror or item})") from None
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
        if self.partial:
            return
        # Header frame counts are not exact (edit lists, dropped frames), so judge by time: a
        # stream whose last frame comes well before the header's duration was cut short.
        info = self.info
        period = 1.0 / info.fps if info.fps else 0.1
        tolerance = max(3 * period, 0.02 * info.duration)
        if info.duration and self.last_timestamp < info.duration - tolerance:
            self.partial = (f"the stream ends at {self.last_timestamp:.1f} s of "
                            f"{info.duration:.1f} s")


def read_frames(path: str | Path, fps: float | None = None) -> FrameReader:
    return FrameReader(path, fps)
