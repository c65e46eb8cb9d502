import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from emotrace.cli import app
from emotrace.errors import InputError


@pytest.mark.slow
def test_no_face_video_keeps_every_frame_without_face_rows(analyzer, pyfeat_dir):
    result = analyzer.analyze_video(pyfeat_dir / "no_face.mp4", progress=False)
    df = result.to_pandas()
    assert result.frames_decoded == 95  # video/index.csv: 95 frames
    assert df["frame"].tolist() == list(range(95))
    assert (df["face"] == -1).all() and df["emotion"].isna().all()


@pytest.mark.slow
def test_face_leaves_the_frame(analyzer, pyfeat_dir):
    df = analyzer.analyze_video(pyfeat_dir / "face_noface.mov", progress=False).to_pandas()
    per_frame = df.groupby("frame")["face"].max() >= 0
    n = len(per_frame)
    assert n == 169
    assert per_frame.iloc[: n // 5].mean() > 0.9  # a face at the start
    assert per_frame.iloc[-n // 5 :].sum() == 0  # none at the end


@pytest.mark.slow
def test_wolfgang_goes_from_sad_to_happy(analyzer, pyfeat_dir):
    # Looked at first (docs/images/wolfgang_timeline.png): sad/disgust dominate the first
    # ~9.5 s, then a broad smile until the end.
    result = analyzer.analyze_video(pyfeat_dir / "WolfgangLanger_Pexels.mp4", progress=False)
    df = result.to_pandas()
    assert len(result.frames) == 472 and (df["face"] == 0).all()
    assert df["track_id"].nunique() == 1
    assert df["timestamp"].is_monotonic_increasing
    first, second = df.iloc[: len(df) // 2], df.iloc[len(df) // 2 :]
    assert first["sad"].mean() > first["happy"].mean()
    assert first["sad"].mean() > 0.4
    assert second["happy"].mean() > 0.9
    assert (second["emotion"] == "happy").mean() > 0.9


@pytest.mark.slow
def test_fps_sampling_uses_stream_timestamps(analyzer, styletalk_dir):
    result = analyzer.analyze_video(styletalk_dir / "style_clips" / "happyenglish_clip1.mp4",
                                    fps=5, progress=False)
    ts = np.array([f.timestamp for f in result.frames])
    assert result.frames_decoded == 135
    assert len(ts) == 23  # 4.5 s at 5 per second, from t = 0
    assert np.allclose(np.diff(ts), 0.2, atol=1 / 30 + 1e-6)
    assert (result.to_pandas()["emotion"] == "happy").mean() > 0.9


@pytest.mark.parametrize("kind,problem", [
    ("truncated_index", "not a readable video"),  # half a video, its index at the end
    ("text", "not a readable video"),
])
def test_bad_video_gives_a_clear_error(analyzer, bad_videos, kind, problem):
    with pytest.raises(InputError) as err:
        analyzer.analyze_video(bad_videos[kind], progress=False)
    assert str(err.value).startswith(str(bad_videos[kind]))
    assert problem in str(err.value)


@pytest.mark.slow
def test_cli_batch_goes_on_past_bad_files(bad_videos, tmp_path, pyfeat_dir):
    good = pyfeat_dir / "single_face.mp4"
    args = ["video", str(bad_videos["truncated"]), str(good), str(bad_videos["text"]),
            str(bad_videos["truncated_index"]),
            str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "out"), "--plot", "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 3
    # half a video with its index first: the half that decodes is kept, and said partial
    assert f"partial: {bad_videos['truncated']}: decoded 228 of about 472 frames" in result.output
    assert any("notes.mp4: not a readable video" in e for e in errors)
    assert any("missing.mp4: no such file" in e for e in errors)
    assert any("truncated_index.mp4: not a readable video" in e for e in errors)
    assert "Traceback" not in result.output
    out = tmp_path / "out"
    df = pd.read_parquet(out / "single_face.faces.parquet")
    assert len(df) == 72 and (df["face"] >= 0).all()
    assert (out / "single_face.faces.csv").exists() and (out / "single_face.timeline.png").exists()
    tracks = pd.read_csv(out / "single_face.tracks.csv")
    assert len(tracks) == 1 and tracks.loc[0, "frames"] == 72
    assert "3 of 5 videos failed, 1 partial" in result.output
    names = sorted(p.name for p in out.iterdir())
    assert not [n for n in names if n.startswith(("truncated_index", "notes", "."))], names
    assert "truncated.faces.parquet" in names


@pytest.mark.slow
def test_annotated_video_has_every_frame_with_overlay(tmp_path, pyfeat_dir):
    src = pyfeat_dir / "single_face.mp4"
    result = CliRunner().invoke(app, ["video", str(src), "-o", str(tmp_path), "--annotate", "-q"])
    assert result.exit_code == 0, result.output
    import av

    out = tmp_path / "single_face.annotated.mp4"
    with av.open(str(out)) as a, av.open(str(src)) as b:
        fa = [f.to_ndarray(format="bgr24") for f in a.decode(video=0)]
        fb = [f.to_ndarray(format="bgr24") for f in b.decode(video=0)]
    assert len(fa) == len(fb) == 72
    df = pd.read_csv(tmp_path / "single_face.faces.csv")
    x1, y1, x2, _y2 = df.loc[10, ["x1", "y1", "x2", "y2"]].round().astype(int)
    # The box outline is drawn: pixels on its top edge differ strongly from the source.
    edge = np.abs(fa[10][y1, x1:x2].astype(int) - fb[10][y1, x1:x2].astype(int)).mean()
    assert edge > 40


def test_variable_frame_rate_keeps_stream_timestamps(analyzer, tmp_path, pyfeat_dir):
    """Frames written at irregular times come back with those times, not index / fps."""
    import av

    from emotrace.outputs.annotate import VideoWriter

    with av.open(str(pyfeat_dir / "single_face.mp4")) as src:
        images = [f.to_ndarray(format="bgr24") for _, f in zip(range(24), src.decode(video=0))]
    gaps = np.where(np.arange(24) % 3 == 0, 0.2, 1 / 30)  # bursts and pauses
    times = np.concatenate([[0.0], np.cumsum(gaps)[:-1]])
    vfr = tmp_path / "vfr.mp4"
    writer = VideoWriter(vfr, images[0].shape[1], images[0].shape[0], fps=30)
    for image, t in zip(images, times):
        writer.write(image, float(t))
    writer.close()
    result = analyzer.analyze_video(vfr, progress=False)
    got = np.array([f.timestamp for f in result.frames])
    assert len(got) == 24
    assert np.abs(got - times).max() < 0.002
    sampled = analyzer.analyze_video(vfr, fps=2, progress=False)
    picked = np.array([f.timestamp for f in sampled.frames])
    # One frame per half second: the first frame at or after each 0.5 s mark.
    expected = [times[np.argmax(times >= k * 0.5 - 1e-6)] for k in range(int(times[-1] / 0.5) + 1)]
    assert np.allclose(picked, expected, atol=0.002)


def test_cli_rejects_bad_settings_in_one_line(tmp_path, pyfeat_dir):
    result = CliRunner().invoke(app, ["video", str(pyfeat_dir / "single_face.mp4"), "-o",
                                      str(tmp_path), "--threshold", "1.5"])
    assert result.exit_code == 2
    assert result.output == "error: --threshold: must be > 0 and < 1, got 1.5\n"
    result = CliRunner().invoke(app, ["images", str(pyfeat_dir), "--model", "nope"])
    assert result.exit_code == 2 and "valid names" in result.output
