"""Reading still images: a BGR uint8 array, or an `InputError` naming the file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from emotrace.errors import InputError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def read_image(path: str | Path) -> np.ndarray:
    """A BGR uint8 image; `InputError` naming the file if it is missing or not an image."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file" if not path.exists() else "not a file")
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror or exc})") from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise InputError(path, "not a readable image (empty, truncated or not an image format)")
    return image


def as_bgr(image: np.ndarray) -> np.ndarray:
    """A grey, BGR or BGRA array as 3-channel BGR (the same array when it already is)."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"expected a grayscale, BGR or BGRA image, got shape {image.shape}")
