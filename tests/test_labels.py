import numpy as np
import pytest

from emotrace.labels import FERPLUS8, RAFDB7, SUBMISSION9, canonical, remap_probs


def test_canonical_names():
    assert canonical("Happiness") == "happy"
    assert canonical("fearful") == "fear"
    assert canonical("unknown") == "uncertain"
    with pytest.raises(ValueError, match="known"):
        canonical("bored")


def test_remap_moves_mass_and_renormalises():
    p = np.array([[0.1, 0.0, 0.0, 0.6, 0.3, 0.0, 0.0]], np.float32)  # RAF-DB order
    q = remap_probs(p, RAFDB7, SUBMISSION9)
    assert q.shape == (1, 9)
    assert q[0, SUBMISSION9.index("happy")] == pytest.approx(0.6)
    assert q[0, SUBMISSION9.index("contempt")] == 0
    r = remap_probs(np.eye(8, dtype=np.float32)[[7]], FERPLUS8, RAFDB7)  # contempt only
    assert r.sum() == 0
