"""Writing results: CSV and Parquet written atomically, per-track summaries.

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


def track_summary(df: pd.DataFrame, labels: tuple[str, ...]) -> pd.DataFrame:
    """One row per track: when it was seen, for how long, mean probabilities, dominant emotion.

    `dominant` is the emotion with the highest mean probability over the track; `share_<e>`
    columns are not given: the mean probabilities are the summary a timeline needs.
    """
    faces = df[df["track_id"] >= 0]
    cols = list(labels)
    if faces.empty:
        return pd.DataFrame(columns=["source", "track_id", "start", "end", "frames",
                                     "mean_det_score", *cols, "dominant"])
    g = faces.groupby(["source", "track_id"], sort=True)
    out = g.agg(start=("timestamp", "min"), end=("timestamp", "max"),
                frames=("frame", "count"), mean_det_score=("det_score", "mean"))
    means = g[cols].mean()
    out = out.join(means).reset_index()
    out["dominant"] = means.idxmax(axis=1).to_numpy()
    if "valence" in faces:
        out = out.merge(g[["valence", "arousal"]].mean().reset_index(), on=["source", "track_id"])
    return out
