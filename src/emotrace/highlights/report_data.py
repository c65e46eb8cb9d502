"""What the report page embeds: the episode's source for the player and the curves' data.

The episode (`--content`) is played from where it is, by a path relative to the report's
folder (the report lives in OUT/, the episode anywhere: a copy would double a large file, a
link does not survive a move or a zip), except that an episode smaller than
`embed_limit_mb` is embedded as a data URI, so that the report plays it wherever it goes.
The page says which.

The data is one strict-JSON object (NaN -> null, as in moments.json) in a
`<script type="application/json">` block; `<`, `>` and `&` are written as \\u escapes so that
no string in it (a viewer called `</script>...`) can end the block.
"""

from __future__ import annotations

import base64
import json
import math
import mimetypes
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from emotrace.outputs.files import _finite, _jsonable

#: Episodes smaller than this (MB) are embedded in report.html; larger ones are referenced.
EMBED_LIMIT_MB = 20.0


@dataclass(frozen=True)
class Episode:
    """The player's source: `src` (a relative URL or a data URI), `embedded`, what to say
    about it (`note`) and the episode's length (None if it could not be read)."""

    src: str
    embedded: bool
    note: str
    duration: float | None


def episode_source(content: str | Path, report_dir: str | Path,
                   embed_limit_mb: float = EMBED_LIMIT_MB) -> Episode:
    """How the report at `report_dir` plays `content` (module doc)."""
    from emotrace.errors import InputError
    from emotrace.media.decode import probe

    content = Path(content)
    try:
        duration = probe(content).duration or None
    except InputError:
        duration = None
    size: float
    try:
        size = content.stat().st_size
    except OSError:  # not there (yet): reference it, the page says so if it does not play
        size = math.inf
    if size < embed_limit_mb * 1e6:
        mime = mimetypes.guess_type(content.name)[0] or "video/mp4"
        data = base64.b64encode(content.read_bytes()).decode()
        return Episode(f"data:{mime};base64,{data}", True,
                       f"embedded in this page ({size / 1e6:.1f} MB, below "
                       f"the {embed_limit_mb:g} MB limit): the report plays it wherever it "
                       "goes.", duration)
    try:
        rel = os.path.relpath(content.resolve(), Path(report_dir).resolve())
        src, where = quote(Path(rel).as_posix()), f"{Path(rel).as_posix()} (relative to this page)"
    except ValueError:  # another drive (Windows): no relative path exists
        src, where = content.resolve().as_uri(), str(content.resolve())
    why = ("it cannot be read from here" if not math.isfinite(size)
           else "embedding is off" if embed_limit_mb <= 0
           else f"{size / 1e6:.0f} MB, over the {embed_limit_mb:g} MB limit")
    return Episode(src, False, f"played from {where}, not embedded ({why}): keep the episode "
                   "there, or the player stays empty.", duration)


def script_json(obj: object) -> str:
    """`obj` as strict JSON safe inside a `<script>` block (module doc)."""
    text = json.dumps(_finite(obj), default=_jsonable, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _values(series: pd.Series, index: pd.Index, digits: int = 4) -> list:
    """A column on the aggregate's steps, rounded, missing values as None."""
    values = pd.to_numeric(series, errors="coerce").reindex(index).to_numpy(float)
    return [round(float(v), digits) if math.isfinite(v) else None for v in values]


def page_data(result, duration: float | None = None) -> dict:
    """The curves, the moments, the viewers x time map and the groups' curves, on the
    aggregate's steps (`times`: each step's start; a step lasts `bin` seconds)."""
    agg = result.aggregate
    bin_s = float(agg.attrs.get("bin_s", 1.0))
    index = agg.index
    times = agg["time"].astype(float)
    t0 = min(0.0, float(times.iloc[0]))
    t1 = max(float(times.iloc[-1]) + bin_s, duration or 0.0)
    rows = []
    for v in result.viewers:
        covered = np.flatnonzero(index.isin(v.table.index))
        rows.append({"name": v.name, "intensity": _values(v.table["intensity"], index, 3),
                     "first": int(covered[0]) if len(covered) else 0,
                     "last": int(covered[-1]) if len(covered) else -1})
    heat = [x for r in rows for x in r["intensity"] if x is not None]
    columns: dict[str, list] = {}
    for g in result.groups:
        columns.setdefault(g.column, []).append({"value": g.value, "viewers": len(g.viewers),
                                                 "score": _values(g.aggregate["score"], index)})
    attention = (_values(agg["attention"], index, 3) if "attention" in agg
                 else [None] * len(index))
    return {
        "bin": bin_s, "t0": t0, "t1": t1, "duration": duration,
        "times": [round(float(t), 6) for t in times],
        "agg": {"score": _values(agg["score"], index),
                "mean_intensity": _values(agg["mean_intensity"], index),
                "share_reacting": _values(agg["share_reacting"], index, 3),
                "viewers_present": _values(agg["viewers_present"], index, 0),
                "attention": attention},
        "has_attention": any(a is not None for a in attention),
        "moments": [{k: m.to_dict()[k] for k in ("rank", "start", "end", "peak", "score",
                                                 "dominant", "viewers_reacting",
                                                 "viewers_present")} for m in result.moments],
        "viewers": rows,
        "vmax": max(2.0, max(heat, default=0.0)),
        "groups": [{"column": c, "curves": curves} for c, curves in columns.items()],
    }
