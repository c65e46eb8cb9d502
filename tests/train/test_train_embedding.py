"""Embedding training: each loss learns on real FER+ features; a run is tracked, exported and
evaluated; the exported head runs without torch and equals the PyTorch head."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pytorch_metric_learning")

from emotrace.evaluation.embedding import evaluate_embedding  # noqa: E402
from emotrace.faces.embed import FaceEmbedder  # noqa: E402
from emotrace.train.config import load_config  # noqa: E402
from emotrace.train.embedding import (  # noqa: E402
    DEFAULTS,
    LOSSES,
    HardNegativeClassSampler,
    HellingerHead,
    ProjectionHead,
    batch_loss,
    build_loss,
    cached_features,
    train_embedding,
    vote_targets,
)


@pytest.fixture(scope="module")
def features(tmp_path_factory, data_dir):  # FER+ faces from ../shared
    cache = tmp_path_factory.mktemp("cache")
    return cached_features(FaceEmbedder("emotrace-ferplus8"), "train", cache, False, limit=768)


@pytest.mark.slow
@pytest.mark.parametrize("name", LOSSES)
def test_each_loss_learns_on_real_features(features, name):
    x, x2, y = (torch.from_numpy(a) for a in features)
    torch.manual_seed(0)
    head = ProjectionHead(x.shape[1], 128, 32)
    if name == "hellinger":  # an emotion-distribution head, trained on the vote distributions
        head, y = HellingerHead(x.shape[1], 128, 8), torch.from_numpy(vote_targets("train", 768))
    cfg = {**DEFAULTS["loss"], "name": name, "num_classes": 8, "embedding_size": 32}
    loss_fn = build_loss(cfg)
    opt = torch.optim.Adam(list(head.parameters()) + list(loss_fn.parameters()), lr=1e-3)
    batch = torch.arange(256)
    with torch.no_grad():
        before = float(batch_loss(name, loss_fn, head.eval(), x[batch], x2[batch], y[batch]))
    head.train()
    for _ in range(30):
        loss = batch_loss(name, loss_fn, head, x[batch], x2[batch], y[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = float(batch_loss(name, loss_fn, head.eval(), x[batch], x2[batch], y[batch]))
    assert np.isfinite(after) and after < before, (name, before, after)


@pytest.mark.slow
@pytest.mark.needs_shared
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
    files = {p.name for p in run.iterdir()}
    assert {"head.onnx", "head.pt", "metrics.json", "config.yaml"} <= files
    assert 250 < json.loads((run / "metrics.json").read_text())["test"]["n"] <= 300  # labelled ones
    # the ONNX head (run by FaceEmbedder, no torch) equals the PyTorch head
    saved = torch.load(run / "head.pt", weights_only=True)
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


@pytest.mark.slow
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


@pytest.mark.needs_shared
def test_exported_model_reloads_into_pytorch():
    """The shipped model rebuilt in PyTorch (the start of fine-tuning) equals ONNX Runtime."""
    import onnxruntime as ort

    from emotrace import models
    from emotrace.evaluation.datasets import ferplus
    from emotrace.train.nets import load_exported
    from emotrace.train.transforms import EvalTransform

    path = models.resolve("emotrace-ferplus8")
    net, labels = load_exported(path)
    x = EvalTransform(64)(ferplus("test").images[:32])  # real faces, the same input for both
    with torch.no_grad():
        out = net.eval()(x)
    probs, va, emb = ort.InferenceSession(str(path)).run(["probs", "va", "embedding"],
                                                         {"data": x.numpy()})
    assert labels == models.get_card("emotrace-ferplus8").labels
    assert np.abs(torch.softmax(out["logits"], 1).numpy() - probs).max() < 1e-4
    assert np.abs(out["va"].numpy() - va).max() < 1e-4
    assert np.abs(out["embedding"].numpy() - emb).max() < 1e-4


@pytest.mark.slow
@pytest.mark.needs_shared
def test_finetune_mode_trains_backbone_and_exports_one_model(tmp_path):
    from emotrace.evaluation.datasets import ferplus
    from emotrace.train.embedding_finetune import ProjectedEmotionNet
    from emotrace.train.transforms import EvalTransform

    cfg = load_config(None, [
        "name=ft", f"output_dir={tmp_path}", "mode=finetune", "data.subset=1024",
        "data.eval_subset=400", "train.epochs=1", "finetune.max_steps_per_epoch=3",
        "train.batch_size=64", "train.m_per_class=8", "eval.limit=200", "eval.train_sample=300",
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db"], DEFAULTS)
    results = train_embedding(cfg, progress=False)
    row = results["history"][0]
    # three small steps from the shipped model keep its classifier working
    assert row["valid_accuracy"] > 0.7 and 0.5 < row["valid_auc"] <= 1
    run = tmp_path / "ft"
    saved = torch.load(run / "best.pt", weights_only=True)
    net = ProjectedEmotionNet(8, True, 64, 0.0, 512, 128)
    net.load_state_dict(saved["model"])
    # the backbone moved (it was trained, not frozen)
    from emotrace import models
    from emotrace.train.nets import load_exported

    base, _ = load_exported(models.resolve("emotrace-ferplus8"))
    assert not torch.equal(base.backbone.features[0][0].weight, net.backbone.features[0][0].weight)
    # one ONNX model: FaceEmbedder runs it (no torch) and gives the projected embedding
    import onnxruntime as ort

    x = EvalTransform(64)(ferplus("test").images[:16])
    with torch.no_grad():
        ref = net.eval()(x)["embedding"].numpy()
    got = ort.InferenceSession(str(run / "model.onnx")).run(["embedding"], {"data": x.numpy()})[0]
    assert got.shape == (16, 128) and np.abs(got - ref).max() < 1e-4
    embedder = FaceEmbedder(str(run / "model.onnx"))  # what index/eval use: the same file
    assert embedder.backbone_name == str(run / "model.onnx") and embedder.head is None
    assert 150 < results["test"]["n"] <= 200


@pytest.mark.slow
def test_flip_rate_of_embedding_labels_on_videos(tmp_path, styletalk_dir):
    import shutil


    videos = tmp_path / "videos" / "styletalk"
    videos.mkdir(parents=True)
    for name in ("happyenglish_clip1.mp4", "sadgirl_clip1.mp4"):
        shutil.copy(styletalk_dir / "style_clips" / name, videos / name)
    (tmp_path / "videos" / "index.csv").write_text(
        "file,weak_label_from_filename\nstyletalk/happyenglish_clip1.mp4,happy\n"
        "styletalk/sadgirl_clip1.mp4,sad\n")
    report = evaluate_embedding("emotrace-ferplus8", "ferplus-test", None, limit=200,
                                train_sample=1000, videos=tmp_path / "videos")
    flips = report["video_flips"]
    assert [v["file"] for v in flips["videos"]] == ["styletalk/happyenglish_clip1.mp4",
                                                    "styletalk/sadgirl_clip1.mp4"]
    s = flips["by_set"]["styletalk"]
    assert 0 <= s["flips_per_s_knn"] < 5 and 0 <= s["flips_per_s_classifier"] < 5
    # both clips are mostly recognised, by the classifier and by kNN on the embedding
    assert s["agreement_classifier"] > 0.5 and s["agreement_knn"] > 0.5


@pytest.mark.slow
def test_hellinger_head_embeds_emotion_distributions(features):
    """Unit length by construction; trained on real faces, two happy faces are closer than a
    happy and a sad one."""
    x, x2, y = features
    soft = vote_targets("train", 768)
    assert soft.shape == (768, 8) and np.allclose(soft.sum(1), 1)
    assert (soft.argmax(1) == y).mean() > 0.9
    torch.manual_seed(0)
    head = HellingerHead(x.shape[1], 128, 8, dropout=0.3)
    loss_fn = build_loss({**DEFAULTS["loss"], "name": "hellinger"})
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)
    tx, tx2, ts = map(torch.from_numpy, (x, x2, soft))
    for _ in range(60):
        loss = batch_loss("hellinger", loss_fn, head, tx, tx2, ts)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        emb = head.eval()(tx).numpy()
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    happy, sad = emb[y == 1], emb[y == 3]
    assert (happy @ happy.T).mean() > (happy @ sad.T).mean() + 0.3
    with pytest.raises(ValueError, match="dropout"):
        HellingerHead(16, 8, 8, dropout=1.0)


def test_a_run_with_temporal_positives_repeats_with_its_seed(tmp_path, styletalk_dir):
    """Two runs with the same seed and real video tracks as temporal positives give the
    same losses and scores (the pairs of video frames are drawn with the run's seed)."""
    import shutil

    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(styletalk_dir / "style_clips" / "furious_talk2_clip1.mp4", videos)
    runs = []
    for name in ("a", "b"):
        cfg = load_config(None, [
            f"name={name}", f"output_dir={tmp_path}", "data.subset=512", "data.eval_subset=200",
            "train.epochs=1", "train.batch_size=128", "train.m_per_class=16", "eval.limit=100",
            "eval.train_sample=200", f"temporal.videos={videos}",
            f"tracking.uri=sqlite:///{tmp_path}/mlflow.db"], DEFAULTS)
        runs.append(train_embedding(cfg, progress=False)["history"][0])
    assert runs[0]["loss"] == runs[1]["loss"] and runs[0]["valid_auc"] == runs[1]["valid_auc"]
