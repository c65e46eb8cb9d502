"""Emotion label sets and the names emotrace uses for them.

emotrace uses one canonical name per emotion (the names of the 9-class submission set):
anger, contempt, disgust, fear, happy, neutral, sad, surprise, uncertain. Data sets and models
name them otherwise (FER+ says "happiness", the OpenCV Zoo model "fearful"); `canonical`
maps those names, and `remap_probs` moves probabilities between label sets.
"""

from __future__ import annotations

import numpy as np

#: FER+ (Barsoum et al. 2016) order of its 8 emotion votes.
FERPLUS8: tuple[str, ...] = (
    "neutral", "happy", "surprise", "sad", "anger", "disgust", "fear", "contempt",
)
#: FER2013 class ids 0..6.
FER2013_7: tuple[str, ...] = ("anger", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: The 9-class submission set: FER+ plus "uncertain" (FER+'s "unknown" votes).
SUBMISSION9: tuple[str, ...] = (
    "anger", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise", "uncertain",
)
#: Output order of the OpenCV Zoo MobileFaceNet (trained on RAF-DB).
RAFDB7: tuple[str, ...] = ("anger", "disgust", "fear", "happy", "neutral", "sad", "surprise")

LABEL_SETS: dict[str, tuple[str, ...]] = {
    "ferplus8": FERPLUS8,
    "fer2013": FER2013_7,
    "submission9": SUBMISSION9,
    "rafdb7": RAFDB7,
}

_ALIASES = {
    "angry": "anger", "happiness": "happy", "sadness": "sad", "fearful": "fear",
    "surprised": "surprise", "disgusted": "disgust", "unknown": "uncertain",
    "contemptuous": "contempt", "calm": "neutral",
}
CANONICAL: frozenset[str] = frozenset(SUBMISSION9)


def canonical(name: str) -> str:
    """Map a data set's or model's emotion name to emotrace's name ("happiness" -> "happy")."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in CANONICAL:
        raise ValueError(f"unknown emotion name {name!r}; known: {', '.join(sorted(CANONICAL))}")
    return key


def label_set(name: str) -> tuple[str, ...]:
    """A label set by name; the error lists the valid names."""
    try:
        return LABEL_SETS[name]
    except KeyError:
        raise ValueError(
            f"unknown label set {name!r}; valid: {', '.join(LABEL_SETS)}"
        ) from None


def remap_probs(
    probs: np.ndarray, source: tuple[str, ...], target: tuple[str, ...]
) -> np.ndarray:
    """Move class probabilities (N, len(source)) to another label set (N, len(target)).

    Classes the source lacks get probability 0; classes the target lacks are dropped and the
    rows renormalised, so each row still sums to 1 (a row with no mass left stays all zero).
    """
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 2 or probs.shape[1] != len(source):
        raise ValueError(f"probs must be (N, {len(source)}), got {probs.shape}")
    out = np.zeros((probs.shape[0], len(target)), dtype=np.float32)
    index = {name: i for i, name in enumerate(target)}
    for j, name in enumerate(source):
        if name in index:
            out[:, index[name]] += probs[:, j]
    total = out.sum(axis=1, keepdims=True)
    np.divide(out, total, out=out, where=total > 0)
    return out


#: Each emotion's place in the valence-arousal plane, both in [-1, 1]. A design choice, not a
#: measurement: positions follow the circumplex model (Russell 1980) and the pleasure/arousal
#: ratings of emotion words (Russell & Mehrabian 1977), rounded; disgust and contempt, absent
#: from the circumplex, are placed by us (negative valence, moderate / low arousal). Valence and
#: arousal learned from these points are proxies derived from category labels.
VA_POINTS: dict[str, tuple[float, float]] = {
    "neutral": (0.0, 0.0),
    "happy": (0.8, 0.5),
    "surprise": (0.4, 0.7),
    "sad": (-0.6, -0.3),
    "anger": (-0.5, 0.6),
    "disgust": (-0.6, 0.35),
    "fear": (-0.65, 0.6),
    "contempt": (-0.5, 0.1),
    "uncertain": (0.0, 0.0),
}


def va_points(labels: tuple[str, ...]) -> np.ndarray:
    """(K, 2) valence/arousal points of a label set, in its order."""
    return np.array([VA_POINTS[canonical(n)] for n in labels], np.float32)
