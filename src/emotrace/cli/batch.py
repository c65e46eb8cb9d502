"""`emotrace batch`: many recordings, one task each, resumably, here or on a Ray cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emotrace.cli.errors import Failures
from emotrace.cli.options import AT_LEAST_ONE, OUTPUT_FOLDER, POSITIVE, ModelOpt, QuietOpt
from emotrace.models import DEFAULT_CLASSIFIER


def batch_cmd(
    inputs: Annotated[list[Path], typer.Argument(
        help="Folders of recordings, text files listing one path per line, or video files.")],
    outdir: Annotated[Path, typer.Option(
        "--output", "-o", help="Folder for faces/*.parquet and manifest.csv."), OUTPUT_FOLDER]
    = Path("batch-out"),
    engine: Annotated[str, typer.Option(help="local (a process pool) or ray.")] = "local",
    ray_address: Annotated[str | None, typer.Option(
        help="Address of an existing Ray cluster (default: start Ray here).")] = None,
    workers: Annotated[int | None, typer.Option(
        help="Parallel tasks (default: the cores here; all the cluster offers with Ray)."),
        AT_LEAST_ONE] = None,
    fps: Annotated[float | None, typer.Option(
        help="Analyse this many frames per second (default: every frame)."), POSITIVE] = None,
    retry_failed: Annotated[bool, typer.Option(
        help="Retry recordings that failed in an earlier run.")] = True,
    model: ModelOpt = DEFAULT_CLASSIFIER,
    quiet: QuietOpt = False,
) -> None:
    """Analyse many recordings, one task each, resumably: on this machine or a Ray cluster."""
    from emotrace.batch import run_batch

    failures = Failures()

    def report(record: dict) -> None:
        if record["status"] == "failed":
            failures.add(f"{record['path']}: {record['reason']}")
        elif record["status"] == "partial":
            failures.partial(record["path"], record["reason"])

    summary = run_batch(inputs, outdir, engine, workers, ray_address, fps, model,
                        retry_failed, progress=not quiet, on_record=report)
    typer.echo(summary.line(), err=True)
    failures.exit_if_any()
