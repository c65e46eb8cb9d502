"""Clip embedders: four poolers over frame embeddings; training on real track windows."""

import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pytorch_metric_learning")


from emotrace.train.clip import DEFAULTS, KINDS, ClipPooler, train_clip  # noqa: E402
from emotrace.train.config import load_config  # noqa: E402


def test_poolers():
    x = torch.randn(3, 20, 16)
    for kind in KINDS:
        out = ClipPooler(kind, 16, 32, 8)(x)
        assert out.shape == (3, 8) and torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-5)
    with pytest.raises(ValueError, match="mean, attention, gru, tcn"):
        ClipPooler("max", 16)


@pytest.mark.slow
def test_tcn_pooler_on_real_windows(tmp_path, styletalk_dir):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("happyenglish_clip2.mp4", "sad_emotion_clip1.mp4", "furious_talk1_clip2.mp4",
                 "happyenglish_clip1.mp4", "sadgirl_clip1.mp4", "nice_clip1.mp4"):
        shutil.copy(styletalk_dir / "style_clips" / name, videos / name)
    cfg = load_config(None, ["name=tcn", f"output_dir={tmp_path}", f"data.videos={videos}",
                             "model.kind=tcn", "data.heldout_every=2", "data.window=10",
                             "train.epochs=4", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db"],
                      DEFAULTS)
    r = train_clip(cfg, progress=False)
    assert r["train_windows"] > 50 and r["heldout_windows"] > 10
    assert 0.5 < r["heldout_auc"] <= 1 and len(r["history"]) == 4
    assert (tmp_path / "tcn" / "clip.pt").is_file()
    # the exported pooler (ONNX Runtime, no torch) equals the PyTorch one, over any length
    from emotrace.faces.embed import FaceEmbedder

    saved = torch.load(tmp_path / "tcn" / "clip.pt", weights_only=True)
    pooler = ClipPooler("tcn", saved["in_dim"], 256, 128)
    pooler.load_state_dict(saved["model"])
    embedder = FaceEmbedder(str(tmp_path / "tcn" / "clip.onnx"))
    assert embedder.clip_window == (10, 10.0) and embedder.backbone_name == "emotrace-ferplus8"
    x = torch.randn(13, saved["in_dim"])
    with torch.no_grad():
        ref = pooler.eval()(x[None])[0].numpy()
    assert np.abs(embedder.pool(x.numpy()) - ref).max() < 1e-4


@pytest.mark.slow
def test_index_with_a_clip_pooler(tmp_path, styletalk_dir):
    """`emotrace index --embedder clip.onnx`: fragments are the pooler's window (frames / fps),
    and a moment searched for finds itself first."""
    from emotrace.fragments import index_videos, read_index, search
    from emotrace.train.clip import export_pooler

    pytest.importorskip("lancedb")
    torch.manual_seed(0)
    path = export_pooler(ClipPooler("attention", 512, 64, 32), 512, "emotrace-ferplus8", 10, 10.0,
                         tmp_path / "clip.onnx")
    happy, sad = (styletalk_dir / "style_clips" / n
                  for n in ("happyenglish_clip1.mp4", "sadgirl_clip1.mp4"))
    added, failures = index_videos([happy, sad], tmp_path / "db", str(path), progress=False)
    table, meta = read_index(tmp_path / "db")
    assert not failures and meta == {"embedder": str(path), "window": 1.0, "fps": 10.0}
    assert added == len(table) == 5 + 3
    hits = search(tmp_path / "db", video=sad, at=1.0, k=3)
    assert hits.loc[0, "source"] == str(sad) and hits.loc[0, "start"] == 1.0
    assert hits.loc[0, "similarity"] > 0.99
