"""`emotrace train temporal data.format=abaw|afew-va`: TCN/GRU heads on annotated sequences.

The same heads as the pseudo-label mode (`temporal.py`), trained on per-frame human labels:

- `abaw` (Aff-Wild2, the ABAW challenges): `data.root` holds `annotations/<TASK>_Set/
  Train_Set/<video>.txt` and `.../Validation_Set/<video>.txt` (TASK = EXPR, VA or AU, the
  format `emotrace.evaluation.temporal_data` reads) and
  `cropped_aligned/<video>/00001.jpg, ...`. Frames whose image is missing (no face found by
  the organisers) or whose label is -1 / -5 are left out of the loss and the metrics, as in
  the challenge.
- `afew-va`: `data.root` holds one folder per clip (`<clip>/<clip>.json` + `00000.png`, ...);
  every `data.heldout_every`-th clip (sorted by name) is the validation set. Task VA only.

Read top to bottom: 1. sequences (each frame's backbone embedding, computed once and cached
under a key of the annotation files, the image folders and the backbone's SHA256),
2. head and loss per task (EXPR: cross-entropy over the 8 ABAW classes; VA: 1 - CCC per
dimension, the challenge's measure, with tanh outputs; AU: binary cross-entropy per AU),
3. loop over random windows, 4. validation on whole sequences with the challenge metrics
(EXPR macro-F1, VA CCC, AU F1), best epoch kept, MLflow.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from emotrace.errors import InputError
from emotrace.evaluation.temporal_data import (
    ABAW_AUS,
    ABAW_EXPR,
    abaw_frames,
    au_f1,
    ccc,
    macro_f1,
    read_abaw_au,
    read_abaw_expr,
    read_abaw_va,
    read_afew_va,
)
from emotrace.train.cache import cache_key, load_records, save_records
from emotrace.train.losses import CCCLoss
from emotrace.train.run import (
    BestEpoch,
    Precision,
    finish_run,
    record_epoch,
    run_device,
    start_run,
    tracked,
)
from emotrace.train.temporal import TemporalHead, random_windows

TASKS = {"expr": len(ABAW_EXPR), "va": 2, "au": len(ABAW_AUS)}
READERS = {"expr": read_abaw_expr, "va": read_abaw_va, "au": read_abaw_au}


# -- 1. sequences -----------------------------------------------------------------------------
def embed_frames(clf, paths: list[Path], batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings (N, D), present (N,) bool) of already cropped face images; a missing or
    unreadable image gets zeros and present = False."""
    dim = clf(np.zeros((1, clf.size, clf.size, 3), np.uint8)).embeddings.shape[1]
    feats, present = np.zeros((len(paths), dim), np.float32), np.zeros(len(paths), bool)
    for start in range(0, len(paths), batch_size):
        imgs = [cv2.imread(str(p)) if p.is_file() else None
                for p in paths[start:start + batch_size]]
        ok = np.array([i for i, im in enumerate(imgs) if im is not None], int)
        if len(ok):
            size = (clf.size, clf.size)
            faces = np.stack([cv2.resize(imgs[i], size, interpolation=cv2.INTER_AREA)
                              for i in ok])
            feats[start + ok] = clf(faces).embeddings
            present[start + ok] = True
    return feats, present


def abaw_sequences(root: Path, task: str, split: str, clf) -> list[dict]:
    """Every annotated video of one ABAW split: {"video", "x" (T, D), "y", "mask" (T,)}."""
    folder = root / "annotations" / f"{task.upper()}_Set" / split
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise InputError(folder, f"no {task.upper()} annotation files (expected <video>.txt)")
    seqs = []
    for file in files:
        y = READERS[task](file)
        x, present = embed_frames(clf, abaw_frames(root / "cropped_aligned" / file.stem, len(y)))
        labelled = (~np.isnan(y).any(1) if task == "va" else
                    y >= 0 if task == "expr" else (y >= 0).all(1))
        seqs.append({"video": file.stem, "x": x, "y": y, "mask": present & labelled})
    return seqs


def afew_sequences(root: Path, clf) -> list[dict]:
    clips = sorted(p for p in root.iterdir() if p.is_dir())
    if not clips:
        raise InputError(root, "no AFEW-VA clip folders")
    seqs = []
    for clip in clips:
        paths, va = read_afew_va(clip)
        x, present = embed_frames(clf, paths)
        seqs.append({"video": clip.name, "x": x, "y": va, "mask": present})
    return seqs


def source_files(root: Path, fmt: str, task: str) -> list[Path]:
    """What the sequences of a data set are made from, for the cache key: ABAW's annotation
    files and frame folders (a folder changes when images come or go), AFEW-VA's clip
    folders and their label files."""
    if fmt == "abaw":
        notes = sorted((root / "annotations" / f"{task.upper()}_Set").glob("*/*.txt"))
        return [*notes, *(root / "cropped_aligned" / f.stem for f in notes)]
    clips = sorted(p for p in root.iterdir() if p.is_dir())
    return [*clips, *(c / f"{c.name}.json" for c in clips)]


def load_sequences(cfg: dict) -> tuple[list[dict], list[dict]]:
    """(train, validation) sequences of the configured data, cached under a key of the data
    files, the backbone's SHA256 and the settings that shape them."""
    from emotrace.faces.classify import ExpressionClassifier

    d = cfg["data"]
    root = Path(d["root"] or "")
    if not root.is_dir():
        raise InputError(root, "data.root: no such folder")
    settings = {"kind": "sequences", "format": d["format"], "task": d["task"],
                "heldout_every": d["heldout_every"] if d["format"] == "afew-va" else None}
    key = cache_key(settings, [root, *source_files(root, d["format"], d["task"])],
                    [cfg["backbone"]])
    cache = Path(cfg["output_dir"]) / "cache" / f"sequences_{key}.npz"
    if cache.is_file():
        groups, _ = load_records(cache)
        return groups["train"], groups["valid"]
    clf = ExpressionClassifier(cfg["backbone"], embeddings=True)
    if d["format"] == "abaw":
        data = (abaw_sequences(root, d["task"], "Train_Set", clf),
                abaw_sequences(root, d["task"], "Validation_Set", clf))
    else:
        seqs = afew_sequences(root, clf)
        every = d["heldout_every"]
        data = ([s for i, s in enumerate(seqs) if i % every], seqs[::every])
    save_records(cache, {"train": data[0], "valid": data[1]})
    return data


# -- 2. loss per task -----------------------------------------------------------------------------
def task_loss(task: str, out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """out (B, T, K) raw outputs, y the labels, mask (B, T): frames that count; computed in
    float32 (CCC's means and variances, also after a mixed-precision forward pass)."""
    out, y = out[mask].float(), y[mask]
    if task == "expr":
        return F.cross_entropy(out, y.long())
    if task == "va":
        return CCCLoss()(torch.tanh(out), y.float())
    return F.binary_cross_entropy_with_logits(out, y.float())


# -- 3-4. loop and validation ---------------------------------------------------------------------
@torch.no_grad()
def validate(model: TemporalHead, task: str, seqs: list[dict]) -> dict[str, float]:
    """The challenge metric(s) over all labelled frames of whole sequences."""
    model.eval()
    device = next(model.parameters()).device
    preds, ys = [], []
    for s in seqs:
        out = model(torch.from_numpy(s["x"])[None].to(device))[0].cpu()
        preds.append(out[torch.from_numpy(s["mask"])].numpy())
        ys.append(s["y"][s["mask"]])
    model.train()
    p, y = np.concatenate(preds), np.concatenate(ys)
    if task == "expr":
        f1 = macro_f1(y, p.argmax(1), TASKS["expr"])
        return {"score": f1, "macro_f1": f1}
    if task == "va":
        v, a = ccc(np.tanh(p[:, 0]), y[:, 0]), ccc(np.tanh(p[:, 1]), y[:, 1])
        return {"score": (v + a) / 2, "ccc_valence": v, "ccc_arousal": a}
    f1 = au_f1(y, (p > 0).astype(np.int8))
    return {"score": f1, "au_f1": f1}


def train_epoch(cfg: dict, model: TemporalHead, train: list[dict], opt: torch.optim.Optimizer,
                rng: np.random.Generator) -> float:
    """Random windows, as many as the training frames fill; windows without a labelled frame
    are skipped. Returns the mean loss."""
    t, task = cfg["train"], cfg["data"]["task"]
    device = next(model.parameters()).device
    amp = Precision(device)
    steps = max(1, sum(len(s["x"]) for s in train) // (t["window"] * t["batch_size"]))
    total = 0.0
    for _ in range(steps):
        (x, y, labelled), real = random_windows(train, ("x", "y", "mask"), t["window"],
                                                t["batch_size"], rng)
        if not (labelled & real).any():
            continue
        mask = torch.from_numpy(labelled & real).to(device)
        target = torch.from_numpy(np.nan_to_num(y.astype(np.float32))).to(device)
        with amp.autocast():
            loss = task_loss(task, model(torch.from_numpy(x).to(device)), target, mask)
        amp.step(loss, opt)
        total += float(loss.detach())
    return total / steps


def train_supervised(cfg: dict, progress: bool = True) -> dict:
    import mlflow

    d, m, t = cfg["data"], cfg["model"], cfg["train"]
    if d["task"] not in TASKS:
        raise ValueError(f"data.task must be one of {', '.join(TASKS)}, got {d['task']!r}")
    if d["format"] == "afew-va" and d["task"] != "va":
        raise ValueError("AFEW-VA has valence/arousal labels only: use data.task=va")
    run_dir = start_run(cfg)
    rng = np.random.default_rng(cfg["seed"])
    train, valid = load_sequences(cfg)
    train = [s for s in train if s["mask"].any()]
    if not train or not any(s["mask"].any() for s in valid):
        raise ValueError(f"{d['root']}: no labelled frame with a face image in train or validation")
    model = TemporalHead(train[0]["x"].shape[1], TASKS[d["task"]], m["kind"], m["hidden"],
                         m["dropout"]).to(run_device(cfg))
    opt = torch.optim.AdamW(model.parameters(), lr=t["lr"], weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, t["epochs"]))
    history: list[dict] = []
    best = BestEpoch()  # every epoch runs; the best one on validation is kept
    with tracked(cfg):
        for epoch in range(t["epochs"]):
            started = time.perf_counter()
            loss = train_epoch(cfg, model, train, opt, rng)
            sched.step()
            scores = validate(model, d["task"], valid)
            row = {"epoch": epoch + 1, "loss": loss, **scores,
                   "seconds": round(time.perf_counter() - started, 2)}
            record_epoch(history, row)
            if progress:
                print(f"epoch {epoch + 1}: loss {row['loss']:.4f}, validation "
                      + ", ".join(f"{k} {v:.4f}" for k, v in scores.items() if k != "score"))
            best.update(scores["score"], model, epoch + 1)
        weights = best.restore(model)
        final = validate(model, d["task"], valid)
        mlflow.log_metrics({f"best_{k}": v for k, v in final.items()})
        outputs = (ABAW_EXPR if d["task"] == "expr" else
                   ("valence", "arousal") if d["task"] == "va" else ABAW_AUS)
        torch.save({"model": weights, "config": cfg, "in_dim": train[0]["x"].shape[1],
                    "outputs": list(outputs)}, run_dir / "temporal.pt")
        return finish_run({"task": d["task"], "format": d["format"], "validation": final,
                           "best_epoch": best.epoch, "history": history,
                           "train_sequences": len(train), "validation_sequences": len(valid)},
                          run_dir)
