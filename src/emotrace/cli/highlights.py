"""`emotrace highlights`: the moments where viewers of an episode reacted most."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emotrace.cli.errors import Failures, fail
from emotrace.cli.options import (
    AT_LEAST_ONE,
    NON_NEGATIVE,
    OUTPUT_FOLDER,
    POSITIVE,
    ModelOpt,
    QuietOpt,
    analyzer,
)
from emotrace.models import DEFAULT_CLASSIFIER


def highlights_cmd(
    reactions: Annotated[list[Path], typer.Argument(
        help="Viewer reaction recordings (one video per viewer).", show_default=False)],
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
    model: ModelOpt = DEFAULT_CLASSIFIER,
    quiet: QuietOpt = False,
) -> None:
    """Moments where viewers reacted most: moments.csv/.json, report.html, trailer.mp4."""
    from emotrace.highlights import find_highlights, parse_offsets, write_highlights
    from emotrace.highlights.moments import MomentSettings
    from emotrace.media.decode import probe

    offset_values = parse_offsets(offsets, len(reactions))
    settings = MomentSettings(top=top, min_gap_s=min_gap, pad_s=pad)
    duration = probe(content).duration or None if content is not None else None
    result = find_highlights(reactions, offset_values, analyzer(model), fps=fps,
                             moment_settings=settings, duration=duration, progress=not quiet)
    failures = Failures()
    for path, problem in result.failures:
        failures.add(f"{path}: {problem}")
    for path, problem in result.partial:
        failures.partial(path, problem)
    if not result.viewers:
        fail("no recording could be used; nothing written", 1)
    written = write_highlights(result, outdir, content)
    typer.echo(result.moments_table().to_string(index=False, float_format=lambda x: f"{x:.2f}")
               if result.moments else "no moment stood out above the viewers' baselines")
    typer.echo(f"{len(result.viewers)} viewers, {len(result.moments)} moments -> "
               f"{', '.join(str(p) for p in written)}", err=True)
    failures.exit_if_any(len(reactions), "recordings")
