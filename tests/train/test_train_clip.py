"""Clip embedders: four poolers over frame embeddings; training on real track windows."""

import shutil

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pytorch_metric_learning")

from conftest import STYLETALK

from emotrace.train.clip import DEFAULTS, KINDS, ClipPooler, train_clip
from emotrace.train.config import load_config


def test_poolers():
    x = torch.randn(3, 20, 16)
    for kind in KINDS:
        out = ClipPooler(kind, 16, 32, 8)(x)
        assert out.shape == (3, 8) and torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-5)
    with pytest.raises(ValueError, match="mean, attention, gru, tcn"):
        ClipPooler("max", 16)


def test_tcn_pooler_on_real_windows(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("happyenglish_clip2.mp4", "sad_emotion_clip1.mp4", "furious_talk1_clip2.mp4",
                 "happyenglish_clip1.mp4", "sadgirl_clip1.mp4", "nice_clip1.mp4"):
        shutil.copy(STYLETALK / "style_clips" / name, videos / name)
    cfg = load_config(None, ["name=tcn", f"output_dir={tmp_path}", f"data.videos={videos}",
                             "model.kind=tcn", "data.heldout_every=2", "data.window=10",
                             "train.epochs=4", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db"], DEFAULTS)
    r = train_clip(cfg, progress=False)
    assert r["train_windows"] > 50 and r["heldout_windows"] > 10
    assert 0.5 < r["heldout_auc"] <= 1 and len(r["history"]) == 4
    assert (tmp_path / "tcn" / "clip.pt").is_file()
