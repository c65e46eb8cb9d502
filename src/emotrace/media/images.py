"""Reading still images: a BGR uint8 array, or an `InputError` naming the file.

An image's size is read from its header first (Pillow opens lazily: no pixel is decoded), and
one over `max_pixels` is refused before it is decoded, so a small file that decodes to
gigabytes (a 30000x30000 PNG is 2.6 MB on disk and 2.7 GB in memory) cannot exhaust memory.
OpenCV decodes what passes; its own errors become `InputError`s too.
"""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from emotrace.errors import InputError
from emotrace.media.paths import path_problem

# .gif: OpenCV decodes a GIF's first frame (an animated one's others: `emotrace video` reads
# them all, with their own delays as timestamps)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
MAX_PIXELS = 50_000_000  # the default cap: 50 megapixels (a 8660x5773 photo; phones give 12-50)
NOT_AN_IMAGE = "not a readable image (empty, truncated or not an image format)"


def header_pixels(source: str | Path | bytes) -> tuple[int, str] | None:
    """(pixels, how big in words) from an image's header without decoding it; None when
    Pillow does not know the format or cannot read the header (OpenCV may still)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
            with opened as image:
                width, height = image.size
    except Image.DecompressionBombError as exc:  # Pillow's own cap, far above ours: say how big
        found = re.search(r"\((\d+) pixels\)", str(exc))
        if found:
            return int(found.group(1)), f"{int(found.group(1)) / 1e6:.0f} megapixels"
        least = 2 * int(Image.MAX_IMAGE_PIXELS or 0) + 1
        return least, f"more than {least / 1e6:.0f} megapixels"
    except (OSError, ValueError, SyntaxError, EOFError):  # not identified, a broken header
        return None
    pixels = width * height
    return pixels, f"{width}x{height} ({pixels / 1e6:.0f} megapixels)"


def check_pixels(source: str | Path | bytes, name: str | Path,
                 max_pixels: int | None = MAX_PIXELS) -> None:
    """`InputError(name, ...)` when the image's header says it has more than `max_pixels`."""
    if max_pixels is None:
        return
    size = header_pixels(source)
    if size is not None and size[0] > max_pixels:
        raise InputError(name, f"is {size[1]}, more than the {max_pixels / 1e6:g} megapixels "
                               "allowed; not decoded")


# A format's signature, and the marker its last part holds: a file with the first and without
# the second anywhere was cut short. (A JPEG may carry a thumbnail with its own end marker, so
# a marker found proves nothing there; a PNG has exactly one IEND.)
_END_MARKERS = {"PNG": (b"\x89PNG\r\n\x1a\n", b"IEND"), "JPEG": (b"\xff\xd8\xff", b"\xff\xd9")}


def _cut_short(buffer: np.ndarray, kind: str) -> bool:
    signature, end = _END_MARKERS[kind]
    data = buffer.data
    if bytes(data[: len(signature)]) != signature:
        return False
    return end not in bytes(data[-4096:]) and end not in bytes(data)


def _decode(buffer: np.ndarray, name: str | Path) -> np.ndarray:
    if not buffer.size:
        raise InputError(name, "not a readable image: empty (0 bytes)")
    # said before OpenCV is asked: libpng would print its own line to stderr first
    if _cut_short(buffer, "PNG"):
        raise InputError(name, "not a readable image: a truncated PNG (its IEND chunk, the "
                               "end, is missing)")
    try:
        image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        problem = " ".join(str(exc).split()).split(" error: ", 1)[-1]  # no source location
        raise InputError(name, f"cannot be decoded (OpenCV: {problem})") from None
    if image is None:
        if _cut_short(buffer, "JPEG"):
            raise InputError(name, "not a readable image: a truncated JPEG (its end-of-image "
                                   "marker is missing)")
        raise InputError(name, NOT_AN_IMAGE)
    return image


def decode_image(data: bytes, name: str | Path, max_pixels: int | None = MAX_PIXELS
                 ) -> np.ndarray:
    """Encoded image bytes as a BGR uint8 array; `InputError(name, ...)` when they are not an
    image, or one over `max_pixels` (read from the header, before decoding; None: no cap)."""
    check_pixels(data, name, max_pixels)
    return _decode(np.frombuffer(data, np.uint8), name)


def read_image(path: str | Path, max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """A BGR uint8 image; `InputError` naming the file if it is missing, not an image, or over
    `max_pixels` (default 50 megapixels; None: no cap), refused before decoding."""
    path = Path(path)
    if problem := path_problem(path):
        raise InputError(path, problem)
    check_pixels(path, path, max_pixels)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror or exc})") from None
    return _decode(data, path)


def as_bgr(image: np.ndarray) -> np.ndarray:
    """A grey, BGR or BGRA array as 3-channel BGR (the same array when it already is)."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"expected a grayscale, BGR or BGRA image, got shape {image.shape}")
