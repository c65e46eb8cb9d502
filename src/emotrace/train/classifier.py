"""Train the expression classifier: read `train_classifier` top to bottom.

    emotrace train classifier --config configs/classifier/ferplus_multitask_64.yaml train.epochs=3

Each run writes `<output_dir>/<name>/`: the resolved config, `last.pt` (for --resume),
`best.pt`, `metrics.json` (valid and test), a confusion matrix PNG and `model.onnx`; the same
is tracked in MLflow (parameters, per-epoch metrics, artifacts).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from emotrace import models
from emotrace.evaluation.calibration import apply
from emotrace.evaluation.datasets import FaceSet, load_named
from emotrace.evaluation.metrics import classification_report, plot_confusion
from emotrace.labels import canonical, va_points
from emotrace.train import calibrate
from emotrace.train.distill import Teachers, teacher_targets, video_faces
from emotrace.train.export import export_onnx
from emotrace.train.losses import EmotionNetLoss
from emotrace.train.nets import EmotionNet, load_onnx_weights, load_pretrained
from emotrace.train.run import (
    BestEpoch,
    Precision,
    batch_loader,
    finish_run,
    load_checkpoint,
    record_epoch,
    restore_rng,
    rng_state,
    run_device,
    start_run,
    tracked,
)
from emotrace.train.transforms import AugmentConfig, EvalTransform, TrainTransform

DEFAULTS: dict[str, Any] = {
    "name": "classifier",
    "seed": 0,
    "output_dir": "runs",
    "data": {
        "train": "ferplus-train",  # ferplus-{train,valid,test}, fer2013-{train,public,private}
        "valid": "ferplus-valid",
        "test": "ferplus-test",
        "label_set": "ferplus8",  # ferplus8 | submission9 (FER+ sources only)
        "subset": None,  # use only the first N training images (quick runs, tests)
        "eval_subset": None,  # use only the first N valid / test images (quick runs, tests)
    },
    "model": {
        "init": "mobilefacenet-rafdb",  # registry model that starts the net; null = random
        "input_size": 64,
        "head": "classes",  # classes | va | multitask
        "freeze_backbone": False,
        "dropout": 0.2,
    },
    "train": {
        "epochs": 10,
        "batch_size": 128,
        "lr": 2e-3,
        "backbone_lr_scale": 0.5,  # the pretrained backbone learns slower than the new head
        "weight_decay": 0.05,
        "warmup_epochs": 0.5,
        "targets": "soft",  # soft (vote distribution) | hard (majority label)
        "label_smoothing": 0.0,
        "balance": "none",  # none | weights | sampler
        "va_weight": 1.0,  # weight of the VA loss in the multitask head
        "patience": 3,  # early stopping: epochs without a better valid score
        "max_steps_per_epoch": None,
        "threads": 0,  # torch threads; 0 = all cores
        "device": "auto",  # auto (CUDA, then MPS, else CPU) | cpu | cuda | mps
        "workers": 0,  # DataLoader processes making the batches (0: in the training process)
        # Fitted on the valid set after training, written into model.onnx's metadata and
        # applied at inference: none | temperature | temperature+prior (train/calibrate.py).
        "calibration": "temperature",
    },
    "augment": {
        "enabled": True, "crop_scale": [0.8, 1.0], "flip": True, "rotation": 10.0,
        "jitter": 0.3, "blur_p": 0.2, "erase_p": 0.25, "noise_p": 0.0, "jpeg_p": 0.0,
    },
    # Soft targets from real-face teachers (train/distill.py); no teachers = FER+ votes only.
    "distill": {
        "teachers": [],  # registered expression models, e.g. [mobilefacenet-rafdb]
        "weight": 0.3,  # FER+ faces: target = (1 - weight) votes + weight teachers
        "videos": [],  # folders of unlabelled videos: their faces get the teachers' targets
        "video_fps": 5.0,  # frames sampled per second of video
        "video_repeat": 1,  # each video face counts this many times per epoch
        "cache_dir": "runs/cache",
    },
    "tracking": {"uri": "sqlite:///mlflow.db", "experiment": "emotrace-classifier"},
}


# -- 1. data ------------------------------------------------------------------------------------
def load_data(cfg: dict) -> tuple[FaceSet, FaceSet]:
    """(train, valid) faces in memory (FER+ train is 66 MB of 48x48 pixels)."""
    d = cfg["data"]
    train, valid = load_named(d["train"], d["label_set"]), load_named(d["valid"], d["label_set"])
    if d["subset"]:
        train = train.take(np.arange(min(d["subset"], len(train))))
    if d["eval_subset"]:
        valid = valid.take(np.arange(min(d["eval_subset"], len(valid))))
    if cfg["train"]["targets"] == "hard" or train.soft is None:
        train = train.take(np.flatnonzero(train.labels >= 0))  # hard targets need a label
    if cfg["distill"]["teachers"]:
        train = with_teachers(cfg, train)
    return train, valid


def with_teachers(cfg: dict, train: FaceSet) -> FaceSet:
    """FER+ targets mixed with the teachers', plus the video faces with theirs."""
    dist = cfg["distill"]
    if cfg["train"]["targets"] != "soft" or train.soft is None:
        raise ValueError("distill.teachers needs soft targets (train.targets: soft, FER+ data)")
    if not 0 <= dist["weight"] <= 1:
        raise ValueError(f"distill.weight must be in [0, 1], got {dist['weight']}")
    teachers = Teachers(dist["teachers"], train.names)
    cache = Path(dist["cache_dir"])
    mixed = (1 - dist["weight"]) * train.soft + dist["weight"] * teacher_targets(
        train, teachers, cache)
    parts = [FaceSet(train.images, train.labels, train.names, mixed.astype(np.float32))]
    if dist["videos"]:
        if train.images.ndim != 3:
            raise ValueError("distill.videos needs grey FER faces as the training images")
        faces = video_faces(dist["videos"], teachers, cache, dist["video_fps"],
                            train.images.shape[1])
        print(f"distill: {len(faces)} faces from videos, x{dist['video_repeat']}", flush=True)
        parts += [faces] * int(dist["video_repeat"])
    return FaceSet(np.concatenate([p.images for p in parts]),
                   np.concatenate([p.labels for p in parts]), train.names,
                   np.concatenate([p.soft for p in parts if p.soft is not None]))


def targets(batch: FaceSet, soft: bool) -> torch.Tensor:
    """(N, K) target distributions: the votes, or one-hot majority labels (zero rows for -1)."""
    if soft and batch.soft is not None:
        return torch.from_numpy(batch.soft)
    hard = torch.from_numpy(batch.labels)
    return F.one_hot(hard.clamp(min=0), len(batch.names)).float() * (hard >= 0)[:, None]


def sampling_weights(faces: FaceSet) -> np.ndarray:
    """(N,) probabilities that draw every class equally often (`balance: sampler`). A face
    with a majority label weighs 1 / its class count; a face without one (label -1, kept for
    its soft target) weighs its vote distribution's mean of 1 / class count."""
    labelled = faces.labels >= 0
    counts = np.bincount(faces.labels[labelled], minlength=len(faces.names))
    inverse = 1.0 / np.maximum(counts, 1)
    w = np.where(labelled, inverse[faces.labels.clip(0)], 0.0)
    if not labelled.all():
        if faces.soft is None:
            raise ValueError("faces without a label need soft targets to be weighed")
        w[~labelled] = faces.soft[~labelled] @ inverse
    return w / w.sum()


# -- 2. model -----------------------------------------------------------------------------------
def build_net(cfg: dict, labels: tuple[str, ...]) -> EmotionNet:
    m = cfg["model"]
    head = m["head"]
    if head not in ("classes", "va", "multitask"):
        raise ValueError(f"model.head must be classes, va or multitask, got {head!r}")
    net = EmotionNet(0 if head == "va" else len(labels), head != "classes", m["input_size"],
                     m["dropout"])
    if m["init"]:
        start_from(net, m["init"], labels)
    if m["freeze_backbone"]:
        net.backbone.requires_grad_(False)
    return net


def start_from(net: EmotionNet, name: str, labels: tuple[str, ...]) -> None:
    """Start `net` from the registry model `name`: its backbone (the global depthwise conv
    resized to this input size), the class head's rows of the emotions both label sets have
    (the pretrained model already separates 7 of FER+'s 8), and its valence/arousal head
    when both nets have one."""
    path = models.resolve(name)
    load_onnx_weights(net, path, classifier=False)
    source, source_labels = load_pretrained(path, models.get_card(name).labels)
    old = [canonical(n) for n in source_labels]
    with torch.no_grad():
        if net.classifier is not None and source.classifier is not None:
            for i, label in enumerate(labels):
                if canonical(label) in old:
                    j = old.index(canonical(label))
                    net.classifier.weight[i] = source.classifier.weight[j]
                    net.classifier.bias[i] = source.classifier.bias[j]
        if net.va is not None and source.va is not None:
            net.va.load_state_dict(source.va.state_dict())


@torch.no_grad()
def predict(net: EmotionNet, faces: FaceSet, transform: EvalTransform, labels: tuple[str, ...],
            batch_size: int = 256) -> tuple[np.ndarray, np.ndarray | None]:
    """Class probabilities (N, K) and valence/arousal (N, 2) or None.

    A VA-only net gets class probabilities from its distance to each emotion's VA point.
    """
    net.eval()
    device = next(net.parameters()).device
    probs, vas = [], []
    points = torch.from_numpy(va_points(labels)).to(device)
    for start in range(0, len(faces), batch_size):
        out = net(transform(faces.images[start : start + batch_size]).to(device))
        if "logits" in out:
            probs.append(F.softmax(out["logits"], 1))
        else:
            probs.append(F.softmax(-torch.cdist(out["va"], points) ** 2 / 0.05, 1))
        if "va" in out:
            vas.append(out["va"])
    return torch.cat(probs).cpu().numpy(), (torch.cat(vas).cpu().numpy() if vas else None)


# -- 3. loss and optimiser ----------------------------------------------------------------------
def build_loss(cfg: dict, train: FaceSet) -> EmotionNetLoss:
    t, k = cfg["train"], len(train.names)
    class_weight = None
    if t["balance"] == "weights":  # inverse frequency, mean 1
        counts = np.bincount(train.labels[train.labels >= 0], minlength=k).astype(np.float64)
        w = counts.sum() / np.maximum(counts, 1) / k
        class_weight = torch.tensor(w / w.mean(), dtype=torch.float32)
    return EmotionNetLoss(torch.from_numpy(va_points(train.names)), t["label_smoothing"],
                          class_weight, t["va_weight"])


def build_optimiser(cfg: dict, net: EmotionNet, steps_per_epoch: int
                    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW, the backbone at `backbone_lr_scale` x the heads' rate; linear warm-up, then
    cosine decay to 0 over all steps."""
    t = cfg["train"]
    backbone = [p for p in net.backbone.parameters() if p.requires_grad]
    heads = [p for n, p in net.named_parameters() if not n.startswith("backbone.")]
    opt = torch.optim.AdamW([{"params": backbone, "lr": t["lr"] * t["backbone_lr_scale"]},
                             {"params": heads, "lr": t["lr"]}], weight_decay=t["weight_decay"])
    total, warmup = t["epochs"] * steps_per_epoch, int(t["warmup_epochs"] * steps_per_epoch)

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)


# -- 4. loop ------------------------------------------------------------------------------------
def epoch_order(cfg: dict, train: FaceSet) -> np.ndarray:
    """This epoch's face order: shuffled, or drawn class-balanced (`balance: sampler`)."""
    if cfg["train"]["balance"] == "sampler":
        return np.random.choice(len(train), len(train), p=sampling_weights(train))
    return np.random.permutation(len(train))


def train_epoch(cfg: dict, net: EmotionNet, train: FaceSet, tf: TrainTransform,
                loss_fn: EmotionNetLoss, opt: torch.optim.Optimizer,
                sched: torch.optim.lr_scheduler.LambdaLR, steps: int, desc: str,
                progress: bool) -> float:
    """One epoch of `steps` batches (made by the run's DataLoader, augmented on the net's
    device, mixed precision on CUDA); returns the mean loss."""
    t = cfg["train"]
    device = next(net.parameters()).device
    amp = Precision(device)
    net.train()
    if cfg["model"]["freeze_backbone"]:
        net.backbone.eval()
    order, size = epoch_order(cfg, train), t["batch_size"]
    batches = [order[step * size : (step + 1) * size] for step in range(steps)]
    target = targets(train, t["targets"] == "soft").numpy()
    losses: list[float] = []
    bar = tqdm(batch_loader((train.images, target), batches, cfg, device), desc=desc,
               disable=not progress, unit="step")
    for images, batch_target in bar:
        with amp.autocast():
            loss = loss_fn(net(tf(images.to(device, non_blocking=True))),
                           batch_target.to(device, non_blocking=True))
        amp.step(loss, opt)
        sched.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
    bar.close()
    return float(np.mean(losses)) if losses else math.nan


# -- 5. test and export -------------------------------------------------------------------------
def evaluate_and_export(cfg: dict, net: EmotionNet, valid: FaceSet, tf: EvalTransform,
                        run_dir: Path, grey: bool) -> tuple[dict, list[Path]]:
    """model.onnx of `net` (the best epoch), calibrated on the valid set; valid and test
    reports of the calibrated probabilities (what inference gives) and confusion PNGs."""
    import mlflow

    d, labels = cfg["data"], valid.names
    # FER faces are grey: the exported model says so
    onnx_path = export_onnx(net, labels, run_dir / "model.onnx", crop="box",
                            color="gray3" if grey else "rgb")
    calibration = calibrate.fit(onnx_path, valid, cfg["train"]["calibration"])
    calibration["data"] = d["valid"]
    calibrate.write(onnx_path, calibration)
    bias = calibration["class_bias"]
    results: dict[str, Any] = {"calibration": calibration}
    files = [onnx_path]
    for split in ("valid", "test"):
        if not d[split]:
            continue
        faces = valid if split == "valid" else load_named(d[split], d["label_set"])
        if d["eval_subset"] and split == "test":
            faces = faces.take(np.arange(min(d["eval_subset"], len(faces))))
        probs = apply(predict(net, faces, tf, labels)[0], calibration["temperature"],
                      None if bias is None else np.asarray(bias))
        report = classification_report(probs, faces.labels, labels)
        results[split] = report
        mlflow.log_metrics({f"{split}_{m}": report[m] for m in ("accuracy", "macro_f1", "ece")})
        files.append(plot_confusion(np.array(report["confusion"]), labels,
                                    run_dir / f"confusion_{split}.png",
                                    f"{cfg['name']} on {d[split]}: accuracy "
                                    f"{report['accuracy']:.3f}"))
    return results, files


def train_classifier(cfg: dict, resume: bool = False, progress: bool = True) -> dict:
    t = cfg["train"]
    run_dir = start_run(cfg)
    train, valid = load_data(cfg)
    labels = train.names
    net = build_net(cfg, labels).to(run_device(cfg))
    size = cfg["model"]["input_size"]
    augment = {**cfg["augment"], "crop_scale": tuple(cfg["augment"]["crop_scale"])}
    train_tf = TrainTransform(size, AugmentConfig(**augment))
    eval_tf = EvalTransform(size)
    loss_fn = build_loss(cfg, train).to(next(net.parameters()).device)
    steps = math.ceil(len(train) / t["batch_size"])
    if t["max_steps_per_epoch"]:
        steps = min(steps, t["max_steps_per_epoch"])
    opt, sched = build_optimiser(cfg, net, steps)
    best = BestEpoch(t["patience"], run_dir / "best.pt")
    start, history = 0, []
    if resume and (run_dir / "last.pt").exists():
        ckpt = load_checkpoint(run_dir / "last.pt")
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        best.load_state_dict(ckpt["best"])
        start, history = ckpt["epoch"] + 1, ckpt["history"]
        restore_rng(ckpt["rng"])

    with tracked(cfg):
        for epoch in range(start, t["epochs"]):
            started = time.perf_counter()
            loss = train_epoch(cfg, net, train, train_tf, loss_fn, opt, sched, steps,
                               f"epoch {epoch + 1}/{t['epochs']}", progress)
            report = classification_report(predict(net, valid, eval_tf, labels)[0],
                                           valid.labels, labels)
            row = {"epoch": epoch + 1, "train_loss": loss, "valid_accuracy": report["accuracy"],
                   "valid_macro_f1": report["macro_f1"], "valid_ece": report["ece"],
                   "seconds": time.perf_counter() - started}
            record_epoch(history, row)
            if progress:
                print(json.dumps(row), flush=True)
            stop = best.update(report["accuracy"], net, epoch + 1,
                               {"config": cfg, "labels": labels})
            torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(), "epoch": epoch, "best": best.state_dict(),
                        "history": history, "rng": rng_state()}, run_dir / "last.pt")
            if stop:
                print(f"early stop: no better valid accuracy for {best.stale} epochs", flush=True)
                break
        best.restore(net)
        grey = train.images.ndim == 3
        results, files = evaluate_and_export(cfg, net, valid, eval_tf, run_dir, grey)
        return finish_run({"config": cfg["name"], "labels": list(labels), "history": history,
                           "best_epoch": best.epoch, **results}, run_dir, files)
