"""The viewers of a study and where their faces come from.

A viewer is one recording of a test viewer watching the episode (a video file), or the face
table that `emotrace video` or `emotrace batch` already wrote for it (`.parquet`). A table
keeps, in its Parquet metadata (`results.TABLE_META`), the recording it came from, the labels
and the settings it was analysed with, so the moments found from it are those the recording
would give, without decoding anything; `settings_mismatch` says where a table's settings
differ from the run's.

`viewers.csv` lists the viewers: a `recording` column (path to the video or its table,
relative to the CSV's folder; `path` is accepted too), optional `viewer` (`name`) and
`offset` (seconds, `auto`, or empty), and any further columns are groups (age band,
subscriber, ...).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from emotrace.errors import InputError
from emotrace.labels import CANONICAL, canonical
from emotrace.media.decode import VIDEO_SUFFIXES
from emotrace.results import TABLE_META, VideoAnalysis

TABLE_SUFFIXES = frozenset({".parquet"})
#: Columns a face table needs for the highlights (beside one probability column per label).
NEEDED = ("frame", "timestamp", "face", "track_id", "x1", "y1", "x2", "y2", "det_score")
RECORDING_COLUMNS = ("recording", "path")
NAME_COLUMNS = ("viewer", "name")


@dataclass(frozen=True)
class Viewer:
    """One viewer: the recording or table, the name shown, the offset to the episode
    (episode time = recording time + offset; None: not given) and the viewer's groups."""

    path: Path
    name: str
    offset: float | None = None
    groups: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_table(self) -> bool:
        return self.path.suffix.lower() in TABLE_SUFFIXES


@dataclass(frozen=True)
class FaceTable:
    """A recording's per-face table with what it says about itself.

    source: the recording the rows are of; labels: the emotion columns, in model order;
    settings: how it was analysed (`Analyzer.settings`; empty for a table without metadata);
    partial: why it holds fewer frames than the recording promised ("" when whole).
    """

    source: str
    labels: tuple[str, ...]
    rows: pd.DataFrame
    settings: Mapping[str, object]
    partial: str = ""
    meta: Mapping[str, object] = field(default_factory=dict)


def viewer_name(path: Path) -> str:
    """A recording's stem; for a table, its recording's (`anna.faces.parquet`, the `video`
    output, and `anna.mp4.parquet`, the `batch` output, are both `anna`)."""
    if path.suffix.lower() not in TABLE_SUFFIXES:
        return path.stem
    stem = path.stem.removesuffix(".faces")
    return Path(stem).stem if Path(stem).suffix.lower() in VIDEO_SUFFIXES else stem


def unique_names(paths: Sequence[Path]) -> list[str]:
    """Each path's viewer name; a repeated one gets `_` appended until it is unique."""
    names: list[str] = []
    seen: set[str] = set()
    for p in paths:
        name = viewer_name(p)
        while name in seen:
            name += "_"
        seen.add(name)
        names.append(name)
    return names


def viewers_from_paths(paths: Sequence[str | Path],
                       offsets: Sequence[float | None] | None = None) -> list[Viewer]:
    """Viewers for recordings or tables given one by one, with optional offsets."""
    files = [Path(p) for p in paths]
    offsets = list(offsets) if offsets is not None else [None] * len(files)
    if len(offsets) != len(files):
        raise ValueError(f"{len(offsets)} offsets for {len(files)} recordings")
    return [Viewer(p, n, o) for p, n, o in zip(files, unique_names(files), offsets, strict=True)]


def _offset_cell(value: object, where: str) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    if text.lower() in ("", "auto"):
        return None
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise InputError(where, f"offset must be seconds or 'auto', got {text!r}")
    return number


def read_viewers_csv(path: str | Path) -> list[Viewer]:
    """The viewers a viewers.csv lists (see module doc); `InputError` naming the file and
    the problem for a CSV that cannot be used."""
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not a readable CSV ({exc})") from None
    column = next((c for c in RECORDING_COLUMNS if c in df.columns), None)
    if column is None:
        raise InputError(path, f"needs a 'recording' column (has {', '.join(df.columns)})")
    if df.empty:
        raise InputError(path, "lists no viewer")
    name_col = next((c for c in NAME_COLUMNS if c in df.columns), None)
    group_cols = [c for c in df.columns if c not in (column, name_col, "offset")]
    recordings = [Path(p) if Path(p).is_absolute() else path.parent / p for p in df[column]]
    names = (list(df[name_col]) if name_col else unique_names(recordings))
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise InputError(path, f"viewer names must be unique; repeated: {', '.join(dup)}")
    viewers = []
    for i, (recording, name) in enumerate(zip(recordings, names, strict=True)):
        where = f"{path}: row {i + 2}"
        if not str(df[column].iloc[i]).strip():
            raise InputError(where, "has no recording")
        offset = _offset_cell(df["offset"].iloc[i], where) if "offset" in df else None
        viewers.append(Viewer(recording, str(name), offset,
                              {g: str(df[g].iloc[i]) for g in group_cols}))
    return viewers


def _labels_of(df: pd.DataFrame, meta: Mapping) -> tuple[str, ...]:
    if meta.get("labels"):
        return tuple(str(x) for x in meta["labels"])  # type: ignore[union-attr]
    found = []  # a table written before tables carried metadata: emotion columns by name
    for column in df.columns:
        try:
            if canonical(str(column)) in CANONICAL:
                found.append(str(column))
        except ValueError:
            continue
    return tuple(found)


def read_face_table(path: str | Path) -> FaceTable:
    """A face table written by `emotrace video` (`*.faces.parquet`) or `emotrace batch`;
    `InputError` naming the file for one that is not readable or not a face table."""
    path = Path(path)
    try:
        df = pd.read_parquet(path)
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except Exception as exc:  # noqa: BLE001 -- pyarrow raises many types for a bad file
        raise InputError(path, f"not a readable Parquet table ({type(exc).__name__})") from None
    meta = dict(df.attrs.get(TABLE_META) or {})
    missing = [c for c in NEEDED if c not in df.columns]
    labels = _labels_of(df, meta)
    if missing or not labels:
        what = f"columns {', '.join(missing)}" if missing else "emotion probability columns"
        raise InputError(path, f"not an emotrace face table (no {what})")
    source = str(meta.get("source") or (df["source"].iloc[0] if "source" in df and len(df)
                                        else path))
    partial = str(meta.get("partial") or df.attrs.get("partial_reason") or "")
    return FaceTable(source, labels, df, dict(meta.get("settings") or {}), partial, meta)


def table_of(analysis: VideoAnalysis) -> FaceTable:
    """The same `FaceTable` a recording's Parquet file would give, from its analysis."""
    df = analysis.to_pandas()
    meta = df.attrs[TABLE_META]
    return FaceTable(analysis.path, analysis.labels, df, meta["settings"], analysis.partial, meta)


def settings_mismatch(table: FaceTable, wanted: Mapping[str, object]) -> list[str]:
    """How a table's settings differ from the run's `wanted` ones (model, fps, ...); a table
    without settings says so. Empty when they agree."""
    if not table.settings:
        return ["the table does not say how it was analysed (written by an older emotrace)"]
    out = []
    for key, want in wanted.items():
        have = table.settings.get(key)
        numbers = isinstance(have, float | int) and isinstance(want, float | int)
        same = math.isclose(float(have), float(want)) if numbers else have == want  # type: ignore[arg-type]
        if not same:
            out.append(f"{key} {_show(have)} (this run: {_show(want)})")
    if table.settings.get("smooth"):
        out.append(f"probabilities smoothed ({_show(table.settings['smooth'])})")
    return out


def _show(value: object) -> str:
    if value is None:
        return "every frame"  # the only None setting: fps
    if isinstance(value, list):
        return " ".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)
