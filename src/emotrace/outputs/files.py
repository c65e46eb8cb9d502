"""Writing files atomically: CSV, Parquet, JSON and anything a callback writes.

Every file is written to a temporary name in the target folder and renamed into place, so a
crash never leaves a half-written file under the final name; a `FileSet` renames several files
into place together, once all of them are written.
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
    path.parent.mkdir(parents=True, exist_ok=True)  # an OSError here names the folder
    tmp = temporary_name(path)
    try:  # one block from creating the temporary file to its rename: an interruption
        write_temporary(path, write, tmp)  # anywhere in between removes it
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise naming(path, exc) from exc
        raise
    return path


def temporary_name(path: Path) -> Path:
    """A new hidden name beside `path`, ending `.part`."""
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")


def write_temporary(path: Path, write: Callable[[Path], None], tmp: Path) -> Path:
    """`write(tmp)` into the new temporary file `tmp` beside `path`; returns `tmp` once
    `write` succeeded. On a failure it is removed (an interruption is the caller's to clean:
    it holds the name from before the file exists). The folder must exist."""
    try:
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        write(tmp)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise naming(path, exc) from exc
        raise
    return tmp


def naming(path: str | Path, exc: OSError) -> OSError:
    """`exc` told of `path`: what a user gave, not the temporary file that was being written.
    With an errno, its text is the problem ("No space left on device"; pyarrow wraps it)."""
    problem = os.strerror(exc.errno) if exc.errno else exc.strerror or str(exc)
    return OSError(exc.errno, problem, str(path))


class FileSet:
    """Files that land together or not at all.

    `write` puts each under a temporary name beside its final one and `commit` renames them all
    into place once every one is written. Until then (a write that fails, a full disk on the
    last file, an interruption) the files already under those names, an earlier run's, stay
    as they were; `discard` removes the temporary files. Used as a context manager it commits
    at the end of the block, or discards if the block raises.
    """

    def __init__(self) -> None:
        self._staged: list[tuple[Path, Path]] = []  # (temporary name, final name)
        self.landed: list[Path] = []  # the final names renamed into place, in order

    def write(self, path: str | Path, write: Callable[[Path], None]) -> Path:
        """Like `atomic_write`, with the rename left to `commit`; returns the final name."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)  # an OSError here names the folder
        tmp = temporary_name(path)
        self.add(tmp, path)  # staged before the file exists: `discard` removes it whatever
        write_temporary(path, write, tmp)  # happens from here on
        return path

    def add(self, temporary: Path, path: str | Path) -> None:
        """A file already written under `temporary`, to land at `path` with the others."""
        self._staged.append((temporary, Path(path)))

    def commit(self) -> list[Path]:
        """Rename every file into place; the final names, in the order they were written."""
        try:
            while self._staged:
                tmp, path = self._staged[0]
                try:
                    os.replace(tmp, path)
                except OSError as exc:
                    raise naming(path, exc) from exc
                self.landed.append(path)
                self._staged.pop(0)
        finally:
            self.discard()
        return self.landed

    def discard(self) -> None:
        for tmp, _ in self._staged:
            tmp.unlink(missing_ok=True)
        self._staged = []

    def __enter__(self) -> FileSet:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()


Put = Callable[[str | Path, Callable[[Path], None]], Path]  # atomic_write, or FileSet.write


def write_csv(df: pd.DataFrame, path: str | Path, put: Put = atomic_write) -> Path:
    return put(path, lambda p: df.to_csv(p, index=False, float_format="%.6g"))


def write_parquet(df: pd.DataFrame, path: str | Path, put: Put = atomic_write) -> Path:
    return put(path, lambda p: df.to_parquet(p, index=False))


def write_json(obj: object, path: str | Path, put: Put = atomic_write) -> Path:
    """`obj` as strict JSON (NaN and infinities, which JSON has not, become null), atomically."""
    def dump(p: Path) -> None:
        p.write_text(json.dumps(_finite(obj), indent=2, default=_jsonable,
                                allow_nan=False) + "\n")

    return put(path, dump)


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
