"""Options shared by several commands, and collecting input files from folders.

Only typer and the model registry (no OpenCV, ONNX Runtime, PyAV, pandas) are imported here:
`emotrace --help` must stay fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from emotrace.pipeline import Analyzer

ModelOpt = Annotated[str, typer.Option("--model", "-m",
                                       help="Expression model (see `emotrace models`).")]
ThresholdOpt = Annotated[float, typer.Option("--threshold", help="Minimum face detection score.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
ConfigOpt = Annotated[Path | None, typer.Option(help="YAML config (see configs/).")]
OverridesArg = Annotated[list[str] | None, typer.Argument(help="key.sub=value overrides.")]


def analyzer(model: str, **settings: Any) -> Analyzer:
    """The Analyzer for `model`; an unknown model or a bad setting is the error policy's."""
    from emotrace.pipeline import Analyzer

    return Analyzer(classifier=model, **settings)


def collect(inputs: list[Path], suffixes: set[str] | frozenset[str]) -> list[Path]:
    """Files as given, and matching files under any folder given (sorted, recursive)."""
    out: list[Path] = []
    for item in inputs:
        if item.is_dir():
            out.extend(sorted(p for p in item.rglob("*") if p.suffix.lower() in suffixes))
        else:
            out.append(item)
    return out
