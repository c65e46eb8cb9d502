"""How well a face can be seen in its frame: brightness, contrast, sharpness, size, clipping.

Measured on the detector's box, on the frame as decoded (before any resize), so recordings can
be graded from their tables alone:

- `face_brightness`: mean luma (BT.601, 0-255) of the box's pixels inside the frame;
- `face_contrast`: their standard deviation (0-255);
- `face_sharpness`: variance of the Laplacian (3x3) of that luma resized to `SHARPNESS_SIZE`
  square pixels, so a face's sharpness does not depend on how large it is in the frame
  (a small face is enlarged, which shows as low sharpness: it has less detail to see);
- `face_size`: sqrt(box width x box height) in frame pixels, the box as detected;
- `face_clipped`: the share (0..1) of the box's area outside the frame, before any clipping.

A box wholly outside the frame gets NaN brightness, contrast and sharpness.
"""

from __future__ import annotations

import cv2
import numpy as np

SHARPNESS_SIZE = 64


def _luma_stats(gray: np.ndarray) -> tuple[float, float, float]:
    """Mean, standard deviation and size-normalised Laplacian variance of a luma crop."""
    mean, std = cv2.meanStdDev(gray)
    shrink = max(gray.shape) >= SHARPNESS_SIZE
    small = cv2.resize(gray, (SHARPNESS_SIZE, SHARPNESS_SIZE),
                       interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    lap = cv2.Laplacian(small, cv2.CV_32F, ksize=1)
    return float(mean[0, 0]), float(std[0, 0]), float(lap.var())


def face_quality(image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N, 5) float32 brightness, contrast, sharpness, size, clipped of (N, 4) x1 y1 x2 y2
    boxes in an HxWx3 BGR (or HxW gray) image, in `emotrace.face_table.QUALITY_COLUMNS` order."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    out = np.full((len(boxes), 5), np.nan, np.float32)
    if not len(boxes):
        return out
    h, w = image.shape[:2]
    bw = np.clip(boxes[:, 2] - boxes[:, 0], 0, None)
    bh = np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    inside = (np.clip(np.minimum(boxes[:, 2], w) - np.maximum(boxes[:, 0], 0), 0, None)
              * np.clip(np.minimum(boxes[:, 3], h) - np.maximum(boxes[:, 1], 0), 0, None))
    area = bw * bh
    out[:, 3] = np.sqrt(area)
    out[:, 4] = np.where(area > 0, 1 - inside / np.maximum(area, 1e-9), np.nan)
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
