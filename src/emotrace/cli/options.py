"""Options shared by several commands, the checks options declare, and collecting inputs.

A numeric option declares its allowed values in its type, `Annotated[float, typer.Option(...),
POSITIVE]`, and an output path what it must be, `Annotated[Path, typer.Option(...),
OUTPUT_FILE]`; the error policy (cli/errors.py) checks every declared option before the command
starts, so a bad value is one line naming the option and exit 2 before any work.

Only typer and the model registry (no OpenCV, ONNX Runtime, PyAV, pandas) are imported here:
`emotrace --help` must stay fast.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from emotrace.pipeline import Analyzer



@dataclass(frozen=True)
class Bounds:
    """The values a numeric option accepts: finite, within the given bounds (and 0 when
    `zero` names what 0 means, e.g. "full size")."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    zero: str = ""

    def problem(self, value: float) -> str | None:
        """Why `value` is not accepted, or None when it is."""
        if self.zero and value == 0:
            return None
        ok = (math.isfinite(value)
              and (self.gt is None or value > self.gt) and (self.ge is None or value >= self.ge)
              and (self.lt is None or value < self.lt) and (self.le is None or value <= self.le))
        if ok:
            return None
        rule = " and ".join(f"{op} {bound:g}" for op, bound in
                            ((">", self.gt), (">=", self.ge), ("<", self.lt), ("<=", self.le))
                            if bound is not None) or "a finite number"
        rule = f"0 ({self.zero}) or {rule}" if self.zero else rule
        return f"must be {rule}, got {value:g}"


POSITIVE = Bounds(gt=0)
NON_NEGATIVE = Bounds(ge=0)
AT_LEAST_ONE = Bounds(ge=1)
SCORE = Bounds(gt=0, lt=1)
PORT = Bounds(ge=1, le=65535)
ANY_PORT = Bounds(ge=0, le=65535)  # 0: any free port (`serve` prints which)


@dataclass(frozen=True)
class Output:
    """An output path: a `file` or a `folder` the command can create or replace."""

    kind: str  # "file" or "folder"

    def problem(self, path: Path) -> str | None:
        """Why `path` cannot be written as this kind of output, or None when it can."""
        if path.is_dir() and self.kind == "file":
            return "is a folder; give a file name"
        if path.exists() and not path.is_dir() and self.kind == "folder":
            return "is a file, not a folder"
        existing = path if path.is_dir() else path.parent
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            return f"{existing} is a file, not a folder"
        if not os.access(existing, os.W_OK | os.X_OK):
            return f"cannot write in {existing} (permission denied)"
        return None


OUTPUT_FILE = Output("file")
OUTPUT_FOLDER = Output("folder")

ModelOpt = Annotated[str, typer.Option("--model", "-m",
                                       help="Expression model (see `emotrace models`).")]
ThresholdOpt = Annotated[float, typer.Option("--threshold", help="Minimum face detection score."),
                         SCORE]
MaxMegapixelsOpt = Annotated[float, typer.Option(
    help="Refuse images larger than this many megapixels (read from the header, before "
         "decoding)."), POSITIVE]
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
