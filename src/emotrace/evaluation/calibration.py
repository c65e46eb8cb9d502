"""Calibration of an expression model's probabilities, fitted on a validation set.

Temperature scaling (Guo et al. 2017): one scalar T that divides the logits, chosen to
minimise the negative log-likelihood of the validation labels; it changes how sure the model
is, never which class it picks. A class bias (logit adjustment, Menon et al. 2021:
b = -tau x log prior) moves the decision between classes; tau is chosen on the validation
set's macro-F1, so that a rare class is not given away for accuracy on the frequent ones.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

from emotrace.evaluation.metrics import classification_report


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def log_scores(probs: np.ndarray) -> np.ndarray:
    """Logits up to a per-row constant, from probabilities."""
    return np.log(np.maximum(np.asarray(probs, np.float64), 1e-12))


def apply(probs: np.ndarray, temperature: float = 1.0, bias: np.ndarray | None = None
          ) -> np.ndarray:
    """softmax(log p / T + b): the same arithmetic as `faces.classify.calibrated`."""
    z = log_scores(probs) / temperature
    if bias is not None:
        z = z + bias
    return _softmax(z).astype(np.float32)


def _labelled(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = labels >= 0
    if not keep.any():
        raise ValueError("no labelled faces to calibrate on")
    return np.asarray(probs)[keep], labels[keep]


def fit_temperature(probs: np.ndarray, labels: np.ndarray, bias: np.ndarray | None = None,
                    bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The T in `bounds` that minimises the NLL of `labels` (-1 = left out)."""
    p, y = _labelled(probs, labels)
    z = log_scores(p) + 0.0

    def nll(t: float) -> float:
        q = z / t + (0 if bias is None else bias)
        q = q - q.max(axis=1, keepdims=True)
        return float(-(q[np.arange(len(y)), y] - np.log(np.exp(q).sum(axis=1))).mean())

    return float(minimize_scalar(nll, bounds=bounds, method="bounded").x)


def prior_bias(prior: np.ndarray, tau: float) -> np.ndarray:
    """-tau x log(prior), centred (a constant shift changes nothing)."""
    b = -tau * np.log(np.maximum(np.asarray(prior, np.float64), 1e-6))
    return (b - b.mean()).astype(np.float32)


def fit_prior_tau(probs: np.ndarray, labels: np.ndarray, names: tuple[str, ...],
                  prior: np.ndarray, taus: np.ndarray | None = None) -> tuple[float, dict]:
    """The tau (of a grid from 0 to 1) with the best validation macro-F1, and every tau's
    accuracy and macro-F1 (so the choice can be read)."""
    p, y = _labelled(probs, labels)
    taus = np.round(np.arange(0, 1.01, 0.1), 2) if taus is None else taus
    table = {}
    for tau in taus:
        rep = classification_report(apply(p, 1.0, prior_bias(prior, tau)), y, names)
        table[float(tau)] = {"accuracy": rep["accuracy"], "macro_f1": rep["macro_f1"]}
    best = max(table, key=lambda t: (table[t]["macro_f1"], -t))
    return best, table
