"""`emotrace train embedding mode=finetune`: the backbone is trained too, not only a head.

The frozen mode (`embedding.py`) learns a head on cached features; the backbone's features of
FER+ train are those of faces it was trained on, cleaner than those of unseen faces, so a head
fitted to them overfits. Here every step sees freshly augmented faces and the whole network
moves. Read top to bottom:

1. Network. The registry backbone (an ONNX model written by `emotrace train`, e.g. the shipped
   emotrace-ferplus8) is rebuilt in PyTorch with its class and valence/arousal heads, and a
   projection head is put on its 512-d embedding (`ProjectedEmotionNet`).
2. Loss per batch (m-per-class sampler, so every face has positives): the embedding loss named
   in the config on the projected embedding (supervised contrastive by default, from
   pytorch-metric-learning), plus `finetune.ce_weight` x the vote-distribution cross-entropy
   of the class head and the VA regression: they keep the classifier (and so the features)
   from drifting away from what it already knows while the embedding reshapes them.
3. Each epoch: same-vs-different ROC-AUC on FER+ valid; the best epoch kept; early stopping.
4. Export the whole network as one ONNX model (probabilities, valence/arousal and the
   *projected* embedding), so `FaceEmbedder`, `emotrace index` and `emotrace eval embedding`
   use it like any registry model; evaluate it on FER+ test; log everything to MLflow.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from tqdm.auto import tqdm

from emotrace import models
from emotrace.evaluation.datasets import FaceSet, ferplus
from emotrace.evaluation.metrics import classification_report
from emotrace.labels import va_points
from emotrace.train.embedding import ProjectionHead, build_loss, report_run, valid_scores
from emotrace.train.export import export_onnx
from emotrace.train.losses import EmotionNetLoss
from emotrace.train.nets import EmotionNet, load_exported
from emotrace.train.run import (
    BestEpoch,
    Precision,
    batch_loader,
    record_epoch,
    run_device,
    start_run,
    tracked,
)
from emotrace.train.transforms import AugmentConfig, EvalTransform, TrainTransform


class ProjectedEmotionNet(EmotionNet):
    """EmotionNet whose `embedding` output is a projection head's unit-length vector (N, out);
    the backbone's own 512-d vector is kept as `features`."""

    def __init__(self, n_classes: int, va_head: bool, input_size: int, dropout: float,
                 hidden: int, out: int) -> None:
        super().__init__(n_classes, va_head, input_size, dropout)
        self.projection = ProjectionHead(512, hidden, out)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = super().forward(x)
        out["features"] = out["embedding"]
        out["embedding"] = self.projection(out["features"])
        return out


def build_net(cfg: dict) -> tuple[ProjectedEmotionNet, tuple[str, ...]]:
    base, labels = load_exported(models.resolve(cfg["backbone"]))
    if base.classifier is None:
        raise ValueError(f"backbone {cfg['backbone']!r} has no class head to fine-tune with")
    f = cfg["finetune"]
    net = ProjectedEmotionNet(len(labels), base.va is not None, base.backbone.input_size,
                              f["dropout"], cfg["head"]["hidden"], cfg["head"]["out"])
    missing = net.load_state_dict(base.state_dict(), strict=False).missing_keys
    if any(not k.startswith("projection.") for k in missing):  # only the new head starts fresh
        raise ValueError(f"backbone {cfg['backbone']!r}: weights missing for {missing}")
    return net, labels


@torch.no_grad()
def embed_faces(net: ProjectedEmotionNet, faces: FaceSet, tf: EvalTransform,
                batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(projected embeddings (N, out), class probabilities (N, K)) in one pass."""
    net.eval()
    device = next(net.parameters()).device
    outs = [net(tf(faces.images[i:i + batch_size]).to(device))
            for i in range(0, len(faces), batch_size)]
    net.train()
    return (torch.cat([o["embedding"] for o in outs]).cpu().numpy(),
            torch.cat([torch.softmax(o["logits"], 1) for o in outs]).cpu().numpy())


def load_faces(cfg: dict) -> tuple[FaceSet, FaceSet]:
    """(train, valid) labelled FER+ faces (48x48: they fit in memory)."""
    train, valid = ferplus("train"), ferplus("valid")
    return (train.take(np.flatnonzero(train.labels >= 0)[: cfg["data"]["subset"]]),
            valid.take(np.flatnonzero(valid.labels >= 0)[: cfg["data"]["eval_subset"]]))


def build_optimiser(cfg: dict, net: ProjectedEmotionNet, loss_fn: torch.nn.Module, steps: int
                    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW, the backbone slower than the heads (and the loss's own parameters: ArcFace's
    proxies); cosine decay over all steps."""
    t, f = cfg["train"], cfg["finetune"]
    backbone = list(net.backbone.parameters())
    heads = [p for n, p in net.named_parameters() if not n.startswith("backbone.")]
    opt = torch.optim.AdamW([{"params": backbone, "lr": t["lr"] * f["backbone_lr_scale"]},
                             {"params": heads + list(loss_fn.parameters()), "lr": t["lr"]}],
                            weight_decay=t["weight_decay"])
    total = max(1, steps * t["epochs"])
    return opt, torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))


def train_epoch(cfg: dict, net: ProjectedEmotionNet, train: FaceSet, tf: TrainTransform,
                losses: tuple[torch.nn.Module, EmotionNetLoss], order: np.ndarray,
                opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LambdaLR,
                desc: str, progress: bool) -> np.ndarray:
    """One pass over the batches `order` (steps, batch size), made by the run's DataLoader
    and augmented on the net's device; returns the mean (total, embedding, class) losses."""
    emb_loss_fn, cls_loss_fn = losses
    totals = np.zeros(3)
    device = next(net.parameters()).device
    amp = Precision(device)
    assert train.soft is not None  # FER+ faces carry their vote distributions
    loader = batch_loader((train.images, train.labels, train.soft), list(order), cfg, device)
    bar = tqdm(loader, desc=desc, disable=not progress, unit="step")
    for images, labels, soft in bar:
        with amp.autocast():
            out = net(tf(images.to(device, non_blocking=True)))
            emb_loss = emb_loss_fn(out["embedding"], labels.to(device, non_blocking=True))
            # the class and VA heads keep what they know while the embedding reshapes them
            cls_loss = cls_loss_fn(out, soft.to(device, non_blocking=True))
            loss = emb_loss + cfg["finetune"]["ce_weight"] * cls_loss
        amp.step(loss, opt)
        sched.step()
        totals += (float(loss.detach()), float(emb_loss.detach()), float(cls_loss.detach()))
        bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
    bar.close()
    return totals / max(1, len(order))


def finetune_embedding(cfg: dict, progress: bool = True) -> dict:
    """Fine-tune backbone + projection head (see module doc); returns the results."""
    import mlflow
    from pytorch_metric_learning.samplers import MPerClassSampler

    run_dir, t, f = start_run(cfg), cfg["train"], cfg["finetune"]

    # 1. network and data
    net, labels = build_net(cfg)
    device = run_device(cfg)
    net = net.to(device)
    size = net.backbone.input_size
    train, valid = load_faces(cfg)
    augment = {**f["augment"], "crop_scale": tuple(f["augment"]["crop_scale"])}
    train_tf, eval_tf = TrainTransform(size, AugmentConfig(**augment)), EvalTransform(size)

    # 2. losses, optimiser, sampler (every batch has positives)
    emb_loss = build_loss({**cfg["loss"], "num_classes": len(labels),
                           "embedding_size": cfg["head"]["out"]})
    emb_loss = emb_loss.to(device)
    cls_loss = EmotionNetLoss(torch.from_numpy(va_points(labels))).to(device)
    sampler = MPerClassSampler(train.labels, m=t["m_per_class"], batch_size=t["batch_size"],
                               length_before_new_iter=len(train))
    steps = len(train) // t["batch_size"]
    if f["max_steps_per_epoch"]:
        steps = min(steps, f["max_steps_per_epoch"])
    opt, sched = build_optimiser(cfg, net, emb_loss, steps)

    # 3. loop: validate every epoch, keep the best, stop early
    base = valid_scores(embed_faces(net, valid, eval_tf)[0], valid.labels, labels)
    history: list[dict] = []
    best = BestEpoch(t["patience"])
    with tracked(cfg):
        mlflow.log_metrics({"base_" + k: v for k, v in base.items()})
        if progress:
            print(f"before fine-tuning (untrained projection): valid AUC {base['valid_auc']:.4f}")
        for epoch in range(t["epochs"]):
            started = time.perf_counter()
            order = np.fromiter(iter(sampler), np.int64)[: steps * t["batch_size"]]
            loss, emb_avg, cls_avg = train_epoch(
                cfg, net, train, train_tf, (emb_loss, cls_loss), order.reshape(steps, -1), opt,
                sched, f"epoch {epoch + 1}/{t['epochs']}", progress)
            # the embedding criterion and, since the class head trains too, accuracy
            emb, probs = embed_faces(net, valid, eval_tf)
            scores = valid_scores(emb, valid.labels, labels)
            acc = classification_report(probs, valid.labels, labels)["accuracy"]
            row = {"epoch": epoch + 1, "loss": loss, "embedding_loss": emb_avg,
                   "class_loss": cls_avg, **scores, "valid_accuracy": acc,
                   "seconds": round(time.perf_counter() - started, 1)}
            record_epoch(history, row)
            if progress:
                print(f"epoch {epoch + 1}: loss {loss:.4f}, valid AUC {scores['valid_auc']:.4f}, "
                      f"same-opposite {scores['valid_same_minus_opposite']:.3f}, "
                      f"accuracy {acc:.4f}")
            if best.update(scores["valid_auc"], net, epoch + 1):
                break

        # 4. export the best network and evaluate its embedding on FER+ test
        weights = best.restore(net)
        torch.save({"model": weights, "config": cfg, "labels": labels}, run_dir / "best.pt")
        onnx_path = export_onnx(net, labels, run_dir / "model.onnx", crop="box", color="gray3")
        return report_run(onnx_path, run_dir, cfg, history, base, best.epoch, progress)
