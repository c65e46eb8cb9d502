"""Writing files atomically: CSV, Parquet, JSON and anything a callback writes.

Every file is written to a temporary name in the target folder and renamed into place, so a
crash never leaves a half-written file under the final name.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)` and rename the result to `path` only when it succeeded."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_csv(df: pd.DataFrame, path: str | Path) -> Path:
    return atomic_write(path, lambda p: df.to_csv(p, index=False, float_format="%.6g"))


def write_parquet(df: pd.DataFrame, path: str | Path) -> Path:
    return atomic_write(path, lambda p: df.to_parquet(p, index=False))


def write_json(obj: object, path: str | Path) -> Path:
    def dump(p: Path) -> None:
        p.write_text(json.dumps(obj, indent=2, default=_jsonable) + "\n")

    return atomic_write(path, dump)


def _jsonable(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
