import os
import shutil
from pathlib import Path

import pytest

from emotrace import models
from emotrace.errors import ModelError
from emotrace.faces.classify import ExpressionClassifier

# ultraface_rfb320.onnx has no card: it finds boxes without landmarks, which the pipeline needs.
NO_CARD = {"ultraface_rfb320.onnx"}


def test_every_shared_model_has_a_card_with_its_sha256(models_dir):
    sums = dict(
        reversed(line.split())
        for line in (models_dir / "SHA256SUMS").read_text().splitlines() if line
    )
    by_file = {c.filename: c for c in models.list_models()}
    assert set(sums) - NO_CARD <= set(by_file), set(sums) - NO_CARD - set(by_file)
    assert not NO_CARD & set(by_file)
    for filename, sha in sums.items():
        if filename in NO_CARD:
            continue
        card = by_file[filename]
        assert card.sha256 == sha
        assert card.url or "derived" in card.source or "conversion" in card.source


def test_unknown_name_lists_valid_names():
    with pytest.raises(ModelError) as err:
        models.get_card("resnet-imaginary")
    assert "resnet-imaginary" in str(err.value)
    for name in ("yunet", "mobilefacenet-rafdb"):
        assert name in str(err.value)


def _flipped_copy(source: Path, folder: Path) -> Path:
    """A copy of model file `source` in `folder` with one byte flipped."""
    folder.mkdir(parents=True, exist_ok=True)
    bad = folder / source.name
    data = bytearray(source.read_bytes())
    data[1000] ^= 0xFF
    bad.write_bytes(bytes(data))
    return bad


def test_sha_is_checked_through_model_dir_and_explicit_path(tmp_path, monkeypatch, models_dir):
    card = models.get_card("yunet")
    bad = _flipped_copy(models_dir / card.filename, tmp_path / "bad")
    monkeypatch.setenv("EMOTRACE_MODEL_DIR", str(bad.parent))
    monkeypatch.setenv("EMOTRACE_CACHE", str(tmp_path / "cache"))
    for attempt in (lambda: models.load("yunet"), lambda: models.resolve("yunet"),
                    lambda: models.load("yunet", bad)):
        with pytest.raises(ModelError, match="SHA256") as err:
            attempt()
        assert str(bad) in str(err.value)
    # The right file loads: found in a model folder after an empty one, and as an explicit path.
    right = models_dir / card.filename
    monkeypatch.setenv("EMOTRACE_MODEL_DIR", f"{tmp_path / 'empty'}{os.pathsep}{models_dir}")
    assert models.load("yunet").path == right
    assert models.load("yunet", right).path == right


def test_corrupt_classifier_is_refused_by_the_classifier(tmp_path, models_dir):
    bad = _flipped_copy(models_dir / models.get_card("mobilefacenet-rafdb").filename, tmp_path)
    with pytest.raises(ModelError, match="SHA256") as err:
        ExpressionClassifier("mobilefacenet-rafdb", bad)
    assert str(bad) in str(err.value)


def test_missing_file_offline_says_which_where_and_how(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOTRACE_MODEL_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("EMOTRACE_CACHE", str(tmp_path / "cache"))
    card = models.get_card("yunet")
    monkeypatch.setitem(models.REGISTRY, "yunet",
                        models.ModelCard(**{**card.__dict__, "url": "http://127.0.0.1:9/x.onnx"}))
    with pytest.raises(ModelError) as err:
        models.resolve("yunet")
    message = str(err.value)
    assert card.filename in message and str(tmp_path / "cache") in message
    assert "EMOTRACE_MODEL_DIR" in message and "download" in message


def test_download_goes_to_cache_and_is_verified(tmp_path, monkeypatch, models_dir):
    # A file:// URL stands in for the upstream server: the same code path as a real download.
    monkeypatch.setenv("EMOTRACE_MODEL_DIR", "")
    monkeypatch.setenv("EMOTRACE_CACHE", str(tmp_path / "cache"))
    card = models.get_card("yunet")
    url = (models_dir / card.filename).as_uri()
    monkeypatch.setitem(models.REGISTRY, "yunet", models.ModelCard(**{**card.__dict__, "url": url}))
    path = models.resolve("yunet")
    assert path == tmp_path / "cache" / card.filename
    assert models.sha256_of(path) == card.sha256
    assert not list(path.parent.glob("*.part"))


@pytest.mark.needs_shared
def test_models_command_lists_cards_and_presence():
    from typer.testing import CliRunner

    from emotrace.cli import app

    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    assert "yes" in lines["yunet"]
    assert "mobilefacenet-rafdb" in lines
    assert "ultraface-rfb320" not in lines


def test_copy_outside_model_dir_needs_explicit_path(tmp_path, monkeypatch, models_dir):
    copy = tmp_path / "x.onnx"
    shutil.copy(models_dir / "face_detection_yunet_2023mar.onnx", copy)
    assert models.resolve("yunet", copy) == Path(copy)
