"""`emotrace eval classifier|embedding MODEL`: scores of a classifier or of its embedding.

`emotrace eval MODEL ...`, the older form, still means `eval classifier MODEL ...` (EvalGroup).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from emotrace.cli.options import AT_LEAST_ONE, OUTPUT_FOLDER

DataOpt = Annotated[str, typer.Option(
    help="ferplus-test | ferplus-valid | fer2013-private | a class folder | a CSV | a folder "
         "of photos (index.csv of file,label, or class folders).")]
EvalOutdirOpt = Annotated[Path, typer.Option(
    "--output", "-o", help="Folder for the JSON report and the PNG figures."), OUTPUT_FOLDER]
LimitOpt = Annotated[int | None, typer.Option(
    help="Evaluate a fixed random subset of this size."), AT_LEAST_ONE]


class EvalGroup(TyperGroup):
    """The `eval` group: a first word that is neither a subcommand nor --help is the model of
    `eval classifier`, so `emotrace eval MODEL --data X` keeps working."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        # ctx: click's Context, or typer's own copy of it (typer >= 0.2x vendors click)
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["classifier", *args]
        return super().parse_args(ctx, args)


def classifier_cmd(
    model: Annotated[str, typer.Argument(
        help="Registry name or an ONNX file from `emotrace train`.")],
    data: DataOpt = "ferplus-test",
    outdir: EvalOutdirOpt = Path("eval"),
    limit: LimitOpt = None,
    against: Annotated[str | None, typer.Option(
        help="A second classifier to compare on the same faces: accuracy difference with a "
             "bootstrap 95% interval and an exact McNemar test.", show_default=False)] = None,
    detect: Annotated[bool | None, typer.Option(
        "--detect/--no-detect",
        help="Run the full pipeline on uncropped photos (detect, crop, classify the largest "
             "face; no face found = wrong) instead of taking each image as a face crop. "
             "Default: automatic (a folder with index.csv, or images over 96 px).",
        show_default=False)] = None,
) -> None:
    """Accuracy, macro-F1, per-class recall, confusion matrix and ECE of a classifier."""
    from emotrace.evaluation import realfaces
    from emotrace.evaluation.classifier import evaluate, format_report

    folder = Path(data).is_dir()
    if detect and not folder:
        raise typer.BadParameter("--detect needs --data to be a folder of photos",
                                 param_hint="--detect")
    if folder and (detect if detect is not None else realfaces.looks_uncropped(data)):
        if limit is not None:
            raise typer.BadParameter("--limit applies to face crops, not to --detect photos",
                                     param_hint="--limit")
        photo_report = realfaces.evaluate_photos(model, data, outdir, against)
        typer.echo(realfaces.format_photo_report(photo_report))
        typer.echo(f"-> {outdir}/", err=True)
        return
    report = evaluate(model, data, outdir, limit, against=against)
    typer.echo(format_report(report))
    typer.echo(f"-> {outdir}/", err=True)


def embedding_cmd(
    model: Annotated[str, typer.Argument(
        help="A registry model with an embedding output, or a head .onnx from `emotrace train "
             "embedding`.")],
    data: DataOpt = "ferplus-test",
    outdir: EvalOutdirOpt = Path("eval"),
    limit: LimitOpt = None,
    videos: Annotated[Path | None, typer.Option(
        help="Also the label-flip rate between adjacent frames on the videos in this folder.",
        show_default=False)] = None,
) -> None:
    """Same- vs opposite-emotion cosine, ROC-AUC, kNN and probe accuracy of an embedding."""
    from emotrace.evaluation.embedding import evaluate_embedding, format_embedding_report

    report = evaluate_embedding(model, data, outdir, limit, videos=videos)
    typer.echo(format_embedding_report(report))
    typer.echo(f"-> {outdir}/", err=True)
