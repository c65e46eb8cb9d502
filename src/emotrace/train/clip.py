"""Clip embeddings: frame embeddings over a window pooled by mean, attention, GRU or TCN.

`emotrace train clip --config ...` learns a pooler on windows cut from real face tracks (the
cached tracks of `emotrace train temporal`): a window's pseudo-label is the frame model's
dominant emotion over it, and two overlapping windows of one track are the same instance.
Loss: supervised contrastive on the pseudo-labels + NT-Xent over the instance pairs (both
pytorch-metric-learning's SupConLoss). Judged on held-out videos by the same-vs-different
ROC-AUC of the window embeddings (pseudo-labels), against plain mean pooling of the frames.
The pooler is exported to `clip.onnx` for `emotrace index --embedder RUN/clip.onnx`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from emotrace.evaluation.embedding import roc_auc
from emotrace.train.losses import SupervisedContrastiveLoss
from emotrace.train.run import (
    Precision,
    batch_loader,
    finish_run,
    record_epoch,
    run_device,
    start_run,
    tracked,
    write_onnx,
)
from emotrace.train.temporal import TCNBlock, load_tracks

KINDS = ("mean", "attention", "gru", "tcn")
DEFAULTS: dict[str, Any] = {
    "name": "clip",
    "seed": 0,
    "output_dir": "runs",
    "backbone": "emotrace-ferplus8",
    "data": {"videos": "../shared/data/video", "fps": 10.0, "heldout_every": 4, "window": 20},
    "model": {"kind": "attention", "hidden": 256, "out": 128},
    # device: auto (CUDA, then MPS, else the CPU) | cpu | cuda | mps; mixed precision on CUDA
    # workers: DataLoader processes cutting the batches of windows (0: none)
    "train": {"epochs": 20, "batch_size": 128, "lr": 1e-3, "temperature": 0.1,
              "instance_weight": 0.5, "threads": 0, "device": "auto", "workers": 0},
    "tracking": {"uri": "sqlite:///mlflow.db", "experiment": "emotrace-clip"},
}


class ClipPooler(nn.Module):
    """(B, T, D) frame embeddings -> (B, out) unit-length clip embedding.

    mean: average, then a linear projection; attention: a learned score per frame, softmax
    over time, weighted average; gru: bidirectional GRU, last states of both directions; tcn:
    three dilated residual convolutions, then the average.
    """

    def __init__(self, kind: str, in_dim: int, hidden: int = 256, out: int = 128) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        self.kind = kind
        self.inp = nn.Linear(in_dim, hidden)
        if kind == "attention":
            self.score = nn.Sequential(nn.Tanh(), nn.Linear(hidden, 1))
        elif kind == "gru":
            self.seq: nn.Module = nn.GRU(hidden, hidden // 2, batch_first=True, bidirectional=True)
        elif kind == "tcn":
            self.seq = nn.Sequential(*[TCNBlock(hidden, d, 0.1) for d in (1, 2, 4)])
        self.out = nn.Linear(hidden, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        if self.kind == "mean":
            pooled = h.mean(1)
        elif self.kind == "attention":
            w = torch.softmax(self.score(h), dim=1)  # (B, T, 1)
            pooled = (w * h).sum(1)
        elif self.kind == "gru":
            _, last = self.seq(torch.relu(h))  # (2, B, hidden / 2)
            pooled = torch.cat([last[0], last[1]], dim=1)
        else:
            pooled = self.seq(torch.relu(h).transpose(1, 2)).mean(2)
        return nn.functional.normalize(self.out(pooled), dim=1)


def cut_windows(tracks: list[dict], length: int, stride: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(windows (N, length, D), pseudo-labels (N,), track ids (N,)) of every track."""
    xs, ys, ids = [], [], []
    for k, tr in enumerate(tracks):
        for s in range(0, len(tr["x"]) - length + 1, stride):
            xs.append(tr["x"][s:s + length])
            ys.append(int(tr["p"][s:s + length].mean(0).argmax()))
            ids.append(k)
    return np.stack(xs), np.array(ys), np.array(ids)


def window_auc(emb: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    """Same-vs-different ROC-AUC of window embeddings over sampled pairs."""
    rng = np.random.default_rng(seed)
    i, j = rng.integers(0, len(emb), 50_000), rng.integers(0, len(emb), 50_000)
    keep = i != j
    i, j = i[keep], j[keep]
    cos = np.einsum("nd,nd->n", emb[i], emb[j])
    same = labels[i] == labels[j]
    return roc_auc(cos[same], cos[~same])


def export_pooler(model: ClipPooler, in_dim: int, backbone: str, window: int, fps: float,
                  path: Path) -> Path:
    """ONNX file of the pooler, (B, T, D0) backbone frame embeddings -> (B, D); its metadata
    names the backbone and the window it was trained on, so `FaceEmbedder` (and so
    `emotrace index` and `search`) can use it without torch."""
    return write_onnx(model, (torch.zeros(2, window, in_dim),), path, ["frames"], ["embedding"],
                      {"frames": {0: "B", 1: "T"}, "embedding": {0: "B"}},
                      {"emotrace_kind": "clip-pooler", "emotrace_backbone": backbone,
                       "emotrace_window_frames": str(window), "emotrace_fps": f"{fps:g}",
                       "emotrace_pooling": model.kind})


def windows_of(cfg: dict) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """((windows, pseudo-labels, track ids) of the training videos, overlapping by 3/4;
    (windows, pseudo-labels, track ids) of every `data.heldout_every`-th video, not
    overlapping)."""
    d = cfg["data"]
    tracks = load_tracks(cfg["backbone"], d["videos"], d["fps"],
                         Path(cfg["output_dir"]) / "cache")["tracks"]
    heldout = set(sorted({tr["video"] for tr in tracks})[:: d["heldout_every"]])
    length = d["window"]
    train = cut_windows([tr for tr in tracks if tr["video"] not in heldout], length,
                        max(1, length // 4))
    test = cut_windows([tr for tr in tracks if tr["video"] in heldout], length, length)
    return train, test


def train_epoch(cfg: dict, model: ClipPooler, train: tuple[np.ndarray, ...],
                loss_fn: SupervisedContrastiveLoss, opt: torch.optim.Optimizer,
                rng: np.random.Generator) -> float:
    """One shuffled pass; returns the summed loss. Loss: supervised contrastive on the
    pseudo-labels + `instance_weight` x the same over track ids (the same track's windows
    are one instance: overlapping windows agree)."""
    t = cfg["train"]
    device = next(model.parameters()).device
    amp = Precision(device)
    model.train()
    perm = rng.permutation(len(train[0]))
    batches = [perm[s:s + t["batch_size"]] for s in range(0, len(perm), t["batch_size"])]
    total = 0.0
    for x, y, ids in batch_loader(train, batches, cfg, device):
        with amp.autocast():
            emb = model(x.to(device, non_blocking=True))
            loss = loss_fn(emb, y.to(device, non_blocking=True))
            loss = loss + t["instance_weight"] * loss_fn(emb, ids.to(device, non_blocking=True))
        amp.step(loss, opt)
        total += float(loss.detach())
    return total


def train_clip(cfg: dict, progress: bool = True) -> dict:
    """Train a pooler (see module doc). The last epoch is kept: the held-out videos are the
    test set, so no epoch is chosen by them."""
    import mlflow

    run_dir, d, m, t = start_run(cfg), cfg["data"], cfg["model"], cfg["train"]
    rng = np.random.default_rng(cfg["seed"])
    train, (x_te, y_te, _) = windows_of(cfg)
    if not len(train[0]) or not len(x_te):
        raise ValueError(f"no window of {d['window']} frames in the train or held-out tracks")
    base = x_te.mean(1)
    base_auc = window_auc(base / np.linalg.norm(base, axis=1, keepdims=True), y_te)
    in_dim = train[0].shape[2]
    device = run_device(cfg)
    model = ClipPooler(m["kind"], in_dim, m["hidden"], m["out"]).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=t["lr"], weight_decay=1e-4)
    loss_fn = SupervisedContrastiveLoss(t["temperature"])
    history: list[dict] = []
    with tracked(cfg):
        mlflow.log_metric("mean_pooled_frames_auc", base_auc)
        for epoch in range(t["epochs"]):
            loss = train_epoch(cfg, model, train, loss_fn, opt, rng)
            model.eval()
            with torch.no_grad():
                auc = window_auc(model(torch.from_numpy(x_te).to(device)).cpu().numpy(), y_te)
            record_epoch(history, {"epoch": epoch + 1, "loss": loss, "heldout_auc": auc})
            if progress:
                print(f"epoch {epoch + 1}: loss {loss:.3f}, held-out window AUC {auc:.4f} "
                      f"(mean-pooled frames {base_auc:.4f})")
        if not history:
            raise ValueError("train.epochs is 0: nothing was trained")
        torch.save({"model": {k: v.cpu() for k, v in model.state_dict().items()}, "config": cfg,
                    "in_dim": in_dim}, run_dir / "clip.pt")
        onnx_path = export_pooler(model, in_dim, cfg["backbone"], d["window"], d["fps"],
                                  run_dir / "clip.onnx")
        return finish_run({"kind": m["kind"], "heldout_auc": history[-1]["heldout_auc"],
                           "mean_pooled_frames_auc": base_auc, "train_windows": len(train[0]),
                           "heldout_windows": len(x_te), "history": history},
                          run_dir, [onnx_path])
