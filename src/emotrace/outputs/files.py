"""Writing files atomically: CSV, Parquet, JSON and anything a callback writes.

Every file is written to a temporary name in the target folder and renamed into place, so a
crash never leaves a half-written file under the final name.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)` and rename the result to `path` only when it succeeded.

    The temporary file is created 0o666 and the process umask applies as it does to any new
    file (read at each write, never changed). An OSError names `path` (or the folder that cannot
    be made), never the temporary file.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    path.parent.mkdir(parents=True, exist_ok=True)  # an OSError here names the folder
    created = False
    try:
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        created = True
        write(tmp)
        os.replace(tmp, path)
        created = False
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    finally:
        if created:
            tmp.unlink(missing_ok=True)
    return path


def write_csv(df: pd.DataFrame, path: str | Path) -> Path:
    return atomic_write(path, lambda p: df.to_csv(p, index=False, float_format="%.6g"))


def write_parquet(df: pd.DataFrame, path: str | Path) -> Path:
    return atomic_write(path, lambda p: df.to_parquet(p, index=False))


def write_json(obj: object, path: str | Path) -> Path:
    """`obj` as strict JSON (NaN and infinities, which JSON has not, become null), atomically."""
    def dump(p: Path) -> None:
        p.write_text(json.dumps(_finite(obj), indent=2, default=_jsonable,
                                allow_nan=False) + "\n")

    return atomic_write(path, dump)


def _finite(value: object) -> object:
    if isinstance(value, float | np.floating) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _jsonable(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
