"""Hostile images (issue 15, problems 4, 5 and 8): a pixel cap read from the header before any
decoding, no OpenCV traceback for a header-only giant, and `images` that never overwrites its
output with nothing nor hides an image it could not label.

The images are made here: PNG headers written byte by byte, photos resized from ../shared.
"""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from emotrace.cli import app
from emotrace.errors import InputError
from emotrace.media import images


def header_only_png(path: Path, width: int, height: int) -> Path:
    """A valid PNG signature and IHDR claiming width x height RGB, with one tiny IDAT: a few
    hundred bytes on disk that would decode to width * height * 3 bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * (1 + 3 * min(width, 256)))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
                     + chunk(b"IEND", b""))
    return path


@pytest.fixture()
def decodes(monkeypatch) -> list[int]:
    """Counts cv2.imdecode calls made by emotrace.media.images (and still decodes)."""
    calls: list[int] = []
    real = cv2.imdecode

    def counted(buffer, flags):
        calls.append(len(buffer))
        return real(buffer, flags)

    monkeypatch.setattr(images.cv2, "imdecode", counted)
    return calls


# -- 4. the pixel cap ----------------------------------------------------------------------
def test_an_image_over_the_cap_is_refused_before_decoding(tmp_path, decodes):
    big = header_only_png(tmp_path / "big.png", 30000, 30000)
    assert big.stat().st_size < 1000
    with pytest.raises(InputError) as err:
        images.read_image(big)
    # (beyond Pillow's own decompression-bomb limit the header gives the pixel count only)
    assert str(err.value) == (f"{big}: is 900 megapixels, more than the 50 megapixels "
                              "allowed; not decoded")
    assert decodes == []  # never handed to the decoder: no 2.7 GB allocation
    wide = header_only_png(tmp_path / "wide.png", 12000, 6000)
    with pytest.raises(InputError, match=r"is 12000x6000 \(72 megapixels\), more than the 50"):
        images.read_image(wide)
    with pytest.raises(InputError, match="more than the 50 megapixels"):
        images.decode_image(big.read_bytes(), "upload.png")
    assert decodes == []


def test_the_cap_can_be_changed(tmp_path, decodes, pyfeat_dir):
    photo = cv2.imread(str(pyfeat_dir / "single_face.jpg"))
    large = tmp_path / "large.jpg"
    cv2.imwrite(str(large), cv2.resize(photo, (3000, 2000)))  # 6 megapixels
    assert images.read_image(large).shape == (2000, 3000, 3)
    with pytest.raises(InputError, match=r"3000x2000 \(6 megapixels\), more than the 5 mega"):
        images.read_image(large, max_pixels=5_000_000)
    assert images.read_image(large, max_pixels=None).shape == (2000, 3000, 3)


@pytest.fixture()
def photos(tmp_path, pyfeat_dir) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("single_face.jpg", "0-f1-su-ph.jpg"):
        shutil.copy(pyfeat_dir / name, folder / name)
    return folder


def test_images_refuses_a_large_photo_and_goes_on(photos, tmp_path, pyfeat_dir):
    photo = cv2.imread(str(pyfeat_dir / "single_face.jpg"))
    cv2.imwrite(str(photos / "large.jpg"), cv2.resize(photo, (3000, 2000)))
    out = tmp_path / "pred.csv"
    run = CliRunner().invoke(app, ["images", str(photos), "-o", str(out), "-q",
                                   "--max-megapixels", "5"])
    assert run.exit_code == 1, run.output
    errors = [line for line in run.output.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {photos / 'large.jpg'}: is 3000x2000 (6 megapixels), more than "
                      "the 5 megapixels allowed; not decoded"]
    sources = set(pd.read_csv(out)["source"].str.rsplit("/", n=1).str[-1])
    assert sources == {"single_face.jpg", "0-f1-su-ph.jpg"}
    run = CliRunner().invoke(app, ["images", str(photos), "-o", str(out), "-q"])
    assert run.exit_code == 0, run.output  # under the default 50 megapixels
    assert len(pd.read_csv(out)) == 3


# -- 5. a header-only giant ----------------------------------------------------------------
@pytest.mark.parametrize("cap", ["50", "100000"])  # refused by the cap / by OpenCV's own limit
def test_a_65535_square_png_is_one_line_and_the_others_get_results(photos, tmp_path, cap):
    giant = header_only_png(photos / "giant.png", 65535, 65535)
    out = tmp_path / "pred.csv"
    run = CliRunner().invoke(app, ["images", str(photos), "-o", str(out), "-q",
                                   "--max-megapixels", cap])
    assert run.exit_code == 1, run.output
    assert "Traceback" not in run.output and "cv2.error" not in run.output
    errors = [line for line in run.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {giant}: "), run.output
    assert ("4295 megapixels" in errors[0]) if cap == "50" else ("cannot be decoded" in errors[0])
    df = pd.read_csv(out)
    assert set(df["source"].str.rsplit("/", n=1).str[-1]) == {"single_face.jpg", "0-f1-su-ph.jpg"}
    assert (df["face"] >= 0).all()


# -- 8. every image failing, and the submission's unlabelled rows --------------------------
@pytest.mark.needs_shared  # the images command loads YuNet from ../shared/models
def test_images_that_all_fail_leave_the_previous_output_alone(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.png").write_text("not an image\n")
    out = tmp_path / "predictions.csv"
    out.write_text("source,face\nearlier.jpg,0\n")
    for extra in ([], ["--submission"]):
        run = CliRunner().invoke(app, ["images", str(folder), "-o", str(out), "-q", *extra])
        assert run.exit_code == 1, run.output
        lines = run.output.splitlines()
        assert lines[-1] == f"error: none of the 2 images could be read; {out} not written"
        assert len([line for line in lines if line.startswith("error:")]) == 3
        assert out.read_text() == "source,face\nearlier.jpg,0\n"


def test_submission_marks_no_face_and_failed_rows(photos, tmp_path):
    cv2.imwrite(str(photos / "blank.png"), np.full((200, 200, 3), 90, np.uint8))
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path / "submission.csv"
    run = CliRunner().invoke(app, ["images", str(photos), "-o", str(out), "--submission", "-q"])
    assert run.exit_code == 1, run.output  # one image could not be read
    assert "submission: 2 of 4 images have no emotion: 1 no_face, 1 failed" in run.output
    df = pd.read_csv(out)
    assert list(df.columns) == ["image_path", "emotion"]
    label = dict(zip(df["image_path"].str.rsplit("/", n=1).str[-1], df["emotion"]))
    assert label == {"0-f1-su-ph.jpg": "surprise", "blank.png": "no_face",
                     "broken.jpg": "failed", "single_face.jpg": "happy"}
    assert list(df["image_path"]) == sorted(df["image_path"])  # the order they were given
