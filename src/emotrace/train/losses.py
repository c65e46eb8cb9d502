"""Losses for the classifier: hard or soft (vote distribution) cross-entropy, VA regression."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SoftTargetCrossEntropy(nn.Module):
    """Cross-entropy against a target distribution: logits (N, K), targets (N, K) rows sum to 1.

    With FER+'s 10 annotator votes as the target this is the 'cross-entropy loss' scheme of the
    FER+ paper, which beat majority voting there. `label_smoothing` mixes in the uniform
    distribution as for hard labels.
    """

    def __init__(self, label_smoothing: float = 0.0, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing
        self.register_buffer("weight", weight if weight is not None else torch.empty(0))

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        k = logits.shape[1]
        if self.label_smoothing:
            targets = targets * (1 - self.label_smoothing) + self.label_smoothing / k
        if self.weight.numel():
            targets = targets * self.weight
        return -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()


class VARegressionLoss(nn.Module):
    """Mean squared error on (valence, arousal): pred (N, 2), target (N, 2), both in [-1, 1]."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(pred, target)


def nearest_emotion(va: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Decode (N, 2) valence/arousal to the index of the nearest of K emotion points (K, 2)."""
    return torch.cdist(va, points).argmin(dim=1)
