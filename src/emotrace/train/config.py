"""Training configs: YAML files with `key.sub=value` overrides on the command line.

Each trainer module holds its own DEFAULTS (every key it reads); this module merges them.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's floats: PyYAML follows YAML 1.1, where `1e-3`
    (no dot) is a string, so `train.lr=1e-3` would silently set a string learning rate."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 -- a SafeLoader subclass


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


def load_config(path: str | Path | None, overrides: Sequence[str],
                defaults: dict[str, Any]) -> dict:
    """`defaults` (the trainer module's DEFAULTS) <- YAML file <- `a.b=value` overrides
    (values parsed as YAML); a key that is not in the defaults is an error."""
    cfg = copy.deepcopy(defaults)
    if path is not None:
        cfg = _merge(cfg, _yaml(Path(path).read_text()) or {})
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} must look like key.sub=value")
        nested: Any = _yaml(raw)
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
