"""Classification metrics: accuracy, macro-F1, per-class recall, confusion, ECE; and paired
comparisons of two classifiers on the same items (exact McNemar test, bootstrap interval)."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """(k, k) counts: rows = true class, columns = predicted class."""
    m = np.zeros((k, k), np.int64)
    np.add.at(m, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return m


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, bins: int = 15) -> float:
    """ECE: |accuracy - confidence| averaged over equal-width confidence bins, by bin size."""
    conf = probs.max(1)
    correct = probs.argmax(1) == y_true
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in pairwise(edges):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    return float(ece)


def classification_report(probs: np.ndarray, y_true: np.ndarray, labels: tuple[str, ...]) -> dict:
    """Accuracy, macro-F1 (over classes present in y_true), per-class recall, confusion, ECE.

    Rows with y_true < 0 (no usable label) are left out.
    """
    keep = y_true >= 0
    probs, y_true = probs[keep], y_true[keep]
    k = len(labels)
    pred = probs.argmax(1)
    cm = confusion(y_true, pred, k)
    support = cm.sum(1)
    predicted = cm.sum(0)
    tp = np.diag(cm).astype(float)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k),
                   where=(precision + recall) > 0)
    present = support > 0
    return {
        "n": len(y_true),
        "accuracy": float((pred == y_true).mean()) if len(y_true) else float("nan"),
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "recall": {labels[i]: float(recall[i]) for i in range(k) if present[i]},
        "ece": expected_calibration_error(probs, y_true),
        "confusion": cm.tolist(),
        "labels": list(labels),
    }


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict:
    """Exact McNemar test of two classifiers judged on the same N items.

    correct_a, correct_b: (N,) bool, whether each system got item i right. Only the items where
    exactly one is right carry information: under "equally accurate" each of those is won by A
    with probability 1/2, so the two-sided p-value is a binomial test on them.
    """
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two (N,) arrays of the same length, got {a.shape} and {b.shape}")
    from scipy.stats import binomtest

    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    n = a_only + b_only
    return {
        "n": len(a),
        "accuracy_a": float(a.mean()) if len(a) else float("nan"),
        "accuracy_b": float(b.mean()) if len(b) else float("nan"),
        "a_only": a_only,
        "b_only": b_only,
        "p_value": float(binomtest(a_only, n, 0.5).pvalue) if n else 1.0,
    }


def bootstrap_accuracy_difference(
    hits_a: np.ndarray, n_a: np.ndarray, hits_b: np.ndarray, n_b: np.ndarray,
    n_boot: int = 10_000, level: float = 0.95, seed: int = 0,
) -> dict:
    """Pooled accuracy of A minus B and its percentile bootstrap interval, resampling groups.

    Each of the G groups (a clip, or one item per group for a plain paired bootstrap) has
    hits_x[g] correct out of n_x[g] judged for system x; accuracy = sum(hits) / sum(n). Whole
    groups are resampled because frames of one clip are not independent: resampling frames
    would give far too narrow an interval.
    """
    arrays = [np.asarray(x, np.float64) for x in (hits_a, n_a, hits_b, n_b)]
    if len({x.shape for x in arrays}) != 1 or arrays[0].ndim != 1 or not len(arrays[0]):
        raise ValueError("hits_a, n_a, hits_b, n_b must be (G,) arrays of one length G >= 1")
    if not 0 < level < 1 or n_boot < 1:
        raise ValueError(f"need 0 < level < 1 and n_boot >= 1, got {level}, {n_boot}")
    ha, na, hb, nb = arrays

    def diff(idx: np.ndarray) -> np.ndarray:
        return ha[idx].sum(-1) / na[idx].sum(-1) - hb[idx].sum(-1) / nb[idx].sum(-1)

    rng = np.random.default_rng(seed)
    g = len(ha)
    chunk = max(1, 2_000_000 // g)  # bounded memory for item-level bootstraps of large sets
    with np.errstate(invalid="ignore", divide="ignore"):
        draws = np.concatenate([diff(rng.integers(0, g, (min(chunk, n_boot - i), g)))
                                for i in range(0, n_boot, chunk)])
        point = float(diff(np.arange(g)))
    lo, hi = np.nanpercentile(draws, [50 * (1 - level), 50 * (1 + level)])
    return {"difference": point, "low": float(lo), "high": float(hi), "level": level,
            "groups": g, "n_boot": n_boot}


def plot_confusion(cm: np.ndarray, labels: tuple[str, ...] | list[str], path: str | Path,
                   title: str = "") -> Path:
    """Row-normalised confusion matrix as a PNG (counts in each cell)."""
    from emotrace.outputs.files import atomic_write
    from emotrace.outputs.plots import new_figure

    cm = np.asarray(cm)
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    fig = new_figure(figsize=(1.0 + 0.75 * len(labels), 0.8 + 0.7 * len(labels)))
    ax = fig.subplots()
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{norm[i, j]:.2f}\n({cm[i, j]})", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=110, format="png"))
    return Path(path)
