"""Embedding training: each loss learns on real FER+ features; a run is tracked, exported and
evaluated; the exported head runs without torch and equals the PyTorch head."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pytorch_metric_learning")

from emotrace.embed import FaceEmbedder
from emotrace.embedding_eval import evaluate_embedding
from emotrace.train.config import load_config
from emotrace.train.embedding import (
    DEFAULTS,
    LOSSES,
    HardNegativeClassSampler,
    ProjectionHead,
    batch_loss,
    build_loss,
    cached_features,
    train_embedding,
)


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return cached_features(FaceEmbedder("emotrace-ferplus8"), "train", cache, False, limit=768)


@pytest.mark.parametrize("name", LOSSES)
def test_each_loss_learns_on_real_features(features, name):
    x, x2, y = (torch.from_numpy(a) for a in features)
    torch.manual_seed(0)
    head = ProjectionHead(x.shape[1], 128, 32)
    cfg = {**DEFAULTS["loss"], "name": name, "num_classes": 8, "embedding_size": 32}
    loss_fn, miner = build_loss(cfg)
    opt = torch.optim.Adam(list(head.parameters()) + list(loss_fn.parameters()), lr=1e-3)
    batch = torch.arange(256)
    with torch.no_grad():
        before = float(batch_loss(name, loss_fn, miner, head.eval(), x[batch], x2[batch], y[batch]))
    head.train()
    for _ in range(30):
        loss = batch_loss(name, loss_fn, miner, head, x[batch], x2[batch], y[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = float(batch_loss(name, loss_fn, miner, head.eval(), x[batch], x2[batch], y[batch]))
    assert np.isfinite(after) and after < before, (name, before, after)


def test_short_run_is_tracked_exported_and_evaluated(tmp_path):
    cfg = load_config(None, [
        "name=tiny", f"output_dir={tmp_path}", "data.subset=1024", "data.eval_subset=400",
        "train.epochs=2", "train.batch_size=256", "eval.limit=300", "eval.train_sample=400",
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db"], DEFAULTS)
    results = train_embedding(cfg, progress=False)
    history = results["history"]
    assert len(history) == 2 and history[1]["loss"] < history[0]["loss"]
    assert 0.5 < results["base_valid"]["valid_auc"] < 1 and 0.5 < history[-1]["valid_auc"] < 1
    run = tmp_path / "tiny"
    assert {"head.onnx", "head.pt", "metrics.json", "config.json"} <= {p.name for p in run.iterdir()}
    assert 250 < json.loads((run / "metrics.json").read_text())["test"]["n"] <= 300  # labelled ones
    # the ONNX head (run by FaceEmbedder, no torch) equals the PyTorch head
    saved = torch.load(run / "head.pt", weights_only=False)
    head = ProjectionHead(saved["in_dim"], 512, 128)
    head.load_state_dict(saved["head"])
    feats, _, _ = cached_features(FaceEmbedder("emotrace-ferplus8"), "valid", tmp_path / "cache",
                                  False, limit=400)
    with torch.no_grad():
        ref = head.eval()(torch.from_numpy(feats[:64])).numpy()
    got = FaceEmbedder(str(run / "head.onnx")).from_backbone(feats[:64])
    assert np.abs(ref - got).max() < 1e-4
    report = evaluate_embedding(str(run / "head.onnx"), "ferplus-test", None, limit=200,
                                train_sample=300)
    assert 150 < report["n"] <= 200 and 0.5 < report["same_vs_different_roc_auc"] <= 1


def test_hard_negative_sampler_groups_confusable_classes(features):
    x, _, y = features
    sampler = HardNegativeClassSampler(x, y, m=8, classes_per_batch=3, length=240)
    idx = np.array(list(iter(sampler)))
    assert len(idx) == len(sampler) == 240
    classes = np.unique(y)
    for batch in idx.reshape(-1, 24):
        present = np.unique(y[batch])
        assert len(present) <= 3 and all((y[batch] == c).sum() % 8 == 0 for c in present)
    # a batch's classes are the anchor and its nearest centroids
    first = y[idx[:24]]
    anchor = np.searchsorted(classes, first[0])
    assert set(classes[sampler.neighbours[anchor]]) == set(np.unique(first))
    with pytest.raises(ValueError, match="classes_per_batch"):
        HardNegativeClassSampler(x, y, 8, 1, 10)
