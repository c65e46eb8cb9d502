"""Every training loss, one small class each, called alike: `loss(output, target)` -> a scalar.

Arguments are checked when the loss is made; the shapes are in each docstring. The metric
losses wrap pytorch-metric-learning (imported when one is made: the train extra).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SoftTargetCrossEntropy(nn.Module):
    """Cross-entropy against a target distribution: logits (N, K), targets (N, K) rows sum to 1.

    With FER+'s 10 annotator votes as the target this is the 'cross-entropy loss' scheme of the
    FER+ paper, which beat majority voting there. `label_smoothing` mixes in the uniform
    distribution as for hard labels; `weight` (K,) weighs each class's term.
    """

    weight: torch.Tensor

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


class CCCLoss(nn.Module):
    """1 - concordance correlation coefficient (the ABAW VA measure), averaged over the
    columns: pred (N, C), target (N, C)."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        mp, mt = pred.mean(0), target.mean(0)
        cov = ((pred - mp) * (target - mt)).mean(0)
        var = pred.var(0, unbiased=False) + target.var(0, unbiased=False)
        return 1 - (2 * cov / (var + (mp - mt) ** 2 + 1e-8)).mean()


class TemporalConsistencyLoss(nn.Module):
    """Soft cross-entropy to per-frame target distributions plus `consistency` x the squared
    change of the predicted distribution between adjacent steps: logits (B, T, K), targets
    (B, T, K) rows sum to 1."""

    def __init__(self, consistency: float = 1.0) -> None:
        super().__init__()
        if consistency < 0:
            raise ValueError(f"consistency must be >= 0, got {consistency}")
        self.consistency = consistency

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(logits, dim=-1)
        ce = -(targets * logp).sum(-1).mean()
        p = logp.exp()
        return ce + self.consistency * ((p[:, 1:] - p[:, :-1]) ** 2).sum(-1).mean()


class SupervisedContrastiveLoss(nn.Module):
    """Supervised contrastive loss (Khosla et al.): embeddings (N, D), labels (N,) int; rows
    with the same label are positives. pytorch-metric-learning's SupConLoss."""

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        from pytorch_metric_learning import losses

        self.loss = losses.SupConLoss(temperature=temperature)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.loss(embeddings, labels)


class NTXentLoss(SupervisedContrastiveLoss):
    """NT-Xent (SimCLR's loss): embeddings (N, D), instance ids (N,) int, each id on exactly
    two rows (two views of one thing). With one positive per anchor it is the supervised
    contrastive loss over instance ids; pml's own NTXentLoss, which loops over the positive
    pairs, is ~400x slower on a batch of 512."""


class TripletLoss(nn.Module):
    """Triplet margin loss over mined triplets: embeddings (N, D), labels (N,) int. `miner`:
    batch-hard (the hardest positive and negative of each anchor) or semi-hard."""

    MINERS = ("batch-hard", "semi-hard")

    def __init__(self, margin: float = 0.2, miner: str = "batch-hard") -> None:
        super().__init__()
        if margin <= 0 or miner not in self.MINERS:
            raise ValueError(f"need margin > 0 and miner in {self.MINERS}, got {margin}, {miner!r}")
        from pytorch_metric_learning import losses, miners

        self.loss = losses.TripletMarginLoss(margin=margin)
        self.miner = (miners.BatchHardMiner() if miner == "batch-hard" else
                      miners.TripletMarginMiner(margin=margin, type_of_triplets="semihard"))

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.loss(embeddings, labels, self.miner(embeddings, labels))


class VICRegLoss(nn.Module):
    """VICReg (variance, invariance, covariance; non-contrastive, no labels) between two views:
    embeddings (N, D) of one view, target (N, D) the same rows' other view."""

    def __init__(self) -> None:
        super().__init__()
        from pytorch_metric_learning import losses

        self.loss = losses.VICRegLoss()

    def forward(self, embeddings: torch.Tensor, other_view: torch.Tensor) -> torch.Tensor:
        return self.loss(embeddings, ref_emb=other_view)


class ArcFaceLoss(nn.Module):
    """ArcFace: learned class proxies with an angular margin (degrees) and a logit scale;
    embeddings (N, embedding_size), labels (N,) int in [0, num_classes). Its proxies are
    parameters: give them to the optimiser."""

    def __init__(self, num_classes: int, embedding_size: int, margin: float = 28.6,
                 scale: float = 30.0) -> None:
        super().__init__()
        if min(num_classes, embedding_size) < 1 or margin < 0 or scale <= 0:
            raise ValueError(f"bad ArcFace settings: {num_classes} classes, "
                             f"{embedding_size} dims, margin {margin}, scale {scale}")
        from pytorch_metric_learning import losses

        self.loss = losses.ArcFaceLoss(num_classes=num_classes, embedding_size=embedding_size,
                                       margin=margin, scale=scale)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.loss(embeddings, labels)


def nearest_emotion(va: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Decode (N, 2) valence/arousal to the index of the nearest of K emotion points (K, 2)."""
    return torch.cdist(va, points).argmin(dim=1)


class EmotionNetLoss(nn.Module):
    """The loss of EmotionNet's heads: output {"logits": (N, K) and/or "va": (N, 2)}, target
    (N, K) a distribution over the K emotions (FER+ votes, or one-hot).

    Logits: soft-target cross-entropy (with `label_smoothing` and `class_weight` (K,)). VA:
    mean squared error to the target's vote-weighted mean of the emotions' valence/arousal
    `points` (K, 2), a proxy since no VA labels can be reached here; weighted by `va_weight`
    when the net has both heads.
    """

    points: torch.Tensor

    def __init__(self, points: torch.Tensor, label_smoothing: float = 0.0,
                 class_weight: torch.Tensor | None = None, va_weight: float = 1.0) -> None:
        super().__init__()
        if points.ndim != 2 or points.shape[1] != 2 or va_weight < 0:
            raise ValueError(f"need points (K, 2) and va_weight >= 0, got {tuple(points.shape)}, "
                             f"{va_weight}")
        self.ce = SoftTargetCrossEntropy(label_smoothing, class_weight)
        self.va = VARegressionLoss()
        self.va_weight = va_weight
        self.register_buffer("points", points.float())

    def forward(self, output: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        loss = torch.zeros((), device=target.device)
        if "logits" in output:
            loss = loss + self.ce(output["logits"], target)
        if "va" in output:
            weight = self.va_weight if "logits" in output else 1.0
            loss = loss + weight * self.va(output["va"], target @ self.points)
        return loss
