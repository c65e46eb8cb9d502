"""The skeleton every trainer shares, so that a trainer reads as its own steps only:

    run_dir = start_run(cfg)                # folder, config.yaml, seeds, torch threads
    device = choose_device(cfg["train"]["device"])
    with tracked(cfg):                      # MLflow run, the config as flattened parameters
        best = BestEpoch(patience)
        for epoch in ...:
            record_epoch(history, row)      # history + MLflow step metrics
            if best.update(row["score"], net, epoch):
                break                       # early stop
        best.restore(net)                   # a clear error when no epoch had a score
        write_onnx(net, ..., metadata)      # ONNX with emotrace's metadata
        finish_run(results, run_dir)        # metrics.json, logged with the config
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from emotrace.outputs.files import atomic_write, write_json
from emotrace.train.config import flatten

DEVICES = ("cpu", "cuda", "mps", "auto")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def choose_device(name: str = "cpu") -> torch.device:
    """cpu, cuda or mps; auto takes cuda, then mps, where present, else cpu."""
    if name not in DEVICES:
        raise ValueError(f"train.device must be one of {', '.join(DEVICES)}, got {name!r}")
    if name == "auto":
        name = ("cuda" if torch.cuda.is_available() else
                "mps" if torch.backends.mps.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device=cuda but PyTorch sees no CUDA device")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("train.device=mps but PyTorch sees no MPS device")
    return torch.device(name)


def start_run(cfg: dict) -> Path:
    """Seed everything with `cfg["seed"]`, set `train.threads` (0 = all cores), create
    `<output_dir>/<name>/` and write the resolved config there as config.yaml."""
    seed_everything(cfg["seed"])
    if cfg["train"].get("threads"):
        torch.set_num_threads(cfg["train"]["threads"])
    run_dir = Path(cfg["output_dir"]) / cfg["name"]
    run_dir.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(cfg, sort_keys=False)

    def write(path: Path) -> None:
        path.write_text(text)

    atomic_write(run_dir / "config.yaml", write)
    return run_dir


@contextmanager
def tracked(cfg: dict) -> Iterator[None]:
    """An MLflow run named after the config, with the config as flattened parameters."""
    import mlflow

    mlflow.set_tracking_uri(cfg["tracking"]["uri"])
    mlflow.set_experiment(cfg["tracking"]["experiment"])
    with mlflow.start_run(run_name=cfg["name"]):
        mlflow.log_params(flatten(cfg))
        yield


def record_epoch(history: list[dict], row: dict) -> None:
    """Append one epoch's row ({"epoch": n, metric: value, ...}) to `history` and log its
    metrics to the active MLflow run at step n: every trainer keeps the same record."""
    import mlflow

    history.append(row)
    mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])


class BestEpoch:
    """The epoch with the highest validation score so far, and when to stop.

    `update(score, module, epoch)` keeps a copy of the module's weights when `score` beats
    every earlier one: in memory, or in `path` (with `extra` entries) for a run that can be
    resumed. A NaN or missing score never counts as better; it is an epoch without
    improvement. `update` returns True after `patience` such epochs in a row (patience 0:
    never stop early). `restore(module)` loads the best weights back, and says so plainly
    when there are none (every score NaN, or no epoch run).
    """

    def __init__(self, patience: int = 0, path: Path | None = None) -> None:
        if patience < 0:
            raise ValueError(f"patience must be >= 0, got {patience}")
        self.patience, self.path = patience, path
        self.score: float = -math.inf
        self.epoch: int | None = None
        self.stale = 0
        self.weights: dict[str, torch.Tensor] | None = None

    def update(self, score: float | None, module: nn.Module, epoch: int,
               extra: dict[str, Any] | None = None) -> bool:
        if score is not None and math.isfinite(score) and score > self.score:
            self.score, self.epoch, self.stale = float(score), epoch, 0
            weights = copy.deepcopy(module.state_dict())
            if self.path is None:
                self.weights = weights
            else:
                torch.save({"model": weights, **(extra or {})}, self.path)
            return False
        self.stale += 1
        return self.patience > 0 and self.stale >= self.patience

    def restore(self, module: nn.Module) -> dict[str, torch.Tensor]:
        """Load the best epoch's weights into `module`; returns them."""
        if self.epoch is None:
            raise ValueError("no epoch gave a finite validation score (every score was NaN, "
                             "or train.epochs is 0): there are no best weights to keep; check "
                             "the data, the learning rate and train.epochs")
        weights = (self.weights if self.path is None
                   else torch.load(self.path, weights_only=False)["model"])
        assert weights is not None
        module.load_state_dict(weights)
        return weights

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs (the weights themselves are in `path`)."""
        return {"score": self.score, "epoch": self.epoch, "stale": self.stale}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.score, self.epoch, self.stale = state["score"], state["epoch"], state["stale"]


def write_onnx(model: nn.Module, inputs: tuple[torch.Tensor, ...], path: str | Path,
               input_names: list[str], output_names: list[str],
               dynamic_axes: dict[str, dict[int, str]], metadata: dict[str, str]) -> Path:
    """Export `model` (a copy, on the CPU, in eval mode) to ONNX, opset 17, with `metadata`
    in the file: what emotrace reads to run it without torch or a registry card."""
    import onnx

    path = Path(path)
    model = copy.deepcopy(model).cpu().eval()
    torch.onnx.export(model, inputs, str(path), input_names=input_names,
                      output_names=output_names, dynamic_axes=dynamic_axes, opset_version=17,
                      dynamo=False)
    proto = onnx.load(str(path))
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))
    return path


def finish_run(results: dict, run_dir: Path, artifacts: Sequence[Path] = ()) -> dict:
    """Write `results` to metrics.json and log it, config.yaml and `artifacts` to the active
    MLflow run; returns `results`."""
    import mlflow

    write_json(results, run_dir / "metrics.json")
    for path in [run_dir / "config.yaml", run_dir / "metrics.json", *artifacts]:
        mlflow.log_artifact(str(path))
    return results
