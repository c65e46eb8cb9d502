"""Which way up a video's frames are shown: its display matrix as a turn and a mirror.

A phone stores frames as its sensor gives them and writes, beside the stream, a display matrix
saying how players must turn (and, for some front cameras and editors, mirror) them. FFmpeg's
matrix maps a stored pixel (p, q) to the shown one (a p + c q, b p + d q) (plus an offset),
with (a, b, c, d) its entries 0, 1, 3 and 4 in 16.16 fixed point, in image coordinates (y
down). `av_display_rotation_get` (PyAV's `frame.rotation`) reads an angle only and takes a
mirrored matrix for a half turn: a stream mirrored left-right came out upside down, where faces
are not found. `Orientation` keeps all of it: the nearest of the eight quarter turns with or
without a mirror, applied as a transpose and flips, as FFmpeg's own player does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Orientation:
    """Stored frame -> shown frame: transposed first (when `transpose`), then turned upside
    down (`flip_rows`) and mirrored left-right (`flip_cols`). The default changes nothing."""

    transpose: bool = False
    flip_rows: bool = False
    flip_cols: bool = False

    @property
    def swaps_sides(self) -> bool:
        """True when the shown frame's width is the stored frame's height."""
        return self.transpose

    @property
    def mirrored(self) -> bool:
        """True when the matrix mirrors (its determinant is negative), whatever it turns."""
        return self.transpose == (self.flip_rows == self.flip_cols)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """`image` as it is to be shown (a new contiguous array unless nothing changes)."""
        if self.transpose:
            image = cv2.transpose(image)
        if self.flip_rows and self.flip_cols:
            return cv2.flip(image, -1)
        if self.flip_rows or self.flip_cols:
            return cv2.flip(image, 0 if self.flip_rows else 1)
        return image


UPRIGHT = Orientation()


def from_matrix(matrix: Sequence[int]) -> Orientation:
    """The orientation an FFmpeg display matrix (9 int32, `AV_FRAME_DATA_DISPLAYMATRIX`)
    stands for, snapped to the nearest quarter turn (a degenerate matrix: unchanged)."""
    a, b, c, d = (float(matrix[i]) / 65536 for i in (0, 1, 3, 4))
    scale_p, scale_q = math.hypot(a, c), math.hypot(b, d)
    if not scale_p or not scale_q:
        return UPRIGHT
    a, c, b, d = a / scale_p, c / scale_p, b / scale_q, d / scale_q
    if abs(a) + abs(d) >= abs(b) + abs(c):  # x' follows p: no quarter turn
        return Orientation(False, flip_rows=d < 0, flip_cols=a < 0)
    # x' follows q and y' follows p: transpose, then y' = b p, x' = c q say the flips
    return Orientation(True, flip_rows=b < 0, flip_cols=c < 0)


def from_rotation(degrees: float) -> Orientation:
    """The orientation of a pure turn by `degrees` counter-clockwise (nearest quarter)."""
    turn = math.radians(90 * (round(degrees / 90) % 4))
    cos, sin = round(math.cos(turn)), round(math.sin(turn))
    return from_matrix([cos << 16, -sin << 16, 0, sin << 16, cos << 16, 0, 0, 0, 1 << 30])
