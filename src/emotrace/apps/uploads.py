"""Uploaded files, as the REST API and the demo receive them: one set of checks and messages.

An upload is a name (the user's file name, which every error names instead of a temporary
path) and bytes. `check_kind` / `check_size` refuse it with an `UploadProblem` that carries the
HTTP status the API answers (415 wrong type, 413 too large); `decode_image` and `saved_upload`
turn it into an image or a file for the pipeline, with `InputError`s that name the upload.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

from emotrace.errors import InputError
from emotrace.media.decode import VIDEO_SUFFIXES
from emotrace.media.images import IMAGE_SUFFIXES

KINDS = ("image", "video")
SUFFIXES = {"image": IMAGE_SUFFIXES, "video": VIDEO_SUFFIXES}
CHUNK = 1 << 20
#: Content types that say "not a picture, whatever the name says".
_NOT_MEDIA = ("text/", "application/json")


class UploadProblem(Exception):
    """An upload refused before analysis; `status` is the HTTP status the API answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def upload_kind(name: str, content_type: str | None = None) -> str | None:
    """"image" or "video" by the file's suffix (by the content type when the suffix says
    nothing); None for anything else, or when the content type is text or JSON."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype.startswith(_NOT_MEDIA):
        return None
    suffix = Path(name).suffix.lower()
    for kind in KINDS:
        if suffix in SUFFIXES[kind]:
            return kind
    for kind in KINDS:
        if ctype.startswith(f"{kind}/"):
            return kind
    return None


def accepted_suffixes(kinds: tuple[str, ...] = KINDS) -> str:
    """The accepted files in words: "images (.bmp, ...) or videos (.avi, ...)"."""
    return " or ".join(f"{kind}s ({', '.join(sorted(SUFFIXES[kind]))})" for kind in kinds)


def check_kind(name: str, kinds: tuple[str, ...] = KINDS, content_type: str | None = None) -> str:
    """The upload's kind, one of `kinds`; `UploadProblem` 415 otherwise."""
    kind = upload_kind(name, content_type)
    if kind is None or kind not in kinds:
        what = " or ".join(f"{'an' if k == 'image' else 'a'} {k}" for k in kinds)
        seen = f"file type {Path(name).suffix.lower() or '(no suffix)'}"
        if content_type:
            seen += f", content type {content_type.split(';')[0].strip()}"
        raise UploadProblem(415, f"{name}: not {what} ({seen}); upload {accepted_suffixes(kinds)}")
    return kind


def _too_large(name: str, limit: int, size: int | None = None) -> UploadProblem:
    seen = f" ({size / 2**20:.1f} MB)" if size is not None else ""
    return UploadProblem(413, f"{name}: larger than the limit of {limit / 2**20:g} MB{seen}")


def check_size(name: str, size: int, limit: int) -> None:
    """`UploadProblem` 413 when `size` bytes are over `limit` bytes."""
    if size > limit:
        raise _too_large(name, limit, size)


def read_limited(file: BinaryIO, name: str, limit: int) -> bytes:
    """All of `file`, read in chunks; `UploadProblem` 413 as soon as it passes `limit` bytes
    (the rest is never read)."""
    data = bytearray()
    while chunk := file.read(CHUNK):
        data += chunk
        if len(data) > limit:
            raise _too_large(name, limit)
    return bytes(data)


def decode_image(name: str, data: bytes) -> np.ndarray:
    """The uploaded bytes as a BGR image; `InputError(name, ...)` when they are none."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise InputError(name, "not a readable image (empty, truncated or not an image format)")
    return image


def save_upload(name: str, data: bytes, folder: Path, stem: str = "upload") -> Path:
    """`data` written to `folder/stem` with the upload's suffix (the decoder goes by it)."""
    path = folder / f"{stem}{Path(name).suffix.lower()}"
    path.write_bytes(data)
    return path


@contextmanager
def upload_errors(name: str) -> Iterator[None]:
    """`InputError`s raised inside name the upload, not the temporary file it was saved as."""
    try:
        yield
    except InputError as exc:
        raise InputError(name, exc.problem) from None


@contextmanager
def saved_upload(name: str, data: bytes) -> Iterator[Path]:
    """The upload as a temporary file (removed afterwards); errors inside name the upload."""
    with tempfile.TemporaryDirectory(prefix="emotrace-upload-") as folder, upload_errors(name):
        yield save_upload(name, data, Path(folder))
