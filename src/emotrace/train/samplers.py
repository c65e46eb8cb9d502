"""Batch samplers for the embedding trainers (yield dataset indices, batch after batch)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch


class RandomOrder(torch.utils.data.Sampler):
    """A fresh random permutation of range(n) at every pass."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        return iter(torch.randperm(self.n).tolist())


class HardNegativeClassSampler(torch.utils.data.Sampler):
    """Batches of the most confusable classes: each batch takes a random anchor class and the
    `classes_per_batch - 1` classes whose feature centroids are nearest to it (cosine), with
    `m` samples of each, so negatives in a batch are hard ones (fear next to surprise, sadness
    next to neutral) rather than random. Yields indices batch after batch, like
    pytorch-metric-learning's MPerClassSampler, `length` indices in all."""

    def __init__(self, features: np.ndarray, labels: np.ndarray, m: int, classes_per_batch: int,
                 length: int, seed: int = 0) -> None:
        classes = np.unique(labels)
        if not 2 <= classes_per_batch <= len(classes):
            raise ValueError(f"classes_per_batch must be in 2..{len(classes)}, "
                             f"got {classes_per_batch}")
        if m < 1:
            raise ValueError(f"m must be >= 1, got {m}")
        unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
        cent = np.stack([unit[labels == c].mean(0) for c in classes])
        cent /= np.linalg.norm(cent, axis=1, keepdims=True)
        sim = cent @ cent.T
        np.fill_diagonal(sim, np.inf)  # the anchor itself sorts first
        self.neighbours = np.argsort(-sim, axis=1)[:, :classes_per_batch]
        self.members = [np.flatnonzero(labels == c) for c in classes]
        self.m, self.length, self.rng = m, length, np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[int]:
        out: list[int] = []
        while len(out) < self.length:
            anchor = self.rng.integers(len(self.members))
            for c in self.neighbours[anchor]:
                out.extend(self.rng.choice(self.members[c], self.m).tolist())
        return iter(out[: self.length])


def window_pairs(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of up to `size` rows drawn as pairs from `size // 2` random windows (`labels`
    (N,) window ids; every window has two rows or more), so each row has a positive. `rng` is
    the run's seeded generator: a run with temporal positives can be repeated."""
    windows = rng.choice(labels.max() + 1, size // 2)
    out: list[int] = []
    for w in windows:
        members = np.flatnonzero(labels == w)
        if len(members) >= 2:
            out.extend(rng.choice(members, 2, replace=False).tolist())
    return np.asarray(out, np.int64)
