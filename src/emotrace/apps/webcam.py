"""Live emotion from a camera, a video file or a stream: `EmotionRecognizer` and `emotrace webcam`.

    >>> from emotrace.apps.webcam import EmotionRecognizer
    >>> recognizer = EmotionRecognizer()          # loads the weights once
    >>> for face in recognizer.predict(frame):    # frame: a BGR image (numpy)
    ...     print(face.emotion, face.probability, face.box)

`predict` detects, tracks and classifies the faces of one frame. With `smoothing` > 0 each
face's probabilities are an exponential moving average over its track, so the label on screen
does not flicker from frame to frame; 0 gives the raw per-frame output.

`run_live` drives a window (keys: q or Esc quits, s saves a snapshot, r starts/stops recording)
or, with `headless=True`, writes the annotated frames to a video file instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from emotrace import models
from emotrace.faces.classify import ExpressionClassifier
from emotrace.faces.detect import YuNetDetector
from emotrace.errors import InputError
from emotrace.faces.track import IoUTracker
from emotrace.results import Emotions, FrameAnalysis
from emotrace.outputs.annotate import VideoWriter, draw


@dataclass(frozen=True)
class FacePrediction:
    """One face in one frame: box (x1, y1, x2, y2 pixels), track id, emotion and its
    probability, all probabilities, valence/arousal (None where the model has none)."""

    box: tuple[float, float, float, float]
    track_id: int
    emotion: str
    probability: float
    probabilities: dict[str, float]
    valence: float | None = None
    arousal: float | None = None


class EmotionRecognizer:
    """Faces and their emotions, frame by frame (see module doc).

    Args:
        model: expression model (registry name or .onnx file).
        detect_size: longer side (px) at which faces are detected; None = full size.
        threshold: minimum face detection score.
        smoothing: weight of the past in the per-track moving average, in [0, 1).
        threads: ONNX Runtime threads (0 = all cores).
    """

    def __init__(self, model: str = models.DEFAULT_CLASSIFIER, detect_size: int | None = 320,
                 threshold: float = 0.6, smoothing: float = 0.5, threads: int = 0) -> None:
        if not 0 <= smoothing < 1:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.classifier = ExpressionClassifier(model, None, False, threads)
        self.detector = YuNetDetector(None, threshold, 0.3, 0, detect_size)
        self.detect_size = detect_size
        self.smoothing = smoothing
        self.tracker = IoUTracker()
        self._ema: dict[int, np.ndarray] = {}
        self._t0 = time.perf_counter()

    @property
    def labels(self) -> tuple[str, ...]:
        return self.classifier.labels

    def analyze(self, frame: np.ndarray, timestamp: float | None = None) -> FrameAnalysis:
        """Detections, track ids and (smoothed) emotions of one BGR frame."""
        if frame is None or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected a BGR image (H, W, 3), got "
                             f"{None if frame is None else frame.shape}")
        t = time.perf_counter() - self._t0 if timestamp is None else timestamp
        det = self.detector(frame, self.detect_size)
        ids = self.tracker.update(det.boxes, t)
        det = det.with_track_ids(ids)
        if not len(det):
            return FrameAnalysis(0, t, det, Emotions.empty(self.labels))
        emo = self.classifier(self.classifier.crops(frame, det))
        probs = emo.probs.copy()
        if self.smoothing:
            for i, tid in enumerate(ids):
                past = self._ema.get(int(tid))
                if past is not None:
                    probs[i] = self.smoothing * past + (1 - self.smoothing) * probs[i]
                self._ema[int(tid)] = probs[i]
            live = {int(t) for t in ids}
            self._ema = {k: v for k, v in self._ema.items() if k in live}
        emo = Emotions(probs, emo.labels, None, emo.valence, emo.arousal)
        return FrameAnalysis(0, t, det, emo)

    def predict(self, frame: np.ndarray) -> list[FacePrediction]:
        """Each face's emotion in one BGR frame."""
        a = self.analyze(frame)
        out = []
        for i in range(len(a)):
            p = a.emotions.probs[i]
            top = int(p.argmax())
            out.append(FacePrediction(
                tuple(float(v) for v in a.detections.boxes[i]), int(a.track_ids[i]),
                self.labels[top], float(p[top]), dict(zip(self.labels, map(float, p))),
                None if a.emotions.valence is None else float(a.emotions.valence[i]),
                None if a.emotions.arousal is None else float(a.emotions.arousal[i]),
            ))
        return out


def overlay(frame: np.ndarray, analysis: FrameAnalysis, fps: float, recording: bool = False) -> np.ndarray:
    """Boxes, labels, probability bars, valence/arousal per face, frames/s in the corner."""
    out = draw(frame, analysis)
    emo = analysis.emotions
    if emo.valence is not None:
        for i in range(len(analysis)):
            x1, _, _, y2 = analysis.detections.boxes[i].round().astype(int)
            cv2.putText(out, f"V {emo.valence[i]:+.2f}  A {emo.arousal[i]:+.2f}",
                        (x1, min(out.shape[0] - 4, y2 + 18)), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        (255, 255, 255), 1, cv2.LINE_AA)
    text = f"{fps:5.1f} fps" + ("  REC" if recording else "")
    cv2.putText(out, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                (0, 0, 255) if recording else (255, 255, 255), 1, cv2.LINE_AA)
    return out


def open_source(source: str | int) -> cv2.VideoCapture:
    """A camera index (0, 1, ...), a video file or a stream URL, opened with OpenCV."""
    src: str | int = int(source) if isinstance(source, int) or str(source).isdigit() else str(source)
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
        return (f"{self.frames} frames, {self.faces} faces, {self.frames / max(self.wall, 1e-9):.1f}"
                f" frames/s; processing per frame: median {np.median(lat) * 1000:.1f} ms, "
                f"p99 {np.percentile(lat, 99) * 1000:.1f} ms, max {lat.max() * 1000:.1f} ms")


def run_live(recognizer: EmotionRecognizer, source: str | int = 0, headless: bool = False,
             output: str | Path | None = None, snapshots: str | Path = "snapshots",
             max_frames: int | None = None) -> LiveStats:
    """The webcam loop (see module doc); returns frame count and per-frame latencies."""
    if headless and output is None:
        raise ValueError("--headless needs --output FILE.mp4 to write the annotated video to")
    if not headless and not has_gui():
        raise RuntimeError("this OpenCV build has no window support (opencv-python-headless); "
                           "use --headless --output out.mp4, or replace it: pip uninstall "
                           "opencv-python-headless && pip install opencv-python")
    cap = open_source(source)
    fps_src = cap.get(cv2.CAP_PROP_FPS) or 30.0
    writer: VideoWriter | None = None
    recording = headless
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
            analysis = recognizer.analyze(frame, None if not headless else stats.frames / fps_src)
            stats.frames += 1
            stats.faces += len(analysis)
            shown = overlay(frame, analysis, smoothed_fps, recording and not headless)
            if recording:
                if writer is None:
                    path = Path(output) if output else Path(f"emotrace-{time.strftime('%Y%m%d-%H%M%S')}.mp4")
                    writer = VideoWriter(path, shown.shape[1], shown.shape[0], fps_src,
                                         preset="ultrafast")
                writer.write(shown, time.perf_counter() - started if not headless else stats.frames / fps_src)
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
                snap = Path(snapshots) / f"snapshot-{time.strftime('%Y%m%d-%H%M%S')}-{stats.frames}.png"
                cv2.imwrite(str(snap), shown)
                print(f"snapshot -> {snap}")
            if key == ord("r"):
                recording = not recording
                if not recording and writer is not None:
                    print(f"recording -> {writer.close()}")
                    writer = None
    except BaseException:
        if writer is not None:
            writer.abort()
            writer = None
        raise
    finally:
        stats.wall = time.perf_counter() - started
        cap.release()
        if not headless:
            cv2.destroyAllWindows()
    if writer is not None:
        writer.close()
    return stats
