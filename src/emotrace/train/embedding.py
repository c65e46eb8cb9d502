"""`emotrace train embedding`: an emotion-aware projection head over a frozen backbone (with
`mode: finetune` the backbone is trained too: see `embedding_finetune.py`).

Read top to bottom:
1. Features. The backbone (a registry expression model with an embedding output) is frozen,
   so its embeddings of every FER+ face, and of its mirror image (a second view for the
   self-supervised losses), are computed once and cached in `runs/cache/`. Optionally, face
   tracks cut from real videos give temporal positives: frames of one track within
   `temporal.window_s` seconds share an instance label.
2. Head. Linear -> BatchNorm -> ReLU -> Linear, output L2-normalised (lightly's projection
   head shape).
3. Loss, from pytorch-metric-learning: supervised contrastive (`supcon`), NT-Xent with the
   mirror view as positive (`ntxent`, no labels; see `ntxent`), triplet with batch-hard or semi-hard mining
   (`triplet`), VICReg between the two views (`vicreg`, non-contrastive), or ArcFace class
   proxies with an angular margin (`arcface`). Or, not a metric loss, `hellinger`: a
   `HellingerHead` whose embedding is the square root of a predicted emotion distribution,
   trained by cross-entropy against FER+'s vote distributions. With temporal
   positives, an NT-Xent term over the video windows is added (weight `temporal.weight`).
   Batches come from an m-per-class sampler (`MPerClassSampler`) so every batch has positives,
   or from `HardNegativeClassSampler` (the most confusable classes together).
4. Each epoch: same-vs-different ROC-AUC and same-minus-opposite cosine on FER+ valid; the best
   epoch is kept; early stopping.
5. Export the head to ONNX (its metadata names the backbone, so `FaceEmbedder` can run it
   without torch), evaluate it on FER+ test with `emotrace eval embedding`, log everything to
   MLflow.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from emotrace.evaluation.datasets import ferplus
from emotrace.faces.embed import FaceEmbedder
from emotrace.evaluation.embedding import (
    evaluate_embedding,
    face_embeddings,
    format_embedding_report,
    pair_similarities,
    roc_auc,
)
from emotrace.outputs.files import write_json
from emotrace.train.config import flatten, record_epoch

DEFAULTS: dict[str, Any] = {
    "name": "embedding",
    "seed": 0,
    "output_dir": "runs",
    "backbone": "emotrace-ferplus8",
    "mode": "frozen",  # frozen (head on cached features) | finetune (see embedding_finetune.py)
    "finetune": {"backbone_lr_scale": 0.1, "ce_weight": 1.0, "dropout": 0.2,
                 "max_steps_per_epoch": None,
                 "augment": {"enabled": True, "crop_scale": [0.8, 1.0], "flip": True,
                             "rotation": 10.0, "jitter": 0.3, "blur_p": 0.2, "erase_p": 0.25}},
    "data": {"subset": None, "eval_subset": None},  # first N train / valid faces (quick runs)
    "eval": {"limit": None, "train_sample": 6000},  # FER+ test subset; train faces for kNN/probe
    "head": {"hidden": 512, "out": 128},
    "loss": {
        "name": "supcon",  # supcon | ntxent | triplet | vicreg | arcface | hellinger
        "temperature": 0.1,  # supcon, ntxent
        "margin": 0.2,  # triplet
        "miner": "batch-hard",  # triplet: batch-hard | semi-hard
        "arc_margin": 28.6, "arc_scale": 30.0,  # arcface: margin (degrees), logit scale
    },
    "temporal": {"videos": None, "window_s": 1.0, "weight": 0.5},  # folder of videos or null
    # sampler: m-per-class (every class in every batch) | hard-negative (confusable classes)
    # | random (plain shuffling: the hellinger head learns the data's own class frequencies)
    "train": {"epochs": 20, "batch_size": 256, "m_per_class": 32, "lr": 1e-3,
              "weight_decay": 1e-4, "patience": 4, "threads": 0, "sampler": "m-per-class"},
    "tracking": {"uri": "sqlite:///mlflow.db", "experiment": "emotrace-embedding"},
}
LOSSES = ("supcon", "ntxent", "triplet", "vicreg", "arcface", "hellinger")


class HellingerHead(nn.Module):
    """(N, in_dim) backbone features -> (N, n_classes) square roots of a predicted emotion
    distribution: unit length by construction, and the cosine of two faces is the Bhattacharyya
    coefficient of their distributions (how much two annotator crowds would agree). Trained
    against FER+'s vote distributions (`loss.name: hellinger`); the embedding holds the emotion
    mix only, nothing else about the face. MLP with dropout, so it does not memorise the cached
    training features."""

    def __init__(self, in_dim: int, hidden: int = 256, n_classes: int = 8, dropout: float = 0.3) -> None:
        super().__init__()
        if min(in_dim, hidden, n_classes) < 1 or not 0 <= dropout < 1:
            raise ValueError(f"bad sizes {in_dim}, {hidden}, {n_classes} or dropout {dropout}")
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, hidden), nn.ReLU(),
                                 nn.Dropout(dropout), nn.Linear(hidden, n_classes))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x), dim=1).sqrt()


class ProjectionHead(nn.Module):
    """(N, in_dim) backbone features -> (N, out_dim) unit-length embeddings."""

    def __init__(self, in_dim: int, hidden: int = 512, out_dim: int = 128) -> None:
        super().__init__()
        if min(in_dim, hidden, out_dim) < 1:
            raise ValueError(f"dimensions must be >= 1, got {in_dim}, {hidden}, {out_dim}")
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                                 nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.net(x), dim=1)


def cached_features(backbone: FaceEmbedder, split: str, cache: Path, progress: bool,
                    limit: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, mirrored-view features, labels) of the labelled FER+ `split` (its first
    `limit` faces), cached."""
    path = cache / f"{Path(backbone.name).stem}_ferplus_{split}{f'_{limit}' if limit else ''}.npz"
    if path.is_file():
        z = np.load(path)
        return z["features"], z["mirrored"], z["labels"]
    faces = ferplus(split)
    faces = faces.take(np.flatnonzero(faces.labels >= 0)[:limit])
    if progress:
        print(f"computing {backbone.name} features of FER+ {split} ({len(faces)} faces, cached in {path})")
    feats = face_embeddings(backbone, faces)
    mirrored = face_embeddings(backbone, type(faces)(faces.images[:, :, ::-1].copy(), faces.labels,
                                                     faces.names))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, features=feats, mirrored=mirrored, labels=faces.labels)
    return feats, mirrored, faces.labels


def vote_targets(split: str, limit: int | None = None) -> np.ndarray:
    """FER+ vote distributions (N, 8), in the order of `cached_features(split, limit)`."""
    faces = ferplus(split)
    return faces.soft[np.flatnonzero(faces.labels >= 0)[:limit]].astype(np.float32)


class RandomOrder(torch.utils.data.Sampler):
    """A fresh random permutation of range(n) at every pass."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return iter(torch.randperm(self.n).tolist())


def temporal_windows(backbone_name: str, folder: str | Path, window_s: float, cache: Path
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Backbone features of every face in the videos under `folder` and an instance label
    per (video, track, window of `window_s` seconds): frames that should embed alike."""
    from emotrace.pipeline import Analyzer
    from emotrace.media.decode import VIDEO_SUFFIXES

    path = cache / f"{backbone_name}_tracks_{Path(folder).name}_{window_s:g}.npz"
    if path.is_file():
        z = np.load(path)
        return z["features"], z["labels"]
    analyzer = Analyzer(classifier=backbone_name, embeddings=True)
    feats, labels, next_id = [], [], 0
    for video in sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES):
        result = analyzer.analyze_video(video, progress=False)
        keys: dict[tuple[int, int], int] = {}
        for frame in result.frames:
            for i, track in enumerate(frame.track_ids):
                key = (int(track), int(frame.timestamp // window_s))
                if key not in keys:
                    keys[key] = next_id
                    next_id += 1
                feats.append(frame.emotions.embeddings[i])
                labels.append(keys[key])
    f, lab = np.asarray(feats, np.float32), np.asarray(labels, np.int64)
    # windows with a single frame have no positive: drop them
    counts = np.bincount(lab)
    keep = counts[lab] >= 2
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, features=f[keep], labels=lab[keep])
    return f[keep], lab[keep]


def ntxent(temperature: float):
    """NT-Xent (SimCLR's loss). Computed as pytorch-metric-learning's SupConLoss over instance
    labels: with exactly one positive per anchor the two are the same loss, and pml's
    NTXentLoss, which loops over the positive pairs, is ~400x slower on a batch of 512."""
    from pytorch_metric_learning import losses

    return losses.SupConLoss(temperature=temperature)


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
            raise ValueError(f"classes_per_batch must be in 2..{len(classes)}, got {classes_per_batch}")
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

    def __iter__(self):
        out: list[int] = []
        while len(out) < self.length:
            anchor = self.rng.integers(len(self.members))
            for c in self.neighbours[anchor]:
                out.extend(self.rng.choice(self.members[c], self.m).tolist())
        return iter(out[: self.length])


def build_loss(cfg: dict):
    """The pytorch-metric-learning loss (and miner) named in the config."""
    from pytorch_metric_learning import losses, miners

    name = cfg["name"]
    if name == "supcon":
        return losses.SupConLoss(temperature=cfg["temperature"]), None
    if name == "ntxent":
        return ntxent(cfg["temperature"]), None
    if name == "triplet":
        miner = (miners.BatchHardMiner() if cfg["miner"] == "batch-hard"
                 else miners.TripletMarginMiner(margin=cfg["margin"], type_of_triplets="semihard"))
        return losses.TripletMarginLoss(margin=cfg["margin"]), miner
    if name == "vicreg":
        return losses.VICRegLoss(), None
    if name == "arcface":  # class proxies with an angular margin: classes spread on the sphere
        return losses.ArcFaceLoss(num_classes=cfg["num_classes"], embedding_size=cfg["embedding_size"],
                                  margin=cfg["arc_margin"], scale=cfg["arc_scale"]), None
    if name == "hellinger":  # cross-entropy to the vote distribution, on the head's logits
        from emotrace.train.losses import SoftTargetCrossEntropy

        return SoftTargetCrossEntropy(), None
    raise ValueError(f"unknown loss {name!r}; valid: {', '.join(LOSSES)}")


def batch_loss(name: str, loss_fn, miner, head, x: torch.Tensor, x2: torch.Tensor,
               y: torch.Tensor) -> torch.Tensor:
    """One batch's loss: x (B, D0) features, x2 the mirrored view, y (B,) class labels (for
    `hellinger`: (B, K) vote distributions)."""
    if name == "hellinger":  # each face seen as itself or its mirror image, at random
        view = torch.where(torch.rand(len(x), 1) < 0.5, x, x2)
        return loss_fn(head.logits(view), y)
    if name == "vicreg":  # non-contrastive: the two views of each face, no labels
        return loss_fn(head(x), ref_emb=head(x2))
    if name == "ntxent":  # self-supervised: the mirror image is the only positive
        ids = torch.arange(len(x))
        return loss_fn(head(torch.cat([x, x2])), torch.cat([ids, ids]))
    emb = head(torch.cat([x, x2]))
    labels = torch.cat([y, y])
    return loss_fn(emb, labels, miner(emb, labels)) if miner is not None else loss_fn(emb, labels)


@torch.no_grad()
def embed_all(head: nn.Module, feats: np.ndarray) -> np.ndarray:
    head.eval()
    out = np.concatenate([head(torch.from_numpy(feats[i:i + 4096])).numpy()
                          for i in range(0, len(feats), 4096)])
    head.train()
    return out


def valid_scores(emb: np.ndarray, labels: np.ndarray, names: tuple[str, ...]) -> dict[str, float]:
    sims = pair_similarities(emb, labels, names, max_pairs=50_000)
    return {"valid_auc": roc_auc(sims["same"], sims["different"]),
            "valid_same_minus_opposite": float(sims["same"].mean() - sims["opposite"].mean())}


class BestEpoch:
    """The weights of the epoch with the highest score so far; `update` says when to stop:
    after `patience` epochs in a row without a better one."""

    def __init__(self, patience: int) -> None:
        self.patience, self.score, self.state, self.stale = patience, -np.inf, None, 0

    def update(self, score: float, module: nn.Module) -> bool:
        if score > self.score:
            self.score, self.state, self.stale = score, copy.deepcopy(module.state_dict()), 0
            return False
        self.stale += 1
        return self.stale >= self.patience


def report_run(onnx_path: Path, run_dir: Path, cfg: dict, history: list[dict], base: dict,
               progress: bool) -> dict:
    """Evaluate an exported embedding on FER+ test, write `metrics.json`, log both and the
    run's files to the active MLflow run; returns the results."""
    import mlflow

    report = evaluate_embedding(str(onnx_path), "ferplus-test", run_dir, cfg["eval"]["limit"],
                                cfg["eval"]["train_sample"])
    mlflow.log_metrics({f"test_{k}": v for k, v in report.items() if isinstance(v, float)})
    results = {"history": history, "base_valid": base, "test": report}
    write_json(results, run_dir / "metrics.json")
    for f in run_dir.glob("*"):
        if f.suffix in (".onnx", ".png", ".json"):
            mlflow.log_artifact(str(f))
    if progress:
        print(format_embedding_report(report))
    return results


def export_head(head: nn.Module, in_dim: int, backbone: str, path: Path) -> Path:
    """ONNX file of the head; its metadata tells `FaceEmbedder` which backbone feeds it."""
    import onnx

    head = copy.deepcopy(head).eval()
    torch.onnx.export(head, (torch.zeros(2, in_dim),), str(path), input_names=["features"],
                      output_names=["embedding"], dynamic_axes={"features": {0: "N"},
                                                                "embedding": {0: "N"}},
                      opset_version=17, dynamo=False)
    model = onnx.load(str(path))
    for key, value in {"emotrace_kind": "embedding-head", "emotrace_backbone": backbone}.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def train_embedding(cfg: dict, progress: bool = True) -> dict:
    """Train, export and evaluate one embedding head (see module doc); returns the results."""
    import mlflow
    from pytorch_metric_learning.samplers import MPerClassSampler

    if cfg["loss"]["name"] not in LOSSES:
        raise ValueError(f"unknown loss {cfg['loss']['name']!r}; valid: {', '.join(LOSSES)}")
    if cfg["mode"] == "finetune":
        from emotrace.train.embedding_finetune import finetune_embedding

        return finetune_embedding(cfg, progress)
    if cfg["mode"] != "frozen":
        raise ValueError(f"unknown mode {cfg['mode']!r}; valid: frozen, finetune")
    torch.manual_seed(cfg["seed"])
    np.random.seed(cfg["seed"])
    if cfg["train"]["threads"]:
        torch.set_num_threads(cfg["train"]["threads"])
    run_dir = Path(cfg["output_dir"]) / cfg["name"]
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(cfg, indent=2))
    cache = Path(cfg["output_dir"]) / "cache"
    backbone = FaceEmbedder(cfg["backbone"])
    names = tuple(ferplus("test").names)

    # 1. features, computed once
    x_tr, x2_tr, y_tr = cached_features(backbone, "train", cache, progress, cfg["data"]["subset"])
    x_va, _, y_va = cached_features(backbone, "valid", cache, progress, cfg["data"]["eval_subset"])
    temporal = None
    if cfg["temporal"]["videos"]:
        temporal = temporal_windows(cfg["backbone"], cfg["temporal"]["videos"],
                                    cfg["temporal"]["window_s"], cache)

    # 2-3. head, loss, sampler
    hellinger = cfg["loss"]["name"] == "hellinger"
    head = (HellingerHead(x_tr.shape[1], cfg["head"]["hidden"], len(names)) if hellinger
            else ProjectionHead(x_tr.shape[1], cfg["head"]["hidden"], cfg["head"]["out"]))
    loss_fn, miner = build_loss({**cfg["loss"], "num_classes": len(names),
                                 "embedding_size": cfg["head"]["out"]})
    temporal_loss = ntxent(cfg["loss"]["temperature"])
    t = cfg["train"]
    params = list(head.parameters()) + list(loss_fn.parameters())  # arcface learns its proxies
    opt = torch.optim.AdamW(params, lr=t["lr"], weight_decay=t["weight_decay"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=t["epochs"])
    if t["sampler"] == "hard-negative":
        sampler = HardNegativeClassSampler(x_tr, y_tr, t["m_per_class"],
                                           max(2, t["batch_size"] // t["m_per_class"]), len(y_tr),
                                           cfg["seed"])
    elif t["sampler"] == "m-per-class":
        sampler = MPerClassSampler(y_tr, m=t["m_per_class"], batch_size=t["batch_size"],
                                   length_before_new_iter=len(y_tr))
    elif t["sampler"] == "random":
        sampler = RandomOrder(len(y_tr))
    else:
        raise ValueError(f"unknown sampler {t['sampler']!r}; valid: m-per-class, hard-negative, random")
    targets = vote_targets("train", cfg["data"]["subset"]) if hellinger else y_tr
    tx, tx2, ty = map(torch.from_numpy, (x_tr, x2_tr, targets))

    base = valid_scores(_unit(x_va), y_va, names)  # the frozen backbone's own embedding
    history, best = [], BestEpoch(t["patience"])
    mlflow.set_tracking_uri(cfg["tracking"]["uri"])
    mlflow.set_experiment(cfg["tracking"]["experiment"])
    with mlflow.start_run(run_name=cfg["name"]):
        mlflow.log_params(flatten(cfg))
        mlflow.log_metrics({"base_" + k: v for k, v in base.items()})
        for epoch in range(t["epochs"]):
            started = time.perf_counter()
            idx = torch.tensor(list(iter(sampler)))
            batches = idx[: len(idx) // t["batch_size"] * t["batch_size"]].view(-1, t["batch_size"])
            total = 0.0
            bar = tqdm(batches, desc=f"epoch {epoch + 1}/{t['epochs']}", disable=not progress,
                       leave=False)
            for b in bar:
                loss = batch_loss(cfg["loss"]["name"], loss_fn, miner, head, tx[b], tx2[b], ty[b])
                if temporal is not None:  # adjacent frames of one track: one instance
                    pick = torch.from_numpy(_window_batch(temporal[1], t["batch_size"]))
                    loss = loss + cfg["temporal"]["weight"] * temporal_loss(
                        head(torch.from_numpy(temporal[0])[pick]), torch.from_numpy(temporal[1])[pick])
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach())
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
            sched.step()
            scores = valid_scores(embed_all(head, x_va), y_va, names)
            row = {"epoch": epoch + 1, "loss": total / max(1, len(batches)), **scores,
                   "seconds": round(time.perf_counter() - started, 1)}
            record_epoch(history, row)
            if progress:
                print(f"epoch {epoch + 1}: loss {row['loss']:.4f}, valid AUC {scores['valid_auc']:.4f}, "
                      f"same-opposite {scores['valid_same_minus_opposite']:.3f}")
            if best.update(scores["valid_auc"], head):
                break
        # 5. export the best head and evaluate it on FER+ test
        head.load_state_dict(best.state)
        torch.save({"head": best.state, "config": cfg, "in_dim": x_tr.shape[1]}, run_dir / "head.pt")
        onnx_path = export_head(head, x_tr.shape[1], cfg["backbone"], run_dir / "head.onnx")
        return report_run(onnx_path, run_dir, cfg, history, base, progress)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _window_batch(labels: np.ndarray, size: int) -> np.ndarray:
    """Indices of `size` frames drawn as pairs from random windows (each has a positive)."""
    rng = np.random.default_rng()
    windows = rng.choice(labels.max() + 1, size // 2)
    out = []
    for w in windows:
        members = np.flatnonzero(labels == w)
        if len(members) >= 2:
            out.extend(rng.choice(members, 2, replace=False))
    return np.asarray(out, np.int64)
