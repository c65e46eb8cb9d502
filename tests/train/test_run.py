"""The trainers' shared skeleton: best-epoch bookkeeping, seeded temporal pairs, run folder."""

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")

from emotrace.train.run import BestEpoch, choose_device, start_run  # noqa: E402
from emotrace.train.samplers import window_pairs  # noqa: E402


def _net(value: float) -> torch.nn.Module:
    net = torch.nn.Linear(2, 1)
    torch.nn.init.constant_(net.weight, value)
    return net


def test_best_epoch_keeps_the_best_weights_and_skips_nan_scores():
    best, net = BestEpoch(patience=2), _net(0.0)
    for epoch, (score, value) in enumerate([(0.5, 1.0), (math.nan, 2.0), (0.7, 3.0),
                                            (0.6, 4.0)], 1):
        torch.nn.init.constant_(net.weight, value)
        assert not best.update(score, net, epoch)
    assert best.update(None, net, 5)  # two epochs in a row without a better score: stop
    best.restore(net)
    assert best.epoch == 3 and best.score == 0.7 and float(net.weight.detach()[0, 0]) == 3.0


@pytest.mark.parametrize("scores", [[math.nan, math.nan, math.nan], []], ids=["nan", "no-epoch"])
def test_best_epoch_without_a_finite_score_says_so(scores):
    best, net = BestEpoch(), _net(1.0)
    for epoch, score in enumerate(scores, 1):
        assert not best.update(score, net, epoch)  # patience 0: never stops early
    with pytest.raises(ValueError, match="no epoch gave a finite validation score"):
        best.restore(net)


def test_best_epoch_on_disk_resumes(tmp_path):
    first = BestEpoch(3, tmp_path / "best.pt")
    first.update(0.4, _net(5.0), 1, {"labels": ("a", "b")})
    first.update(0.3, _net(6.0), 2)
    second = BestEpoch(3, tmp_path / "best.pt")
    second.load_state_dict(first.state_dict())
    net = _net(0.0)
    second.restore(net)
    assert float(net.weight.detach()[0, 0]) == 5.0 and second.stale == 1
    assert torch.load(tmp_path / "best.pt", weights_only=True)["labels"] == ("a", "b")


def test_window_pairs_repeat_with_the_seed_and_pair_rows_of_one_window():
    windows = np.repeat(np.arange(40), 3)
    a = window_pairs(windows, 64, np.random.default_rng(7))
    b = window_pairs(windows, 64, np.random.default_rng(7))
    c = window_pairs(windows, 64, np.random.default_rng(8))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    pairs = windows[a].reshape(-1, 2)
    assert len(a) == 64 and (pairs[:, 0] == pairs[:, 1]).all()


def test_start_run_writes_one_yaml_config_and_seeds(tmp_path):
    cfg = {"name": "r", "seed": 3, "output_dir": str(tmp_path), "train": {"threads": 0}}
    run = start_run(cfg)
    first = torch.rand(3)
    start_run(cfg)
    assert torch.equal(first, torch.rand(3)) and np.random.get_state()[1][0] == 3
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]
    assert yaml.safe_load((run / "config.yaml").read_text()) == cfg
    assert choose_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="train.device"):
        choose_device("tpu")


CONFIGS = sorted((Path(__file__).parents[2] / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_every_config_loads_with_the_defaults_of_the_task_its_folder_names(path):
    """configs/<task>/... feeds `emotrace train <task>`: every key is one that trainer reads."""
    import importlib

    from emotrace.train.config import load_config

    task = path.relative_to(Path(__file__).parents[2] / "configs").parts[0]
    module = importlib.import_module(f"emotrace.train.{task}")
    cfg = load_config(path, [], module.DEFAULTS)
    assert cfg["name"] and cfg["name"] != module.DEFAULTS["name"]
