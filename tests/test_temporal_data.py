"""ABAW and AFEW-VA annotation files (written here in their formats) and the ABAW metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emotrace.errors import InputError
from emotrace.evaluation.temporal_data import (
    ABAW_AUS,
    ABAW_EXPR,
    abaw_frames,
    au_f1,
    ccc,
    macro_f1,
    read_abaw_au,
    read_abaw_expr,
    read_abaw_va,
    read_afew_va,
)


def test_abaw_files(tmp_path):
    (tmp_path / "expr.txt").write_text(",".join(ABAW_EXPR) + "\n0\n4\n-1\n4\n7\n")
    (tmp_path / "va.txt").write_text("valence,arousal\n0.5,0.2\n-5,-5\n-0.25,0.9\n")
    (tmp_path / "au.txt").write_text(",".join(ABAW_AUS) + "\n" + ",".join(["0"] * 11 + ["1"]) + "\n"
                                     + ",".join(["-1"] * 12) + "\n")
    assert read_abaw_expr(tmp_path / "expr.txt").tolist() == [0, 4, -1, 4, 7]
    va = read_abaw_va(tmp_path / "va.txt")
    assert va.shape == (3, 2) and np.isnan(va[1]).all() and np.allclose(va[2], [-0.25, 0.9])
    au = read_abaw_au(tmp_path / "au.txt")
    assert au.shape == (2, 12) and au[0, -1] == 1 and (au[1] == -1).all()
    assert abaw_frames(tmp_path / "video1", 2)[1].name == "00002.jpg"
    with pytest.raises(InputError, match="not an ABAW EXPR file"):
        read_abaw_expr(tmp_path / "va.txt")
    (tmp_path / "bad.txt").write_text(",".join(ABAW_EXPR) + "\n9\n")
    with pytest.raises(InputError, match="-1..7"):
        read_abaw_expr(tmp_path / "bad.txt")


def test_afew_va_clip(tmp_path):
    clip = tmp_path / "001"
    clip.mkdir()
    frames = {"00000": {"valence": 5, "arousal": -2}, "00001": {"valence": -10, "arousal": 10}}
    (clip / "001.json").write_text(json.dumps({"frames": frames}))
    paths, va = read_afew_va(clip)
    assert [p.name for p in paths] == ["00000.png", "00001.png"]
    assert np.allclose(va, [[0.5, -0.2], [-1.0, 1.0]])
    with pytest.raises(InputError, match="no such file"):
        read_afew_va(tmp_path)


def test_metrics():
    y = np.array([0, 1, 1, 2, -1])
    assert macro_f1(y, np.array([0, 1, 1, 2, 0]), 3) == 1.0
    assert macro_f1(y, np.array([1, 1, 1, 2, 0]), 3) == pytest.approx((0 + 0.8 + 1) / 3)
    x = np.array([0.1, 0.5, -0.3, np.nan])
    assert ccc(x, x) == pytest.approx(1.0)
    assert ccc(x, x + 0.5) < 1.0 and ccc(x, -x) < 0
    t = np.array([[1, 0], [0, -1], [1, 1]])
    assert au_f1(t, np.array([[1, 0], [0, 1], [1, 1]])) == 1.0
