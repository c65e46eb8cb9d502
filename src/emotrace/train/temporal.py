"""`emotrace train temporal`: a TCN or GRU over per-frame face embeddings of a track.

No labelled video sequences are reachable here, so the model learns from real face tracks
with the frame classifier's own probabilities as soft targets (pseudo-labels) plus a
temporal-consistency term (the squared change of the predicted distribution between adjacent
steps). The result is judged by what it is for: fewer label flips between adjacent frames than
the frame classifier, without less agreement with the StyleTalk clips' name labels (which
never enter training). With ABAW/AFEW-VA annotations (`data.format=abaw|afew-va`), the same
heads train on human labels instead: see `temporal_supervised.py`.

Read top to bottom: tracks (features cached, keyed by the videos and the backbone's SHA256:
`train/cache.py`), model, loop, evaluation; the loss is
`losses.TemporalConsistencyLoss`, the run skeleton `run.py`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from emotrace.labels import canonical
from emotrace.train.cache import DETECTOR, cache_key, load_records, save_records, video_files
from emotrace.train.losses import TemporalConsistencyLoss
from emotrace.train.run import Precision, finish_run, record_epoch, run_device, start_run, tracked

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
    # device: auto (CUDA, then MPS, else the CPU) | cpu | cuda | mps; mixed precision on CUDA
    "train": {"epochs": 30, "window": 32, "batch_size": 32, "lr": 2e-3, "consistency": 5.0,
              "threads": 0, "device": "auto"},
    "tracking": {"uri": "sqlite:///mlflow.db", "experiment": "emotrace-temporal"},
}


# -- 1. tracks ----------------------------------------------------------------------------------
def load_tracks(backbone: str, folder: str | Path, fps: float, cache: Path,
                audio: bool = False) -> dict:
    """{"labels": class names, "tracks": [...]}: every face track (>= 4 frames) of every video
    under `folder`: backbone embeddings (T, D), frame probabilities (T, K), timestamps (T,),
    video path and weak label (if any). Cached under a key of the videos and index.csv
    (paths, sizes, times), the backbone's and detector's files and the settings."""
    from emotrace.pipeline import Analyzer

    folder = Path(folder)
    index = folder / "index.csv"
    videos = video_files(folder)
    key = cache_key({"kind": "tracks", "fps": fps, "audio": audio}, [folder, index, *videos],
                    [backbone, DETECTOR])
    path = cache / f"tracks_{key}.npz"
    if path.is_file():
        groups, meta = load_records(path)
        return {"labels": meta["labels"], "tracks": groups["tracks"]}
    weak = {}
    if index.is_file():
        df = pd.read_csv(index)
        weak = {str(folder / r.file): r.weak_label_from_filename for r in df.itertuples()
                if isinstance(r.weak_label_from_filename, str)}
    analyzer = Analyzer(classifier=backbone, embeddings=True)
    tracks: list[dict] = []
    for video in videos:
        result = analyzer.analyze_video(video, fps=fps, progress=False)
        sound = None
        if audio:
            from emotrace.media.audio import audio_features

            sound = audio_features(video, 1.0)
        for track in result.tracks(min_frames=4):
            if track.embeddings is None:
                raise ValueError(f"{video}: the analyser gave no embeddings")
            tracks.append({"video": str(video), "track": int(track.track_id),
                           "weak": weak.get(str(video)), "t": track.timestamps,
                           "x": track.embeddings.astype(np.float32),
                           "p": track.probs.astype(np.float32)})
            if sound is not None:
                tracks[-1]["a"] = sound.at(track.timestamps, 1.0)
    if not tracks:
        raise ValueError(f"no face track of 4 frames or more in the videos under {folder}")
    save_records(path, {"tracks": tracks}, {"labels": list(analyzer.labels)})
    return {"labels": list(analyzer.labels), "tracks": tracks}


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
            self.seq: nn.Module = nn.GRU(hidden, hidden // 2, batch_first=True, bidirectional=True)
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


# -- 3-4. loop and evaluation -------------------------------------------------------------------
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
        for column, key in zip(out, keys, strict=True):
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
            x = torch.from_numpy(tr["x"])[None].to(next(model.parameters()).device)
            pred = model(x)[0].argmax(-1).cpu().numpy()
        f, s = flips_per_second(pred, tr["t"])
        flips, seconds = flips + f, seconds + s
        if tr["weak"]:
            agree += float(np.mean([canonical(names[k]) == canonical(tr["weak"]) for k in pred]))
            labelled += 1
    return {"flips_per_s": flips / max(seconds, 1e-9), "agreement": agree / max(labelled, 1),
            "labelled_tracks": int(labelled), "tracks": len(tracks)}


def split_tracks(cfg: dict) -> tuple[list[str], list[dict], list[dict], list[str]]:
    """(class names, train tracks, held-out tracks, held-out videos): every
    `data.heldout_every`-th video (sorted) is held out; with `data.audio`, standardised
    acoustic features are joined to each frame's embedding (fusion)."""
    d = cfg["data"]
    data = load_tracks(cfg["backbone"], d["videos"], d["fps"], Path(cfg["output_dir"]) / "cache",
                       d["audio"])
    names, tracks = data["labels"], data["tracks"]
    if d["audio"]:
        stacked = np.concatenate([tr["a"] for tr in tracks])
        mu, sd = stacked.mean(0), stacked.std(0) + 1e-6
        tracks = [{**tr, "x": np.concatenate([tr["x"], (tr["a"] - mu) / sd], 1).astype(np.float32)}
                  for tr in tracks]
    videos = sorted({tr["video"] for tr in tracks})
    heldout = set(videos[:: d["heldout_every"]])
    return (names, [tr for tr in tracks if tr["video"] not in heldout],
            [tr for tr in tracks if tr["video"] in heldout], sorted(heldout))


def train_epoch(cfg: dict, model: TemporalHead, train: list[dict],
                loss_fn: TemporalConsistencyLoss, opt: torch.optim.Optimizer,
                rng: np.random.Generator) -> float:
    """Random windows, as many as the training frames fill, on the model's device; returns
    the mean loss."""
    t = cfg["train"]
    device = next(model.parameters()).device
    amp = Precision(device)
    model.train()
    total = 0.0
    steps = max(1, sum(len(tr["x"]) for tr in train) // (t["window"] * t["batch_size"]))
    for _ in range(steps):
        (x, p), _ = random_windows(train, ("x", "p"), t["window"], t["batch_size"], rng)
        with amp.autocast():
            loss = loss_fn(model(torch.from_numpy(x).to(device)), torch.from_numpy(p).to(device))
        amp.step(loss, opt)
        total += float(loss.detach())
    return total / steps


def train_temporal(cfg: dict, progress: bool = True) -> dict:
    """Pseudo-label training on face tracks (see module doc). The last epoch is kept: the
    held-out videos are the test set, so no epoch is chosen by them."""
    import mlflow

    if cfg["data"]["format"] in ("abaw", "afew-va"):
        from emotrace.train.temporal_supervised import train_supervised

        return train_supervised(cfg, progress)
    if cfg["data"]["format"] != "tracks":
        raise ValueError(f"data.format must be tracks, abaw or afew-va, "
                         f"got {cfg['data']['format']!r}")
    run_dir, m, t = start_run(cfg), cfg["model"], cfg["train"]
    rng = np.random.default_rng(cfg["seed"])
    names, train, test, heldout = split_tracks(cfg)
    tracks = train + test
    model = TemporalHead(tracks[0]["x"].shape[1], len(names), m["kind"], m["hidden"],
                         m["dropout"]).to(run_device(cfg))
    loss_fn = TemporalConsistencyLoss(t["consistency"])
    opt = torch.optim.AdamW(model.parameters(), lr=t["lr"], weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, t["epochs"]))
    raw = {"all": evaluate_tracks(None, tracks, names),
           "heldout": evaluate_tracks(None, test, names)}
    history: list[dict] = []
    with tracked(cfg):
        for epoch in range(t["epochs"]):
            started = time.perf_counter()
            loss = train_epoch(cfg, model, train, loss_fn, opt, rng)
            sched.step()
            ev = evaluate_tracks(model, test, names)
            row = {"epoch": epoch + 1, "loss": loss, "heldout_flips_per_s": ev["flips_per_s"],
                   "heldout_agreement": ev["agreement"],
                   "seconds": round(time.perf_counter() - started, 2)}
            record_epoch(history, row)
            if progress:
                print(f"epoch {epoch + 1}: loss {row['loss']:.4f}, held-out flips/s "
                      f"{ev['flips_per_s']:.3f} (raw {raw['heldout']['flips_per_s']:.3f})")
        final = {"all": evaluate_tracks(model, tracks, names),
                 "heldout": evaluate_tracks(model, test, names)}
        mlflow.log_metrics({f"{k}_{s}_{m_}": v for s in ("all", "heldout")
                            for k, d in (("raw", raw), ("model", final)) for m_, v in d[s].items()})
        torch.save({"model": {k: v.cpu() for k, v in model.state_dict().items()},
                    "config": cfg, "labels": names,
                    "in_dim": tracks[0]["x"].shape[1]}, run_dir / "temporal.pt")
        return finish_run({"raw": raw, "model": final, "history": history,
                           "heldout_videos": heldout}, run_dir)
