"""The skeleton every trainer shares, so that a trainer reads as its own steps only:

    run_dir = start_run(cfg)                # device, folder, config.yaml, seeds, torch threads
    device, amp = run_device(cfg), Precision(run_device(cfg))
    with tracked(cfg):                      # MLflow run, the config as flattened parameters
        for batch in batch_loader(arrays, batches, cfg, device):  # workers, pinned memory
            with amp.autocast():            # mixed precision on CUDA only
                loss = ...
            amp.step(loss, opt)
        best = BestEpoch(patience)
        for epoch in ...:
            record_epoch(history, row)      # history + MLflow step metrics
            if best.update(row["score"], net, epoch):
                break                       # early stop
        best.restore(net)                   # a clear error when no epoch had a score
        write_onnx(net, ..., metadata)      # ONNX with emotrace's metadata
        finish_run(results, run_dir)        # metrics.json (with the device), logged with the config

Checkpoints are read by `load_checkpoint` (tensors and plain Python values only: a file that
would run code when unpickled is refused); `rng_state` / `restore_rng` hold the generators in
that form.
"""

from __future__ import annotations

import contextlib
import copy
import math
import pickle
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

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


def choose_device(name: str = "cpu", what: str = "train.device") -> torch.device:
    """cpu, cuda or mps; auto takes cuda, then mps, where present, else cpu. A bad name, or
    a device PyTorch does not see, is a ValueError naming the setting `what`."""
    if name not in DEVICES:
        raise ValueError(f"{what} must be one of {', '.join(DEVICES)}, got {name!r}")
    if name == "auto":
        name = ("cuda" if torch.cuda.is_available() else
                "mps" if torch.backends.mps.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{what}=cuda but PyTorch sees no CUDA device")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{what}=mps but PyTorch sees no MPS device")
    return torch.device(name)


def start_run(cfg: dict) -> Path:
    """Resolve `train.device` (a clear ValueError for a bad or absent device, before anything
    is written) into `cfg["train"]["device_resolved"]` ("cpu", "cuda" or "mps"), seed
    everything with `cfg["seed"]`, set `train.threads` (0 = all cores), create
    `<output_dir>/<name>/` and write the resolved config there as config.yaml."""
    cfg["train"]["device_resolved"] = choose_device(cfg["train"].get("device", "cpu")).type
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


def run_device(cfg: dict) -> torch.device:
    """The device `start_run` resolved for this run."""
    if "device_resolved" not in cfg["train"]:
        raise ValueError("no device resolved yet: call start_run(cfg) first")
    return torch.device(cfg["train"]["device_resolved"])


class Precision:
    """Mixed precision on CUDA only: `autocast()` runs the forward pass and the loss in
    bfloat16 where the GPU has it (float16 with a GradScaler where it does not); on the CPU
    and MPS it does nothing, so training there stays in float32. `step(loss, opt)` is the
    backward pass and the optimiser step (scaled when a GradScaler is in use)."""

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.dtype: torch.dtype | None = None
        if self.device.type == "cuda":
            self.dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if self.dtype is torch.float16 else None

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.dtype)

    def step(self, loss: torch.Tensor, opt: torch.optim.Optimizer) -> None:
        opt.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            opt.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(opt)
            self.scaler.update()


def autocast(device: torch.device | str) -> contextlib.AbstractContextManager:
    """`Precision(device).autocast()`: mixed precision on CUDA, nothing elsewhere."""
    return Precision(device).autocast()


def loader_kwargs(cfg: dict, device: torch.device | str) -> dict[str, Any]:
    """DataLoader settings of a run: `train.workers` worker processes (0: batches are made
    in the training process), pinned memory when the batches go to a CUDA device."""
    workers = cfg["train"].get("workers", 0)
    if not isinstance(workers, int) or workers < 0:
        raise ValueError(f"train.workers must be an integer >= 0, got {workers!r}")
    return {"num_workers": workers, "pin_memory": torch.device(device).type == "cuda"}


class IndexedBatches(torch.utils.data.Dataset):
    """Batch i: the rows `batches[i]` of each array, as tensors (a tuple, one per array)."""

    def __init__(self, arrays: Sequence[np.ndarray], batches: Sequence[np.ndarray]) -> None:
        self.arrays, self.batches = arrays, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        rows = self.batches[i]
        return tuple(torch.from_numpy(np.ascontiguousarray(a[rows])) for a in self.arrays)


def batch_loader(arrays: Sequence[np.ndarray], batches: Sequence[np.ndarray], cfg: dict,
                 device: torch.device | str) -> torch.utils.data.DataLoader:
    """A DataLoader of `IndexedBatches(arrays, batches)` in that order, with the run's
    `loader_kwargs`; move each batch with `.to(device, non_blocking=True)`."""
    return torch.utils.data.DataLoader(IndexedBatches(arrays, batches), batch_size=None,
                                       shuffle=False, **loader_kwargs(cfg, device))


def rng_state() -> dict[str, Any]:
    """NumPy's, PyTorch's (and CUDA's) global generator states, as tensors and plain values
    (what `load_checkpoint` accepts)."""
    name, keys, pos, has_gauss, gauss = cast(tuple, np.random.get_state(legacy=True))
    state = {"numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                       float(gauss)], "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Set the generators to a `rng_state()`."""
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_checkpoint(path: str | Path) -> Any:
    """A checkpoint written by `torch.save`, on the CPU, with `weights_only=True`: tensors
    and plain Python values only. A file whose pickle names anything else (which could run
    code) is refused with a ValueError naming it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path}: refused: it holds more than tensors and plain values, and "
                         f"unpickling it could run code ({first}); delete it or write it "
                         "again with this version") from None


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

    `update(score, module, epoch)` keeps a copy of the module's weights (on the CPU) when
    `score` beats every earlier one: in memory, or in `path` (with `extra` entries) for a run
    that can be resumed. A NaN or missing score never counts as better; it is an epoch without
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
            weights = {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
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
        weights = self.weights if self.path is None else load_checkpoint(self.path)["model"]
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
    """Write `results`, with the device the run trained on (from its config.yaml), to
    metrics.json and log it, config.yaml and `artifacts` to the active MLflow run; returns
    what was written."""
    import mlflow

    train = (yaml.safe_load((run_dir / "config.yaml").read_text()) or {}).get("train", {})
    results = {"device": train.get("device_resolved"), **results}
    write_json(results, run_dir / "metrics.json")
    for path in [run_dir / "config.yaml", run_dir / "metrics.json", *artifacts]:
        mlflow.log_artifact(str(path))
    return results
