"""`emotrace probe`: an MLP (PyTorch) and an SVM (scikit-learn) on the same embeddings and splits.

Input: a table (Parquet, CSV or .npz) with one embedding per row and a label per row:
- Parquet/CSV: a column `embedding` holding the vector (list or JSON text), or numeric columns
  `e0, e1, ...`; a `label` column; optional `split` column (train/valid/test);
- .npz: arrays `embeddings` (N, D), `labels` (N,) and optionally `split` (N,).
Without a split column, a stratified 70/15/15 split with a fixed seed is made.

The MLP has 3 layers (D -> hidden -> hidden -> classes, ReLU, dropout), AdamW, early stopping
on valid macro-F1, on `device` (auto: CUDA, then MPS, else the CPU; mixed precision on CUDA);
the SVM is an RBF `SVC` with C chosen on valid. Both are scored on the same
test rows: accuracy and macro-F1; per-epoch MLP loss/accuracy/F1 curves are drawn to a PNG.
`embeddings_from_faces` makes such a table from any registry backbone on FER+ (a quick way to
compare backbones).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from emotrace.outputs.files import atomic_write, write_json
from emotrace.train.run import BestEpoch, Precision, choose_device


def load_embeddings(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(embeddings (N, D) float32, labels (N,) str, split (N,) str or None) from a file."""
    from emotrace.errors import InputError

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    if path.suffix == ".npz":
        z = np.load(path, allow_pickle=False)
        if "embeddings" not in z or "labels" not in z:
            raise InputError(path, "needs arrays 'embeddings' and 'labels'")
        return (z["embeddings"].astype(np.float32), z["labels"].astype(str),
                z["split"].astype(str) if "split" in z else None)
    df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    if "label" not in df:
        raise InputError(path, f"needs a 'label' column (has {', '.join(df.columns[:8])})")
    if "embedding" in df:
        col = df["embedding"]
        vecs = [json.loads(v) if isinstance(v, str) else v for v in col]
        emb = np.asarray(np.stack(vecs), np.float32)
    else:
        cols = [c for c in df.columns if c.startswith("e") and c[1:].isdigit()]
        if not cols:
            raise InputError(path, "needs an 'embedding' column or columns e0, e1, ...")
        emb = df[sorted(cols, key=lambda c: int(c[1:]))].to_numpy(np.float32)
    return emb, df["label"].astype(str).to_numpy(), (df["split"].astype(str).to_numpy()
                                                     if "split" in df else None)


def make_split(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Stratified 70/15/15 train/valid/test."""
    rng = np.random.default_rng(seed)
    split = np.empty(len(labels), dtype=object)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        a, b = int(0.7 * len(idx)), int(0.85 * len(idx))
        split[idx[:a]], split[idx[a:b]], split[idx[b:]] = "train", "valid", "test"
    return split.astype(str)


class MLPProbe(nn.Module):
    """Three linear layers: (N, D) -> (N, n_classes) logits."""

    def __init__(self, in_dim: int, n_classes: int, hidden: int = 256,
                 dropout: float = 0.2) -> None:
        super().__init__()
        if in_dim < 1 or n_classes < 2:
            raise ValueError(f"need in_dim >= 1 and n_classes >= 2, got {in_dim}, {n_classes}")
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": float(accuracy_score(y, pred)),
            "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0))}


def train_mlp(x: dict[str, np.ndarray], y: dict[str, np.ndarray], n_classes: int, epochs: int = 60,
              lr: float = 1e-3, patience: int = 10, seed: int = 0, device: str = "auto"
              ) -> tuple[MLPProbe, list[dict]]:
    """The MLP with the best valid macro-F1 (back on the CPU) and its per-epoch history; the
    embeddings lie on `device` whole (they are small), batches are cut there."""
    torch.manual_seed(seed)
    dev = choose_device(device, "device")
    amp = Precision(dev)
    net = MLPProbe(x["train"].shape[1], n_classes).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    xs = {s: torch.from_numpy(x[s]).to(dev) for s in ("train", "valid")}
    xt, yt = xs["train"], torch.from_numpy(y["train"]).to(dev)
    loss_fn = nn.CrossEntropyLoss()
    history: list[dict] = []
    best = BestEpoch(patience)
    for epoch in range(epochs):
        net.train()
        perm = torch.randperm(len(xt)).to(dev)
        total = 0.0
        for i in range(0, len(perm), 256):
            b = perm[i:i + 256]
            with amp.autocast():
                loss = loss_fn(net(xt[b]), yt[b])
            amp.step(loss, opt)
            total += float(loss.detach()) * len(b)
        net.eval()
        with torch.no_grad():
            row = {"epoch": epoch + 1, "train_loss": total / len(xt)}
            for split in ("train", "valid"):
                logits = net(xs[split]).cpu()
                if split == "valid":
                    row["valid_loss"] = float(loss_fn(logits, torch.from_numpy(y[split])))
                for k, v in _scores(y[split], logits.argmax(1).numpy()).items():
                    row[f"{split}_{k}"] = v
        history.append(row)
        if best.update(row["valid_macro_f1"], net, epoch + 1):
            break
    best.restore(net)
    return net.cpu().eval(), history


def train_svm(x: dict[str, np.ndarray], y: dict[str, np.ndarray]) -> tuple[Any, float]:
    """The RBF SVC (and its C) with the best valid macro-F1 of C = 0.1, 1, 10."""
    from sklearn.svm import SVC

    fits = []
    for c in (0.1, 1.0, 10.0):
        svm = SVC(C=c, kernel="rbf").fit(x["train"], y["train"])
        fits.append((_scores(y["valid"], svm.predict(x["valid"]))["macro_f1"], -c, svm))
    _, c, svm = max(fits, key=lambda fit: fit[:2])  # ties: the smaller C, as before
    return svm, -c


def plot_curves(history: list[dict], path: Path, title: str) -> Path:
    from emotrace.outputs.plots import new_figure

    h = pd.DataFrame(history)
    fig = new_figure(figsize=(12, 3.4))
    axes = fig.subplots(1, 3)
    for ax, (name, cols) in zip(axes, [("loss", ["train_loss", "valid_loss"]),
                                       ("accuracy", ["train_accuracy", "valid_accuracy"]),
                                       ("macro-F1", ["train_macro_f1", "valid_macro_f1"])],
                                      strict=True):
        for col in cols:
            ax.plot(h["epoch"], h[col], label=col.split("_")[0])
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=100, format="png"))
    return path


def run_probe(path: str | Path, outdir: str | Path, epochs: int = 60, seed: int = 0,
              device: str = "auto") -> dict:
    """MLP (trained on `device`) vs SVM on the embeddings in `path`; writes probe.json (with
    the device the MLP trained on) and probe_curves.png."""
    emb, labels, split = load_embeddings(path)
    split = make_split(labels, seed) if split is None else split
    names = sorted(np.unique(labels))
    y_all = np.searchsorted(names, labels).astype(np.int64)
    x = {s: emb[split == s] for s in ("train", "valid", "test")}
    y = {s: y_all[split == s] for s in ("train", "valid", "test")}
    for s in ("train", "valid", "test"):
        if not len(x[s]):
            raise ValueError(f"{path}: the {s} split is empty")
    resolved = choose_device(device, "--device").type  # bad: a ValueError before training
    net, history = train_mlp(x, y, len(names), epochs, seed=seed, device=resolved)
    with torch.no_grad():
        mlp_pred = net(torch.from_numpy(x["test"])).argmax(1).numpy()
    svm, c = train_svm(x, y)
    report = {"data": str(path), "device": resolved, "n": {s: len(x[s]) for s in x},
              "dim": emb.shape[1],
              "classes": names,
              "mlp": {**_scores(y["test"], mlp_pred), "epochs": len(history)},
              "svm": {**_scores(y["test"], svm.predict(x["test"])), "C": c},
              "history": history}
    outdir = Path(outdir)
    write_json(report, outdir / "probe.json")
    plot_curves(history, outdir / "probe_curves.png", f"MLP probe on {Path(path).name}")
    return report


def embeddings_from_faces(model: str, out: str | Path, limit: int | None = None) -> Path:
    """A probe table (.npz) of `model`'s embeddings of FER+ train/valid/test (majority labels)."""
    from emotrace.evaluation.datasets import ferplus
    from emotrace.evaluation.embedding import face_embeddings
    from emotrace.faces.embed import FaceEmbedder

    embedder = FaceEmbedder(model)
    parts = []
    for split in ("train", "valid", "test"):
        faces = ferplus(split)
        keep = np.flatnonzero(faces.labels >= 0)[:limit]
        faces = faces.take(keep)
        parts.append((face_embeddings(embedder, faces),
                      np.asarray(faces.names)[faces.labels], np.full(len(faces), split)))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, embeddings=np.concatenate([p[0] for p in parts]),
             labels=np.concatenate([p[1] for p in parts]),
             split=np.concatenate([p[2] for p in parts]))
    return out
