"""The committed default model: its card's numbers are reproduced by `emotrace eval`."""

import json

import pytest
from typer.testing import CliRunner

from emotrace import models
from emotrace.cli import app


def test_default_is_the_bundled_model_and_verified():
    card = models.get_card(models.DEFAULT_CLASSIFIER)
    assert card.bundled and card.labels[-1] == "contempt"
    path = models.resolve(card.name)
    assert path.parent == models.WEIGHTS_DIR
    assert models.sha256_of(path) == card.sha256


@pytest.mark.slow
@pytest.mark.needs_shared
def test_eval_reproduces_the_card_on_a_fixed_subset(tmp_path):
    # docs/models/emotrace-ferplus8.md: `emotrace eval emotrace-ferplus8 --data ferplus-test
    # --limit 500` -> 470 labelled faces, accuracy 0.8681 (408/470).
    result = CliRunner().invoke(app, ["eval", "emotrace-ferplus8", "--data", "ferplus-test",
                                      "--limit", "500", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "emotrace-ferplus8_ferplus-test.json").read_text())
    assert report["n"] == 470
    assert round(report["accuracy"] * 470) == 408


@pytest.mark.slow
@pytest.mark.needs_shared
def test_fer2013_model_reproduces_its_card(tmp_path):
    # docs/models/emotrace-fer2013.md: `emotrace eval emotrace-fer2013 --data fer2013-private
    # --limit 500` -> 500 faces, accuracy 0.6680 (334/500); bundled and verified like the default.
    card = models.get_card("emotrace-fer2013")
    assert card.bundled
    assert card.labels == ("anger", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert models.sha256_of(models.resolve(card.name)) == card.sha256
    result = CliRunner().invoke(app, ["eval", "emotrace-fer2013", "--data", "fer2013-private",
                                      "--limit", "500", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "emotrace-fer2013_fer2013-private.json").read_text())
    assert report["n"] == 500 and round(report["accuracy"] * 500) == 334


def test_the_default_carries_the_calibration_of_its_file():
    # emotrace-ferplus8-distill: temperature and class bias fitted on FER+ valid by the
    # trainer, written into the ONNX metadata; the registry card repeats them.
    card = models.get_card(models.DEFAULT_CLASSIFIER)
    assert card.name == "emotrace-ferplus8-distill"
    from_file = models.card_from_metadata(models.resolve(card.name), _metadata(card.name))
    assert card.temperature == pytest.approx(from_file.temperature) and card.temperature < 1
    assert card.class_bias == pytest.approx(from_file.class_bias)
    assert card.class_bias[card.labels.index("neutral")] < 0  # FER+'s taste for neutral, undone


def _metadata(name):
    session = models.load(name).session
    return dict(session.get_modelmeta().custom_metadata_map)


@pytest.mark.slow
@pytest.mark.needs_shared
def test_eval_reproduces_the_default_card_on_a_fixed_subset(tmp_path):
    # docs/models/emotrace-ferplus8-distill.md: `emotrace eval emotrace-ferplus8-distill --data
    # ferplus-test --limit 500` -> 470 labelled faces, accuracy 0.8617 (405/470), ECE 0.0295.
    result = CliRunner().invoke(app, ["eval", models.DEFAULT_CLASSIFIER, "--data",
                                      "ferplus-test", "--limit", "500", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "emotrace-ferplus8-distill_ferplus-test.json").read_text())
    assert report["n"] == 470 and round(report["accuracy"] * 470) == 405
    assert report["ece"] < 0.04
