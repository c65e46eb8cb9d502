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
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from emotrace import models
from emotrace.evaluation.datasets import FaceSet, ferplus
from emotrace.labels import va_points
from emotrace.evaluation.metrics import classification_report
from emotrace.outputs.files import write_json
from emotrace.train.config import flatten, record_epoch
from emotrace.train.embedding import BestEpoch, ProjectionHead, build_loss, report_run, valid_scores
from emotrace.train.losses import SoftTargetCrossEntropy, VARegressionLoss
from emotrace.train.nets import EmotionNet, load_exported
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
    outs = [net(tf(faces.images[i:i + batch_size])) for i in range(0, len(faces), batch_size)]
    net.train()
    return (torch.cat([o["embedding"] for o in outs]).numpy(),
            torch.cat([torch.softmax(o["logits"], 1) for o in outs]).numpy())


def finetune_embedding(cfg: dict, progress: bool = True) -> dict:
    """Fine-tune backbone + projection head (see module doc); returns the results."""
    import mlflow
    from pytorch_metric_learning.samplers import MPerClassSampler

    torch.manual_seed(cfg["seed"])
    np.random.seed(cfg["seed"])
    if cfg["train"]["threads"]:
        torch.set_num_threads(cfg["train"]["threads"])
    run_dir = Path(cfg["output_dir"]) / cfg["name"]
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(cfg, run_dir / "config.json")
    t, f = cfg["train"], cfg["finetune"]

    # 1. network and data (FER+ 48x48 faces fit in memory)
    net, labels = build_net(cfg)
    size = net.backbone.input_size
    train = ferplus("train")
    train = train.take(np.flatnonzero(train.labels >= 0)[: cfg["data"]["subset"]])
    valid = ferplus("valid")
    valid = valid.take(np.flatnonzero(valid.labels >= 0)[: cfg["data"]["eval_subset"]])
    train_tf = TrainTransform(size, AugmentConfig(**{**f["augment"],
                                                     "crop_scale": tuple(f["augment"]["crop_scale"])}))
    eval_tf = EvalTransform(size)

    # 2. losses, optimiser (backbone slower than the heads), cosine schedule over steps
    loss_fn, miner = build_loss({**cfg["loss"], "num_classes": len(labels),
                                 "embedding_size": cfg["head"]["out"]})
    ce, va_loss = SoftTargetCrossEntropy(), VARegressionLoss()
    points = torch.from_numpy(va_points(labels))
    backbone = list(net.backbone.parameters())
    heads = [p for n, p in net.named_parameters() if not n.startswith("backbone.")]
    opt = torch.optim.AdamW([{"params": backbone, "lr": t["lr"] * f["backbone_lr_scale"]},
                             {"params": heads + list(loss_fn.parameters()), "lr": t["lr"]}],
                            weight_decay=t["weight_decay"])
    sampler = MPerClassSampler(train.labels, m=t["m_per_class"], batch_size=t["batch_size"],
                               length_before_new_iter=len(train))
    steps = len(train) // t["batch_size"]
    if f["max_steps_per_epoch"]:
        steps = min(steps, f["max_steps_per_epoch"])
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps * t["epochs"]) / (steps * t["epochs"]))))

    base = valid_scores(embed_faces(net, valid, eval_tf)[0], valid.labels, labels)
    history, best = [], BestEpoch(t["patience"])
    mlflow.set_tracking_uri(cfg["tracking"]["uri"])
    mlflow.set_experiment(cfg["tracking"]["experiment"])
    with mlflow.start_run(run_name=cfg["name"]):
        mlflow.log_params(flatten(cfg))
        mlflow.log_metrics({"base_" + k: v for k, v in base.items()})
        if progress:
            print(f"before fine-tuning (untrained projection): valid AUC {base['valid_auc']:.4f}")
        for epoch in range(t["epochs"]):
            started = time.perf_counter()
            order = np.fromiter(iter(sampler), np.int64)[: steps * t["batch_size"]].reshape(steps, -1)
            bar = tqdm(order, desc=f"epoch {epoch + 1}/{t['epochs']}", disable=not progress, unit="step")
            totals = np.zeros(3)
            for b in bar:
                batch = train.take(b)
                out = net(train_tf(batch.images))
                y = torch.from_numpy(batch.labels)
                soft = torch.from_numpy(batch.soft)
                emb_loss = (loss_fn(out["embedding"], y, miner(out["embedding"], y)) if miner
                            else loss_fn(out["embedding"], y))
                cls_loss = ce(out["logits"], soft)
                if "va" in out:  # the same VA proxy target the classifier was trained with
                    cls_loss = cls_loss + va_loss(out["va"], soft @ points)
                loss = emb_loss + f["ce_weight"] * cls_loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                totals += (float(loss.detach()), float(emb_loss.detach()), float(cls_loss.detach()))
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
            bar.close()

            # 3. validate: the embedding criterion and, since the class head trains too, accuracy
            emb, probs = embed_faces(net, valid, eval_tf)
            scores = valid_scores(emb, valid.labels, labels)
            acc = classification_report(probs, valid.labels, labels)["accuracy"]
            loss_avg, emb_avg, cls_avg = totals / max(1, len(order))
            row = {"epoch": epoch + 1, "loss": loss_avg, "embedding_loss": emb_avg,
                   "class_loss": cls_avg, **scores, "valid_accuracy": acc,
                   "seconds": round(time.perf_counter() - started, 1)}
            record_epoch(history, row)
            if progress:
                print(f"epoch {epoch + 1}: loss {loss_avg:.4f}, valid AUC {scores['valid_auc']:.4f}, "
                      f"same-opposite {scores['valid_same_minus_opposite']:.3f}, accuracy {acc:.4f}")
            if best.update(scores["valid_auc"], net):
                break

        # 4. export the best network and evaluate its embedding on FER+ test
        from emotrace.train.export import export_onnx

        net.load_state_dict(best.state)
        torch.save({"model": best.state, "config": cfg, "labels": labels}, run_dir / "best.pt")
        onnx_path = export_onnx(net, labels, run_dir / "model.onnx", crop="box", color="gray3")
        return report_run(onnx_path, run_dir, cfg, history, base, progress)

