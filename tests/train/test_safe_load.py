"""Checkpoints load with weights_only=True: a file whose pickle would run code is refused,
and the code does not run."""

import pickle

import pytest

torch = pytest.importorskip("torch")

from emotrace.train.run import BestEpoch, load_checkpoint, restore_rng, rng_state  # noqa: E402


class Planted:
    """Unpickling this calls open(marker, "w"): the file appears if the pickle is run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _plant(path, marker):
    torch.save({"model": {}, "epoch": 0, "payload": Planted(marker)}, path)
    return path


def test_the_planted_file_would_run_code_if_unpickled_plainly(tmp_path):
    """The control: without weights_only the marker appears, so the tests below can fail."""
    marker = tmp_path / "ran"
    torch.load(_plant(tmp_path / "x.pt", marker), weights_only=False)
    assert marker.exists()
    marker.unlink()
    pickle.loads(pickle.dumps(Planted(marker)))
    assert marker.exists()


def test_load_checkpoint_refuses_a_planted_checkpoint(tmp_path):
    marker = tmp_path / "ran"
    path = _plant(tmp_path / "last.pt", marker)
    with pytest.raises(ValueError, match="last.pt: refused: .*could run code"):
        load_checkpoint(path)
    assert not marker.exists()


def test_best_epoch_restore_refuses_a_planted_best_pt(tmp_path):
    marker = tmp_path / "ran"
    net = torch.nn.Linear(2, 1)
    best = BestEpoch(0, tmp_path / "best.pt")
    best.update(0.5, net, 1, {"labels": ("a", "b"), "config": {"train": {"lr": 0.1}}})
    assert best.restore(net).keys() == net.state_dict().keys()  # a plain one loads
    _plant(tmp_path / "best.pt", marker)
    with pytest.raises(ValueError, match="best.pt: refused"):
        best.restore(net)
    assert not marker.exists()


def test_rng_state_survives_a_weights_only_checkpoint(tmp_path):
    import numpy as np

    np.random.seed(5)
    torch.manual_seed(5)
    torch.save({"rng": rng_state()}, tmp_path / "c.pt")
    want = (np.random.rand(3), torch.rand(3))
    restore_rng(load_checkpoint(tmp_path / "c.pt")["rng"])
    got = (np.random.rand(3), torch.rand(3))
    assert np.array_equal(want[0], got[0]) and torch.equal(want[1], got[1])


@pytest.mark.needs_shared
def test_resume_refuses_a_planted_last_pt(tmp_path):
    from emotrace.train.classifier import DEFAULTS, train_classifier
    from emotrace.train.config import load_config

    cfg = load_config(None, ["name=tiny", f"output_dir={tmp_path}", "data.subset=64",
                             "data.eval_subset=32", "model.input_size=48",
                             f"tracking.uri=sqlite:///{tmp_path}/mlflow.db"], DEFAULTS)
    (tmp_path / "tiny").mkdir()
    marker = tmp_path / "ran"
    _plant(tmp_path / "tiny" / "last.pt", marker)
    with pytest.raises(ValueError, match="last.pt: refused"):
        train_classifier(cfg, resume=True, progress=False)
    assert not marker.exists()
