"""Face alignment: a 5-point similarity transform onto the 112x112 ArcFace template.

The template is InsightFace's (used by ArcFace and by the OpenCV Zoo expression model), in
YuNet's landmark order: right eye, left eye, nose tip, right and left mouth corner (the
subject's right eye lies on the image's left, at x = 38.3).
"""

from __future__ import annotations

import cv2
import numpy as np

ARCFACE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src to dst.

    Umeyama (1991), the estimate InsightFace uses for ArcFace crops. src, dst: (K, 2).
    Returns the 2x3 matrix for `cv2.warpAffine`.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    cov = d_c.T @ s_c / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1.0  # a reflection: flip the smaller axis so the result is a proper rotation
    rot = u @ np.diag(d) @ vt
    var_s = (s_c**2).sum() / len(src)
    scale = (sig * d).sum() / var_s if var_s > 0 else 1.0
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]]).astype(np.float32)


def align_faces(image: np.ndarray, landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    """Crop each face aligned to the ArcFace template: (N, 5, 2) landmarks -> (N, size, size, C)."""
    template = ARCFACE_112 * (size / 112.0)
    out = np.empty((len(landmarks), size, size, *image.shape[2:]), dtype=image.dtype)
    for i, pts in enumerate(landmarks):
        m = similarity_transform(pts, template)
        out[i] = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT)
    return out


def crop_boxes(image: np.ndarray, boxes: np.ndarray, size: int, margin: float = 0.0) -> np.ndarray:
    """Square crops around boxes (N, 4), each side grown by `margin`, resized to size.

    With margin 0 a square on YuNet's box (the longer side) frames a face as FER2013 does:
    forehead to chin, little background (compared by eye on FER+ test faces).
    """
    out = np.empty((len(boxes), size, size, *image.shape[2:]), dtype=image.dtype)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        half = max(x2 - x1, y2 - y1) * (1 + 2 * margin) / 2
        # Map the square onto the output with an affine warp: pixels outside the image are 0.
        s = size / (2 * half)
        m = np.array([[s, 0, size / 2 - s * cx], [0, s, size / 2 - s * cy]], np.float32)
        out[i] = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT)
    return out
