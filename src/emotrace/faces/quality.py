"""How well a face can be seen in its frame: brightness, contrast, sharpness, size, clipping.

Measured on the detector's box, on the frame as decoded (before any resize), so recordings can
be graded from their tables alone:

- `face_brightness`: mean luma (BT.601, 0-255) of the box's pixels inside the frame;
- `face_contrast`: their standard deviation (0-255);
- `face_sharpness`: variance of the Laplacian (3x3) of that luma resized to `SHARPNESS_SIZE`
  square pixels, so a face's sharpness does not depend on how large it is in the frame
  (a small face is enlarged, which shows as low sharpness: it has less detail to see);
- `face_size`: sqrt(width x height) in frame pixels of the face's whole box (below);
- `face_clipped`: the share (0..1) of the face's whole box that lies outside the frame.

YuNet's box stops at the frame's edge (for a face half out of the frame it covers the half
that is in), so the whole box is estimated: a box that reaches an edge is extended beyond it
to the usual shape of a face's box, height = `FACE_ASPECT` x width (the median of YuNet's
boxes on whole faces: 1.16 to 1.41 on the shared photos and clips), keeping its side away from
the edge. A box cut on a horizontal and a vertical edge at once (a corner) is underestimated.
A box wholly outside the frame gets NaN brightness, contrast and sharpness.
"""

from __future__ import annotations

import cv2
import numpy as np

SHARPNESS_SIZE = 64
FACE_ASPECT = 1.3
EDGE_PX = 3.0  # a box side this close to the frame's edge reaches it


def whole_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N, 4) boxes extended beyond the frame's edges they reach (see the module doc)."""
    x1, y1, x2, y2 = (boxes[:, i].copy() for i in range(4))
    w, h = x2 - x1, y2 - y1
    left, right = x1 <= EDGE_PX, x2 >= width - EDGE_PX
    top, bottom = y1 <= EDGE_PX, y2 >= height - EDGE_PX
    full_w = np.where(left | right, np.maximum(w, h / FACE_ASPECT), w)
    full_h = np.where(top | bottom, np.maximum(h, w * FACE_ASPECT), h)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    # grow away from the edge the box reaches; a box that reaches both grows from its middle
    x1 = np.where(left & ~right, x2 - full_w, np.where(right & ~left, x1, cx - full_w / 2))
    y1 = np.where(top & ~bottom, y2 - full_h, np.where(bottom & ~top, y1, cy - full_h / 2))
    return np.stack([x1, y1, x1 + full_w, y1 + full_h], axis=1)


def _luma_stats(gray: np.ndarray) -> tuple[float, float, float]:
    """Mean, standard deviation and size-normalised Laplacian variance of a luma crop."""
    mean, std = cv2.meanStdDev(gray)
    shrink = max(gray.shape) >= SHARPNESS_SIZE
    small = cv2.resize(gray, (SHARPNESS_SIZE, SHARPNESS_SIZE),
                       interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    lap = cv2.Laplacian(small, cv2.CV_32F, ksize=1)
    return float(mean[0, 0]), float(std[0, 0]), float(lap.var())


def face_quality(image: np.ndarray, boxes: np.ndarray, extend: bool = True) -> np.ndarray:
    """(N, 5) float32 brightness, contrast, sharpness, size, clipped of (N, 4) x1 y1 x2 y2
    boxes in an HxWx3 BGR (or HxW gray) image, in `emotrace.face_table.QUALITY_COLUMNS` order.

    `extend`: estimate each face's whole box beyond the frame's edges (`whole_boxes`); False
    for boxes that are whole as given (an image that is one cropped face).
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    out = np.full((len(boxes), 5), np.nan, np.float32)
    if not len(boxes):
        return out
    h, w = image.shape[:2]
    whole = whole_boxes(boxes, w, h) if extend else boxes
    area = (np.clip(whole[:, 2] - whole[:, 0], 0, None)
            * np.clip(whole[:, 3] - whole[:, 1], 0, None))
    inside = (np.clip(np.minimum(whole[:, 2], w) - np.maximum(whole[:, 0], 0), 0, None)
              * np.clip(np.minimum(whole[:, 3], h) - np.maximum(whole[:, 1], 0), 0, None))
    out[:, 3] = np.sqrt(area)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[:, 4] = np.where(area > 0, 1 - inside / area, np.nan)
    # whole pixels the box covers, inside the frame
    x1 = np.clip(np.floor(boxes[:, 0]), 0, w).astype(int)
    y1 = np.clip(np.floor(boxes[:, 1]), 0, h).astype(int)
    x2 = np.clip(np.ceil(boxes[:, 2]), 0, w).astype(int)
    y2 = np.clip(np.ceil(boxes[:, 3]), 0, h).astype(int)
    for i in range(len(boxes)):
        if x2[i] - x1[i] < 2 or y2[i] - y1[i] < 2:
            continue
        crop = image[y1[i]:y2[i], x1[i]:x2[i]]
        gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
        out[i, :3] = _luma_stats(gray)
    return out
