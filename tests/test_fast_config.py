"""Training configs: defaults <- YAML file <- `key.sub=value` overrides (no torch needed)."""


import pytest

pytest.importorskip("torch", reason="needs emotrace[train]")

from emotrace.train.classifier import DEFAULTS  # noqa: E402
from emotrace.train.config import flatten, load_config  # noqa: E402


def test_file_then_overrides_win_and_the_rest_stays_default(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("name: mine\ntrain: {epochs: 3, lr: 0.01}\nmodel: {head: va}\n")
    cfg = load_config(path, ["train.epochs=5", "data.subset=null", "augment.crop_scale=[0.5, 1]"],
                      DEFAULTS)
    assert cfg["name"] == "mine" and cfg["model"]["head"] == "va"
    assert cfg["train"]["epochs"] == 5 and cfg["train"]["lr"] == 0.01  # override > file
    assert cfg["data"]["subset"] is None and cfg["augment"]["crop_scale"] == [0.5, 1]
    changed = {"name", "train.epochs", "train.lr", "model.head", "augment.crop_scale"}
    flat, default = flatten(cfg), flatten(DEFAULTS)
    assert {k for k in flat if flat[k] != default[k]} == changed
    assert DEFAULTS["train"]["epochs"] == 10 and DEFAULTS["name"] == "classifier"  # not mutated


def test_overrides_parse_values_as_yaml():
    cfg = load_config(None, ["train.lr=0.0005", "augment.enabled=false", "model.init=null",
                             "name=run 7", "train.max_steps_per_epoch=20"], DEFAULTS)
    assert cfg["train"]["lr"] == 0.0005 and cfg["augment"]["enabled"] is False
    assert cfg["model"]["init"] is None and cfg["name"] == "run 7"
    assert cfg["train"]["max_steps_per_epoch"] == 20


def test_an_exponent_without_a_dot_is_a_number(tmp_path):
    # PyYAML alone reads '1e-3' (no dot) as a string: the config loader must not.
    assert load_config(None, ["train.lr=1e-3"], DEFAULTS)["train"]["lr"] == 0.001
    path = tmp_path / "run.yaml"
    path.write_text("train: {lr: 5e-4, weight_decay: -1E+2}\nname: 1e3x\n")
    cfg = load_config(path, [], DEFAULTS)
    assert cfg["train"]["lr"] == 0.0005 and cfg["train"]["weight_decay"] == -100.0
    assert cfg["name"] == "1e3x"


def test_unknown_keys_and_malformed_overrides_are_refused(tmp_path):
    with pytest.raises(KeyError, match="unknown config key 'train.lrr'"):
        load_config(None, ["train.lrr=1"], DEFAULTS)
    with pytest.raises(ValueError, match="must look like key.sub=value"):
        load_config(None, ["train.lr"], DEFAULTS)
    with pytest.raises(TypeError, match="'train' needs a mapping"):
        load_config(None, ["train=3"], DEFAULTS)
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {heads: va}\n")
    with pytest.raises(KeyError, match="unknown config key 'model.heads'"):
        load_config(bad, [], DEFAULTS)


def test_other_defaults_replace_the_classifier_ones():
    task = {"name": "t", "train": {"epochs": 1}}
    cfg = load_config(None, ["train.epochs=4"], task)
    assert cfg == {"name": "t", "train": {"epochs": 4}} and task["train"]["epochs"] == 1
    with pytest.raises(KeyError, match="unknown config key 'model'"):
        load_config(None, ["model.head=va"], task)


@pytest.mark.parametrize(("override", "expected", "shown"), [
    ("train.epochs=abc", "an integer", "'abc'"), ("train.epochs=2.5", "an integer", "2.5"),
    ("train.epochs=true", "an integer", "True"), ("train.lr=fast", "a number", "'fast'"),
    ("augment.enabled=3", "true or false", "3"),
    ("augment.enabled=maybe", "true or false", "'maybe'"),
    ("augment.crop_scale=0.5", "a list", "0.5"), ("model.head=[a]", "text", "['a']"),
])
def test_a_value_of_the_wrong_type_names_key_value_and_type(override, expected, shown):
    key = override.partition("=")[0]
    with pytest.raises(ValueError, match=f"config key '{key}': expected {expected}") as info:
        load_config(None, [override], DEFAULTS)
    assert str(info.value).endswith(f"got {shown}")


def test_right_types_pass_and_ints_become_floats(tmp_path):
    cfg = load_config(None, ["train.epochs=3", "train.lr=3", "train.weight_decay=1e-3",
                             "augment.enabled=false", "name=2024", "data.test=null",
                             "data.subset=100"], DEFAULTS)
    t = cfg["train"]
    assert t["epochs"] == 3 and isinstance(t["epochs"], int)
    assert t["lr"] == 3.0 and isinstance(t["lr"], float) and t["weight_decay"] == 0.001
    assert cfg["augment"]["enabled"] is False and cfg["name"] == "2024"
    assert cfg["data"]["test"] is None and cfg["data"]["subset"] == 100
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {epochs: ten}\n")
    with pytest.raises(ValueError, match="'train.epochs': expected an integer .* got 'ten'"):
        load_config(bad, [], DEFAULTS)


def test_a_runs_config_yaml_reads_back_without_its_resolved_device(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("name: r\ntrain: {device: auto, device_resolved: cpu, epochs: 2}\n")
    cfg = load_config(path, [], DEFAULTS)
    assert cfg["train"]["device"] == "auto" and "device_resolved" not in cfg["train"]
    assert cfg["train"]["epochs"] == 2
    with pytest.raises(KeyError, match="train.device_resolved"):  # never a setting
        load_config(None, ["train.device_resolved=cuda"], DEFAULTS)


def test_cli_with_a_wrongly_typed_override_is_one_line_exit_2_and_no_run_folder(
        tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from emotrace.cli import app

    monkeypatch.chdir(tmp_path)
    run = CliRunner().invoke(app, ["train", "classifier", f"output_dir={tmp_path / 'out'}",
                                   "train.epochs=abc"])
    lines = [line for line in run.output.splitlines() if line.strip()]
    assert run.exit_code == 2, run.output
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "train.epochs" in lines[0] and "'abc'" in lines[0] and "integer" in lines[0]
    assert run.exception is None or isinstance(run.exception, SystemExit)
    assert list(tmp_path.iterdir()) == []  # neither out/ nor runs/classifier/config.yaml
