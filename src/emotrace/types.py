"""Typed results: small dataclasses of numpy arrays that check their shapes and go to pandas.

Each pipeline stage maps one type to the next: an image -> `Detections` -> aligned crops ->
`Emotions`; a frame's `Detections` + `Emotions` + track ids make a `FrameAnalysis`; the frames of
an image or a video make an `ImageAnalysis` / `VideoAnalysis`, whose `to_pandas()` gives the
per-face table (one row per face, and one row for a frame without a face).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

#: YuNet's landmark order (subject's right eye is on the image's left).
LANDMARK_NAMES = ("right_eye", "left_eye", "nose", "mouth_right", "mouth_left")
BOX_COLUMNS = ["x1", "y1", "x2", "y2"]
LANDMARK_COLUMNS = [f"{n}_{a}" for n in LANDMARK_NAMES for a in ("x", "y")]


def _check(name: str, arr: np.ndarray, shape: tuple) -> None:
    if arr.ndim != len(shape) or any(s is not None and a != s for a, s in zip(arr.shape, shape)):
        raise ValueError(f"{name} must have shape {shape} (None = any), got {arr.shape}")


@dataclass(frozen=True)
class Detections:
    """Faces found in one image.

    boxes: (N, 4) float32, x1 y1 x2 y2 in pixels; scores: (N,) float32;
    landmarks: (N, 5, 2) float32 in pixels, in `LANDMARK_NAMES` order.
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.boxes)
        _check("boxes", self.boxes, (n, 4))
        _check("scores", self.scores, (n,))
        _check("landmarks", self.landmarks, (n, 5, 2))

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls) -> Detections:
        z = np.zeros
        return cls(z((0, 4), np.float32), z((0,), np.float32), z((0, 5, 2), np.float32))

    def take(self, keep: np.ndarray) -> Detections:
        return Detections(self.boxes[keep], self.scores[keep], self.landmarks[keep])


@dataclass(frozen=True)
class Emotions:
    """Expression classification of N faces.

    probs: (N, K) float32, rows sum to 1, columns in `labels` order;
    embeddings: (N, D) float32 or None where the model has no embedding output (or it was
    not asked for); valence, arousal: (N,) in [-1, 1] where the model predicts them.
    """

    probs: np.ndarray
    labels: tuple[str, ...]
    embeddings: np.ndarray | None = None
    valence: np.ndarray | None = None
    arousal: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.probs)
        _check("probs", self.probs, (n, len(self.labels)))
        if self.embeddings is not None:
            _check("embeddings", self.embeddings, (n, None))
        for name in ("valence", "arousal"):
            value = getattr(self, name)
            if value is not None:
                _check(name, value, (n,))

    def __len__(self) -> int:
        return len(self.probs)

    @property
    def top(self) -> list[str]:
        return [self.labels[i] for i in self.probs.argmax(axis=1)] if len(self) else []

    @classmethod
    def empty(cls, labels: tuple[str, ...]) -> Emotions:
        return cls(np.zeros((0, len(labels)), np.float32), labels)

    def slice(self, start: int, stop: int) -> Emotions:
        def cut(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[start:stop]

        return Emotions(
            self.probs[start:stop], self.labels, cut(self.embeddings),
            cut(self.valence), cut(self.arousal),
        )


@dataclass(frozen=True)
class FrameAnalysis:
    """Faces, track ids and emotions in one frame (or one image)."""

    frame_index: int
    timestamp: float
    detections: Detections
    emotions: Emotions
    track_ids: np.ndarray  # (N,) int64; -1 where not tracked (still images)

    def __post_init__(self) -> None:
        n = len(self.detections)
        if len(self.emotions) != n:
            raise ValueError(f"{n} detections but {len(self.emotions)} classified faces")
        _check("track_ids", self.track_ids, (n,))

    def __len__(self) -> int:
        return len(self.detections)


def frames_to_pandas(source: str, frames: list[FrameAnalysis], labels: tuple[str, ...]) -> pd.DataFrame:
    """The per-face table: one row per face, one row (face = -1) for a frame without one.

    Column groups: identity (source, frame, timestamp, face, track_id), `BOX_COLUMNS`,
    det_score, `LANDMARK_COLUMNS`, one probability column per emotion (named as the label),
    valence/arousal where the model has them, and the top `emotion` with its probability.
    """
    n_rows = sum(max(len(f), 1) for f in frames)
    frame_idx = np.empty(n_rows, np.int64)
    ts = np.empty(n_rows, np.float64)
    face = np.full(n_rows, -1, np.int64)
    track = np.full(n_rows, -1, np.int64)
    boxes = np.full((n_rows, 4), np.nan, np.float32)
    scores = np.full(n_rows, np.nan, np.float32)
    lms = np.full((n_rows, 10), np.nan, np.float32)
    probs = np.full((n_rows, len(labels)), np.nan, np.float32)
    va = np.full((n_rows, 2), np.nan, np.float32)
    has_va = False
    row = 0
    for f in frames:
        n = len(f)
        span = slice(row, row + max(n, 1))
        frame_idx[span], ts[span] = f.frame_index, f.timestamp
        if n:
            face[span] = np.arange(n)
            track[span] = f.track_ids
            boxes[span] = f.detections.boxes
            scores[span] = f.detections.scores
            lms[span] = f.detections.landmarks.reshape(n, 10)
            probs[span] = f.emotions.probs
            if f.emotions.valence is not None:
                has_va = True
                va[span, 0], va[span, 1] = f.emotions.valence, f.emotions.arousal
        row = span.stop
    df = pd.DataFrame({"source": source, "frame": frame_idx, "timestamp": ts, "face": face,
                       "track_id": track})
    df[BOX_COLUMNS] = boxes
    df["det_score"] = scores
    df[LANDMARK_COLUMNS] = lms
    df[list(labels)] = probs
    if has_va:
        df[["valence", "arousal"]] = va
    found = face >= 0
    top = np.where(found, np.nanargmax(np.where(found[:, None], probs, 0), axis=1), 0)
    df["emotion"] = np.where(found, np.asarray(labels, dtype=object)[top], None)
    df["emotion_prob"] = np.where(found, probs[np.arange(n_rows), top], np.nan)
    return df


@dataclass
class ImageAnalysis:
    """Every face in one still image."""

    path: str
    width: int
    height: int
    frame: FrameAnalysis

    @property
    def labels(self) -> tuple[str, ...]:
        return self.frame.emotions.labels

    def to_pandas(self) -> pd.DataFrame:
        return frames_to_pandas(self.path, [self.frame], self.labels).drop(
            columns=["frame", "timestamp"]
        )


@dataclass
class VideoInfo:
    path: str
    width: int
    height: int
    fps: float  # average rate from the stream header
    duration: float  # seconds; 0 when unknown
    n_frames: int  # from the header; 0 when unknown
    codec: str
    has_audio: bool


@dataclass
class VideoAnalysis:
    """Every analysed frame of one video, in order."""

    info: VideoInfo
    labels: tuple[str, ...]
    frames: list[FrameAnalysis] = field(default_factory=list)
    frames_decoded: int = 0
    elapsed: float = 0.0  # seconds of analysis

    @property
    def path(self) -> str:
        return self.info.path

    def to_pandas(self) -> pd.DataFrame:
        return frames_to_pandas(self.info.path, self.frames, self.labels)
