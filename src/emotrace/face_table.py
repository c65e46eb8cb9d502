"""The per-face table: its columns, and the conversion from analysed frames to pandas.

One row per face per frame, and one row (face = -1, face columns empty) for a frame without a
face, so no frame is silently dropped. `table_tracks` groups a table's rows by track.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from emotrace.errors import path_text

if TYPE_CHECKING:  # results imports this module: its types are for annotations only
    from emotrace.results import FrameAnalysis

#: YuNet's landmark order (subject's right eye is on the image's left).
LANDMARK_NAMES = ("right_eye", "left_eye", "nose", "mouth_right", "mouth_left")
BOX_COLUMNS = ["x1", "y1", "x2", "y2"]
LANDMARK_COLUMNS = [f"{n}_{a}" for n in LANDMARK_NAMES for a in ("x", "y")]
#: Head pose, degrees (emotrace.faces.pose has the axes and signs).
POSE_COLUMNS = ["yaw", "pitch", "roll"]
#: Image quality of the face's box (emotrace.faces.quality says how each is measured).
QUALITY_COLUMNS = ["face_brightness", "face_contrast", "face_sharpness", "face_size",
                   "face_clipped"]


def table_tracks(df: pd.DataFrame) -> Iterator[tuple[tuple[str, int], pd.DataFrame]]:
    """((source, track_id), rows in time order) for every track of a per-face table.

    Rows without a face or track (track_id -1) are left out. A track id is unique only within
    its source, so tables of several videos are grouped by both.
    """
    faces = df[df["track_id"] >= 0]
    if "source" not in faces:
        faces = faces.assign(source="")
    for (source, track), rows in faces.groupby(["source", "track_id"], sort=True):
        yield (str(source), int(track)), rows.sort_values("timestamp", kind="stable")


class _Columns:
    """The table's arrays, filled frame by frame (NaN / -1 / False where a row has no face)."""

    def __init__(self, n_rows: int, n_labels: int) -> None:
        nan = np.nan
        self.frame = np.empty(n_rows, np.int64)
        self.timestamp = np.empty(n_rows, np.float64)
        self.face = np.full(n_rows, -1, np.int64)
        self.track = np.full(n_rows, -1, np.int64)
        self.boxes = np.full((n_rows, 4), nan, np.float32)
        self.scores = np.full(n_rows, nan, np.float32)
        self.landmarks = np.full((n_rows, 10), nan, np.float32)
        self.probs = np.full((n_rows, n_labels), nan, np.float32)
        self.va = np.full((n_rows, 2), nan, np.float32)
        self.has_va = False
        self.pose = np.full((n_rows, len(POSE_COLUMNS)), nan, np.float32)
        self.facing = np.zeros(n_rows, bool)
        self.quality = np.full((n_rows, len(QUALITY_COLUMNS)), nan, np.float32)

    def fill(self, span: slice, f: FrameAnalysis) -> None:
        n = len(f)
        self.frame[span], self.timestamp[span] = f.frame_index, f.timestamp
        if not n:
            return
        self.face[span] = np.arange(n)
        self.track[span] = f.detections.track_ids
        self.boxes[span] = f.detections.boxes
        self.scores[span] = f.detections.scores
        self.landmarks[span] = f.detections.landmarks.reshape(n, 10)
        self.probs[span] = f.emotions.probs
        if f.emotions.valence is not None:
            self.has_va = True
            self.va[span, 0], self.va[span, 1] = f.emotions.valence, f.emotions.arousal
        if f.measures is not None:
            self.pose[span] = f.measures.pose
            self.facing[span] = f.measures.facing
            self.quality[span] = f.measures.quality


def frames_to_pandas(source: str, frames: list[FrameAnalysis],
                     labels: tuple[str, ...]) -> pd.DataFrame:
    """The per-face table: one row per face, one row (face = -1) for a frame without one.

    Column groups: identity (source, frame, timestamp, face, track_id), `BOX_COLUMNS`,
    det_score, `LANDMARK_COLUMNS`, one probability column per emotion (named as the label),
    valence/arousal where the model has them, the top `emotion` with its probability, then the
    measures: `POSE_COLUMNS`, `facing` (bool; False where there is no face or no pose) and
    `QUALITY_COLUMNS`.
    """
    n_rows = sum(max(len(f), 1) for f in frames)
    cols = _Columns(n_rows, len(labels))
    row = 0
    for f in frames:
        span = slice(row, row + max(len(f), 1))
        cols.fill(span, f)
        row = span.stop
    df = pd.DataFrame({"source": path_text(source), "frame": cols.frame,
                       "timestamp": cols.timestamp,
                       "face": cols.face, "track_id": cols.track})
    df[BOX_COLUMNS] = cols.boxes
    df["det_score"] = cols.scores
    df[LANDMARK_COLUMNS] = cols.landmarks
    df[list(labels)] = cols.probs
    if cols.has_va:
        df[["valence", "arousal"]] = cols.va
    found = cols.face >= 0
    probs = cols.probs
    top = np.where(found, np.nanargmax(np.where(found[:, None], probs, 0), axis=1), 0)
    names = np.asarray(labels, dtype=object)[top]
    names[~found] = None
    df["emotion"] = names
    df["emotion_prob"] = np.where(found, probs[np.arange(n_rows), top], np.nan)
    df[POSE_COLUMNS] = cols.pose
    df["facing"] = cols.facing
    df[QUALITY_COLUMNS] = cols.quality
    return df
