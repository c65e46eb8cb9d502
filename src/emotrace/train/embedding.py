"""`emotrace train embedding`: an emotion-aware projection head over a frozen backbone (with
`mode: finetune` the backbone is trained too: see `embedding_finetune.py`).

Read top to bottom:
1. Features. The backbone (a registry expression model with an embedding output) is frozen,
   so its embeddings of every FER+ face, and of its mirror image (a second view for the
   self-supervised losses), are computed once and cached in `runs/cache/` (keyed by the
   backbone file's SHA256 and the data files: `train/cache.py`). Optionally, face
   tracks cut from real videos give temporal positives: frames of one track within
   `temporal.window_s` seconds share an instance label.
2. Head. Linear -> BatchNorm -> ReLU -> Linear, output L2-normalised (lightly's projection
   head shape).
3. Loss (train/losses.py, wrapping pytorch-metric-learning): supervised contrastive
   (`supcon`), NT-Xent with the mirror view as positive (`ntxent`, no labels), triplet with
   batch-hard or semi-hard mining (`triplet`), VICReg between the two views (`vicreg`,
   non-contrastive), or ArcFace class proxies with an angular margin (`arcface`). Or, not a
   metric loss, `hellinger`: a `HellingerHead` whose embedding is the square root of a
   predicted emotion distribution, trained by cross-entropy against FER+'s vote
   distributions. With temporal positives, an NT-Xent term over the video windows is added
   (weight `temporal.weight`; its pairs drawn with the run's seed).
   Batches come from an m-per-class sampler (`MPerClassSampler`) so every batch has positives,
   or from `HardNegativeClassSampler` (the most confusable classes together).
4. Each epoch: same-vs-different ROC-AUC and same-minus-opposite cosine on FER+ valid; the best
   epoch is kept; early stopping.
5. Export the head to ONNX (its metadata names the backbone, so `FaceEmbedder` can run it
   without torch), evaluate it on FER+ test with `emotrace eval embedding`, log everything to
   MLflow.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from emotrace.evaluation.datasets import ferplus, ferplus_files
from emotrace.evaluation.embedding import (
    evaluate_embedding,
    face_embeddings,
    format_embedding_report,
    pair_similarities,
    roc_auc,
)
from emotrace.faces.embed import FaceEmbedder, unit_rows
from emotrace.train.cache import DETECTOR, cache_key, load_npz, save_npz, video_files
from emotrace.train.export import export_head
from emotrace.train.losses import (
    ArcFaceLoss,
    NTXentLoss,
    SoftTargetCrossEntropy,
    SupervisedContrastiveLoss,
    TripletLoss,
    VICRegLoss,
)
from emotrace.train.run import (
    BestEpoch,
    Precision,
    finish_run,
    record_epoch,
    run_device,
    start_run,
    tracked,
)
from emotrace.train.samplers import HardNegativeClassSampler, RandomOrder, window_pairs

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
    # device: auto (CUDA, then MPS, else the CPU) | cpu | cuda | mps; mixed precision on CUDA
    # workers: DataLoader processes making the face batches of mode finetune (0: none)
    "train": {"epochs": 20, "batch_size": 256, "m_per_class": 32, "lr": 1e-3,
              "weight_decay": 1e-4, "patience": 4, "threads": 0, "sampler": "m-per-class",
              "device": "auto", "workers": 0},
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

    def __init__(self, in_dim: int, hidden: int = 256, n_classes: int = 8,
                 dropout: float = 0.3) -> None:
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
    `limit` faces), cached under a key of the backbone's model files and FER+'s files."""
    specs = dict.fromkeys([backbone.name, backbone.backbone_name])  # a head and its backbone
    key = cache_key({"kind": "ferplus-features", "split": split, "limit": limit},
                    ferplus_files(), list(specs))
    path = cache / f"ferplus_{split}{f'_{limit}' if limit else ''}_{key}.npz"
    if path.is_file():
        z = load_npz(path)
        return z["features"], z["mirrored"], z["labels"]
    faces = ferplus(split)
    faces = faces.take(np.flatnonzero(faces.labels >= 0)[:limit])
    if progress:
        print(f"computing {backbone.name} features of FER+ {split} ({len(faces)} faces, "
              f"cached in {path})")
    feats = face_embeddings(backbone, faces)
    mirrored = face_embeddings(backbone, type(faces)(faces.images[:, :, ::-1].copy(), faces.labels,
                                                     faces.names))
    save_npz(path, features=feats, mirrored=mirrored, labels=faces.labels)
    return feats, mirrored, faces.labels


def vote_targets(split: str, limit: int | None = None) -> np.ndarray:
    """FER+ vote distributions (N, 8), in the order of `cached_features(split, limit)`."""
    faces = ferplus(split)
    if faces.soft is None:
        raise ValueError(f"FER+ {split} has no vote distributions")
    return faces.soft[np.flatnonzero(faces.labels >= 0)[:limit]].astype(np.float32)


def temporal_windows(backbone_name: str, folder: str | Path, window_s: float, cache: Path
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Backbone features of every face in the videos under `folder` and an instance label
    per (video, track, window of `window_s` seconds): frames that should embed alike. Cached
    under a key of the videos (paths, sizes, times) and the backbone's and detector's files."""
    from emotrace.pipeline import Analyzer

    videos = video_files(folder)
    key = cache_key({"kind": "track-windows", "window_s": window_s}, [folder, *videos],
                    [backbone_name, DETECTOR])
    path = cache / f"track_windows_{key}.npz"
    if path.is_file():
        z = load_npz(path)
        return z["features"], z["labels"]
    analyzer = Analyzer(classifier=backbone_name, embeddings=True)
    feats: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for video in videos:
        for track in analyzer.analyze_video(video, progress=False).tracks(min_frames=2):
            for _, rows in track.windows(window_s):
                if len(rows) >= 2 and rows.embeddings is not None:  # a window needs a positive
                    feats.append(rows.embeddings)
                    labels.append(np.full(len(rows), len(labels), np.int64))
    if not feats:
        raise ValueError(f"no face track with two frames in one {window_s:g} s window under "
                         f"{folder}")
    f, lab = np.concatenate(feats).astype(np.float32), np.concatenate(labels)
    save_npz(path, features=f, labels=lab)
    return f, lab


def build_loss(cfg: dict) -> nn.Module:
    """The loss named in the config (`loss` section plus num_classes and embedding_size)."""
    name = cfg["name"]
    if name == "supcon":
        return SupervisedContrastiveLoss(cfg["temperature"])
    if name == "ntxent":
        return NTXentLoss(cfg["temperature"])
    if name == "triplet":
        return TripletLoss(cfg["margin"], cfg["miner"])
    if name == "vicreg":
        return VICRegLoss()
    if name == "arcface":  # class proxies with an angular margin: classes spread on the sphere
        return ArcFaceLoss(cfg["num_classes"], cfg["embedding_size"], cfg["arc_margin"],
                           cfg["arc_scale"])
    if name == "hellinger":  # cross-entropy to the vote distribution, on the head's logits
        return SoftTargetCrossEntropy()
    raise ValueError(f"unknown loss {name!r}; valid: {', '.join(LOSSES)}")


def batch_loss(name: str, loss_fn: nn.Module, head: nn.Module, x: torch.Tensor,
               x2: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One batch's loss: x (B, D0) features, x2 the mirrored view, y (B,) class labels (for
    `hellinger`: (B, K) vote distributions)."""
    if name == "hellinger":  # each face seen as itself or its mirror image, at random
        if not isinstance(head, HellingerHead):
            raise TypeError(f"loss hellinger needs a HellingerHead, got {type(head).__name__}")
        view = torch.where(torch.rand(len(x), 1).to(x.device) < 0.5, x, x2)
        return loss_fn(head.logits(view), y)
    if name == "vicreg":  # non-contrastive: the two views of each face, no labels
        return loss_fn(head(x), head(x2))
    if name == "ntxent":  # self-supervised: the mirror image is the only positive
        ids = torch.arange(len(x), device=x.device)
        return loss_fn(head(torch.cat([x, x2])), torch.cat([ids, ids]))
    return loss_fn(head(torch.cat([x, x2])), torch.cat([y, y]))


@torch.no_grad()
def embed_all(head: nn.Module, feats: np.ndarray) -> np.ndarray:
    head.eval()
    device = next(head.parameters()).device
    out = np.concatenate([head(torch.from_numpy(feats[i:i + 4096]).to(device)).cpu().numpy()
                          for i in range(0, len(feats), 4096)])
    head.train()
    return out


def valid_scores(emb: np.ndarray, labels: np.ndarray, names: tuple[str, ...]) -> dict[str, float]:
    sims = pair_similarities(emb, labels, names, max_pairs=50_000)
    return {"valid_auc": roc_auc(sims["same"], sims["different"]),
            "valid_same_minus_opposite": float(sims["same"].mean() - sims["opposite"].mean())}


def report_run(onnx_path: Path, run_dir: Path, cfg: dict, history: list[dict], base: dict,
               best_epoch: int | None, progress: bool) -> dict:
    """Evaluate an exported embedding on FER+ test, write `metrics.json`, log both and the
    run's files to the active MLflow run; returns the results."""
    import mlflow

    report = evaluate_embedding(str(onnx_path), "ferplus-test", run_dir, cfg["eval"]["limit"],
                                cfg["eval"]["train_sample"])
    mlflow.log_metrics({f"test_{k}": v for k, v in report.items() if isinstance(v, float)})
    results = {"history": history, "best_epoch": best_epoch, "base_valid": base, "test": report}
    files = [f for f in run_dir.glob("*") if f.suffix in (".onnx", ".png")]
    finish_run(results, run_dir, files)
    if progress:
        print(format_embedding_report(report))
    return results


def make_sampler(t: dict, features: np.ndarray, labels: np.ndarray, seed: int
                 ) -> torch.utils.data.Sampler:
    """The training sampler named by `train.sampler` (see DEFAULTS)."""
    from pytorch_metric_learning.samplers import MPerClassSampler

    if t["sampler"] == "hard-negative":
        return HardNegativeClassSampler(features, labels, t["m_per_class"],
                                        max(2, t["batch_size"] // t["m_per_class"]), len(labels),
                                        seed)
    if t["sampler"] == "m-per-class":
        return MPerClassSampler(labels, m=t["m_per_class"], batch_size=t["batch_size"],
                                length_before_new_iter=len(labels))
    if t["sampler"] == "random":
        return RandomOrder(len(labels))
    raise ValueError(f"unknown sampler {t['sampler']!r}; valid: m-per-class, hard-negative, "
                     "random")


class Temporal:
    """The NT-Xent term over video windows: frames of one track within `window_s` seconds
    are one instance; each batch draws pairs of them with the run's seeded generator."""

    def __init__(self, features: np.ndarray, windows: np.ndarray, temperature: float,
                 weight: float, seed: int, device: torch.device | str = "cpu") -> None:
        self.x, self.windows = torch.from_numpy(features).to(device), windows
        self.ids = torch.from_numpy(windows).to(device)
        self.loss, self.weight = NTXentLoss(temperature), weight
        self.rng = np.random.default_rng(seed)

    def __call__(self, head: nn.Module, size: int) -> torch.Tensor:
        pick = torch.from_numpy(window_pairs(self.windows, size, self.rng)).to(self.x.device)
        return self.weight * self.loss(head(self.x[pick]), self.ids[pick])


def train_epoch(cfg: dict, head: nn.Module, loss_fn: nn.Module, temporal: Temporal | None,
                data: tuple[torch.Tensor, ...], sampler: torch.utils.data.Sampler,
                opt: torch.optim.Optimizer, desc: str, progress: bool) -> float:
    """One pass over the sampler's batches; returns the mean loss. `data` (features, the
    mirrored view, targets) lie on the head's device, whole: the batches are cut there."""
    size = cfg["train"]["batch_size"]
    amp = Precision(data[0].device)
    idx = torch.tensor(list(iter(sampler)), device=data[0].device)
    batches = idx[: len(idx) // size * size].view(-1, size)
    total = 0.0
    bar = tqdm(batches, desc=desc, disable=not progress, leave=False)
    for b in bar:
        with amp.autocast():
            loss = batch_loss(cfg["loss"]["name"], loss_fn, head, *(a[b] for a in data))
            if temporal is not None:  # adjacent frames of one track: one instance
                loss = loss + temporal(head, size)
        amp.step(loss, opt)
        total += float(loss.detach())
        bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
    return total / max(1, len(batches))


def train_embedding(cfg: dict, progress: bool = True) -> dict:
    """Train, export and evaluate one embedding head (see module doc); returns the results."""
    import mlflow

    if cfg["loss"]["name"] not in LOSSES:
        raise ValueError(f"unknown loss {cfg['loss']['name']!r}; valid: {', '.join(LOSSES)}")
    if cfg["mode"] == "finetune":
        from emotrace.train.embedding_finetune import finetune_embedding

        return finetune_embedding(cfg, progress)
    if cfg["mode"] != "frozen":
        raise ValueError(f"unknown mode {cfg['mode']!r}; valid: frozen, finetune")
    run_dir, t = start_run(cfg), cfg["train"]
    device = run_device(cfg)
    cache = Path(cfg["output_dir"]) / "cache"
    backbone = FaceEmbedder(cfg["backbone"])
    names = tuple(ferplus("test").names)

    # 1. features, computed once
    x_tr, x2_tr, y_tr = cached_features(backbone, "train", cache, progress, cfg["data"]["subset"])
    x_va, _, y_va = cached_features(backbone, "valid", cache, progress, cfg["data"]["eval_subset"])
    temporal = None
    if cfg["temporal"]["videos"]:
        temporal = Temporal(*temporal_windows(cfg["backbone"], cfg["temporal"]["videos"],
                                              cfg["temporal"]["window_s"], cache),
                            cfg["loss"]["temperature"], cfg["temporal"]["weight"], cfg["seed"],
                            device)

    # 2-3. head, loss, optimiser, sampler
    hellinger = cfg["loss"]["name"] == "hellinger"
    head = (HellingerHead(x_tr.shape[1], cfg["head"]["hidden"], len(names)) if hellinger
            else ProjectionHead(x_tr.shape[1], cfg["head"]["hidden"], cfg["head"]["out"]))
    loss_fn = build_loss({**cfg["loss"], "num_classes": len(names),
                          "embedding_size": cfg["head"]["out"]})
    head, loss_fn = head.to(device), loss_fn.to(device)
    params = list(head.parameters()) + list(loss_fn.parameters())  # arcface learns its proxies
    opt = torch.optim.AdamW(params, lr=t["lr"], weight_decay=t["weight_decay"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, t["epochs"]))
    sampler = make_sampler(t, x_tr, y_tr, cfg["seed"])
    targets = vote_targets("train", cfg["data"]["subset"]) if hellinger else y_tr
    data = tuple(torch.from_numpy(a).to(device) for a in (x_tr, x2_tr, targets))

    # 4. loop: validate every epoch, keep the best, stop early
    base = valid_scores(unit_rows(x_va), y_va, names)  # the frozen backbone's own embedding
    history: list[dict] = []
    best = BestEpoch(t["patience"])
    with tracked(cfg):
        mlflow.log_metrics({"base_" + k: v for k, v in base.items()})
        for epoch in range(t["epochs"]):
            started = time.perf_counter()
            loss = train_epoch(cfg, head, loss_fn, temporal, data, sampler, opt,
                               f"epoch {epoch + 1}/{t['epochs']}", progress)
            sched.step()
            scores = valid_scores(embed_all(head, x_va), y_va, names)
            row = {"epoch": epoch + 1, "loss": loss, **scores,
                   "seconds": round(time.perf_counter() - started, 1)}
            record_epoch(history, row)
            if progress:
                print(f"epoch {epoch + 1}: loss {loss:.4f}, valid AUC {scores['valid_auc']:.4f}, "
                      f"same-opposite {scores['valid_same_minus_opposite']:.3f}")
            if best.update(scores["valid_auc"], head, epoch + 1):
                break
        # 5. export the best head and evaluate it on FER+ test
        weights = best.restore(head)
        torch.save({"head": weights, "config": cfg, "in_dim": x_tr.shape[1]}, run_dir / "head.pt")
        onnx_path = export_head(head, x_tr.shape[1], cfg["backbone"], run_dir / "head.onnx")
        return report_run(onnx_path, run_dir, cfg, history, base, best.epoch, progress)

