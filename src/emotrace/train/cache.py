"""Training caches: keyed by what they were computed from, stored without pickle.

A cache file's name holds a short hash (`cache_key`) of everything its content depends on:
the settings that shape it, the identity of the input files (resolved path, size and
modification time of each; a folder by its own) and the SHA256 of each model file. Two
backbones both called `model.onnx`, two folders both called `video`, or a video changed in
place get different keys; a path-valued backbone is never part of a file name.

Caches are `.npz` files read with `allow_pickle=False`: records (a list of dicts of arrays
and plain values per group, e.g. face tracks) go through `save_records` / `load_records`,
which keep the arrays as arrays and the rest as JSON text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emotrace import models
from emotrace.errors import ModelError

DETECTOR = models.DEFAULT_DETECTOR  # the face detector whose boxes every track cache holds


def model_sha256(spec: str | Path) -> str:
    """SHA256 of a model: a registered name's card (the resolver checks its file against
    it), or the file's own hash for a path."""
    if str(spec) in models.REGISTRY:
        return models.get_card(str(spec)).sha256
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    return models.sha256_of(path)


def file_stats(paths: Iterable[str | Path]) -> list[tuple[str, int, int]]:
    """(resolved path, size in bytes, modification time in ns) of each path, sorted; a
    missing path is ("...", -1, -1)."""
    out = []
    for path in paths:
        p = Path(path).expanduser().resolve()
        try:
            st = p.stat()
            out.append((str(p), st.st_size, st.st_mtime_ns))
        except FileNotFoundError:
            out.append((str(p), -1, -1))
    return sorted(out)


def cache_key(settings: dict[str, Any], files: Iterable[str | Path] = (),
              model_specs: Sequence[str | Path] = ()) -> str:
    """16 hex digits of the SHA256 of `settings` (JSON), `file_stats(files)` and the
    `model_sha256` of each of `model_specs`."""
    what = {"settings": settings, "files": file_stats(files),
            "models": [model_sha256(m) for m in model_specs]}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


def video_files(folder: str | Path) -> list[Path]:
    """Every video under `folder` (recursively), sorted."""
    from emotrace.media.decode import VIDEO_SUFFIXES

    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz cache, read without pickle; a file that is not one (or holds
    objects) is a ValueError naming it."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable cache ({exc}); delete it to recompute") \
            from None


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write an .npz cache whole (a temporary name, renamed when complete)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]  # numpy's stub: allow_pickle vs **kwds
    tmp.replace(path)


def save_records(path: Path, groups: dict[str, list[dict[str, Any]]],
                 meta: dict[str, Any] | None = None) -> None:
    """Groups of records (dicts whose values are numpy arrays or JSON values; every record
    of a group has the same keys, its arrays the same trailing shapes) and `meta` in one .npz."""
    arrays: dict[str, np.ndarray] = {}
    layout: dict[str, Any] = {"meta": meta or {}, "groups": {}}
    for name, records in groups.items():
        fields = [k for k, v in records[0].items() if isinstance(v, np.ndarray)] if records else []
        for i, rec in enumerate(records):
            arr = {k for k, v in rec.items() if isinstance(v, np.ndarray)}
            if arr != set(fields):
                raise ValueError(f"record {i} of {name!r} has arrays {sorted(arr)}, the first "
                                 f"has {sorted(fields)}")
        for f in fields:
            arrays[f"{name}.{f}"] = np.concatenate([r[f] for r in records])
            arrays[f"{name}.{f}.len"] = np.array([len(r[f]) for r in records], np.int64)
        layout["groups"][name] = {"arrays": fields, "values": [
            {k: v for k, v in r.items() if k not in fields} for r in records]}
    save_npz(path, layout=np.array(json.dumps(layout)), **arrays)


def load_records(path: Path) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """(groups, meta) as given to `save_records`."""
    z = load_npz(path)
    try:
        layout = json.loads(str(z["layout"]))
        groups = {}
        for name, group in layout["groups"].items():
            records = [dict(v) for v in group["values"]]
            for f in group["arrays"]:
                bounds = np.cumsum(z[f"{name}.{f}.len"])[:-1]
                for rec, part in zip(records, np.split(z[f"{name}.{f}"], bounds), strict=True):
                    rec[f] = part
            groups[name] = records
        return groups, layout["meta"]
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not a readable cache ({exc!r}); delete it to recompute") \
            from None
