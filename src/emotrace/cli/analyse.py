"""`emotrace images` and `emotrace video`: a table of every face, and a timeline per video."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emotrace.cli.errors import Failures, fail
from emotrace.cli.options import (
    NON_NEGATIVE,
    OUTPUT_FILE,
    OUTPUT_FOLDER,
    POSITIVE,
    Bounds,
    MaxMegapixelsOpt,
    ModelOpt,
    QuietOpt,
    ThresholdOpt,
    analyzer,
    collect,
)
from emotrace.errors import InputError, path_text
from emotrace.models import DEFAULT_CLASSIFIER

MinFaceOpt = Annotated[int, typer.Option(help="Ignore faces smaller than this (pixels)."),
                       NON_NEGATIVE]


def images_cmd(
    inputs: Annotated[list[Path], typer.Argument(help="Image files and/or folders.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV or .parquet to write."),
                      OUTPUT_FILE] = Path("predictions.csv"),
    submission: Annotated[bool, typer.Option(
        help="Write `image_path,emotion`, one row per image (most confident face; 9-class "
             "names).")] = False,
    cropped: Annotated[bool, typer.Option(
        help="Each image is already a cropped face: skip detection.")] = False,
    model: ModelOpt = DEFAULT_CLASSIFIER,
    min_face_size: MinFaceOpt = 0,
    threshold: ThresholdOpt = 0.6,
    max_megapixels: MaxMegapixelsOpt = 50.0,
    quiet: QuietOpt = False,
) -> None:
    """Emotions of every face in images: one row per face (per image with --submission)."""
    import pandas as pd

    from emotrace.media.images import IMAGE_SUFFIXES
    from emotrace.outputs.files import write_csv, write_parquet
    from emotrace.outputs.submission import submission_rows, unlabelled_note
    from emotrace.results import ImageAnalysis

    paths = collect(inputs, IMAGE_SUFFIXES)
    if not paths:
        fail(f"no images found in {', '.join(map(str, inputs))}", 1)
    images = analyzer(model, min_face_size=min_face_size, score_threshold=threshold,
                      max_image_pixels=round(max_megapixels * 1e6))
    failures = Failures()
    items: list[ImageAnalysis | InputError] = []
    for item in images.analyze_images(paths, cropped=cropped, progress=not quiet):
        items.append(item)
        if isinstance(item, InputError):
            failures.add(item)
    results = [r for r in items if isinstance(r, ImageAnalysis)]
    if not results:  # nothing to write: an earlier file of that name stays as it was
        fail(f"none of the {len(paths)} images could be read; {output} not written", 1)
    if submission:
        df = submission_rows(items)
        if note := unlabelled_note(df):
            typer.echo(f"submission: {note}", err=True)
    else:
        df = pd.concat([r.to_pandas() for r in results], ignore_index=True)
    writer = write_parquet if output.suffix.lower() == ".parquet" else write_csv
    writer(df, output)
    faces = sum(len(r.frame) for r in results)
    typer.echo(f"{len(results)} images, {faces} faces -> {output}"
               + (f"; {failures.count} failed" if failures.count else ""), err=True)
    failures.exit_if_any()


def video_cmd(
    inputs: Annotated[list[Path], typer.Argument(help="Video files and/or folders.")],
    outdir: Annotated[Path, typer.Option("--output", "-o", help="Folder for the results."),
                      OUTPUT_FOLDER] = Path("emotrace-out"),
    fps: Annotated[float | None, typer.Option(
        help="Analyse this many frames per second (default: every frame)."), POSITIVE] = None,
    annotate: Annotated[bool, typer.Option(help="Also write an annotated MP4.")] = False,
    plot: Annotated[bool, typer.Option(help="Also write a timeline PNG.")] = False,
    smooth: Annotated[str, typer.Option(
        help="Smooth each track over time: none, ema, gaussian or viterbi.")] = "none",
    smooth_param: Annotated[float | None, typer.Option(
        help="Half-life (ema, s), sigma (gaussian, s) or switch cost (viterbi, nats); default "
             "0.5, 0.5, 4."), NON_NEGATIVE] = None,
    model: ModelOpt = DEFAULT_CLASSIFIER,
    detect_size: Annotated[int, typer.Option(
        help="Longer side (px) at which faces are detected; 0 = full size."),
        Bounds(ge=32, zero="full size")] = 320,
    min_face_size: MinFaceOpt = 0,
    threshold: ThresholdOpt = 0.6,
    quiet: QuietOpt = False,
) -> None:
    """Per-frame, per-face emotion timeline of each video: CSV + Parquet, track summary, plots."""
    from emotrace.media.decode import VIDEO_SUFFIXES
    from emotrace.outputs.video_outputs import analyze_video_to_dir
    from emotrace.smooth import check_smoothing

    check_smoothing(smooth, smooth_param)
    paths = collect(inputs, VIDEO_SUFFIXES)
    if not paths:
        fail(f"no videos found in {', '.join(map(str, inputs))}", 1)
    videos = analyzer(model, min_face_size=min_face_size, score_threshold=threshold,
                      video_detect_size=detect_size or None)
    failures = Failures()
    stems: set[str] = set()
    for path in paths:
        stem = path_text(path.stem)  # as the outputs will be named
        while stem in stems:  # two inputs with one name: keep both
            stem += "_"
        stems.add(stem)
        with failures.per_file():
            done = analyze_video_to_dir(videos, path, outdir, stem, fps=fps, annotate=annotate,
                                        plot=plot, progress=not quiet, smooth=smooth,
                                        smooth_param=smooth_param)
            typer.echo(done.line, err=True)
            if done.partial:
                failures.partial(path, done.partial)
    failures.exit_if_any(len(paths), "videos")
