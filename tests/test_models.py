import shutil
from pathlib import Path

import pytest

from emotrace import models
from emotrace.errors import ModelError


def test_every_shared_model_has_a_card_with_its_sha256(models_dir):
    sums = dict(
        reversed(line.split())
        for line in (models_dir / "SHA256SUMS").read_text().splitlines() if line
    )
    by_file = {c.filename: c for c in models.list_models()}
    assert set(sums) <= set(by_file), set(sums) - set(by_file)
    for filename, sha in sums.items():
        assert by_file[filename].sha256 == sha
        assert by_file[filename].url or "derived" in by_file[filename].source or "conversion" in by_file[filename].source


def test_unknown_name_lists_valid_names():
    with pytest.raises(ModelError) as err:
        models.get_card("resnet-imaginary")
    assert "resnet-imaginary" in str(err.value)
    for name in ("yunet", "mobilefacenet-rafdb"):
        assert name in str(err.value)


def test_resolve_finds_the_model_dir_and_checks_sha(models_dir):
    path = models.resolve("yunet")
    assert path.parent.resolve() == models_dir


def test_corrupt_file_is_rejected(tmp_path, models_dir):
    bad = tmp_path / "face_detection_yunet_2023mar.onnx"
    data = bytearray((models_dir / bad.name).read_bytes())
    data[1000] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="SHA256"):
        models.resolve("yunet", bad)


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


def test_copy_outside_model_dir_needs_explicit_path(tmp_path, monkeypatch, models_dir):
    copy = tmp_path / "x.onnx"
    shutil.copy(models_dir / "face_detection_yunet_2023mar.onnx", copy)
    assert models.resolve("yunet", copy) == Path(copy)
