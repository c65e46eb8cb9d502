"""Train the expression classifier: read it top to bottom.

    emotrace train classifier --config configs/ferplus_soft_aug.yaml train.epochs=3

Each run writes `<output_dir>/<name>/`: the resolved config, `last.pt` (for --resume),
`best.pt`, `metrics.json` (valid and test), a confusion matrix PNG and `model.onnx`; the same
is tracked in MLflow (parameters, per-epoch metrics, artifacts).
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from tqdm.auto import tqdm

from emotrace import models
from emotrace.evaluation.datasets import FaceSet, load_named
from emotrace.labels import canonical, va_points
from emotrace.evaluation.metrics import classification_report, plot_confusion
from emotrace.train.config import flatten, record_epoch
from emotrace.train.losses import SoftTargetCrossEntropy, VARegressionLoss
from emotrace.train.nets import EmotionNet, load_onnx_weights, onnx_class_head
from emotrace.train.transforms import AugmentConfig, EvalTransform, TrainTransform


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_net(cfg: dict, labels: tuple[str, ...]) -> EmotionNet:
    m = cfg["model"]
    head = m["head"]
    if head not in ("classes", "va", "multitask"):
        raise ValueError(f"model.head must be classes, va or multitask, got {head!r}")
    net = EmotionNet(0 if head == "va" else len(labels), head != "classes", m["input_size"],
                     m["dropout"])
    if m["init"]:
        card = models.get_card(m["init"])
        load_onnx_weights(net, models.resolve(m["init"]), classifier=False)
        if net.classifier is not None:
            # Start the new class head from the old one where the classes are the same: the
            # pretrained model already separates 7 of FER+'s 8 emotions.
            w, b = onnx_class_head(models.resolve(m["init"]))
            old = [canonical(n) for n in card.labels]
            with torch.no_grad():
                for i, name in enumerate(labels):
                    if name in old:
                        net.classifier.weight[i] = torch.from_numpy(w[old.index(name)])
                        net.classifier.bias[i] = float(b[old.index(name)])
    if m["freeze_backbone"]:
        net.backbone.requires_grad_(False)
    return net


@torch.no_grad()
def predict(net: EmotionNet, faces: FaceSet, transform: EvalTransform, labels: tuple[str, ...],
            batch_size: int = 256) -> tuple[np.ndarray, np.ndarray | None]:
    """Class probabilities (N, K) and valence/arousal (N, 2) or None.

    A VA-only net gets class probabilities from its distance to each emotion's VA point.
    """
    net.eval()
    probs, vas = [], []
    points = torch.from_numpy(va_points(labels))
    for start in range(0, len(faces), batch_size):
        out = net(transform(faces.images[start : start + batch_size]))
        if "logits" in out:
            probs.append(F.softmax(out["logits"], 1))
        else:
            probs.append(F.softmax(-torch.cdist(out["va"], points) ** 2 / 0.05, 1))
        if "va" in out:
            vas.append(out["va"])
    return torch.cat(probs).numpy(), (torch.cat(vas).numpy() if vas else None)


def _targets(batch: FaceSet, cfg: dict, n_classes: int) -> torch.Tensor:
    if cfg["train"]["targets"] == "soft" and batch.soft is not None:
        return torch.from_numpy(batch.soft)
    hard = torch.from_numpy(batch.labels)
    return F.one_hot(hard.clamp(min=0), n_classes).float() * (hard >= 0)[:, None]


def train_classifier(cfg: dict, resume: bool = False, progress: bool = True) -> dict:
    t = cfg["train"]
    seed_everything(cfg["seed"])
    if t["threads"]:
        torch.set_num_threads(t["threads"])
    run_dir = Path(cfg["output_dir"]) / cfg["name"]
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))

    # ---- data: in memory (FER+ train is 66 MB of 48x48 pixels) ----
    label_set = cfg["data"]["label_set"]
    train = load_named(cfg["data"]["train"], label_set)
    valid = load_named(cfg["data"]["valid"], label_set)
    if cfg["data"]["subset"]:
        train = train.take(np.arange(min(cfg["data"]["subset"], len(train))))
    n_eval = cfg["data"]["eval_subset"]
    if n_eval:
        valid = valid.take(np.arange(min(n_eval, len(valid))))
    labels = train.names
    k = len(labels)
    if t["targets"] == "hard" or train.soft is None:
        train = train.take(np.flatnonzero(train.labels >= 0))  # hard targets need a label

    # ---- model, loss, optimiser ----
    net = build_net(cfg, labels)
    size = cfg["model"]["input_size"]
    train_tf = TrainTransform(size, AugmentConfig(**{**cfg["augment"],
                                                     "crop_scale": tuple(cfg["augment"]["crop_scale"])}))
    eval_tf = EvalTransform(size)
    counts = np.bincount(train.labels[train.labels >= 0], minlength=k).astype(np.float64)
    class_weight = None
    if t["balance"] == "weights":  # inverse frequency, mean 1
        w = counts.sum() / np.maximum(counts, 1) / k
        class_weight = torch.tensor(w / w.mean(), dtype=torch.float32)
    ce = SoftTargetCrossEntropy(t["label_smoothing"], class_weight)
    va_loss = VARegressionLoss()
    points = torch.from_numpy(va_points(labels))
    backbone = [p for p in net.backbone.parameters() if p.requires_grad]
    heads = [p for n, p in net.named_parameters() if not n.startswith("backbone.")]
    opt = torch.optim.AdamW([{"params": backbone, "lr": t["lr"] * t["backbone_lr_scale"]},
                             {"params": heads, "lr": t["lr"]}], weight_decay=t["weight_decay"])
    steps_per_epoch = math.ceil(len(train) / t["batch_size"])
    if t["max_steps_per_epoch"]:
        steps_per_epoch = min(steps_per_epoch, t["max_steps_per_epoch"])
    total, warmup = t["epochs"] * steps_per_epoch, int(t["warmup_epochs"] * steps_per_epoch)

    def lr_factor(step: int) -> float:  # linear warm-up, then cosine decay to 0
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)

    # ---- resume ----
    start_epoch, best, bad_epochs, history = 0, -1.0, 0, []
    if resume and (run_dir / "last.pt").exists():
        ckpt = torch.load(run_dir / "last.pt", weights_only=False)
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        start_epoch, best, bad_epochs, history = (ckpt["epoch"] + 1, ckpt["best"],
                                                  ckpt["bad_epochs"], ckpt["history"])
        np.random.set_state(ckpt["numpy_rng"])
        torch.set_rng_state(ckpt["torch_rng"])

    import mlflow

    mlflow.set_tracking_uri(cfg["tracking"]["uri"])
    mlflow.set_experiment(cfg["tracking"]["experiment"])
    with mlflow.start_run(run_name=cfg["name"]):
        mlflow.log_params(flatten(cfg))
        for epoch in range(start_epoch, t["epochs"]):
            # ---- one epoch ----
            net.train()
            if cfg["model"]["freeze_backbone"]:
                net.backbone.eval()
            if t["balance"] == "sampler":  # draw classes equally often
                p = 1.0 / np.maximum(counts, 1)[train.labels.clip(0)]
                order = np.random.choice(len(train), len(train), p=p / p.sum())
            else:
                order = np.random.permutation(len(train))
            bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{t['epochs']}",
                       disable=not progress, unit="step")
            losses, started = [], time.perf_counter()
            for step in bar:
                batch = train.take(order[step * t["batch_size"] : (step + 1) * t["batch_size"]])
                out = net(train_tf(batch.images))
                target = _targets(batch, cfg, k)
                loss = torch.zeros(())
                if "logits" in out:
                    loss = loss + ce(out["logits"], target)
                if "va" in out:
                    # VA target: the vote-weighted mean of the emotions' points (a proxy).
                    w = t["va_weight"] if "logits" in out else 1.0
                    loss = loss + w * va_loss(out["va"], target @ points)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                losses.append(loss.item())
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
            bar.close()

            # ---- validate, keep the best, stop early ----
            probs, _ = predict(net, valid, eval_tf, labels)
            report = classification_report(probs, valid.labels, labels)
            row = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)),
                   "valid_accuracy": report["accuracy"], "valid_macro_f1": report["macro_f1"],
                   "valid_ece": report["ece"], "seconds": time.perf_counter() - started}
            record_epoch(history, row)
            print(json.dumps(row), flush=True)
            improved = report["accuracy"] > best
            if improved:
                best, bad_epochs = report["accuracy"], 0
                torch.save({"model": net.state_dict(), "config": cfg, "labels": labels},
                           run_dir / "best.pt")
            else:
                bad_epochs += 1
            torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(), "epoch": epoch, "best": best,
                        "bad_epochs": bad_epochs, "history": history,
                        "numpy_rng": np.random.get_state(), "torch_rng": torch.get_rng_state()},
                       run_dir / "last.pt")
            if bad_epochs >= t["patience"]:
                print(f"early stop: no better valid accuracy for {bad_epochs} epochs", flush=True)
                break

        # ---- test the best checkpoint, export it ----
        net.load_state_dict(torch.load(run_dir / "best.pt", weights_only=False)["model"])
        results = {"config": cfg["name"], "labels": list(labels), "history": history}
        for split in ("valid", "test"):
            name = cfg["data"][split]
            if not name:
                continue
            faces = valid if split == "valid" else load_named(name, label_set)
            if n_eval and split == "test":
                faces = faces.take(np.arange(min(n_eval, len(faces))))
            probs, _ = predict(net, faces, eval_tf, labels)
            report = classification_report(probs, faces.labels, labels)
            results[split] = report
            mlflow.log_metrics({f"{split}_{m}": report[m] for m in ("accuracy", "macro_f1", "ece")})
            png = plot_confusion(np.array(report["confusion"]), labels,
                                 run_dir / f"confusion_{split}.png",
                                 f"{cfg['name']} on {name}: accuracy {report['accuracy']:.3f}")
            mlflow.log_artifact(str(png))
        from emotrace.train.export import export_onnx

        grey = train.images.ndim == 3  # FER faces are grey: the exported model says so
        onnx_path = export_onnx(net, labels, run_dir / "model.onnx", crop="box",
                                color="gray3" if grey else "rgb")
        (run_dir / "metrics.json").write_text(json.dumps(results, indent=2))
        for f in ("config.yaml", "metrics.json"):
            mlflow.log_artifact(str(run_dir / f))
        mlflow.log_artifact(str(onnx_path))
    return results
