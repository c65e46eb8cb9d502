"""Typed results: small dataclasses of numpy arrays that check their shapes and go to pandas.

Each pipeline stage maps one type to the next: an image -> `Detections` -> aligned crops ->
`Emotions`; the faces' pose and image quality -> `FaceMeasures`; a frame's `Detections` +
`Emotions` + `FaceMeasures` make a `FrameAnalysis`; the frames of an image or a video make an
`ImageAnalysis` / `VideoAnalysis`, whose `to_pandas()` gives the per-face table (one row per face,
and one row for a frame without a face; built in `emotrace.face_table`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

# The table's column names live with the conversion; `table_tracks` is re-exported for callers.
from emotrace.face_table import (  # noqa: F401
    BOX_COLUMNS,
    LANDMARK_COLUMNS,
    LANDMARK_NAMES,
    POSE_COLUMNS,
    QUALITY_COLUMNS,
    frames_to_pandas,
    table_tracks,
)

#: The key of a face table's `DataFrame.attrs` (and so of its Parquet metadata) that says what
#: recording and settings it came from.
TABLE_META = "emotrace"


def _check(name: str, arr: np.ndarray, shape: tuple) -> None:
    if arr.ndim != len(shape) or any(s is not None and a != s for a, s in zip(arr.shape, shape)):
        raise ValueError(f"{name} must have shape {shape} (None = any), got {arr.shape}")


@dataclass(frozen=True)
class Detections:
    """Faces found in one image.

    boxes: (N, 4) float32, x1 y1 x2 y2 in pixels; scores: (N,) float32;
    landmarks: (N, 5, 2) float32 in pixels, in `LANDMARK_NAMES` order;
    track_ids: (N,) int64, the tracker's id of each face, -1 where not tracked (still images).
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray
    track_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        n = len(self.boxes)
        _check("boxes", self.boxes, (n, 4))
        _check("scores", self.scores, (n,))
        _check("landmarks", self.landmarks, (n, 5, 2))
        if len(self.track_ids) == 0 and n:  # not tracked: every face gets -1
            object.__setattr__(self, "track_ids", np.full(n, -1, np.int64))
        _check("track_ids", self.track_ids, (n,))

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls) -> Detections:
        z = np.zeros
        return cls(z((0, 4), np.float32), z((0,), np.float32), z((0, 5, 2), np.float32))

    def take(self, keep: np.ndarray) -> Detections:
        return Detections(self.boxes[keep], self.scores[keep], self.landmarks[keep],
                          self.track_ids[keep])

    def with_track_ids(self, track_ids: np.ndarray) -> Detections:
        """The same faces with the tracker's ids."""
        return replace(self, track_ids=np.asarray(track_ids, np.int64))

    def largest(self) -> int | None:
        """Index of the face with the largest box area, None when there is none."""
        if not len(self):
            return None
        w = self.boxes[:, 2] - self.boxes[:, 0]
        h = self.boxes[:, 3] - self.boxes[:, 1]
        return int(np.argmax(w * h))


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
class FaceMeasures:
    """Head pose and image quality of N faces, measured on the decoded frame.

    pose: (N, 3) float32 yaw, pitch, roll in degrees (`faces.pose` has the axes and signs),
    NaN where a face has no landmarks; facing: (N,) bool, the pose within the facing limits;
    quality: (N, 5) float32 in `QUALITY_COLUMNS` order (`faces.quality` says how each is taken).
    """

    pose: np.ndarray
    facing: np.ndarray
    quality: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.pose)
        _check("pose", self.pose, (n, len(POSE_COLUMNS)))
        _check("facing", self.facing, (n,))
        _check("quality", self.quality, (n, len(QUALITY_COLUMNS)))

    def __len__(self) -> int:
        return len(self.pose)

    @classmethod
    def unknown(cls, n: int) -> FaceMeasures:
        """N faces whose pose and quality were not measured: NaN, not facing."""
        return cls(np.full((n, len(POSE_COLUMNS)), np.nan, np.float32), np.zeros(n, bool),
                   np.full((n, len(QUALITY_COLUMNS)), np.nan, np.float32))


@dataclass(frozen=True)
class FrameAnalysis:
    """Faces (with their track ids), emotions and measures in one frame (or one image).

    `measures` is None where nobody measured the faces (their table columns are then empty).
    """

    frame_index: int
    timestamp: float
    detections: Detections
    emotions: Emotions
    measures: FaceMeasures | None = None

    def __post_init__(self) -> None:
        n = len(self.detections)
        if len(self.emotions) != n:
            raise ValueError(f"{n} detections but {len(self.emotions)} classified faces")
        if self.measures is not None and len(self.measures) != n:
            raise ValueError(f"{n} detections but {len(self.measures)} measured faces")

    def __len__(self) -> int:
        return len(self.detections)

    @property
    def track_ids(self) -> np.ndarray:
        """(N,) int64: the detections' track ids (-1 where not tracked)."""
        return self.detections.track_ids


@dataclass(frozen=True)
class Track:
    """One tracked face of one video: its rows over time, in time order.

    timestamps: (T,) float64 s; frames: (T,) int64 decoded-frame indices; boxes: (T, 4);
    probs: (T, K) in `labels` order; embeddings: (T, D) or None; valence, arousal: (T,) or None.
    """

    source: str
    track_id: int
    labels: tuple[str, ...]
    timestamps: np.ndarray
    frames: np.ndarray
    boxes: np.ndarray
    probs: np.ndarray
    embeddings: np.ndarray | None = None
    valence: np.ndarray | None = None
    arousal: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.timestamps)
        _check("frames", self.frames, (n,))
        _check("boxes", self.boxes, (n, 4))
        _check("probs", self.probs, (n, len(self.labels)))
        if self.embeddings is not None:
            _check("embeddings", self.embeddings, (n, None))

    def __len__(self) -> int:
        return len(self.timestamps)

    @property
    def key(self) -> tuple[str, int]:
        """(source, track_id): a track id is unique only within its source."""
        return (self.source, self.track_id)

    @property
    def top(self) -> list[str]:
        return [self.labels[i] for i in self.probs.argmax(axis=1)]

    @property
    def duration(self) -> float:
        return float(self.timestamps[-1] - self.timestamps[0]) if len(self) else 0.0

    def take(self, keep: np.ndarray | slice) -> Track:
        def cut(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[keep]

        return Track(self.source, self.track_id, self.labels, self.timestamps[keep],
                     self.frames[keep], self.boxes[keep], self.probs[keep],
                     cut(self.embeddings), cut(self.valence), cut(self.arousal))

    def windows(self, window: float) -> list[tuple[int, Track]]:
        """(w, rows with w*window <= t < (w+1)*window) for every window the track is seen in."""
        if window <= 0:
            raise ValueError(f"window must be > 0 s, got {window}")
        index = np.floor(self.timestamps / window).astype(np.int64)
        return [(int(w), self.take(index == w)) for w in np.unique(index)]


def tracks_of(source: str, frames: list[FrameAnalysis], labels: tuple[str, ...],
              min_frames: int = 1) -> list[Track]:
    """The tracks of analysed frames (faces with track id -1 left out), ordered by track id."""
    rows: dict[int, list[tuple[FrameAnalysis, int]]] = {}
    for f in frames:
        for i, t in enumerate(f.track_ids):
            if t >= 0:
                rows.setdefault(int(t), []).append((f, i))
    tracks = []
    for t, items in sorted(rows.items()):
        if len(items) < min_frames:
            continue
        items.sort(key=lambda fi: fi[0].timestamp)

        def stack(get: Callable[[Emotions], np.ndarray | None]) -> np.ndarray | None:
            rows = [get(f.emotions) for f, _ in items]
            return None if rows[0] is None else np.stack([r[i] for r, (_, i) in zip(rows, items)
                                                          if r is not None])

        tracks.append(Track(
            source, t, labels,
            np.array([f.timestamp for f, _ in items], np.float64),
            np.array([f.frame_index for f, _ in items], np.int64),
            np.stack([f.detections.boxes[i] for f, i in items]),
            np.stack([f.emotions.probs[i] for f, i in items]), stack(lambda e: e.embeddings),
            stack(lambda e: e.valence), stack(lambda e: e.arousal)))
    return tracks


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
    """Every analysed frame of one video, in order.

    `partial` says why the video gave fewer frames than its header promised (a lost tail,
    damage part way); "" when it gave them all. The frames that decoded are analysed either way.
    """

    info: VideoInfo
    labels: tuple[str, ...]
    frames: list[FrameAnalysis] = field(default_factory=list)
    frames_decoded: int = 0
    elapsed: float = 0.0  # seconds of analysis
    partial: str = ""
    settings: dict = field(default_factory=dict)  # how it was analysed (Analyzer.settings)

    @property
    def path(self) -> str:
        return self.info.path

    @property
    def frames_expected(self) -> int:
        """The frame count the header promised (0 when it did not say)."""
        return self.info.n_frames

    def completeness(self) -> dict:
        """`partial` (bool), `partial_reason` ("" for a whole video), `frames_decoded` and
        `frames_expected`: what every output of a video (table metadata, track summary, batch
        manifest, API job) says of how much of it was analysed."""
        return {"partial": bool(self.partial), "partial_reason": self.partial,
                "frames_decoded": self.frames_decoded, "frames_expected": self.frames_expected}

    def partial_problem(self) -> str:
        """`decoded N of about M frames: <why>`, or "" for a whole video."""
        if not self.partial:
            return ""
        expected = f" of about {self.frames_expected}" if self.frames_expected else ""
        return f"decoded {self.frames_decoded}{expected} frames; {self.partial}"

    def tracks(self, min_frames: int = 1) -> list[Track]:
        """Every tracked face with at least `min_frames` rows, ordered by track id."""
        return tracks_of(self.info.path, self.frames, self.labels, min_frames)

    def to_pandas(self) -> pd.DataFrame:
        """The per-face table; `attrs[TABLE_META]` says what it came from (`table_meta`),
        so a table written to Parquet can stand in for the recording (`emotrace highlights`)."""
        df = frames_to_pandas(self.info.path, self.frames, self.labels)
        df.attrs[TABLE_META] = self.table_meta()
        return df

    def table_meta(self) -> dict:
        """The recording (path, size and stream of the source), the labels, the analysis
        settings and how complete the analysis is: JSON-able, kept in Parquet metadata."""
        try:
            size = Path(self.info.path).stat().st_size
        except OSError:
            size = -1
        return {"source": self.info.path, "source_resolved": str(Path(self.info.path).resolve()),
                "source_size": size, "labels": list(self.labels),
                "width": self.info.width, "height": self.info.height, "fps": self.info.fps,
                "duration": self.info.duration, "has_audio": self.info.has_audio,
                "settings": dict(self.settings), "frames_decoded": self.frames_decoded,
                "frames_expected": self.frames_expected, "partial": self.partial}
