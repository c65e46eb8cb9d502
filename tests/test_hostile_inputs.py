"""Hostile input files (issue 15): broken, odd and tricky files given to `images`, `video` and
`batch`, and to the Analyzer. Each one either gives a sensible result (a 16-bit, CMYK or RGBA
photo, a face in a 4K frame: found and classified as in the original) or is one line,
`error: PATH: problem`, with exit 1 and the other files' results kept: never a traceback,
never a hang (the runs that could hang are subprocesses with a timeout), never a broken file
under a final output name.

Every input is made here, in tmp_path: drawn with numpy, encoded with OpenCV, Pillow or PyAV,
or cut from the photos in ../shared. Cases covered elsewhere: pixel caps and header-only giant
PNGs (test_hostile_images.py), display rotations and lost tails (test_hostile_video.py), a
text file named .mp4 and half a video (test_video.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from emotrace.cli import app
from emotrace.errors import InputError
from emotrace.media import images
from emotrace.media.decode import FrameReader, probe

pytestmark = pytest.mark.needs_shared  # the photos and the models of ../shared


def cli(*args: str):
    """`emotrace ARGS` in this process; never a traceback, whatever the exit code."""
    run = CliRunner().invoke(app, [str(a) for a in args])
    assert run.exception is None or isinstance(run.exception, SystemExit), repr(run.exception)
    assert "Traceback" not in run.output, run.output
    return run


def cli_process(*args: str, timeout: float = 120) -> tuple[int, str]:
    """`emotrace ARGS` as a process (for inputs that could hang or crash it): exit code and
    output; a hang fails the test after `timeout` seconds."""
    done = subprocess.run([sys.executable, "-m", "emotrace.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    return done.returncode, output


def errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def write_clip(path: Path, frames: list[np.ndarray], pts_ms: list[int]) -> Path:
    """An H.264 MP4 of BGR `frames` shown at `pts_ms` (milliseconds: any spacing, so variable
    frame rate clips keep the times given)."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt, stream.options = "yuv420p", {"preset": "ultrafast"}
        stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
        for image, t in zip(frames, pts_ms, strict=True):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def happy(pyfeat_dir) -> np.ndarray:
    return cv2.imread(str(pyfeat_dir / "0-f15-hao-ph.jpg"))  # 512x512, clearly happy


@pytest.fixture(scope="module")
def surprised(pyfeat_dir) -> np.ndarray:
    return cv2.imread(str(pyfeat_dir / "0-f1-su-ph.jpg"))  # 512x512, clearly surprised


# -- images ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def odd_images(tmp_path_factory, pyfeat_dir, happy, surprised) -> Path:
    """The happy photo stored every odd way a still image comes, and three broken files."""
    folder = tmp_path_factory.mktemp("odd")
    jpeg = (pyfeat_dir / "0-f15-hao-ph.jpg").read_bytes()
    (folder / "original.jpg").write_bytes(jpeg)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    png = cv2.imencode(".png", happy)[1].tobytes()
    (folder / "truncated.png").write_bytes(png[: len(png) // 2])
    grey = cv2.cvtColor(happy, cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(folder / "grey16.png"), grey.astype(np.uint16) * 257)
    cv2.imwrite(str(folder / "colour16.png"), happy.astype(np.uint16) * 257)
    Image.open(pyfeat_dir / "0-f15-hao-ph.jpg").convert("CMYK").save(folder / "cmyk.jpg")
    rgba = cv2.cvtColor(happy, cv2.COLOR_BGR2BGRA)
    rgba[..., 3] = 128  # half transparent, a fully transparent corner
    rgba[:40, :40, 3] = 0
    cv2.imwrite(str(folder / "rgba.png"), rgba)
    frames = [Image.fromarray(cv2.cvtColor(x, cv2.COLOR_BGR2RGB)) for x in (happy, surprised)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:],
                   duration=200, loop=0)
    (folder / "visage_é_表情_😀.jpg").write_bytes(jpeg)
    return folder


def test_odd_images_are_read_and_broken_ones_are_one_line_each(odd_images, tmp_path):
    out = tmp_path / "pred.csv"
    run = cli("images", odd_images, "-o", out, "-q")
    assert run.exit_code == 1, run.output
    assert "libpng" not in run.output  # said before libpng could print a line of its own
    assert errors(run.output) == [
        f"error: {odd_images / 'empty.jpg'}: not a readable image: empty (0 bytes)",
        f"error: {odd_images / 'truncated.jpg'}: not a readable image: a truncated JPEG (its "
        "end-of-image marker is missing)",
        f"error: {odd_images / 'truncated.png'}: not a readable image: a truncated PNG (its IEND "
        "chunk, the end, is missing)"]
    df = pd.read_csv(out).assign(name=lambda d: d["source"].str.rsplit("/", n=1).str[-1])
    df = df.set_index("name")
    assert set(df.index) == {"original.jpg", "grey16.png", "colour16.png", "cmyk.jpg",
                             "rgba.png", "animated.gif", "visage_é_表情_😀.jpg"}
    assert (df["emotion"] == "happy").all() and (df["emotion_prob"] > 0.9).all()
    box = ["x1", "y1", "x2", "y2"]
    offsets = (df[box] - df.loc["original.jpg", box]).abs().max(axis=1)
    assert offsets.max() < 12, offsets  # the same face found in each (grey: a few pixels off)
    assert offsets[["colour16.png", "rgba.png", "visage_é_表情_😀.jpg"]].max() < 0.01


def test_the_analyzer_reads_odd_images_as_8_bit_colour(odd_images, analyzer):
    for name in ("grey16.png", "colour16.png", "cmyk.jpg", "rgba.png", "animated.gif"):
        image = images.read_image(odd_images / name)
        assert image.dtype == np.uint8 and image.shape == (512, 512, 3), name
        result = analyzer.analyze_image(odd_images / name)
        (face,) = result.to_pandas().itertuples()
        assert face.emotion == "happy", name
    with pytest.raises(InputError, match="truncated.png: not a readable image: a truncated PNG"):
        analyzer.analyze_image(odd_images / "truncated.png")


def test_a_truncated_png_leaves_stderr_silent(odd_images, capfd):
    with pytest.raises(InputError, match="a truncated PNG"):
        images.read_image(odd_images / "truncated.png")
    assert capfd.readouterr().err == ""  # libpng's "PNG input buffer is incomplete" not reached


def test_bytes_after_the_end_marker_are_not_taken_for_truncation(happy, tmp_path):
    """A photo with data appended after its end (a "motion photo" carries a video there) is
    whole: the end marker is looked for in all of the file, not only at its end."""
    for suffix in (".png", ".jpg"):
        data = cv2.imencode(suffix, happy)[1].tobytes() + os.urandom(200_000)
        path = tmp_path / f"appended{suffix}"
        path.write_bytes(data)
        assert images.read_image(path).shape == (512, 512, 3)


def test_an_animated_gif_is_one_image_to_images_and_every_frame_to_video(odd_images, tmp_path):
    run = cli("video", odd_images / "animated.gif", "-o", tmp_path / "out", "-q")
    assert run.exit_code == 0, run.output
    table = pd.read_parquet(tmp_path / "out" / "animated.faces.parquet")
    assert table["timestamp"].tolist() == [0.0, 0.2]  # the GIF's own 200 ms delay
    assert table["emotion"].tolist() == ["happy", "surprise"]


def test_a_4k_photo_finds_the_face_as_in_the_original(happy, analyzer, tmp_path):
    photo = np.full((2160, 3840, 3), 120, np.uint8)
    photo[500:1524, 1400:2424] = cv2.resize(happy, (1024, 1024))  # the face at twice the size
    cv2.imwrite(str(tmp_path / "uhd.jpg"), photo)
    result = analyzer.analyze_image(tmp_path / "uhd.jpg")
    original = analyzer.analyze_image(happy)
    assert (result.width, result.height) == (3840, 2160)
    (face,) = result.to_pandas().itertuples()
    (ref,) = original.to_pandas().itertuples()
    assert face.emotion == ref.emotion == "happy" and face.emotion_prob > 0.9
    # where the original's box lands, scaled and moved (detected at 640 px: a few px there)
    expected = (1400 + 2 * ref.x1, 500 + 2 * ref.y1, 1400 + 2 * ref.x2, 500 + 2 * ref.y2)
    assert iou((face.x1, face.y1, face.x2, face.y2), expected) > 0.85


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return w * h / (area - w * h)


# -- videos ----------------------------------------------------------------------------------
def audio_only(path: Path) -> Path:
    """An MP4 with one second of AAC sound and no video stream."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=16000)
        tone = np.sin(np.arange(16000) * 2 * np.pi * 440 / 16000).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(0.2 * tone[None], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def odd_videos(tmp_path_factory, pyfeat_dir, happy) -> Path:
    folder = tmp_path_factory.mktemp("odd_videos")
    (folder / "empty.mp4").write_bytes(b"")
    audio_only(folder / "sound.mp4")
    (folder / "photo.mp4").write_bytes((pyfeat_dir / "0-f15-hao-ph.jpg").read_bytes())
    write_clip(folder / "one_frame.mp4", [happy], [0])
    return folder


BAD_VIDEOS = {"empty.mp4": "not a readable video: empty (0 bytes)",
              "sound.mp4": "has no video stream (only sound)",
              "photo.mp4": "is a still image (JPEG), not a video; `emotrace images` reads it"}


def test_odd_videos_are_one_line_each_and_a_one_frame_clip_is_one_frame(odd_videos, tmp_path):
    out = tmp_path / "out"
    code, output = cli_process("video", odd_videos, "-o", out, "-q")
    assert code == 1, output
    assert errors(output) == [f"error: {odd_videos / name}: {problem}"
                              for name, problem in sorted(BAD_VIDEOS.items())]
    assert output.splitlines()[-1] == "3 of 4 videos failed"
    # nothing under a final name for the refused ones; the good one whole
    assert sorted(p.name for p in out.iterdir()) == [
        "one_frame.faces.csv", "one_frame.faces.parquet", "one_frame.tracks.csv"]
    table = pd.read_parquet(out / "one_frame.faces.parquet")
    assert table["timestamp"].tolist() == [0.0] and table["emotion"].tolist() == ["happy"]
    assert table.attrs["partial"] is False and table.attrs["frames_decoded"] == 1


def test_batch_records_odd_videos_as_failed_with_their_reason(odd_videos, tmp_path):
    out = tmp_path / "bout"
    run = cli("batch", odd_videos, "-o", out, "--workers", "1", "-q")
    assert run.exit_code == 1, run.output
    manifest = pd.read_csv(out / "manifest.csv").set_index("key")
    assert manifest.loc["one_frame.mp4", "status"] == "done"
    assert manifest.loc["one_frame.mp4", "frames"] == 1
    for name, problem in BAD_VIDEOS.items():
        assert manifest.loc[name, ["status", "reason"]].tolist() == ["failed", problem]
    assert sorted(p.name for p in (out / "faces").iterdir()) == ["one_frame.mp4.parquet"]


def test_the_analyzer_refuses_odd_videos_in_one_line(odd_videos, analyzer):
    for name, problem in BAD_VIDEOS.items():
        with pytest.raises(InputError) as err:
            analyzer.analyze_video(odd_videos / name, progress=False)
        assert str(err.value) == f"{odd_videos / name}: {problem}"
    result = analyzer.analyze_video(odd_videos / "one_frame.mp4", progress=False)
    assert len(result.frames) == result.frames_decoded == result.frames_expected == 1
    assert not result.partial


def test_variable_frame_rate_keeps_the_stream_s_own_times(happy, surprised, tmp_path):
    shown_at = [0, 40, 80, 280, 320, 820, 860, 900]  # ms: gaps of 40, 200 and 500
    faces = [happy, happy, happy, surprised, surprised, happy, happy, happy]
    clip = write_clip(tmp_path / "vfr.mp4", faces, shown_at)
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        stream_times = [float(f.pts * stream.time_base) for f in container.decode(stream)]
    assert stream_times == pytest.approx([t / 1000 for t in shown_at])
    reader = FrameReader(clip)
    assert [f.timestamp for f in reader] == pytest.approx(stream_times) and not reader.partial
    run = cli("video", clip, "-o", tmp_path / "out", "-q")
    assert run.exit_code == 0, run.output
    table = pd.read_parquet(tmp_path / "out" / "vfr.faces.parquet")
    assert table["timestamp"].tolist() == pytest.approx(stream_times)
    assert table["emotion"].tolist() == ["happy"] * 3 + ["surprise"] * 2 + ["happy"] * 3
    sampled = [(f.index, f.timestamp) for f in FrameReader(clip, fps=10)]
    assert [t for _, t in sampled] == pytest.approx([stream_times[i] for i, _ in sampled])
    assert [i for i, _ in sampled] == [0, 3, 4, 5, 7]  # no gap filled in, no frame twice


@pytest.mark.slow
def test_a_face_in_a_4k_video_is_found_and_classified_as_in_the_original(happy, tmp_path):
    frame = np.full((2160, 3840, 3), 120, np.uint8)
    frame[500:1524, 1400:2424] = cv2.resize(happy, (1024, 1024))
    clip = write_clip(tmp_path / "uhd.mp4", [frame] * 4, [0, 40, 80, 120])
    assert (probe(clip).width, probe(clip).height) == (3840, 2160)
    run = cli("video", clip, "-o", tmp_path / "out", "-q")
    assert run.exit_code == 0, run.output
    table = pd.read_parquet(tmp_path / "out" / "uhd.faces.parquet")
    assert len(table) == 4 and (table["face"] == 0).all()
    assert (table["emotion"] == "happy").all() and (table["emotion_prob"] > 0.9).all()
    assert table["x1"].between(1550, 1700).all() and table["x2"].between(2150, 2300).all()


# -- symbolic links that loop ----------------------------------------------------------------
@pytest.fixture()
def looping(tmp_path, pyfeat_dir, happy) -> Path:
    """A photo and a clip beside links that never reach a file: a.jpg -> b -> a.jpg,
    self.mp4 -> self.mp4, a link to nowhere, and folders linked to themselves and to their
    parent (a scan that followed them would never end)."""
    folder = tmp_path / "loops"
    (folder / "sub").mkdir(parents=True)
    (folder / "ok.jpg").write_bytes((pyfeat_dir / "0-f15-hao-ph.jpg").read_bytes())
    write_clip(folder / "ok.mp4", [happy] * 3, [0, 40, 80])
    try:
        (folder / "a.jpg").symlink_to("b")
        (folder / "b").symlink_to("a.jpg")
        (folder / "self.mp4").symlink_to("self.mp4")
        (folder / "gone.jpg").symlink_to("nowhere.jpg")
        (folder / "sub" / "self").symlink_to(".")
        (folder / "sub" / "up").symlink_to("..")
    except OSError as exc:  # a file system without symbolic links
        pytest.skip(f"no symbolic links here: {exc}")
    return folder


LOOP = "is a symbolic link that loops (it never reaches a file)"


def test_images_names_looping_links_and_analyses_the_rest(looping, tmp_path):
    code, output = cli_process("images", looping, "-o", tmp_path / "pred.csv", "-q")
    assert code == 1, output
    assert errors(output) == [
        f"error: {looping / 'a.jpg'}: {LOOP}",
        f"error: {looping / 'gone.jpg'}: is a broken symbolic link (to nowhere.jpg, not found)"]
    df = pd.read_csv(tmp_path / "pred.csv")
    assert df["source"].tolist() == [str(looping / "ok.jpg")]  # once: no folder link followed


def test_video_and_batch_name_looping_links_and_analyse_the_rest(looping, tmp_path):
    code, output = cli_process("video", looping, "-o", tmp_path / "out", "-q")
    assert code == 1, output
    assert errors(output) == [f"error: {looping / 'self.mp4'}: {LOOP}"]
    assert len(pd.read_parquet(tmp_path / "out" / "ok.faces.parquet")) == 3
    # batch resolved every path first: a loop was RuntimeError and ended the whole run, exit 2
    code, output = cli_process("batch", looping, "-o", tmp_path / "bout", "--workers", "1", "-q")
    assert code == 1, output
    assert errors(output) == [f"error: {looping / 'self.mp4'}: {LOOP}"]
    manifest = pd.read_csv(tmp_path / "bout" / "manifest.csv").set_index("key")
    assert manifest["status"].to_dict() == {"ok.mp4": "done", "self.mp4": "failed"}
    assert manifest.loc["self.mp4", "reason"] == LOOP


# -- names -----------------------------------------------------------------------------------
def test_unicode_names_in_and_out(pyfeat_dir, happy, tmp_path):
    folder = tmp_path / "dossier_é_表情_😀"
    folder.mkdir()
    (folder / "visage_é_表情_😀.jpg").write_bytes((pyfeat_dir / "0-f15-hao-ph.jpg").read_bytes())
    write_clip(folder / "vidéo_表情_😀.mp4", [happy], [0])
    out = tmp_path / "résultats_😀"
    run = cli("images", folder, "-o", out / "prédictions_😀.csv", "-q")
    assert run.exit_code == 0, run.output
    df = pd.read_csv(out / "prédictions_😀.csv")
    assert df["source"].tolist() == [str(folder / "visage_é_表情_😀.jpg")]
    assert df["emotion"].tolist() == ["happy"]
    run = cli("video", folder, "-o", out, "-q")
    assert run.exit_code == 0, run.output
    table = pd.read_parquet(out / "vidéo_表情_😀.faces.parquet")
    assert table["source"].tolist() == [str(folder / "vidéo_表情_😀.mp4")]
    run = cli("batch", folder, "-o", out / "lot", "--workers", "1", "-q")
    assert run.exit_code == 0, run.output
    assert (out / "lot" / "faces" / "vidéo_表情_😀.mp4.parquet").is_file()
    assert pd.read_csv(out / "lot" / "manifest.csv")["key"].tolist() == ["vidéo_表情_😀.mp4"]


def test_names_that_are_not_utf8_are_written_with_their_bytes_escaped(pyfeat_dir, happy,
                                                                      tmp_path):
    """Latin-1 names (an old camera, a zip made on Windows): every command ended with
    "error: 'utf-8' codec can't encode character '\\udce9'", exit 2, no output at all."""
    folder = tmp_path / "latin1"
    folder.mkdir()
    photo, clip = os.fsdecode(b"caf\xe9.jpg"), os.fsdecode(b"vid\xe9o.mp4")
    try:
        (folder / photo).write_bytes((pyfeat_dir / "0-f15-hao-ph.jpg").read_bytes())
    except (OSError, UnicodeEncodeError) as exc:  # a file system that refuses such names
        pytest.skip(f"names that are not UTF-8 cannot be made here: {exc}")
    write_clip(folder / clip, [happy], [0])
    (folder / os.fsdecode(b"vide\xff.jpg")).write_bytes(b"")
    out = tmp_path / "out"
    run = cli("images", folder, "-o", out / "pred.csv", "-q")
    assert run.exit_code == 1, run.output
    assert errors(run.output) == [f"error: {folder}/vide\\xff.jpg: not a readable image: empty "
                                  "(0 bytes)"]
    assert pd.read_csv(out / "pred.csv")["source"].tolist() == [f"{folder}/caf\\xe9.jpg"]
    run = cli("images", folder, "-o", out / "sub.csv", "--submission", "-q")
    assert pd.read_csv(out / "sub.csv").values.tolist() == [
        [f"{folder}/caf\\xe9.jpg", "happy"], [f"{folder}/vide\\xff.jpg", "failed"]]
    run = cli("video", folder, "-o", out, "-q")
    assert run.exit_code == 0, run.output
    assert pd.read_parquet(out / "vid\\xe9o.faces.parquet")["source"].tolist() == [
        f"{folder}/vid\\xe9o.mp4"]
    for attempt in ("first", "again"):
        run = cli("batch", folder, "-o", out / "batch", "--workers", "1", "-q")
        assert run.exit_code == 0, run.output
        assert ("1 already done" in run.output) == (attempt == "again"), run.output
    manifest = pd.read_csv(out / "batch" / "manifest.csv")
    assert manifest[["key", "status"]].values.tolist() == [["vid\\xe9o.mp4", "done"]]
    assert (out / "batch" / "faces" / "vid\\xe9o.mp4.parquet").is_file()
