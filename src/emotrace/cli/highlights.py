"""`emotrace highlights`: the moments where viewers of an episode reacted most."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from emotrace.cli.errors import Failures, fail
from emotrace.cli.options import (
    AT_LEAST_ONE,
    NON_NEGATIVE,
    OUTPUT_FOLDER,
    POSITIVE,
    ModelOpt,
    QuietOpt,
)
from emotrace.models import DEFAULT_CLASSIFIER

if TYPE_CHECKING:
    from emotrace.highlights import HighlightsResult


def highlights_cmd(
    reactions: Annotated[list[Path] | None, typer.Argument(
        help="Viewer reaction recordings (one video per viewer), or the face tables (.parquet) "
             "that emotrace video / batch wrote for them.", show_default=False)] = None,
    viewers: Annotated[Path | None, typer.Option(
        help="A CSV of the viewers: recording (video or table), optional viewer (name) and "
             "offset, further columns are groups.")] = None,
    outdir: Annotated[Path, typer.Option(
        "--output", "-o", help="Folder for moments, report and trailer."), OUTPUT_FOLDER]
    = Path("highlights"),
    offsets: Annotated[str | None, typer.Option(
        help="Episode time (s) at which each recording starts, comma-separated, e.g. "
             "0,1.5,-2.")] = None,
    content: Annotated[Path | None, typer.Option(
        help="The episode video: enables trailer.mp4 and episode stills.")] = None,
    top: Annotated[int, typer.Option(help="Most moments to keep."), AT_LEAST_ONE] = 10,
    min_gap: Annotated[float, typer.Option(
        help="Least distance between two moments' peaks (s)."), NON_NEGATIVE] = 5.0,
    pad: Annotated[float, typer.Option(help="Seconds added before and after each moment."),
                   NON_NEGATIVE] = 1.0,
    fps: Annotated[float, typer.Option(help="Frames per second analysed in each recording."),
                   POSITIVE] = 10.0,
    workers: Annotated[int | None, typer.Option(
        help="Recordings analysed at the same time (default: the cores here; with Ray, all the "
             "cluster offers)."), AT_LEAST_ONE] = None,
    engine: Annotated[str, typer.Option(help="local (a process pool) or ray.")] = "local",
    ray_address: Annotated[str | None, typer.Option(
        help="Address of an existing Ray cluster (default: start Ray here).")] = None,
    all_faces: Annotated[bool, typer.Option(
        help="Every persistent face in a recording is a viewer (a group watching "
             "together).")] = False,
    min_quality: Annotated[str | None, typer.Option(
        help="Leave out recordings graded below this: poor, fair or good (every viewer's "
             "grade and its reasons are in moments.json and the report).")] = None,
    embed_content_mb: Annotated[float, typer.Option(
        help="report.html embeds an episode smaller than this (MB) and plays a larger one "
             "from its path relative to the output folder; 0: never embed."),
        NON_NEGATIVE] = 20.0,
    model: ModelOpt = DEFAULT_CLASSIFIER,
    quiet: QuietOpt = False,
) -> None:
    """Moments where viewers reacted most: moments.csv/.json, report.html, trailer.mp4.

    Recordings are analysed in parallel into OUTPUT/faces/ (resumable: a second run with other
    moment settings reads those tables instead of analysing again)."""
    from emotrace.highlights import (
        BatchEngine,
        find_highlights,
        parse_offsets,
        read_viewers_csv,
        write_highlights,
    )
    from emotrace.highlights.inputs import viewers_from_paths
    from emotrace.highlights.moments import MomentSettings
    from emotrace.highlights.quality import GRADES
    from emotrace.media.decode import probe

    if min_quality is not None and min_quality not in GRADES:
        fail(f"--min-quality: must be one of {', '.join(GRADES)}, got {min_quality!r}")
    if bool(reactions) == (viewers is not None):
        fail("give the recordings (or their tables), or --viewers CSV, not both" if reactions
             else "no recording given: name the recordings or give --viewers CSV")
    people = (read_viewers_csv(viewers) if viewers is not None
              else viewers_from_paths(reactions or []))
    offset_values = parse_offsets(offsets, len(people)) if offsets else None
    settings = MomentSettings(top=top, min_gap_s=min_gap, pad_s=pad)
    duration = probe(content).duration or None if content is not None else None
    batch = BatchEngine(outdir, engine, workers, ray_address)
    result = find_highlights(people, offset_values, fps=fps, moment_settings=settings,
                             duration=duration, progress=not quiet, engine=batch, model=model,
                             all_faces=all_faces, min_quality=min_quality)
    failures = _summary(result, min_quality)
    if not result.viewers:
        fail("no recording could be used; no highlights written", 1)
    written = write_highlights(result, outdir, content, embed_limit_mb=embed_content_mb)
    typer.echo(result.moments_table().to_string(index=False, float_format=lambda x: f"{x:.2f}")
               if result.moments else "no moment stood out above the viewers' baselines")
    typer.echo(f"{len(result.viewers)} viewers, {len(result.moments)} moments -> "
               f"{', '.join(str(p) for p in written)}", err=True)
    failures.exit_if_any(len(people), "recordings")


def _summary(result: HighlightsResult, min_quality: str | None) -> Failures:
    """The per-recording lines on stderr (failed, partial, settings, quality, left out)."""
    failures = Failures()
    for path, problem in result.failures:
        failures.add(f"{path}: {problem}")
    for path, problem in result.partial:
        failures.partial(path, problem)
    for path, problem in result.notes:
        typer.echo(f"note: {path}: settings differ: {problem}", err=True)
    for v in result.viewers:
        if v.quality and v.quality.grade != "good":
            reasons = "; ".join(v.quality.reasons)
            typer.echo(f"quality: {v.name}: {v.quality.grade} ({reasons})", err=True)
    for name, problem in result.excluded:
        typer.echo(f"left out: {name}: {problem} (below --min-quality {min_quality})", err=True)
    return failures
