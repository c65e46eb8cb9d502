"""The webcam path, run headless on video files; EmotionRecognizer on real faces."""

from __future__ import annotations

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from emotrace.apps import webcam
from emotrace.apps.webcam import EmotionRecognizer, has_gui, run_live
from emotrace.errors import InputError
from emotrace.highlights.trailer import grab_frame
from emotrace.media.decode import probe
from emotrace.media.images import read_image


@pytest.fixture(scope="session")
def wolfgang(pyfeat_dir):
    return pyfeat_dir / "WolfgangLanger_Pexels.mp4"  # sad first, broadly smiling from ~12 s


@pytest.fixture(scope="module")
def recognizer(models_dir):
    return EmotionRecognizer()


def test_predict_a_clear_face(recognizer, pyfeat_dir):
    (face,) = EmotionRecognizer(smoothing=0).predict(read_image(pyfeat_dir / "0-f15-hao-ph.jpg"))
    assert face.emotion == "happy" and face.probability > 0.5
    assert face.probabilities["happy"] == face.probability
    assert face.valence is not None and face.valence > 0
    x1, y1, x2, y2 = face.box
    assert 0 <= x1 < x2 <= 512 and 0 <= y1 < y2 <= 512


def test_predict_on_video_frames(recognizer, wolfgang):
    frame = grab_frame(wolfgang, 15.0)
    assert [f.emotion for f in recognizer.predict(frame)] == ["happy"]
    assert recognizer.predict(np.zeros((480, 640, 3), np.uint8)) == []
    with pytest.raises(ValueError, match="BGR image"):
        recognizer.predict(np.zeros((480, 640), np.uint8))


def test_headless_run_writes_the_overlay(recognizer, tmp_path, wolfgang):
    out = tmp_path / "live.mp4"
    stats = run_live(recognizer, str(wolfgang), headless=True, output=out, max_frames=60)
    assert stats.frames == 60 and stats.faces == 60
    info = probe(out)
    assert (info.width, info.height) == (640, 360) and info.n_frames == 60
    source, drawn = grab_frame(wolfgang, 1.0), grab_frame(out, 1.0)
    diff = np.abs(source.astype(int) - drawn.astype(int)).sum(axis=2) > 60
    assert diff[:30, :130].mean() > 0.05  # the frames/s text in the corner
    face = recognizer.predict(source)[0]
    x1, y1, x2, _ = (round(v) for v in face.box)
    edge = diff[max(0, y1 - 2):y1 + 3, x1:x2]  # the box's top edge
    assert edge.mean() > 0.3


@pytest.mark.slow
def test_cli_headless_and_errors(tmp_path, pyfeat_dir):
    from emotrace.cli import app

    out = tmp_path / "cli.mp4"
    run = CliRunner().invoke(app, ["webcam", "--source", str(pyfeat_dir / "single_face.mp4"),
                                   "--headless", "-o", str(out)])
    assert run.exit_code == 0, run.output
    assert "72 frames, 72 faces" in run.output and out.is_file()
    run = CliRunner().invoke(app, ["webcam", "--source", str(tmp_path / "none.mp4"),
                                   "--headless", "-o", str(out)])
    assert run.exit_code == 2 and "none.mp4: no such file" in run.output
    run = CliRunner().invoke(app, ["webcam", "--source", "7", "--headless", "-o", str(out)])
    assert run.exit_code == 2 and "camera 7: cannot be opened" in run.output
    run = CliRunner().invoke(app, ["webcam", "--source", str(pyfeat_dir / "single_face.mp4"),
                                   "--headless"])
    assert run.exit_code == 2 and "--headless needs --output" in run.output


def test_window_without_gui_says_what_to_do(recognizer, wolfgang):
    if has_gui():
        pytest.skip("this OpenCV build has a GUI")
    with pytest.raises(RuntimeError, match="--headless --output"):
        run_live(recognizer, str(wolfgang))


def test_missing_source(recognizer):
    with pytest.raises(InputError, match="no such file"):
        run_live(recognizer, "/nonexistent/clip.mp4", headless=True, output="x.mp4")


def frame_times(path) -> np.ndarray:
    """Every frame's timestamp in seconds, read back with PyAV."""
    with av.open(str(path)) as container:
        return np.array([float(f.time) for f in container.decode(video=0)])


def test_headless_frames_keep_their_capture_times(recognizer, tmp_path, wolfgang):
    """Bug 10: headless output was one frame ahead (the first frame at 1/fps)."""
    out = tmp_path / "live.mp4"
    run_live(recognizer, str(wolfgang), headless=True, output=out, max_frames=30)
    written, source = frame_times(out), frame_times(wolfgang)[:30]
    assert written[0] == 0.0
    assert np.allclose(written, source - source[0], atol=1e-3)


def test_recording_started_with_r_begins_at_zero(tmp_path, monkeypatch, wolfgang):
    """Bug 10: a recording started with `r` after N seconds began N seconds into its file."""
    keys = iter([ord("r") if i == 29 else -1 for i in range(60)])  # r on the 30th frame
    monkeypatch.setattr(webcam, "has_gui", lambda: True)
    monkeypatch.setattr(webcam.cv2, "imshow", lambda *args: None)
    monkeypatch.setattr(webcam.cv2, "waitKey", lambda delay: next(keys))
    monkeypatch.setattr(webcam.cv2, "destroyAllWindows", lambda: None)
    out = tmp_path / "recorded.mp4"
    stats = run_live(EmotionRecognizer(), str(wolfgang), output=out, max_frames=60)
    assert stats.frames == 60
    written, source = frame_times(out), frame_times(wolfgang)[30:60]
    assert len(written) == 30 and written[0] == 0.0
    assert np.allclose(written, source - source[0], atol=1e-3)
