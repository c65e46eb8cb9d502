"""From viewer reaction recordings to ranked trailer moments (the `emotrace highlights` run).

    >>> from emotrace.highlights import find_highlights, write_highlights
    >>> result = find_highlights(["v1.mp4", "v2.mp4"], offsets=[0, 1.5])
    >>> result.moments_table()            # rank, start, end, score, dominant, viewers...
    >>> write_highlights(result, "out/", content="episode.mp4")

Each recording is analysed (at `fps` frames per second: a reaction lasts seconds, so every
frame is not needed), turned into the viewer's per-second signals (`reactions`), and the
viewers are aggregated and moments picked (`moments`). A recording that cannot be analysed is
reported in `failures` and the others are still used; one that ends early or breaks part way
is used as far as it decodes and listed in `partial`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from emotrace import models
from emotrace.highlights.faces import BatchEngine, face_tables
from emotrace.highlights.groups import (
    GroupDifference,
    GroupView,
    compare_groups,
    group_curves_table,
    group_views,
)
from emotrace.highlights.inputs import (
    FaceTable,
    Viewer,
    read_viewers_csv,
    settings_mismatch,
    viewers_from_paths,
)
from emotrace.highlights.moments import (
    Moment,
    MomentSettings,
    aggregate,
    moments_table,
    pick_moments,
)
from emotrace.highlights.quality import GRADES, QualitySettings, grade
from emotrace.highlights.reactions import (
    ReactionSettings,
    ViewerSignals,
    persons,
    viewer_signals,
)
from emotrace.highlights.report_data import EMBED_LIMIT_MB
from emotrace.outputs.files import FileSet, write_csv, write_json
from emotrace.pipeline import Analyzer

__all__ = ["BatchEngine", "HighlightsResult", "Viewer", "find_highlights", "parse_offsets",
           "read_viewers_csv", "write_highlights"]


@dataclass
class HighlightsResult:
    viewers: list[ViewerSignals]
    aggregate: pd.DataFrame
    moments: list[Moment]
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, problem)
    settings: dict = field(default_factory=dict)
    partial: list[tuple[str, str]] = field(default_factory=list)  # (path, what is missing)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (table, settings that differ)
    excluded: list[tuple[str, str]] = field(default_factory=list)  # (viewer, why): min_quality
    groups: list[GroupView] = field(default_factory=list)  # each group's viewers alone
    differences: list[GroupDifference] = field(default_factory=list)  # per moment and column

    def moments_table(self) -> pd.DataFrame:
        return moments_table(self.moments)

    def signals_table(self) -> pd.DataFrame:
        """All viewers' per-step signals, long format (one row per viewer and step)."""
        parts = [v.table.reset_index().assign(viewer=v.name, offset=v.offset) for v in self.viewers]
        df = pd.concat(parts, ignore_index=True)
        return df[["viewer", "offset", *[c for c in df.columns if c not in ("viewer", "offset")]]]


def parse_offsets(text: str | None, n: int) -> list[float]:
    """'0,1.5,-2' -> [0.0, 1.5, -2.0]; None -> zeros. ValueError if the count is not `n`."""
    if not text:
        return [0.0] * n
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        values = [math.nan]
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"--offsets must be numbers separated by commas, got {text!r}")
    if len(values) != n:
        raise ValueError(f"--offsets gives {len(values)} value{'s' * (len(values) != 1)} for "
                         f"{n} recording{'s' * (n != 1)}")
    return values


def find_highlights(
    reactions: Sequence[str | Path | Viewer],
    offsets: Sequence[float | None] | None = None,
    analyzer: Analyzer | None = None,
    fps: float | None = 10.0,
    reaction_settings: ReactionSettings | None = None,
    moment_settings: MomentSettings | None = None,
    duration: float | None = None,
    progress: bool = True,
    engine: BatchEngine | None = None,
    model: str | None = None,
    all_faces: bool = False,
    quality: QualitySettings | None = None,
    min_quality: str | None = None,
) -> HighlightsResult:
    """Find every viewer's face table and pick the moments (see module doc).

    reactions: recordings (videos), their face tables (`.parquet`, from `emotrace video` or
    `emotrace batch`), or `Viewer`s (from `read_viewers_csv`: names, offsets, groups).
    offsets: episode time (seconds) at which each recording starts (recording time t is
    episode time t + offset); default: the viewers' own, else 0. Recordings are analysed at
    `fps` with `model` (default: the analyzer's, else the default model), through `engine`
    (`BatchEngine`: parallel, resumable, tables kept) or in this process with `analyzer`.
    duration: the episode's length, to clip moments. all_faces: every persistent face in a
    recording is a viewer of its own (a group watching together). quality: the thresholds
    each viewer's recording is graded by; min_quality (`poor`, `fair`, `good`): viewers
    graded below are left out (listed in `excluded`).
    """
    if min_quality is not None and min_quality not in GRADES:
        raise ValueError(f"min_quality must be one of {', '.join(GRADES)}, got {min_quality!r}")
    viewers = [r for r in reactions if isinstance(r, Viewer)]
    if viewers and len(viewers) != len(reactions):
        raise ValueError("give recordings and tables, or Viewers, not both")
    viewers = viewers or viewers_from_paths([Path(r) for r in reactions])  # type: ignore[arg-type]
    if offsets is not None:
        if len(offsets) != len(viewers):
            raise ValueError(f"{len(offsets)} offsets for {len(viewers)} recordings")
        viewers = [replace(v, offset=o) for v, o in zip(viewers, offsets, strict=True)]
    model = model or (analyzer.classifier.card.name if analyzer and analyzer.classifier.card
                      else models.DEFAULT_CLASSIFIER)
    reaction_settings = reaction_settings or ReactionSettings()
    moment_settings = moment_settings or MomentSettings()
    tables = face_tables(viewers, fps, model, analyzer, engine, progress)
    result = HighlightsResult([], pd.DataFrame(), [])
    for viewer, table in zip(viewers, tables, strict=True):
        if isinstance(table, str):
            result.failures.append((str(viewer.path), table))
            continue
        if viewer.is_table and (differ := settings_mismatch(table, {"model": model, "fps": fps})):
            result.notes.append((str(viewer.path), "; ".join(differ)))
        found = _viewer_signals(viewer, table, reaction_settings, all_faces,
                                (quality or QualitySettings()).max_gap_s)
        if not found:
            result.failures.append((str(viewer.path),
                                    "no face of a viewer was found in the recording"))
            continue
        if table.partial:
            result.partial.append((str(viewer.path), _partial_problem(table)))
        for signals in found:
            graded = grade(signals.measures, quality)
            if min_quality is not None and not graded.at_least(min_quality):
                result.excluded.append((signals.name, f"quality {graded.grade}: "
                                        + "; ".join(graded.reasons)))
            else:
                result.viewers.append(replace(signals, quality=graded))
    result.settings = {"fps": fps, "model": model, "reaction": vars(reaction_settings),
                       "moments": vars(moment_settings), "all_faces": all_faces,
                       "quality": vars(quality or QualitySettings()), "min_quality": min_quality}
    if not result.viewers:
        return result
    agg = aggregate(result.viewers, moment_settings.smooth_s)
    if duration is not None:
        agg = agg[agg["time"] < duration]
    result.aggregate = agg
    result.moments = pick_moments(agg, result.viewers, moment_settings, duration)
    result.groups = group_views(result.viewers, moment_settings, duration)
    result.differences = compare_groups(result.moments, result.viewers)
    return result


#: With `all_faces`, a person counts as a viewer when seen in this share of the analysed frames.
ALL_FACES_MIN_SHARE = 0.25


def _viewer_signals(viewer: Viewer, table: FaceTable, settings: ReactionSettings,
                    all_faces: bool, max_gap_s: float) -> list[ViewerSignals]:
    """The viewer's signals (with `all_faces`, one per persistent person); none if their
    face was never seen."""
    offset = viewer.offset if viewer.offset is not None else 0.0
    if not all_faces:
        found = [viewer_signals(table, offset, viewer.name, settings, max_gap_s=max_gap_s)]
    else:
        n_frames = table.rows["frame"].nunique()
        people = [rows for rows in persons(table.rows)
                  if len(rows) >= ALL_FACES_MIN_SHARE * n_frames]
        found = [viewer_signals(table, offset, f"{viewer.name}#{k}", settings, rows, max_gap_s)
                 for k, rows in enumerate(people, 1)]
    return [replace(s, groups=dict(viewer.groups)) for s in found
            if bool((s.table["presence"] > 0).any())]


def _partial_problem(table: FaceTable) -> str:
    decoded, expected = table.meta.get("frames_decoded"), table.meta.get("frames_expected")
    if decoded is None:
        return table.partial
    of = f" of about {expected}" if expected else ""
    return f"decoded {decoded}{of} frames; {table.partial}"


def snap_moments(moments: list[Moment], content: str | Path) -> list[Moment]:
    """Moments with their bounds on the episode's frame grid (so the trailer, cut at frames,
    lasts exactly the sum of the moments) and clipped to its length."""
    from emotrace.highlights.trailer import snap_segments
    from emotrace.media.decode import probe

    info = probe(content)
    out = []
    for m in moments:
        cut = snap_segments([(m.start, m.end)], info.fps, info.duration)
        if cut:
            out.append(replace(m, start=round(cut[0][0], 6), end=round(cut[0][1], 6)))
    return out


def write_highlights(result: HighlightsResult, outdir: str | Path,
                     content: str | Path | None = None, thumbnails: bool = True,
                     embed_limit_mb: float = EMBED_LIMIT_MB) -> list[Path]:
    """moments.csv/.json, signals.csv, aggregate.csv, report.html, (with groups) groups.csv
    and (with content) trailer.mp4 in `outdir`, renamed into place together once every one is
    written (a failure or an interruption leaves an earlier run's files as they were). Returns
    the paths. report.html plays the content: embedded if smaller than `embed_limit_mb`, else
    from its path relative to `outdir` (`highlights.report_data`).

    With content, the files hold the moments snapped to its frame grid (`snap_moments`);
    `result` itself is left as it is, so it can be written again (elsewhere, or with other
    content) and still says what `find_highlights` found.
    """
    from emotrace.highlights.report import write_report
    from emotrace.highlights.trailer import cut_trailer

    outdir = Path(outdir)
    if content is not None and result.moments:
        result = replace(result, moments=snap_moments(result.moments, content))
    doc = {
        "moments": [m.to_dict() for m in result.moments],
        "viewers": [{"name": v.name, "path": v.path, "offset": v.offset,
                     "seconds_present": v.seconds_present, "tracks": list(v.track_ids),
                     "baseline": {k: {"median": m, "scale": s} for k, (m, s) in v.baseline.items()},
                     "valence_arousal": v.va_source, "groups": v.groups,
                     "quality": v.quality.to_dict() if v.quality else None}
                    for v in result.viewers],
        "failures": [{"path": p, "problem": e} for p, e in result.failures],
        "partial": [{"path": p, "problem": e} for p, e in result.partial],
        "settings_differ": [{"path": p, "problem": e} for p, e in result.notes],
        "excluded": [{"viewer": n, "problem": e} for n, e in result.excluded],
        "groups": [{"column": g.column, "value": g.value, "viewers": list(g.viewers),
                    "moments": [m.to_dict() for m in g.moments]} for g in result.groups],
        "group_differences": [d.to_dict() for d in result.differences],
        "settings": result.settings,
    }
    with FileSet() as files:
        write_csv(result.moments_table(), outdir / "moments.csv", put=files.write)
        trailer_segments = None
        if content is not None and result.moments:
            trailer_segments = cut_trailer(content, [(m.start, m.end) for m in result.moments],
                                           outdir / "trailer.mp4", put=files.write)
            doc["trailer"] = {"path": "trailer.mp4",
                              "segments": [{"start": a, "end": b} for a, b in trailer_segments],
                              "duration": sum(b - a for a, b in trailer_segments)}
        write_json(doc, outdir / "moments.json", put=files.write)
        write_csv(result.signals_table(), outdir / "signals.csv", put=files.write)
        write_csv(result.aggregate.reset_index(), outdir / "aggregate.csv", put=files.write)
        if result.groups:
            write_csv(group_curves_table(result.groups), outdir / "groups.csv", put=files.write)
        write_report(result, outdir / "report.html", content, thumbnails, trailer_segments,
                     embed_limit_mb, put=files.write)
    return files.landed
