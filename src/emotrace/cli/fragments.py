"""`emotrace index` and `emotrace search`: a vector database of face-track fragments."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emotrace.cli.errors import Failures
from emotrace.cli.options import (
    AT_LEAST_ONE,
    NON_NEGATIVE,
    OUTPUT_FOLDER,
    POSITIVE,
    MaxMegapixelsOpt,
    QuietOpt,
    collect,
)


def index_cmd(
    videos: Annotated[list[Path], typer.Argument(help="Video files and/or folders.")],
    db: Annotated[Path, typer.Option(help="Index folder (created if missing)."), OUTPUT_FOLDER],
    window: Annotated[float | None, typer.Option(
        help="Fragment length (s); default 1, or a clip pooler's own window.",
        show_default=False), POSITIVE] = None,
    embedder: Annotated[str, typer.Option(
        help="Registry model with an embedding output, a model or head .onnx from `emotrace "
             "train embedding`, or a clip pooler clip.onnx from `emotrace train clip`.")]
    = "emotrace-ferplus8",
    fps: Annotated[float, typer.Option(help="Frames per second analysed."), POSITIVE] = 10.0,
    quiet: QuietOpt = False,
) -> None:
    """Store window embeddings of every face track (video, track, time) in a vector database."""
    from emotrace.fragments import index_videos
    from emotrace.media.decode import VIDEO_SUFFIXES

    paths = collect(videos, VIDEO_SUFFIXES)
    added, problems = index_videos(paths, db, embedder, window, fps, progress=not quiet)
    failures = Failures()
    for problem in problems:
        failures.add(problem)
    typer.echo(f"{len(paths) - failures.count} videos, {added} fragments -> {db}", err=True)
    failures.exit_if_any()


def search_cmd(
    db: Annotated[Path, typer.Option(help="Index folder made by `emotrace index`.")],
    video: Annotated[Path | None, typer.Option(
        help="Query: a moment of this video (with --at).")] = None,
    at: Annotated[float | None, typer.Option(help="Query moment in --video (s)."),
                  NON_NEGATIVE] = None,
    image: Annotated[Path | None, typer.Option(
        help="Query: the largest face in this image.")] = None,
    k: Annotated[int, typer.Option("-k", help="How many fragments."), AT_LEAST_ONE] = 10,
    max_megapixels: MaxMegapixelsOpt = 50.0,
) -> None:
    """The indexed fragments nearest to a video moment or a face image, with their times."""
    from emotrace.fragments import search

    hits = search(db, video, at, image, k, max_pixels=round(max_megapixels * 1e6))
    typer.echo(hits.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
