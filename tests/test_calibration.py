"""Calibration: temperature and class bias fitted on labelled faces, carried by the model
file, applied at inference."""

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

from emotrace import models
from emotrace.errors import ModelError
from emotrace.evaluation.calibration import apply, fit_prior_tau, fit_temperature, prior_bias
from emotrace.faces.classify import calibrated, softmax


def _overconfident(n=4000, k=5, scale=3.0, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, (n, k))
    p_true = softmax(logits)
    labels = np.array([rng.choice(k, p=row) for row in p_true])
    return softmax(logits * scale).astype(np.float32), labels


def test_fit_temperature_recovers_the_overconfidence():
    probs, labels = _overconfident(scale=3.0)
    t = fit_temperature(probs, labels)
    assert 2.6 < t < 3.4, t
    assert fit_temperature(*_overconfident(scale=0.5, seed=1)) < 0.6


def test_prior_bias_helps_a_rare_class_and_is_chosen_on_macro_f1():
    rng = np.random.default_rng(0)
    n = 3000
    labels = rng.choice(3, n, p=[0.8, 0.15, 0.05])
    logits = rng.normal(0, 1, (n, 3))
    logits[np.arange(n), labels] += 2.0
    logits[:, 0] += 3.0  # a model biased towards the frequent class
    probs = softmax(logits)
    prior = np.bincount(labels, minlength=3) / n
    tau, table = fit_prior_tau(probs, labels, ("a", "b", "c"), prior)
    assert tau > 0 and table[tau]["macro_f1"] > table[0.0]["macro_f1"]
    b = prior_bias(prior, tau)
    assert abs(b.mean()) < 1e-6 and b[2] > b[1] > b[0]


def test_inference_applies_the_cards_calibration():
    card = models.get_card("emotrace-ferplus8")  # a card without calibration
    probs = softmax(np.random.default_rng(0).normal(0, 2, (6, len(card.labels))))
    assert np.allclose(calibrated(probs, card), probs / probs.sum(1, keepdims=True))
    bias = tuple(np.linspace(-0.5, 0.5, len(card.labels)))
    tuned = replace(card, temperature=0.6, class_bias=bias)
    assert np.allclose(calibrated(probs.astype(np.float32), tuned),
                       apply(probs, 0.6, np.array(bias)), atol=1e-5)


def test_card_checks_its_calibration():
    card = models.get_card(models.DEFAULT_CLASSIFIER)
    with pytest.raises(ModelError, match="temperature must be > 0"):
        replace(card, temperature=0.0)
    with pytest.raises(ModelError, match="class biases for"):
        replace(card, class_bias=(0.1, 0.2))


@pytest.mark.slow
@pytest.mark.needs_shared
def test_calibrate_command_writes_the_file_and_lowers_its_ece(tmp_path):
    pytest.importorskip("onnx")
    from emotrace.cli import app

    model = tmp_path / "ferplus8.onnx"
    shutil.copy(models.resolve("emotrace-ferplus8"), model)  # an uncalibrated file
    runner = CliRunner()
    before = runner.invoke(app, ["eval", str(model), "--data", "ferplus-test", "--limit", "800",
                                 "-o", str(tmp_path / "before")])
    assert before.exit_code == 0, before.output
    result = runner.invoke(app, ["train", "calibrate", str(model)])
    assert result.exit_code == 0, result.output
    card = models.load(model).card
    assert 0.4 < card.temperature < 0.8, card.temperature  # the model was underconfident
    after = runner.invoke(app, ["eval", str(model), "--data", "ferplus-test", "--limit", "800",
                                "-o", str(tmp_path / "after")])
    assert after.exit_code == 0, after.output
    (r0,) = [json.loads(p.read_text()) for p in (tmp_path / "before").glob("*.json")]
    (r1,) = [json.loads(p.read_text()) for p in (tmp_path / "after").glob("*.json")]
    assert r1["accuracy"] == r0["accuracy"]  # a temperature never changes the top class
    assert r0["ece"] > 0.07 and r1["ece"] < 0.5 * r0["ece"], (r0["ece"], r1["ece"])
