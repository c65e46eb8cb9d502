"""VideoMAE as a clip backbone for probes: a tiny randomly initialised model built here."""

import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from typer.testing import CliRunner  # noqa: E402

from emotrace.errors import InputError  # noqa: E402
from emotrace.train.videomae import VideoMAEClipEmbedder, clip_table  # noqa: E402

CLIPS = {"happyenglish_clip1.mp4": "happy", "vscodehappy_clip1.mp4": "happy",
         "sadgirl_clip1.mp4": "sad", "sad_emotion_clip1.mp4": "sad",
         "furious_talk1_clip1.mp4": "angry", "furious_talk2_clip7.mp4": "angry"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from transformers import VideoMAEConfig, VideoMAEModel

    torch.manual_seed(0)
    cfg = VideoMAEConfig(image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=32,
                         num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    folder = tmp_path_factory.mktemp("videomae")
    VideoMAEModel(cfg).save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_clip_embeddings(checkpoint, styletalk_dir):
    emb = VideoMAEClipEmbedder(checkpoint)
    windows = emb.windows(styletalk_dir / "style_clips" / "sadgirl_clip1.mp4", window=1.0)  # 3 s
    assert len(windows) == 3 and [s for s, _ in windows] == [0.0, 1.0, 2.0]
    assert windows[0][1].shape == (32,) and np.isfinite(windows[0][1]).all()
    again = emb.windows(styletalk_dir / "style_clips" / "sadgirl_clip1.mp4", window=1.0)
    assert np.allclose(windows[1][1], again[1][1])
    with pytest.raises(InputError, match="no config.json"):
        VideoMAEClipEmbedder(checkpoint.parent)


@pytest.mark.slow
def test_probe_on_videomae_clips(checkpoint, tmp_path, styletalk_dir):
    from emotrace.cli import app

    videos = tmp_path / "videos"
    videos.mkdir()
    for name in CLIPS:
        shutil.copy(styletalk_dir / "style_clips" / name, videos / name)
    (videos / "index.csv").write_text("file,weak_label_from_filename\n"
                                      + "".join(f"{n},{lab}\n" for n, lab in CLIPS.items()))
    table = np.load(clip_table(checkpoint, videos, tmp_path / "t.npz", window=1.0))
    assert table["embeddings"].shape[1] == 32 and set(table["labels"]) == {"happy", "sad", "angry"}
    assert set(table["split"]) == {"train", "valid", "test"}
    run = CliRunner().invoke(app, ["probe", "--videomae", str(checkpoint), "--videos", str(videos),
                                   "--window", "1", "-o", str(tmp_path / "out"), "--epochs", "5"])
    assert run.exit_code == 0, run.output
    assert "MLP  test accuracy" in run.output and "SVM  test accuracy" in run.output
