"""Label names and remapping, and the classification metrics, on hand-made cases with known
answers (no models or data needed)."""

import numpy as np
import pytest

from emotrace.evaluation.metrics import (
    classification_report,
    confusion,
    expected_calibration_error,
    mcnemar,
)
from emotrace.labels import (
    FER2013_7,
    FERPLUS8,
    LABEL_SETS,
    RAFDB7,
    SUBMISSION9,
    VA_POINTS,
    canonical,
    label_set,
    remap_probs,
    va_points,
)

# -- labels ---------------------------------------------------------------------------------


def test_every_label_set_uses_canonical_names():
    for names in LABEL_SETS.values():
        assert [canonical(n) for n in names] == list(names)
        assert len(set(names)) == len(names)
    assert set(VA_POINTS) == set(SUBMISSION9)


@pytest.mark.parametrize("alias,name", [
    ("angry", "anger"), ("Happiness", "happy"), (" sadness ", "sad"), ("FEARFUL", "fear"),
    ("surprised", "surprise"), ("disgusted", "disgust"), ("unknown", "uncertain"),
    ("contemptuous", "contempt"), ("calm", "neutral"), ("neutral", "neutral"),
])
def test_data_set_names_map_to_canonical(alias, name):
    assert canonical(alias) == name


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="unknown emotion name 'bored'; known: anger, contempt"):
        canonical("bored")
    with pytest.raises(ValueError, match="valid: ferplus8, fer2013, submission9, rafdb7"):
        label_set("affectnet")
    assert label_set("fer2013") == FER2013_7


def test_remap_reorders_without_changing_mass():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(7), size=20).astype(np.float32)
    q = remap_probs(p, RAFDB7, FER2013_7)  # the same seven emotions, another order
    for j, name in enumerate(RAFDB7):
        assert np.allclose(q[:, FER2013_7.index(name)], p[:, j])
    assert np.allclose(q.sum(axis=1), 1, atol=1e-6)


def test_remap_drops_missing_classes_and_renormalises():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(8), size=20).astype(np.float32)
    q = remap_probs(p, FERPLUS8, RAFDB7)  # RAF-DB has no contempt
    rest = 1 - p[:, FERPLUS8.index("contempt")]
    assert np.allclose(q[:, RAFDB7.index("happy")], p[:, FERPLUS8.index("happy")] / rest,
                       atol=1e-6)
    assert np.allclose(q.sum(axis=1), 1, atol=1e-6)
    up = remap_probs(p, FERPLUS8, SUBMISSION9)  # a superset: 'uncertain' gets nothing
    assert (up[:, SUBMISSION9.index("uncertain")] == 0).all()
    assert np.allclose(up[:, SUBMISSION9.index("contempt")], p[:, FERPLUS8.index("contempt")])
    only_contempt = np.eye(8, dtype=np.float32)[[FERPLUS8.index("contempt")]]
    assert (remap_probs(only_contempt, FERPLUS8, RAFDB7) == 0).all()  # no mass left: zeros
    with pytest.raises(ValueError, match=r"probs must be \(N, 8\)"):
        remap_probs(p[:, :7], FERPLUS8, RAFDB7)


def test_va_points_follow_the_label_order():
    points = va_points(RAFDB7)
    assert points.shape == (7, 2)
    assert tuple(points[RAFDB7.index("happy")]) == pytest.approx(VA_POINTS["happy"])
    assert points[RAFDB7.index("sad"), 0] < 0 < points[RAFDB7.index("happy"), 0]


# -- metrics --------------------------------------------------------------------------------


def test_confusion_counts_rows_true_columns_predicted():
    m = confusion(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 2]), 3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_ece_on_a_hand_made_case():
    # Five faces at confidence 0.6, all right (gap 0.4); five at 0.95, two right (gap 0.55).
    probs = np.array([[0.6, 0.4]] * 5 + [[0.95, 0.05]] * 5)
    y = np.array([0] * 5 + [0, 0, 1, 1, 1])
    assert expected_calibration_error(probs, y, bins=10) == pytest.approx(0.5 * 0.4 + 0.5 * 0.55)
    # A perfectly calibrated case: confidence 0.75, three of four right.
    calibrated = np.array([[0.75, 0.25]] * 4)
    assert expected_calibration_error(calibrated, np.array([0, 0, 0, 1])) == pytest.approx(0)


def test_report_leaves_out_unlabelled_rows():
    probs = np.eye(3)[[0, 1, 1, 2, 2]]
    y = np.array([0, 1, 2, -1, 2])  # one row without a label, one mistake (2 called 1)
    r = classification_report(probs, y, ("a", "b", "c"))
    assert r["n"] == 4 and r["accuracy"] == pytest.approx(3 / 4)
    assert r["recall"] == {"a": 1.0, "b": 1.0, "c": 0.5}
    # F1: a 1, b 2*0.5*1/1.5 = 2/3, c 2*1*0.5/1.5 = 2/3
    assert r["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    assert r["confusion"] == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]


def test_mcnemar_exact_p_value():
    # 7 items only A gets right, 2 only B: p = 2 * P(X <= 2), X ~ Binomial(9, 1/2)
    a = np.array([1] * 7 + [0] * 2 + [1] * 30 + [0] * 4, bool)
    b = np.array([0] * 7 + [1] * 2 + [1] * 30 + [0] * 4, bool)
    out = mcnemar(a, b)
    assert (out["a_only"], out["b_only"], out["n"]) == (7, 2, 43)
    assert out["p_value"] == pytest.approx(2 * (1 + 9 + 36) / 2**9)
    assert out["accuracy_a"] == pytest.approx(37 / 43)
    assert out["accuracy_b"] == pytest.approx(32 / 43)
    assert mcnemar(b, a)["p_value"] == pytest.approx(out["p_value"])  # symmetric
