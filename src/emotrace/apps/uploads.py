"""Uploaded files, as the REST API and the demo receive them: one set of checks and messages.

An upload is a name (the user's file name, which every error names instead of a temporary
path) and bytes. `check_kind` / `check_size` refuse it with an `UploadProblem` that carries the
HTTP status the API answers (415 wrong type, 413 too large); `decode_image` and `saved_upload`
turn it into an image or a file for the pipeline, with `InputError`s that name the upload.

An upload is never stored under the user's name: `save_upload` writes a generated name whose
suffix comes from the allow-list (`stored_suffix`: the name's own suffix when the decoders know
it, else the one the content type stands for), so no file name can be too long, reach another
folder or pick a decoder nobody chose.
"""

from __future__ import annotations

import mimetypes
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np

from emotrace.errors import InputError
from emotrace.media import images
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


def _shown_suffix(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return f"{suffix[:20]}..." if len(suffix) > 24 else (suffix or "(no suffix)")


def check_kind(name: str, kinds: tuple[str, ...] = KINDS, content_type: str | None = None) -> str:
    """The upload's kind, one of `kinds`; `UploadProblem` 415 otherwise."""
    kind = upload_kind(name, content_type)
    if kind is None or kind not in kinds:
        what = " or ".join(f"{'an' if k == 'image' else 'a'} {k}" for k in kinds)
        seen = f"file type {_shown_suffix(name)}"
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


def copy_limited(file: BinaryIO, name: str, limit: int, path: Path) -> int:
    """Copy `file` to a new file `path` (readable by this user only) in chunks; the bytes
    copied. `UploadProblem` 413 as soon as it passes `limit` bytes (`path` is then removed)."""
    size = 0
    try:
        with os.fdopen(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600), "wb") as out:
            while chunk := file.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise _too_large(name, limit)
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return size


def decode_image(name: str, data: bytes, max_pixels: int | None = images.MAX_PIXELS
                 ) -> np.ndarray:
    """The uploaded bytes as a BGR image. An image whose header says it has more than
    `max_pixels` is refused before decoding (`UploadProblem` 413); bytes that are no image
    are `InputError(name, ...)`."""
    try:
        images.check_pixels(data, name, max_pixels)
    except InputError as exc:
        raise UploadProblem(413, str(exc)) from None
    return images.decode_image(data, name, None)


def stored_suffix(name: str, kind: str, content_type: str | None = None) -> str:
    """The suffix an upload of `kind` is stored with, from the allow-list `SUFFIXES[kind]`: the
    name's suffix when it is on it, else the content type's; `UploadProblem` 415 when neither
    is (a suffix nobody knows, however long)."""
    suffix = Path(name).suffix.lower()
    if suffix in SUFFIXES[kind]:
        return suffix
    ctype = (content_type or "").split(";")[0].strip().lower()
    for guess in mimetypes.guess_all_extensions(ctype) if ctype else ():
        if guess in SUFFIXES[kind]:
            return guess
    raise UploadProblem(415, f"{name}: unknown file type {_shown_suffix(name)}; upload "
                        f"{accepted_suffixes((kind,))}")


def save_upload(name: str, data: bytes, folder: Path, stem: str = "upload",
                content_type: str | None = None) -> Path:
    """`data` written to `folder/<stem><suffix>`, the suffix from `stored_suffix` (the decoder
    goes by it); the file is readable by this user only."""
    kind = upload_kind(name, content_type) or "video"
    path = folder / f"{stem}{stored_suffix(name, kind, content_type)}"
    with os.fdopen(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600), "wb") as out:
        out.write(data)
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
