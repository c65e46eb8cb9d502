"""Hostile recordings (issue 15, problems 1 and 3): phone videos stored sideways or mirrored with
a display matrix are analysed as they are shown, and a recording whose tail is lost keeps the
frames that decode.

Every input is made here from the shared clips: rotated with FFmpeg (the imageio-ffmpeg binary,
a dependency) or PyAV, truncated by cutting bytes.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from emotrace.cli import app
from emotrace.errors import InputError
from emotrace.media.decode import FrameReader, probe
from emotrace.media.orientation import Orientation, from_matrix


def _ffmpeg(*args: str) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", *args], check=True)


def phone_recording(source: Path, folder: Path) -> Path:
    """`source` as a phone stores it: the pixels turned a quarter clockwise, and a display
    rotation of 90 degrees (counter-clockwise) that turns them back for viewing."""
    sideways = folder / "sideways.mp4"
    _ffmpeg("-i", str(source), "-vf", "transpose=1", "-an", "-c:v", "libx264", "-preset",
            "ultrafast", "-crf", "18", str(sideways))
    phone = folder / "phone.mp4"
    _ffmpeg("-display_rotation:v:0", "90", "-i", str(sideways), "-c", "copy", str(phone))
    return phone


def write_rotated(path: Path, degrees: int, frames: int = 5) -> Path:
    """A 48x64 (w x h) clip whose stored frames have a white band along their top edge, with
    a display rotation of `degrees` counter-clockwise."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 48, 64, "yuv420p"
        stream.options = {"preset": "ultrafast", "qp": "0"}
        stream.set_display_rotation(degrees)
        for i in range(frames):
            image = np.zeros((64, 48, 3), np.uint8)
            image[:16] = 255
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


# -- 1. display rotation -------------------------------------------------------------------
@pytest.mark.parametrize(("degrees", "shape", "band"), [
    (90, (48, 64), "left"),     # the top edge turned counter-clockwise lands on the left
    (-90, (48, 64), "right"),
    (180, (64, 48), "bottom"),
    (0, (64, 48), "top"),
])
def test_frames_come_upright_as_the_display_matrix_says(tmp_path, degrees, shape, band):
    path = write_rotated(tmp_path / f"r{degrees}.mp4", degrees)
    frames = list(FrameReader(path))
    assert len(frames) == 5
    image = frames[0].image
    assert image.shape[:2] == shape
    bright = {"top": image[:8].mean(), "bottom": image[-8:].mean(),
              "left": image[:, :8].mean(), "right": image[:, -8:].mean()}
    assert max(bright, key=bright.get) == band and bright[band] > 200
    info = probe(path)
    assert (info.height, info.width) == shape
    assert (FrameReader(path).info.height, FrameReader(path).info.width) == shape


@pytest.mark.slow
def test_phone_recording_is_analysed_upright(tmp_path, pyfeat_dir):
    source = pyfeat_dir / "single_face.mp4"
    phone = phone_recording(source, tmp_path)
    out = tmp_path / "out"
    run = CliRunner().invoke(app, ["video", str(source), str(phone), "-o", str(out), "-q",
                                   "--annotate"])
    assert run.exit_code == 0, run.output
    original = pd.read_parquet(out / "single_face.faces.parquet")
    upright = pd.read_parquet(out / "phone.faces.parquet")
    width, height = probe(source).width, probe(source).height  # 640 x 360
    assert (probe(phone).width, probe(phone).height) == (width, height)
    with_face = upright.groupby("frame")["face"].max() >= 0
    assert len(with_face) == 72 and with_face.sum() >= 71  # the original: a face in all 72
    assert (original.groupby("frame")["face"].max() >= 0).sum() == 72
    tracks = pd.read_csv(out / "phone.tracks.csv")
    dominant = pd.read_csv(out / "single_face.tracks.csv")["dominant"].iloc[0]
    assert tracks.sort_values("frames")["dominant"].iloc[-1] == dominant
    # boxes in upright coordinates: where the original has them, within a few pixels
    faces = upright[upright["face"] == 0].set_index("frame")
    ref = original[original["face"] == 0].set_index("frame").loc[faces.index]
    for column in ("x1", "y1", "x2", "y2"):
        assert (faces[column] - ref[column]).abs().median() < 4, column
    assert faces["x2"].max() <= width and faces["y2"].max() <= height
    assert faces["x2"].max() > height  # beyond the sideways frame's width: really upright
    with av.open(str(out / "phone.annotated.mp4")) as annotated:
        stream = annotated.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (width, height)


# -- 1b. mirrored display matrices ---------------------------------------------------------
ONE = 1 << 16  # 1.0 in the matrix's 16.16 fixed point


def matrix(a: float, b: float, c: float, d: float) -> list[int]:
    """A display matrix with 2x2 part (a, b, c, d), in FFmpeg's 9-int layout."""
    return [round(a * ONE), round(b * ONE), 0, round(c * ONE), round(d * ONE), 0, 0, 0, 1 << 30]


@pytest.mark.parametrize(("m", "expected", "mirrored"), [
    (matrix(1, 0, 0, 1), Orientation(), False),
    (matrix(-1, 0, 0, 1), Orientation(flip_cols=True), True),  # mirrored left-right
    (matrix(1, 0, 0, -1), Orientation(flip_rows=True), True),  # mirrored top-bottom
    (matrix(-1, 0, 0, -1), Orientation(flip_rows=True, flip_cols=True), False),  # half turn
    (matrix(0, -1, 1, 0), Orientation(True, flip_rows=True), False),  # 90 counter-clockwise
    (matrix(0, 1, -1, 0), Orientation(True, flip_cols=True), False),  # 90 clockwise
    (matrix(0, -1, -1, 0), Orientation(True, True, True), True),  # 90 and mirrored
    (matrix(0, 1, 1, 0), Orientation(True), True),  # 270 and mirrored: a transpose
    (matrix(0.8, -0.6, 0.6, 0.8), Orientation(), False),  # 37 degrees: the nearest, none
    (matrix(-2, 0, 0, 2), Orientation(flip_cols=True), True),  # scaled: the scale ignored
    (matrix(0, 0, 0, 0), Orientation(), False),  # degenerate: left alone
])
def test_a_display_matrix_is_a_turn_and_a_mirror(m, expected, mirrored):
    assert from_matrix(m) == expected and expected.mirrored == mirrored


def ffmpeg_shows(path: Path) -> np.ndarray:
    """The first frame as FFmpeg itself shows it (its player applies the display matrix)."""
    import imageio_ffmpeg

    png = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path),
                          "-frames:v", "1", "-f", "image2pipe", "-vcodec", "png", "-"],
                         capture_output=True, check=True).stdout
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)


@pytest.mark.parametrize("m", [matrix(-1, 0, 0, 1), matrix(1, 0, 0, -1), matrix(0, -1, -1, 0),
                               matrix(0, 1, 1, 0), matrix(0, -1, 1, 0)],
                         ids=["hflip", "vflip", "rot90-hflip", "rot270-hflip", "rot90"])
def test_frames_are_shown_as_ffmpeg_shows_them(tmp_path, m):
    """A 48x64 clip with a red corner at the top left of a white top band: which way up and
    which way round it comes is decided by the matrix; FFmpeg's own decode is the reference.
    (A mirrored matrix was read as a half turn: frames mirrored left-right came upside down.)"""
    path = tmp_path / "mirrored.mp4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 48, 64, "yuv444p"
        stream.options = {"preset": "ultrafast", "qp": "0"}
        stream.set_display_matrix(m)
        image = np.zeros((64, 48, 3), np.uint8)
        image[:16], image[:16, :12] = 255, (0, 0, 255)
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    shown = ffmpeg_shows(path)
    frames = list(FrameReader(path))
    assert len(frames) == 3 and frames[0].image.shape == shown.shape
    assert np.abs(frames[0].image.astype(int) - shown).max() <= 2
    assert (probe(path).height, probe(path).width) == shown.shape[:2]


@pytest.mark.slow
def test_a_mirrored_recording_is_analysed_as_it_is_shown(tmp_path, pyfeat_dir):
    """single_face.mp4 stored mirrored with a display matrix that mirrors it back (as some
    front cameras and editors write): analysed as the original. Read as a half turn before,
    its frames came upside down: 62 of 72 face rows `neutral`, the track `neutral`."""
    source = pyfeat_dir / "single_face.mp4"
    stored = tmp_path / "stored.mp4"
    _ffmpeg("-i", str(source), "-vf", "hflip", "-an", "-c:v", "libx264", "-preset",
            "ultrafast", "-crf", "18", str(stored))
    selfie = tmp_path / "selfie.mp4"
    _ffmpeg("-display_hflip", "-i", str(stored), "-c", "copy", str(selfie))
    out = tmp_path / "out"
    run = CliRunner().invoke(app, ["video", str(source), str(selfie), "-o", str(out), "-q"])
    assert run.exit_code == 0, run.output
    original = pd.read_parquet(out / "single_face.faces.parquet").set_index("frame")
    shown = pd.read_parquet(out / "selfie.faces.parquet").set_index("frame")
    assert len(shown) == 72 and (shown["face"] == 0).all()
    assert (shown["emotion"] == original["emotion"]).mean() > 0.9
    for column in ("x1", "y1", "x2", "y2"):
        assert (shown[column] - original[column]).abs().median() < 4, column
    assert pd.read_csv(out / "selfie.tracks.csv")["dominant"].tolist() == ["happy"]


# -- 3. a lost tail ------------------------------------------------------------------------
def _cut(source: Path, path: Path, keep: float) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def test_a_stream_that_ends_early_keeps_its_frames(tmp_path, pyfeat_dir):
    # WolfgangLanger_Pexels.mp4 has its index first: 60% of it opens and decodes 288 of 472
    cut = _cut(pyfeat_dir / "WolfgangLanger_Pexels.mp4", tmp_path / "cut.mp4", 0.6)
    reader = FrameReader(cut, fps=2)
    frames = list(reader)
    assert reader.frames_decoded == 288 and reader.frames_expected == 472
    assert "ends at 12.0 s of 19.7 s" in reader.partial
    assert len(frames) == 24 and frames[-1].timestamp < 12.0
    whole = FrameReader(pyfeat_dir / "WolfgangLanger_Pexels.mp4", fps=2)
    list(whole)
    assert whole.partial == ""


class _Breaks:
    """A container whose decoding raises FFmpeg's InvalidDataError after `after` frames (as
    damage part way through a file does), otherwise the real one."""

    def __init__(self, container, after: int) -> None:
        self._container, self._after = container, after

    def __getattr__(self, name):
        return getattr(self._container, name)

    def decode(self, *args, **kwargs):
        for i, frame in enumerate(self._container.decode(*args, **kwargs)):
            if i == self._after:
                raise av.error.InvalidDataError(1094995529, "Invalid data found when "
                                                "processing input")
            yield frame


@pytest.mark.parametrize("after", [30, 0])
def test_decoding_that_breaks_part_way_keeps_what_decoded(pyfeat_dir, after):
    reader = FrameReader(pyfeat_dir / "single_face.mp4")
    reader._container = _Breaks(reader._container, after)
    if after == 0:  # nothing decoded: refused, one line
        with pytest.raises(InputError, match="no frame could be decoded .FFmpeg: Invalid data"):
            list(reader)
        return
    frames = list(reader)
    assert len(frames) == reader.frames_decoded == 30
    assert reader.partial == ("decoding failed after frame 30 (FFmpeg: Invalid data found when "
                              "processing input)")


def test_no_decodable_frame_is_still_refused(tmp_path, pyfeat_dir):
    # the first 1% of the bytes: the header and index, not one whole frame
    cut = _cut(pyfeat_dir / "WolfgangLanger_Pexels.mp4", tmp_path / "head.mp4", 0.01)
    with pytest.raises(InputError, match="no frame could be decoded"):
        list(FrameReader(cut))


@pytest.mark.slow
def test_video_writes_a_partial_table_and_says_so(tmp_path, pyfeat_dir):
    cut = _cut(pyfeat_dir / "WolfgangLanger_Pexels.mp4", tmp_path / "lid_closed.mp4", 0.6)
    good = pyfeat_dir / "single_face.mp4"
    out = tmp_path / "out"
    run = CliRunner().invoke(app, ["video", str(cut), str(good), "-o", str(out), "-q",
                                   "--fps", "5"])
    assert run.exit_code == 1, run.output
    lines = run.output.splitlines()
    assert f"partial: {cut}: decoded 288 of about 472 frames; the stream ends at 12.0 s of " \
           "19.7 s" in lines
    assert lines[-1] == "1 of 2 videos partial"
    assert not [line for line in lines if line.startswith("error:")]
    table = pd.read_parquet(out / "lid_closed.faces.parquet")
    assert table.attrs["partial"] is True
    assert (table.attrs["frames_decoded"], table.attrs["frames_expected"]) == (288, 472)
    assert len(table) == 60 and (table["face"] == 0).all()  # 12 s at 5 per second, one face
    assert len(pd.read_csv(out / "lid_closed.faces.csv")) == 60
    tracks = pd.read_csv(out / "lid_closed.tracks.csv")
    assert tracks["partial"].all()
    assert (tracks["frames_decoded"] == 288).all() and (tracks["frames_expected"] == 472).all()
    whole = pd.read_csv(out / "single_face.tracks.csv")
    assert not whole["partial"].any() and (whole["frames_decoded"] == 72).all()
    assert pd.read_parquet(out / "single_face.faces.parquet").attrs["partial"] is False


@pytest.mark.slow
def test_batch_keeps_a_partial_recording(tmp_path, pyfeat_dir):
    folder = tmp_path / "in"
    folder.mkdir()
    _cut(pyfeat_dir / "WolfgangLanger_Pexels.mp4", folder / "cut.mp4", 0.6)
    (folder / "notes.mp4").write_text("not a video\n")
    out = tmp_path / "out"
    args = ["batch", str(folder), "-o", str(out), "--fps", "2", "--workers", "1", "-q"]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 1, run.output
    assert any(line.startswith(f"partial: {folder / 'cut.mp4'}: decoded 288 of about 472")
               for line in run.output.splitlines()), run.output
    assert "1 analysed (1 partial), 1 failed" in run.output
    manifest = pd.read_csv(out / "manifest.csv").set_index("key")
    assert manifest.loc["cut.mp4", "status"] == "partial"
    assert (manifest.loc["cut.mp4", "frames_decoded"],
            manifest.loc["cut.mp4", "frames_expected"]) == (288, 472)
    assert manifest.loc["notes.mp4", "status"] == "failed"
    table = pd.read_parquet(out / "faces" / "cut.mp4.parquet")
    assert len(table) == 24 and table.attrs["partial"] is True
    again = CliRunner().invoke(app, args)  # unchanged input: kept, not analysed again
    assert "1 already done" in again.output


@pytest.mark.slow
def test_highlights_uses_a_partial_recording_and_says_so(tmp_path, pyfeat_dir):
    cut = _cut(pyfeat_dir / "WolfgangLanger_Pexels.mp4", tmp_path / "viewer.mp4", 0.6)
    out = tmp_path / "out"
    run = CliRunner().invoke(app, ["highlights", str(cut), "--fps", "5", "-o", str(out), "-q"])
    assert run.exit_code == 1, run.output
    assert f"partial: {cut}: decoded 288 of about 472 frames" in run.output
    assert "error:" not in run.output
    doc = json.loads((out / "moments.json").read_text())
    assert [v["path"] for v in doc["viewers"]] == [str(cut)]
    assert [p["path"] for p in doc["partial"]] == [str(cut)] and not doc["failures"]
    assert "as far as they decoded" in (out / "report.html").read_text()
