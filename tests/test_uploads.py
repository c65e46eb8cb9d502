"""Upload checks shared by the REST API and the demo: one set of rules and messages."""

from __future__ import annotations

import io

import pytest

from emotrace.apps.uploads import (
    UploadProblem,
    check_kind,
    check_size,
    copy_limited,
    decode_image,
    read_limited,
    save_upload,
    saved_upload,
    stored_suffix,
    upload_kind,
)
from emotrace.errors import InputError
from emotrace.media.decode import probe


def test_kind_by_suffix_then_content_type():
    assert upload_kind("a.JPG") == "image" and upload_kind("clip.mov") == "video"
    assert upload_kind("upload", "image/png") == "image"  # no suffix: the content type says
    assert upload_kind("a.jpg", "text/plain") is None  # a text file, whatever its name
    assert upload_kind("README") is None


def test_wrong_kind_is_415_naming_the_file():
    assert check_kind("clip.mp4") == "video"
    with pytest.raises(UploadProblem) as err:
        check_kind("notes.txt", ("image",), "text/plain")
    assert err.value.status == 415
    assert err.value.message.startswith("notes.txt: not an image (file type .txt, content type "
                                        "text/plain); upload images (")
    with pytest.raises(UploadProblem, match=r"photo.jpg: not a video \(file type .jpg\)"):
        check_kind("photo.jpg", ("video",))
    with pytest.raises(UploadProblem, match=r"README: not an image or a video \(file type "
                                            r"\(no suffix\)\); upload images \(.*\) or videos"):
        check_kind("README")


def test_too_large_is_413_and_stops_reading():
    check_size("a.jpg", 2**20, 2**20)
    with pytest.raises(UploadProblem) as err:
        check_size("big.mp4", 3 * 2**20, 2**20)
    assert err.value.status == 413
    assert err.value.message == "big.mp4: larger than the limit of 1 MB (3.0 MB)"
    stream = io.BytesIO(bytes(5 << 20))
    with pytest.raises(UploadProblem, match="big.jpg: larger than the limit of 1 MB$"):
        read_limited(stream, "big.jpg", 1 << 20)
    assert stream.tell() <= 2 << 20  # the rest was never read
    assert read_limited(io.BytesIO(b"abc"), "a.jpg", 10) == b"abc"


def test_errors_name_the_upload_not_the_temporary_file(pyfeat_dir):
    assert decode_image("a.jpg", (pyfeat_dir / "single_face.jpg").read_bytes()).ndim == 3
    with pytest.raises(InputError, match="^broken.jpg: not a readable image"):
        decode_image("broken.jpg", b"not a JPEG")
    video = (pyfeat_dir / "single_face.mp4").read_bytes()
    with saved_upload("My Clip.MP4", video) as path:
        assert path.suffix == ".mp4" and probe(path).n_frames == 72
    assert not path.exists()
    with pytest.raises(InputError) as err, saved_upload("half.mp4", video[: len(video) // 2]) as p:
        probe(p)
    assert err.value.path == "half.mp4" and "not a readable video" in err.value.problem


def _png_header(width: int, height: int, rows: int = 4) -> bytes:
    """A PNG that promises width x height pixels and holds a few rows (842 bytes at 65535)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * ((width * 3 + 1) * rows), 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_an_image_over_the_pixel_cap_is_refused_before_decoding():
    with pytest.raises(UploadProblem) as err:
        decode_image("huge.png", _png_header(65535, 65535))
    assert err.value.status == 413 and "megapixels" in str(err.value)


def test_an_image_opencv_refuses_is_an_input_error_not_a_crash():
    with pytest.raises(InputError, match="^huge.png: cannot be decoded"):
        decode_image("huge.png", _png_header(65535, 65535), max_pixels=None)


def test_uploads_are_stored_under_a_generated_name_with_a_known_suffix(tmp_path):
    long_name = "clip." + "x" * 300  # a suffix no file system takes
    with pytest.raises(UploadProblem) as err:
        stored_suffix(long_name, "video", "application/octet-stream")
    assert err.value.status == 415 and "unknown file type .xxxxxxxxxxxxxxxxxxx..." in str(err.value)
    assert stored_suffix(long_name, "video", "video/mp4") in (".mp4", ".m4v")
    assert stored_suffix("Clip.MOV", "video") == ".mov"
    assert stored_suffix("photo", "image", "image/png") == ".png"
    path = save_upload(long_name, b"abc", tmp_path, stem="job1", content_type="video/quicktime")
    assert path == tmp_path / "job1.mov" and path.read_bytes() == b"abc"
    assert path.stat().st_mode & 0o077 == 0  # a viewer's video: this user only
    with pytest.raises(UploadProblem):
        save_upload("../../etc/passwd", b"x", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job1.mov"]


def test_copy_limited_stops_at_the_limit_and_leaves_nothing(tmp_path):
    assert copy_limited(io.BytesIO(b"abc"), "a.mp4", 10, tmp_path / "a.mp4") == 3
    stream = io.BytesIO(bytes(5 << 20))
    with pytest.raises(UploadProblem, match="big.mp4: larger than the limit of 1 MB$"):
        copy_limited(stream, "big.mp4", 1 << 20, tmp_path / "big.mp4")
    assert stream.tell() <= 2 << 20 and not (tmp_path / "big.mp4").exists()
