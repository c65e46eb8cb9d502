"""Per-frame video emotion annotations in the standard formats, and their metrics (no torch).

Aff-Wild2 / ABAW (one text file per video, one line per frame after a header line):
- EXPR_Set: header `Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other`, then one
  integer class per frame, -1 = not annotated;
- VA_Set: header `valence,arousal`, then `v,a` per frame in [-1, 1], -5 = not annotated;
- AU_Set: header `AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26`, then 0/1 per AU
  per frame, -1 = not annotated.
The frames themselves are in a cropped-aligned folder per video (`00001.jpg`, ...; frame i of
the annotation file is image i + 1).

AFEW-VA: one folder per clip with `<clip>.json`: {"frames": {"00000": {"valence": v,
"arousal": a, ...}, ...}} with valence and arousal in [-10, 10] (scaled here to [-1, 1]).

Metrics: EXPR macro-F1 over the 8 classes, VA concordance correlation coefficient (CCC), AU
F1 averaged over the AUs, the measures of the ABAW challenges.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from emotrace.errors import InputError

ABAW_EXPR = ("Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other")
ABAW_AUS = ("AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU15", "AU23", "AU24", "AU25",
            "AU26")


def _lines(path: str | Path) -> tuple[str, list[str]]:
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    if not lines:
        raise InputError(path, "empty annotation file")
    return lines[0], lines[1:]


def read_abaw_expr(path: str | Path) -> np.ndarray:
    """(N,) int64 class per frame (index into `ABAW_EXPR`), -1 where not annotated."""
    header, rows = _lines(path)
    if [h.strip() for h in header.split(",")] != list(ABAW_EXPR):
        raise InputError(path, f"not an ABAW EXPR file (header {header!r})")
    try:
        labels = np.array([int(r) for r in rows], np.int64)
    except ValueError as exc:
        raise InputError(path, f"bad EXPR line ({exc})") from None
    if ((labels < -1) | (labels >= len(ABAW_EXPR))).any():
        raise InputError(path, "EXPR classes must be -1..7")
    return labels


def read_abaw_va(path: str | Path) -> np.ndarray:
    """(N, 2) float32 valence, arousal per frame; NaN where not annotated (-5)."""
    header, rows = _lines(path)
    if header.replace(" ", "").lower() != "valence,arousal":
        raise InputError(path, f"not an ABAW VA file (header {header!r})")
    try:
        va = np.array([[float(x) for x in r.split(",")] for r in rows], np.float32)
    except ValueError as exc:
        raise InputError(path, f"bad VA line ({exc})") from None
    va[(va <= -5).any(axis=1)] = np.nan
    return va


def read_abaw_au(path: str | Path) -> np.ndarray:
    """(N, 12) int8 per AU per frame (0/1), -1 where not annotated."""
    header, rows = _lines(path)
    if [h.strip() for h in header.split(",")] != list(ABAW_AUS):
        raise InputError(path, f"not an ABAW AU file (header {header!r})")
    try:
        return np.array([[int(x) for x in r.split(",")] for r in rows], np.int8)
    except ValueError as exc:
        raise InputError(path, f"bad AU line ({exc})") from None


def abaw_frames(folder: str | Path, n: int) -> list[Path]:
    """Image paths of the first `n` annotated frames in a cropped-aligned folder (1-based)."""
    folder = Path(folder)
    return [folder / f"{i + 1:05d}.jpg" for i in range(n)]


def read_afew_va(clip_dir: str | Path) -> tuple[list[Path], np.ndarray]:
    """(frame image paths, (N, 2) valence/arousal in [-1, 1]) of one AFEW-VA clip folder."""
    clip_dir = Path(clip_dir)
    path = clip_dir / f"{clip_dir.name}.json"
    if not path.is_file():
        raise InputError(path, "no such file (an AFEW-VA clip folder holds <clip>.json)")
    try:
        frames = json.loads(path.read_text())["frames"]
    except (json.JSONDecodeError, KeyError) as exc:
        raise InputError(path, f"not an AFEW-VA annotation ({exc})") from None
    keys = sorted(frames)
    va = np.array([[frames[k]["valence"], frames[k]["arousal"]] for k in keys], np.float32) / 10.0
    return [clip_dir / f"{k}.png" for k in keys], va


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Mean F1 over the classes that occur in the labels or the predictions (as scikit-learn's
    macro average), frames with y_true == -1 ignored."""
    keep = y_true >= 0
    t, p = y_true[keep], y_pred[keep]
    scores = []
    for c in range(n_classes):
        tp = np.sum((t == c) & (p == c))
        fp = np.sum((t != c) & (p == c))
        fn = np.sum((t == c) & (p != c))
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def ccc(x: np.ndarray, y: np.ndarray) -> float:
    """Concordance correlation coefficient, NaN pairs ignored."""
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep].astype(np.float64), y[keep].astype(np.float64)
    if len(x) < 2:
        return float("nan")
    cov = np.mean((x - x.mean()) * (y - y.mean()))
    return float(2 * cov / (x.var() + y.var() + (x.mean() - y.mean()) ** 2))


def au_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """F1 per AU (frames with -1 ignored), averaged over the AUs."""
    scores = []
    for j in range(y_true.shape[1]):
        keep = y_true[:, j] >= 0
        t, p = y_true[keep, j], y_pred[keep, j]
        tp = np.sum((t == 1) & (p == 1))
        fp, fn = np.sum((t == 0) & (p == 1)), np.sum((t == 1) & (p == 0))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(scores))
