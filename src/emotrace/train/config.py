"""Training configs: YAML files with `key.sub=value` overrides on the command line."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

DEFAULTS: dict[str, Any] = {
    "name": "classifier",
    "seed": 0,
    "output_dir": "runs",
    "data": {
        "train": "ferplus-train",  # ferplus-{train,valid,test}, fer2013-{train,public,private}
        "valid": "ferplus-valid",
        "test": "ferplus-test",
        "label_set": "ferplus8",  # ferplus8 | submission9 (FER+ sources only)
        "subset": None,  # use only the first N training images (quick runs, tests)
        "eval_subset": None,  # use only the first N valid / test images (quick runs, tests)
    },
    "model": {
        "init": "mobilefacenet-rafdb",  # registry model whose weights start the backbone; null = random
        "input_size": 64,
        "head": "classes",  # classes | va | multitask
        "freeze_backbone": False,
        "dropout": 0.2,
    },
    "train": {
        "epochs": 10,
        "batch_size": 128,
        "lr": 2e-3,
        "backbone_lr_scale": 0.5,  # the pretrained backbone learns slower than the new head
        "weight_decay": 0.05,
        "warmup_epochs": 0.5,
        "targets": "soft",  # soft (vote distribution) | hard (majority label)
        "label_smoothing": 0.0,
        "balance": "none",  # none | weights | sampler
        "va_weight": 1.0,  # weight of the VA loss in the multitask head
        "patience": 3,  # early stopping: epochs without a better valid score
        "max_steps_per_epoch": None,
        "threads": 0,  # torch threads; 0 = all cores
    },
    "augment": {
        "enabled": True, "crop_scale": [0.8, 1.0], "flip": True, "rotation": 10.0,
        "jitter": 0.3, "blur_p": 0.2, "erase_p": 0.25,
    },
    "tracking": {"uri": "sqlite:///mlflow.db", "experiment": "emotrace-classifier"},
}


def _merge(base: dict, update: dict, path: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        where = f"{path}{key}"
        if key not in out:
            raise KeyError(f"unknown config key {where!r}; valid: {', '.join(sorted(base))}")
        if isinstance(out[key], dict):
            if not isinstance(value, dict):
                raise TypeError(f"config key {where!r} needs a mapping")
            out[key] = _merge(out[key], value, where + ".")
        else:
            out[key] = value
    return out


def load_config(path: str | Path | None = None, overrides: list[str] = (),
                defaults: dict[str, Any] | None = None) -> dict:
    """Defaults <- YAML file <- `a.b=value` overrides (values parsed as YAML). `defaults`:
    the task's defaults (the classifier's when None)."""
    cfg = copy.deepcopy(DEFAULTS if defaults is None else defaults)
    if path is not None:
        cfg = _merge(cfg, yaml.safe_load(Path(path).read_text()) or {})
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} must look like key.sub=value")
        nested: Any = yaml.safe_load(raw)
        for part in reversed(key.strip().split(".")):
            nested = {part: nested}
        cfg = _merge(cfg, nested)
    return cfg


def flatten(cfg: dict, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}: a nested config as MLflow parameters."""
    out = {}
    for key, value in cfg.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def record_epoch(history: list[dict], row: dict) -> None:
    """Append one epoch's row ({"epoch": n, metric: value, ...}) to `history` and log its
    metrics to the active MLflow run at step n: every trainer keeps the same record."""
    import mlflow

    history.append(row)
    mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])
