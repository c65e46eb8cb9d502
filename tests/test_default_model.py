"""The committed default model: its card's numbers are reproduced by `emotrace eval`."""

import json

from typer.testing import CliRunner

from emotrace import models
from emotrace.cli import app


def test_default_is_the_bundled_model_and_verified():
    card = models.get_card(models.DEFAULT_CLASSIFIER)
    assert card.bundled and card.labels[-1] == "contempt"
    path = models.resolve(card.name)
    assert path.parent == models.WEIGHTS_DIR
    assert models.sha256_of(path) == card.sha256


def test_eval_reproduces_the_card_on_a_fixed_subset(tmp_path):
    # docs/models/emotrace-ferplus8.md: `emotrace eval emotrace-ferplus8 --data ferplus-test
    # --limit 500` -> 470 labelled faces, accuracy 0.8681 (408/470).
    result = CliRunner().invoke(app, ["eval", "emotrace-ferplus8", "--data", "ferplus-test",
                                      "--limit", "500", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "emotrace-ferplus8_ferplus-test.json").read_text())
    assert report["n"] == 470
    assert round(report["accuracy"] * 470) == 408
