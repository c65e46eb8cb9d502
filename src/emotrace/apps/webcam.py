"""Live emotion from a camera, a video file or a stream: `EmotionRecognizer` and `emotrace webcam`.

    >>> from emotrace.apps.webcam import EmotionRecognizer
    >>> recognizer = EmotionRecognizer()          # loads the weights once
    >>> for face in recognizer.predict(frame):    # frame: a BGR image (numpy)
    ...     print(face.emotion, face.probability, face.box)

`predict` detects, tracks, measures (head pose, `facing`) and classifies the faces of one frame
(`Analyzer.analyze_frame`); the overlay shows each face's yaw, pitch and roll under its box.
With `smoothing` > 0 each face's probabilities are an exponential moving average over its
track with that half-life in seconds, so the label on screen does not flicker from frame to
frame whatever the frame rate; 0 gives the raw per-frame output.

`run_live` drives a window (keys: q or Esc quits, s saves a snapshot, r starts/stops recording)
or, with `headless=True`, writes the annotated frames to a video file instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from emotrace import models
from emotrace.errors import InputError
from emotrace.faces.track import IoUTracker
from emotrace.outputs.annotate import VideoWriter, draw
from emotrace.pipeline import SCORE_THRESHOLD, VIDEO_DETECT_SIZE, Analyzer
from emotrace.results import Emotions, FaceMeasures, FrameAnalysis
from emotrace.smooth import TrackSmoother


def box_tuple(box: np.ndarray) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return (x1, y1, x2, y2)


@dataclass(frozen=True)
class FacePrediction:
    """One face in one frame: box (x1, y1, x2, y2 pixels), track id, emotion and its
    probability, all probabilities, valence/arousal (None where the model has none), head
    pose (yaw, pitch, roll degrees, `emotrace.faces.pose`; NaN where unknown) and whether the
    face is facing the camera."""

    box: tuple[float, float, float, float]
    track_id: int
    emotion: str
    probability: float
    probabilities: dict[str, float]
    valence: float | None = None
    arousal: float | None = None
    pose: tuple[float, float, float] = (float("nan"),) * 3
    facing: bool = False


class EmotionRecognizer:
    """Faces and their emotions, frame by frame (see module doc).

    Args:
        model: expression model (registry name or .onnx file).
        detect_size: longer side (px) at which faces are detected; None = full size.
        threshold: minimum face detection score.
        smoothing: half-life in seconds of each face's moving average of the probabilities
            (`smooth.TrackSmoother`); 0 = the raw per-frame output.
        threads: ONNX Runtime threads (0 = all cores).

    `analyzer` is the `Analyzer` doing the per-frame work (its weights are loaded once; callers
    may use it for images and videos with the same detection settings).
    """

    def __init__(self, model: str = models.DEFAULT_CLASSIFIER,
                 detect_size: int | None = VIDEO_DETECT_SIZE, threshold: float = SCORE_THRESHOLD,
                 smoothing: float = 0.5, threads: int = 0) -> None:
        if not smoothing >= 0:
            raise ValueError(f"smoothing must be a half-life >= 0 s, got {smoothing}")
        self.analyzer = Analyzer(model, score_threshold=threshold,
                                 video_detect_size=detect_size, threads=threads)
        self.smoothing = smoothing
        self.tracker = IoUTracker()
        self.smoother = TrackSmoother(smoothing) if smoothing else None
        self._frames = 0
        self._t0 = time.perf_counter()

    @property
    def labels(self) -> tuple[str, ...]:
        return self.analyzer.labels

    def analyze(self, frame: np.ndarray, timestamp: float | None = None) -> FrameAnalysis:
        """Detections, track ids and (smoothed) emotions of one BGR frame captured at
        `timestamp` seconds (None: now, by the clock started with the recognizer)."""
        if frame is None or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected a BGR image (H, W, 3), got "
                             f"{None if frame is None else frame.shape}")
        t = time.perf_counter() - self._t0 if timestamp is None else timestamp
        a = self.analyzer.analyze_frame(frame, t, self.tracker, self._frames)
        self._frames += 1
        if self.smoother is None:
            return a
        probs = self.smoother.update(t, a.track_ids, a.emotions.probs, self.tracker.active_ids)
        emo = a.emotions
        smoothed = Emotions(probs.astype(np.float32), emo.labels, emo.embeddings, emo.valence,
                            emo.arousal)
        return replace(a, timestamp=t, emotions=smoothed)

    def predict(self, frame: np.ndarray) -> list[FacePrediction]:
        """Each face's emotion in one BGR frame."""
        a = self.analyze(frame)
        measures = a.measures or FaceMeasures.unknown(len(a))
        out = []
        for i in range(len(a)):
            p = a.emotions.probs[i]
            top = int(p.argmax())
            yaw, pitch, roll = (float(v) for v in measures.pose[i])
            out.append(FacePrediction(
                box_tuple(a.detections.boxes[i]), int(a.track_ids[i]),
                self.labels[top], float(p[top]), dict(zip(self.labels, map(float, p), strict=True)),
                None if a.emotions.valence is None else float(a.emotions.valence[i]),
                None if a.emotions.arousal is None else float(a.emotions.arousal[i]),
                (yaw, pitch, roll), bool(measures.facing[i]),
            ))
        return out


def face_lines(analysis: FrameAnalysis, i: int) -> list[str]:
    """The lines written under face `i`'s box: valence/arousal (where the model has them) and
    the head pose, e.g. `yaw +12 pitch -3 roll +1` (`away` when not facing the camera)."""
    emo, lines = analysis.emotions, []
    if emo.valence is not None and emo.arousal is not None:
        lines.append(f"V {emo.valence[i]:+.2f}  A {emo.arousal[i]:+.2f}")
    if analysis.measures is not None and np.isfinite(analysis.measures.pose[i]).all():
        yaw, pitch, roll = analysis.measures.pose[i]
        away = "" if analysis.measures.facing[i] else "  away"
        lines.append(f"yaw {yaw:+.0f} pitch {pitch:+.0f} roll {roll:+.0f}{away}")
    return lines


def overlay(frame: np.ndarray, analysis: FrameAnalysis, fps: float,
            recording: bool = False) -> np.ndarray:
    """Boxes, labels, probability bars, valence/arousal and head pose per face, frames/s in the
    corner."""
    out = draw(frame, analysis)
    for i in range(len(analysis)):
        x1, _, _, y2 = analysis.detections.boxes[i].round().astype(int)
        for k, line in enumerate(face_lines(analysis, i)):
            cv2.putText(out, line, (x1, min(out.shape[0] - 4 - 18 * k, y2 + 18 * (k + 1))),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    text = f"{fps:5.1f} fps" + ("  REC" if recording else "")
    cv2.putText(out, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                (0, 0, 255) if recording else (255, 255, 255), 1, cv2.LINE_AA)
    return out


def is_camera(source: str | int) -> bool:
    """Whether `source` names a camera by its index (0, 1, ...) rather than a file or URL."""
    return isinstance(source, int) or str(source).isdigit()


def open_source(source: str | int) -> cv2.VideoCapture:
    """A camera index (0, 1, ...), a video file or a stream URL, opened with OpenCV."""
    src: str | int = int(source) if is_camera(source) else str(source)
    if isinstance(src, str) and "://" not in src and not Path(src).is_file():
        raise InputError(src, "no such file (give a camera index such as 0, a file or a URL)")
    cap = cv2.VideoCapture(src)
    if not cap.isOpened():
        what = f"camera {src}" if isinstance(src, int) else src
        raise InputError(what, "cannot be opened (no such camera, or not a readable video/stream)")
    return cap


def has_gui() -> bool:
    """Whether this OpenCV build can open windows (opencv-python-headless cannot)."""
    info = cv2.getBuildInformation()
    gui = [line for line in info.splitlines() if line.strip().startswith("GUI:")]
    return bool(gui) and "NONE" not in gui[0].upper()


@dataclass
class LiveStats:
    frames: int = 0
    faces: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds of processing per frame
    wall: float = 0.0

    def summary(self) -> str:
        lat = np.array(self.latencies) if self.latencies else np.zeros(1)
        rate = self.frames / max(self.wall, 1e-9)
        return (f"{self.frames} frames, {self.faces} faces, {rate:.1f} frames/s; processing"
                f" per frame: median {np.median(lat) * 1000:.1f} ms, "
                f"p99 {np.percentile(lat, 99) * 1000:.1f} ms, max {lat.max() * 1000:.1f} ms")


class CaptureClock:
    """When each frame read from a capture was taken, in seconds from the first frame.

    A camera's frames are timed by the wall clock as they arrive; a file's or a stream's by
    their own timestamps (so a variable frame rate, or a loop running slower than the video,
    keeps the video's real timing). A stream whose timestamps do not advance is given one
    frame period per frame.
    """

    def __init__(self, cap: cv2.VideoCapture, camera: bool) -> None:
        self.cap, self.camera = cap, camera
        self.period = 1 / (cap.get(cv2.CAP_PROP_FPS) or 30.0)
        self._first: float | None = None
        self._last = -np.inf

    def __call__(self) -> float:
        """The capture time of the frame just read."""
        now = time.perf_counter() if self.camera else self.cap.get(cv2.CAP_PROP_POS_MSEC) / 1000
        if self._first is None:
            self._first = now
        t = now - self._first
        if not self.camera and t <= self._last:
            t = self._last + self.period
        self._last = t
        return t


class Recording:
    """Annotated frames written to an MP4, timed from the recording's own first frame."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps
        self._writer: VideoWriter | None = None
        self._start = 0.0

    def write(self, image: np.ndarray, timestamp: float) -> None:
        """Add a frame captured at `timestamp` (s, on the capture's clock)."""
        if self._writer is None:
            self._writer = VideoWriter(self.path, image.shape[1], image.shape[0], self.fps,
                                       preset="ultrafast")
            self._start = timestamp
        self._writer.write(image, timestamp - self._start)

    def close(self) -> Path | None:
        """The written file; None when no frame was written."""
        writer, self._writer = self._writer, None
        return writer.close() if writer is not None else None

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer = None


def _recording_path(output: str | Path | None) -> Path:
    return Path(output) if output else Path(f"emotrace-{time.strftime('%Y%m%d-%H%M%S')}.mp4")


def run_live(recognizer: EmotionRecognizer, source: str | int = 0, headless: bool = False,
             output: str | Path | None = None, snapshots: str | Path = "snapshots",
             max_frames: int | None = None) -> LiveStats:
    """The webcam loop (see module doc); returns frame count and per-frame latencies.

    Frames are analysed and recorded at their capture time (`CaptureClock`); a recording,
    headless or started with `r`, begins at 0 s with its first frame.
    """
    if headless and output is None:
        raise ValueError("--headless needs --output FILE.mp4 to write the annotated video to")
    if not headless and not has_gui():
        raise RuntimeError("this OpenCV build has no window support (opencv-python-headless); "
                           "use --headless --output out.mp4, or replace it: pip uninstall "
                           "opencv-python-headless && pip install opencv-python")
    cap = open_source(source)
    clock = CaptureClock(cap, camera=is_camera(source))
    fps_src = 1 / clock.period
    recording = Recording(_recording_path(output), fps_src) if headless else None
    stats = LiveStats()
    window = "emotrace (q: quit, s: snapshot, r: record)"
    started = time.perf_counter()
    smoothed_fps = 0.0
    try:
        while max_frames is None or stats.frames < max_frames:
            ok, frame = cap.read()
            if not ok:
                break
            t0 = time.perf_counter()
            captured = clock()
            analysis = recognizer.analyze(frame, captured)
            stats.frames += 1
            stats.faces += len(analysis)
            shown = overlay(frame, analysis, smoothed_fps, recording is not None and not headless)
            if recording is not None:
                recording.write(shown, captured)
            # processing time of this frame: from the moment it was read to the moment it is
            # drawn (and written); the wait for the camera's next frame is not processing
            elapsed = time.perf_counter() - t0
            stats.latencies.append(elapsed)
            rate = 1 / max(elapsed, 1e-6)
            smoothed_fps = 0.9 * smoothed_fps + 0.1 * rate if smoothed_fps else rate
            if headless:
                continue
            cv2.imshow(window, shown)
            key = cv2.waitKey(1) & 0xFF
            if key in (ord("q"), 27):
                break
            if key == ord("s"):
                Path(snapshots).mkdir(parents=True, exist_ok=True)
                stamp = time.strftime("%Y%m%d-%H%M%S")
                snap = Path(snapshots) / f"snapshot-{stamp}-{stats.frames}.png"
                cv2.imwrite(str(snap), shown)
                print(f"snapshot -> {snap}")
            if key == ord("r"):
                if recording is None:
                    recording = Recording(_recording_path(output), fps_src)
                else:
                    written = recording.close()
                    recording = None
                    if written is not None:
                        print(f"recording -> {written}")
    except BaseException:
        if recording is not None:
            recording.abort()
            recording = None
        raise
    finally:
        stats.wall = time.perf_counter() - started
        cap.release()
        if not headless:
            cv2.destroyAllWindows()
    if recording is not None:
        recording.close()
    return stats
