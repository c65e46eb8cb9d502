"""Output files: their mode follows the umask of the moment, plots leave pyplot's backend alone,
and a failed write names the file it meant to write."""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from emotrace.outputs.files import write_csv, write_json


@pytest.mark.parametrize("umask", [0o077, 0o022, 0o002])
def test_written_file_mode_is_0666_less_the_current_umask(tmp_path, umask):
    old = os.umask(umask)  # set after emotrace.outputs.files was imported
    try:
        path = write_csv(pd.DataFrame({"a": [1, 2]}), tmp_path / "t.csv")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert os.umask(old) == old  # writing did not change the process umask
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]


def test_failed_write_names_the_target_and_leaves_nothing(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    target = blocker / "out.json"  # its folder is a file: mkdir fails
    with pytest.raises(OSError) as err:
        write_json({"a": 1}, target)
    assert err.value.filename == str(blocker)

    def broken(_):
        raise OSError(28, "No space left on device")

    from emotrace.outputs.files import atomic_write

    with pytest.raises(OSError, match="No space left") as err:
        atomic_write(tmp_path / "big.bin", broken)
    assert err.value.filename == str(tmp_path / "big.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.fixture
def svg_backend():
    """A user's own backend (svg here); the plot functions must leave it as it is."""
    matplotlib = pytest.importorskip("matplotlib")
    before = matplotlib.get_backend()
    matplotlib.use("svg")
    yield matplotlib
    matplotlib.use(before)


def _timeline_table() -> pd.DataFrame:
    t = np.arange(20) / 10
    happy = np.linspace(0.1, 0.9, 20)
    return pd.DataFrame({"track_id": 0, "timestamp": t, "happy": happy, "sad": 1 - happy})


def test_plots_keep_the_users_backend(svg_backend, tmp_path):
    from emotrace.evaluation.embedding import plot_distributions
    from emotrace.evaluation.metrics import plot_confusion
    from emotrace.outputs.plots import plot_timeline

    plot_timeline(_timeline_table(), ("happy", "sad"), tmp_path / "timeline.png", title="t")
    plot_confusion(np.array([[3, 1], [0, 4]]), ("happy", "sad"), tmp_path / "cm.png")
    rng = np.random.default_rng(0)
    plot_distributions({k: rng.uniform(-1, 1, 50) for k in ("same", "different", "opposite")},
                       tmp_path / "dist.png", "cosine")
    assert svg_backend.get_backend() == "svg"
    for name in ("timeline.png", "cm.png", "dist.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_highlights_and_probe_plots_keep_the_users_backend(svg_backend, tmp_path):
    import base64

    from emotrace.highlights.report_figures import viewer_figure

    table = pd.DataFrame({"time": np.arange(10.0), "happy": np.linspace(0, 1, 10),
                          "expressiveness": np.linspace(0, 1, 10), "missing": False,
                          "reacting": np.arange(10) > 6})
    viewer = SimpleNamespace(table=table, bin_s=1.0, labels=("neutral", "happy"), name="v")
    timeline = viewer_figure(viewer, 0.0, 10.0)
    assert base64.b64decode(timeline.png)[:4] == b"\x89PNG"
    assert 0 < timeline.left < timeline.right < 1  # where the time axis lies in the picture
    pytest.importorskip("torch")
    from emotrace.train.probe import plot_curves

    history = [{"epoch": e, **{f"{s}_{m}": 1 / (e + 1) for s in ("train", "valid")
                               for m in ("loss", "accuracy", "macro_f1")}} for e in range(3)]
    plot_curves(history, tmp_path / "curves.png", "probe")
    assert svg_backend.get_backend() == "svg"
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_json_is_strict_json_with_nan_as_null(tmp_path):
    import json

    from emotrace.outputs.files import write_json

    path = write_json({"a": float("nan"), "b": [np.float32("inf"), 1.5], "c": np.int64(2)},
                      tmp_path / "x.json")
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c)) == {
        "a": None, "b": [None, 1.5], "c": 2}
