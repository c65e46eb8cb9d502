"""Training service: the PyTorch port equals ONNX; training, resume and export work on real
faces."""

import json

import numpy as np
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch")

from emotrace.evaluation.datasets import ferplus  # noqa: E402
from emotrace.train.classifier import DEFAULTS, build_net, train_classifier  # noqa: E402
from emotrace.train.config import load_config  # noqa: E402
from emotrace.train.export import export_onnx  # noqa: E402
from emotrace.train.nets import EmotionNet, load_onnx_weights  # noqa: E402
from emotrace.train.transforms import EvalTransform  # noqa: E402


@pytest.fixture(scope="session")
def base(models_dir):
    return models_dir / "facial_expression_recognition_mobilefacenet_fp32_embedding.onnx"


@pytest.fixture(scope="module")
def faces(data_dir):  # ferplus() reads ../shared/data
    return ferplus("test").images[:48]


def _ort(path):
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts)


def test_pytorch_port_equals_onnx_on_real_faces(faces, base):
    net = EmotionNet(7)
    load_onnx_weights(net, base)
    x = EvalTransform(112)(faces)
    with torch.no_grad():
        out = net.eval()(x)
    logits, emb = _ort(base).run(["label", "481"], {"data": x.numpy()})
    assert np.abs(out["logits"].numpy() - logits).max() <= 1e-4
    assert np.abs(out["embedding"].numpy() - emb).max() <= 1e-4


def _cfg(tmp_path, **extra):
    overrides = [
        "name=tiny", f"output_dir={tmp_path}", "data.subset=384", "data.eval_subset=128",
        "train.batch_size=64", "train.epochs=1", "train.threads=0", "model.input_size=48",
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", "train.warmup_epochs=0",
    ] + [f"{k}={v}" for k, v in extra.items()]
    return load_config(None, overrides, DEFAULTS)


def _loss(net, faces, cfg):
    from emotrace.train.losses import SoftTargetCrossEntropy

    with torch.no_grad():
        out = net.eval()(EvalTransform(cfg["model"]["input_size"])(faces.images))
    return SoftTargetCrossEntropy()(out["logits"], torch.from_numpy(faces.soft)).item()


@pytest.mark.slow
@pytest.mark.needs_shared
def test_one_epoch_lowers_the_loss_and_resume_continues(tmp_path):
    cfg = _cfg(tmp_path, **{"train.epochs": 2, "augment.enabled": "false", "train.lr": 0.003})
    subset = ferplus("train").take(np.arange(384))
    before = _loss(build_net(cfg, subset.names), subset, cfg)
    # One epoch, then stop as if interrupted: the run's last.pt holds epoch 1.
    once = load_config(None, [*_overrides(cfg), "train.epochs=1"], DEFAULTS)
    first = train_classifier(once, progress=False)
    assert len(first["history"]) == 1
    run = tmp_path / "tiny"
    net = build_net(cfg, subset.names)
    net.load_state_dict(torch.load(run / "last.pt", weights_only=True)["model"])
    after = _loss(net, subset, cfg)
    assert after < before
    # Resume with 2 epochs: it continues at epoch 2 instead of starting again.
    resumed = train_classifier(cfg, resume=True, progress=False)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["n"] > 0 and (run / "confusion_test.png").stat().st_size > 1000


def _overrides(cfg):
    def flat(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from flat(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}={json.dumps(v)}"

    return list(flat(cfg))


@pytest.mark.slow  # three torch.onnx exports, about 5 s each
@pytest.mark.parametrize("head", ["classes", "va", "multitask"])
def test_onnx_export_reloads_with_pytorch_outputs(tmp_path, faces, head):
    cfg = _cfg(tmp_path, **{"model.head": head})
    labels = ferplus("valid").names
    net = build_net(cfg, labels).eval()
    path = export_onnx(net, labels, tmp_path / f"{head}.onnx")
    x = EvalTransform(48)(faces)
    probs, va, emb = _ort(path).run(["probs", "va", "embedding"], {"data": x.numpy()})
    with torch.no_grad():
        out = net(x)
    assert np.abs(emb - out["embedding"].numpy()).max() <= 1e-4
    assert np.allclose(probs.sum(1), 1, atol=1e-5)
    if "logits" in out:
        assert np.abs(probs - torch.softmax(out["logits"], 1).numpy()).max() <= 1e-4
    if "va" in out:
        assert np.abs(va - out["va"].numpy()).max() <= 1e-4


def test_config_overrides_and_unknown_keys(tmp_path):
    cfg = load_config(None, ["train.lr=0.01", "model.head=va"], DEFAULTS)
    assert cfg["train"]["lr"] == 0.01 and cfg["model"]["head"] == "va"
    with pytest.raises(KeyError, match="unknown config key 'train.lrr'"):
        load_config(None, ["train.lrr=1"], DEFAULTS)


@pytest.mark.slow
@pytest.mark.needs_shared
def test_eval_cli_on_an_exported_model(tmp_path):
    from typer.testing import CliRunner

    from emotrace.cli import app

    cfg = _cfg(tmp_path)
    labels = ferplus("valid").names
    path = export_onnx(build_net(cfg, labels), labels, tmp_path / "m.onnx")
    result = CliRunner().invoke(app, ["eval", str(path), "--data", "ferplus-test", "--limit", "200",
                                      "-o", str(tmp_path / "ev")])
    assert result.exit_code == 0, result.output
    from emotrace.models import output_stem

    report = json.loads((tmp_path / "ev" / f"{output_stem(path)}_ferplus-test.json").read_text())
    # The same 200 faces (`--limit` draws a fixed subset with seed 0) scored independently:
    # grey 48x48 resized to the model's 48 px, (x/255 - 0.5)/0.5, argmax of its `probs`.
    test = ferplus("test")
    pick = np.sort(np.random.default_rng(0).choice(len(test), 200, replace=False))
    faces, y = test.images[pick], test.labels[pick]
    x = np.repeat(faces[:, None].astype(np.float32), 3, axis=1) / 255.0
    probs = _ort(path).run(["probs"], {"data": (x - 0.5) / 0.5})[0]
    labelled = y >= 0  # ties and 'unknown' majorities have no label and are left out
    assert 150 < labelled.sum() < 200 and report["n"] == labelled.sum()
    right = int((probs[labelled].argmax(1) == y[labelled]).sum())
    assert round(report["accuracy"] * report["n"]) == right
    assert f"({labelled.sum()} faces)" in result.output
    assert f"accuracy   {right / labelled.sum():.4f}" in result.output
    # Untrained at 48 px, but started from the RAF-DB weights: above chance (1/8).
    assert right / labelled.sum() > 0.2
    assert (tmp_path / "ev" / f"{output_stem(path)}_ferplus-test.confusion.png").exists()


@pytest.mark.needs_shared
def test_sampler_weighs_faces_without_a_majority_by_their_votes():
    """balance: sampler on real FER+ faces: a face whose votes tie (label -1, kept for its
    soft target) is weighed by its votes, not as class 0 (neutral)."""
    from emotrace.train.classifier import sampling_weights

    faces = ferplus("train").take(np.arange(4000))
    unlabelled = faces.labels < 0
    assert unlabelled.sum() > 20
    counts = np.bincount(faces.labels[~unlabelled], minlength=len(faces.names))
    inverse = 1 / np.maximum(counts, 1)
    u = np.where(unlabelled, faces.soft @ inverse, inverse[faces.labels.clip(0)])
    p = sampling_weights(faces)
    assert np.allclose(p, u / u.sum(), rtol=1e-6)
    # neutral is FER+'s largest class: weighing tied faces as neutral made them rare draws
    assert p[unlabelled].mean() > 2 * inverse[0] / u.sum()
    # every class's labelled faces hold the same probability mass
    mass = np.bincount(faces.labels[~unlabelled], p[~unlabelled], minlength=len(counts))
    assert np.allclose(mass[counts > 0], mass[counts > 0].mean(), rtol=1e-6)


@pytest.mark.needs_shared
def test_no_epoch_gives_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no epoch gave a finite validation score"):
        train_classifier(_cfg(tmp_path, **{"train.epochs": 0}), progress=False)


def test_init_from_an_emotrace_export_keeps_its_class_and_va_heads(faces):
    """init: emotrace-ferplus8 (two Gemm layers: classes and VA) starts the multitask net as
    that model: the same probabilities and valence/arousal on real faces."""
    from emotrace import models
    from emotrace.train.nets import load_exported

    cfg = _cfg(None, **{"model.init": "emotrace-ferplus8", "model.head": "multitask",
                        "model.input_size": 64})
    labels = models.get_card("emotrace-ferplus8").labels
    net = build_net(cfg, labels).eval()
    source, _ = load_exported(models.resolve("emotrace-ferplus8"))
    x = EvalTransform(64)(faces)
    with torch.no_grad():
        got, want = net(x), source.eval()(x)
    assert np.abs(got["va"].numpy() - want["va"].numpy()).max() < 1e-5
    assert np.abs(got["logits"].numpy() - want["logits"].numpy()).max() < 1e-4
