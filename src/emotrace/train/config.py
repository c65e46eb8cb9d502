"""Training configs: YAML files with `key.sub=value` overrides on the command line.

Each trainer module holds its own DEFAULTS (every key it reads); this module merges them,
and checks each value against its default's type before anything runs: an integer where the
default is one (not "abc", not 2.5), a number where it is a float (3 and 1e-3 are fine), true
or false where it is a bool, text (a number is taken as its text) or null where it is text,
a list where it is a list. A default of null takes any value. What a run resolves itself
(`train.device_resolved`, in a run's config.yaml) is dropped when such a file is read back.
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


RESOLVED = (("train", "device_resolved"),)  # written by a run, never read as a setting


def checked(where: str, value: Any, default: Any) -> Any:
    """`value` for the key `where` whose default is `default`, if it has the default's type
    (an int for a float is made a float); else a ValueError naming the key, the value and
    the type expected."""
    def wrong(expected: str) -> ValueError:
        return ValueError(f"config key {where!r}: expected {expected} (default "
                          f"{default!r}), got {value!r}")

    if default is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise wrong("true or false")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("an integer")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong("a number")
        return float(value)
    elif isinstance(default, str):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)  # name=2024: YAML read a number where text was meant
        if value is not None and not isinstance(value, str):
            raise wrong("text (or null)")
    elif isinstance(default, list | tuple):
        if not isinstance(value, list | tuple):
            raise wrong("a list")
    return value


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
            out[key] = checked(where, value, out[key])
    return out


def _read(path: str | Path) -> dict:
    """A YAML config file as a mapping, without the keys a run resolved itself."""
    data = _yaml(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise TypeError(f"{path}: a config file must hold a mapping of keys")
    for section, key in RESOLVED:
        if isinstance(data.get(section), dict):
            data[section].pop(key, None)
    return data


def load_config(path: str | Path | None, overrides: Sequence[str],
                defaults: dict[str, Any]) -> dict:
    """`defaults` (the trainer module's DEFAULTS) <- YAML file <- `a.b=value` overrides
    (values parsed as YAML); a key that is not in the defaults, or a value of another type
    than its default's (see the module doc), is an error."""
    cfg = copy.deepcopy(defaults)
    if path is not None:
        cfg = _merge(cfg, _read(path))
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
