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

from emotrace.errors import InputError
from emotrace.highlights.moments import (
    Moment,
    MomentSettings,
    aggregate,
    moments_table,
    pick_moments,
)
from emotrace.highlights.reactions import ReactionSettings, ViewerSignals, viewer_signals
from emotrace.outputs.files import FileSet, write_csv, write_json
from emotrace.pipeline import Analyzer


@dataclass
class HighlightsResult:
    viewers: list[ViewerSignals]
    aggregate: pd.DataFrame
    moments: list[Moment]
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, problem)
    settings: dict = field(default_factory=dict)
    partial: list[tuple[str, str]] = field(default_factory=list)  # (path, what is missing)

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
    reactions: Sequence[str | Path],
    offsets: Sequence[float] | None = None,
    analyzer: Analyzer | None = None,
    fps: float | None = 10.0,
    reaction_settings: ReactionSettings | None = None,
    moment_settings: MomentSettings | None = None,
    duration: float | None = None,
    progress: bool = True,
) -> HighlightsResult:
    """Analyse every reaction recording and pick the moments (see module doc).

    offsets: episode time (seconds) at which each recording starts (recording time t is
    episode time t + offset); default 0 for all. duration: the episode's length, to clip
    moments (the content's duration when one is given).
    """
    offsets = list(offsets) if offsets is not None else [0.0] * len(reactions)
    if len(offsets) != len(reactions):
        raise ValueError(f"{len(offsets)} offsets for {len(reactions)} recordings")
    analyzer = analyzer or Analyzer()
    reaction_settings = reaction_settings or ReactionSettings()
    moment_settings = moment_settings or MomentSettings()
    viewers, failures, partial = [], [], []
    names = _unique_names([Path(p) for p in reactions])
    for path, offset, name in zip(reactions, offsets, names, strict=True):
        try:
            analysis = analyzer.analyze_video(path, fps=fps, progress=progress)
        except InputError as exc:
            failures.append((str(path), exc.problem))
            continue
        signals = viewer_signals(analysis, offset, name, reaction_settings)
        if signals.seconds_present == 0:
            failures.append((str(path), "no face of a viewer was found in the recording"))
            continue
        if analysis.partial:
            partial.append((str(path), analysis.partial_problem()))
        viewers.append(signals)
    if not viewers:
        return HighlightsResult([], pd.DataFrame(), [], failures, partial=partial)
    agg = aggregate(viewers, moment_settings.smooth_s)
    if duration is not None:
        agg = agg[agg["time"] < duration]
    moments = pick_moments(agg, viewers, moment_settings, duration)
    settings = {"fps": fps, "reaction": vars(reaction_settings), "moments": vars(moment_settings),
                "model": analyzer.classifier.card.name if analyzer.classifier.card else None}
    return HighlightsResult(viewers, agg, moments, failures, settings, partial)


def _unique_names(paths: list[Path]) -> list[str]:
    names, seen = [], set()
    for p in paths:
        name = p.stem
        while name in seen:
            name += "_"
        seen.add(name)
        names.append(name)
    return names


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
                     content: str | Path | None = None, thumbnails: bool = True) -> list[Path]:
    """moments.csv/.json, signals.csv, aggregate.csv, report.html and (with content)
    trailer.mp4 in `outdir`, renamed into place together once every one is written (a
    failure or an interruption leaves an earlier run's files as they were). Returns the paths.

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
                     "valence_arousal": v.va_source} for v in result.viewers],
        "failures": [{"path": p, "problem": e} for p, e in result.failures],
        "partial": [{"path": p, "problem": e} for p, e in result.partial],
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
        write_report(result, outdir / "report.html", content, thumbnails, trailer_segments,
                     put=files.write)
    return files.landed
