"""`emotrace train temporal`: a TCN or GRU over per-frame face embeddings of a track.

No labelled video sequences are reachable here, so the model learns from real face tracks
with the frame classifier's own probabilities as soft targets (pseudo-labels) plus a
temporal-consistency term (the squared change of the predicted distribution between adjacent
steps). The result is judged by what it is for: fewer label flips between adjacent frames than
the frame classifier, without less agreement with the StyleTalk clips' name labels (which
never enter training). With ABAW/AFEW-VA annotations (`data.format=abaw|afew-va`), the same
heads train on human labels instead: see `temporal_supervised.py`.

Read top to bottom: tracks (features cached), model, loss, loop, evaluation, MLflow.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from emotrace.labels import canonical
from emotrace.outputs.files import write_json
from emotrace.train.config import record_epoch

DEFAULTS: dict[str, Any] = {
    "name": "temporal",
    "seed": 0,
    "output_dir": "runs",
    "backbone": "emotrace-ferplus8",
    # audio: fuse per-second eGeMAPS features of the video's sound (zeros where it has none)
    # format: tracks (pseudo-labels on real face tracks, below) | abaw | afew-va (human labels
    # under data.root, task expr | va | au: see temporal_supervised.py)
    "data": {"format": "tracks", "root": None, "task": "expr",
             "videos": "../shared/data/video", "fps": 10.0, "heldout_every": 4, "audio": False},
    "model": {"kind": "tcn", "hidden": 128, "dropout": 0.1},  # tcn | gru
    "train": {"epochs": 30, "window": 32, "batch_size": 32, "lr": 2e-3, "consistency": 5.0,
              "threads": 0},
    "tracking": {"uri": "sqlite:///mlflow.db", "experiment": "emotrace-temporal"},
}


# -- 1. tracks ----------------------------------------------------------------------------------
def load_tracks(backbone: str, folder: str | Path, fps: float, cache: Path, audio: bool = False) -> dict:
    """{"labels": class names, "tracks": [...]}: every face track (>= 4 frames) of every video
    under `folder`: backbone embeddings (T, D), frame probabilities (T, K), timestamps (T,),
    video path and weak label (if any)."""
    path = cache / f"tracks_{backbone}_{Path(folder).name}_{fps:g}{'_audio' if audio else ''}.pt"
    if path.is_file():
        return torch.load(path, weights_only=False)
    from emotrace.pipeline import Analyzer
    from emotrace.media.decode import VIDEO_SUFFIXES

    folder = Path(folder)
    index = folder / "index.csv"
    weak = {}
    if index.is_file():
        df = pd.read_csv(index)
        weak = {str(folder / r.file): r.weak_label_from_filename for r in df.itertuples()
                if isinstance(r.weak_label_from_filename, str)}
    analyzer = Analyzer(classifier=backbone, embeddings=True)
    tracks: list[dict] = []
    for video in sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES):
        result = analyzer.analyze_video(video, fps=fps, progress=False)
        sound = None
        if audio:
            from emotrace.media.audio import audio_features

            sound = audio_features(video, 1.0)
        per: dict[int, list] = {}
        for f in result.frames:
            for i, t in enumerate(f.track_ids):
                per.setdefault(int(t), []).append((f.timestamp, f.emotions.embeddings[i], f.emotions.probs[i]))
        for t, items in per.items():
            if len(items) >= 4:
                tracks.append({"video": str(video), "track": t, "weak": weak.get(str(video)),
                               "t": np.array([x[0] for x in items], np.float64),
                               "x": np.stack([x[1] for x in items]).astype(np.float32),
                               "p": np.stack([x[2] for x in items]).astype(np.float32)})
                if sound is not None:
                    tracks[-1]["a"] = sound.at(tracks[-1]["t"], 1.0)
    if not tracks:
        raise ValueError(f"no face track of 4 frames or more in the videos under {folder}")
    data = {"labels": list(analyzer.labels), "tracks": tracks}
    cache.mkdir(parents=True, exist_ok=True)
    torch.save(data, path)
    return data


# -- 2. model -----------------------------------------------------------------------------------
class TCNBlock(nn.Module):
    def __init__(self, dim: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, 3, padding=dilation, dilation=dilation)
        self.norm = nn.BatchNorm1d(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T)
        return x + self.drop(torch.relu(self.norm(self.conv(x))))


class TemporalHead(nn.Module):
    """(B, T, D) frame embeddings -> (B, T, K) logits; `kind`: "gru" (bidirectional) or "tcn"
    (3 residual dilated convolutions, receptive field 15 steps, centred)."""

    def __init__(self, in_dim: int, n_classes: int, kind: str = "gru", hidden: int = 128,
                 dropout: float = 0.1) -> None:
        super().__init__()
        if kind not in ("gru", "tcn"):
            raise ValueError(f"kind must be 'gru' or 'tcn', got {kind!r}")
        self.kind = kind
        self.proj = nn.Linear(in_dim, hidden)
        if kind == "gru":
            self.seq = nn.GRU(hidden, hidden // 2, batch_first=True, bidirectional=True)
        else:
            self.seq = nn.Sequential(*[TCNBlock(hidden, d, dropout) for d in (1, 2, 4)])
        self.out = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.proj(x))
        if self.kind == "gru":
            h, _ = self.seq(h)
        else:
            h = self.seq(h.transpose(1, 2)).transpose(1, 2)
        return self.out(h)


# -- 3. loss --------------------------------------------------------------------------------------
def temporal_loss(logits: torch.Tensor, targets: torch.Tensor, consistency: float) -> torch.Tensor:
    """Soft cross-entropy to the frame model's probabilities + consistency between steps."""
    logp = torch.log_softmax(logits, dim=-1)
    ce = -(targets * logp).sum(-1).mean()
    p = logp.exp()
    smooth = ((p[:, 1:] - p[:, :-1]) ** 2).sum(-1).mean()
    return ce + consistency * smooth


# -- 4-5. loop and evaluation -------------------------------------------------------------------
def random_windows(seqs: list[dict], keys: tuple[str, ...], window: int, n: int, rng
                   ) -> tuple[list[np.ndarray], np.ndarray]:
    """`n` windows of `window` steps from random sequences at random starts: the arrays `keys`
    of each, stacked (n, window, ...), and a mask (n, window) that is False where a sequence
    shorter than the window was padded by repeating its last step."""
    out: list[list[np.ndarray]] = [[] for _ in keys]
    masks = []
    for i in rng.integers(0, len(seqs), n):
        seq = seqs[i]
        T = len(seq[keys[0]])
        start = rng.integers(0, max(1, T - window + 1))
        steps = np.arange(start, start + window)
        idx = np.minimum(steps, T - 1)
        for column, key in zip(out, keys):
            column.append(seq[key][idx])
        masks.append(steps < T)
    return [np.stack(c) for c in out], np.stack(masks)


def flips_per_second(labels: np.ndarray, t: np.ndarray) -> tuple[int, float]:
    return int((labels[1:] != labels[:-1]).sum()), float(t[-1] - t[0])


@torch.no_grad()
def evaluate_tracks(model: nn.Module | None, tracks: list[dict], names: list[str]) -> dict:
    """Flip rate and agreement with weak labels for the model (None = the raw frame labels)."""
    flips = seconds = agree = labelled = 0.0
    for tr in tracks:
        if model is None:
            pred = tr["p"].argmax(1)
        else:
            model.eval()
            pred = model(torch.from_numpy(tr["x"])[None])[0].argmax(-1).numpy()
        f, s = flips_per_second(pred, tr["t"])
        flips, seconds = flips + f, seconds + s
        if tr["weak"]:
            agree += float(np.mean([canonical(names[k]) == canonical(tr["weak"]) for k in pred]))
            labelled += 1
    return {"flips_per_s": flips / max(seconds, 1e-9), "agreement": agree / max(labelled, 1),
            "labelled_tracks": int(labelled), "tracks": len(tracks)}


def train_temporal(cfg: dict, progress: bool = True) -> dict:
    import mlflow

    if cfg["data"]["format"] in ("abaw", "afew-va"):
        from emotrace.train.temporal_supervised import train_supervised

        return train_supervised(cfg, progress)
    if cfg["data"]["format"] != "tracks":
        raise ValueError(f"data.format must be tracks, abaw or afew-va, got {cfg['data']['format']!r}")

    torch.manual_seed(cfg["seed"])
    rng = np.random.default_rng(cfg["seed"])
    if cfg["train"]["threads"]:
        torch.set_num_threads(cfg["train"]["threads"])
    run_dir = Path(cfg["output_dir"]) / cfg["name"]
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(cfg, indent=2))
    data = load_tracks(cfg["backbone"], cfg["data"]["videos"], cfg["data"]["fps"],
                       Path(cfg["output_dir"]) / "cache", cfg["data"]["audio"])
    names, tracks = data["labels"], data["tracks"]
    if cfg["data"]["audio"]:  # fusion: standardised acoustic features joined to each frame
        stacked = np.concatenate([tr["a"] for tr in tracks])
        mu, sd = stacked.mean(0), stacked.std(0) + 1e-6
        tracks = [{**tr, "x": np.concatenate([tr["x"], (tr["a"] - mu) / sd], axis=1).astype(np.float32)}
                  for tr in tracks]
    videos = sorted({tr["video"] for tr in tracks})
    heldout = set(videos[:: cfg["data"]["heldout_every"]])
    train = [tr for tr in tracks if tr["video"] not in heldout]
    test = [tr for tr in tracks if tr["video"] in heldout]
    m, t = cfg["model"], cfg["train"]
    model = TemporalHead(tracks[0]["x"].shape[1], len(names), m["kind"], m["hidden"], m["dropout"])
    opt = torch.optim.AdamW(model.parameters(), lr=t["lr"], weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=t["epochs"])
    raw = {"all": evaluate_tracks(None, tracks, names), "heldout": evaluate_tracks(None, test, names)}
    mlflow.set_tracking_uri(cfg["tracking"]["uri"])
    mlflow.set_experiment(cfg["tracking"]["experiment"])
    history = []
    with mlflow.start_run(run_name=cfg["name"]):
        mlflow.log_params({"kind": m["kind"], "hidden": m["hidden"], "consistency": t["consistency"],
                           "window": t["window"], "epochs": t["epochs"], "fps": cfg["data"]["fps"]})
        for epoch in range(t["epochs"]):
            started = time.perf_counter()
            model.train()
            total = 0.0
            steps = max(1, sum(len(tr["x"]) for tr in train) // (t["window"] * t["batch_size"]))
            for _ in range(steps):
                (x, p), _ = random_windows(train, ("x", "p"), t["window"], t["batch_size"], rng)
                x, p = torch.from_numpy(x), torch.from_numpy(p)
                loss = temporal_loss(model(x), p, t["consistency"])
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach())
            sched.step()
            ev = evaluate_tracks(model, test, names)
            row = {"epoch": epoch + 1, "loss": total / steps, "heldout_flips_per_s": ev["flips_per_s"],
                   "heldout_agreement": ev["agreement"], "seconds": round(time.perf_counter() - started, 2)}
            record_epoch(history, row)
            if progress:
                print(f"epoch {epoch + 1}: loss {row['loss']:.4f}, held-out flips/s "
                      f"{ev['flips_per_s']:.3f} (raw {raw['heldout']['flips_per_s']:.3f})")
        final = {"all": evaluate_tracks(model, tracks, names), "heldout": evaluate_tracks(model, test, names)}
        mlflow.log_metrics({f"{k}_{s}_{m_}": v for s in ("all", "heldout")
                            for k, d in (("raw", raw), ("model", final)) for m_, v in d[s].items()})
        torch.save({"model": copy.deepcopy(model.state_dict()), "config": cfg, "labels": names,
                    "in_dim": tracks[0]["x"].shape[1]}, run_dir / "temporal.pt")
    results = {"raw": raw, "model": final, "history": history,
               "heldout_videos": sorted(heldout)}
    write_json(results, run_dir / "metrics.json")
    return results
