"""Tracking: a stable id per face across frames, by IoU matching with optimal assignment."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (N, 4) with every box in b (M, 4), x1 y1 x2 y2 -> (N, M)."""
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(br - tl, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


@dataclass
class _Track:
    id: int
    box: np.ndarray
    last_seen: float


class IoUTracker:
    """Give each face a track id that stays the same while the face stays in view.

    Faces in consecutive frames are matched by IoU with the Hungarian algorithm
    (`scipy.optimize.linear_sum_assignment`); a track survives `max_gap` seconds unseen (a
    missed detection or a brief occlusion) before its id is retired; ids are never reused.

    Args:
        min_iou: a face continues a track only if their boxes overlap at least this much.
        max_gap: seconds a track may go unseen and still be continued.
    """

    def __init__(self, min_iou: float = 0.3, max_gap: float = 1.0) -> None:
        if not 0.0 < min_iou <= 1.0:
            raise ValueError(f"min_iou must be in (0, 1], got {min_iou}")
        if max_gap < 0:
            raise ValueError(f"max_gap must be >= 0, got {max_gap}")
        self.min_iou = min_iou
        self.max_gap = max_gap
        self._tracks: list[_Track] = []
        self._next_id = 0

    @property
    def active_ids(self) -> set[int]:
        """Ids of the tracks still held (seen within `max_gap` at the last update)."""
        return {t.id for t in self._tracks}

    def update(self, boxes: np.ndarray, timestamp: float) -> np.ndarray:
        """Track ids (N,) int64 for this frame's boxes (N, 4)."""
        self._tracks = [t for t in self._tracks if timestamp - t.last_seen <= self.max_gap]
        ids = np.full(len(boxes), -1, np.int64)
        if self._tracks and len(boxes):
            iou = iou_matrix(boxes, np.stack([t.box for t in self._tracks]))
            rows, cols = linear_sum_assignment(-iou)
            for r, c in zip(rows, cols, strict=True):
                if iou[r, c] >= self.min_iou:
                    track = self._tracks[c]
                    track.box, track.last_seen = boxes[r].copy(), timestamp
                    ids[r] = track.id
        for r in np.flatnonzero(ids < 0):
            ids[r] = self._next_id
            self._tracks.append(_Track(self._next_id, boxes[r].copy(), timestamp))
            self._next_id += 1
        return ids
