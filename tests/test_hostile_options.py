"""Hostile options (issue 15, problems 2, 6 and 7): every numeric option and output path is
checked before any work, and a bad one is one line naming the option, exit 2."""

from __future__ import annotations

import os
import typing
from pathlib import Path
from typing import Annotated

import pytest
from typer.testing import CliRunner

from emotrace.cli import COMMANDS, EVAL_COMMANDS, TRAIN_COMMANDS, app
from emotrace.cli.options import Bounds, Output


@pytest.fixture()
def no_work(monkeypatch):
    """Any model loaded or recording analysed fails the test: the checks come first."""
    import emotrace.batch
    import emotrace.models

    def started(*args, **kwargs):
        raise AssertionError("work started before the options were checked")

    monkeypatch.setattr(emotrace.models, "load", started)
    monkeypatch.setattr(emotrace.batch, "run_batch", started)


def _one_line(run, exit_code: int = 2) -> str:
    assert run.exit_code == exit_code, (run.output, run.exception)
    assert "Traceback" not in run.output
    lines = run.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.output
    return lines[0]


# -- 7 (and 2): numeric options ------------------------------------------------------------
BAD_NUMBERS = [
    (["video", "x.mp4", "--detect-size", "-5"], "--detect-size", "0 (full size) or >= 32"),
    (["video", "x.mp4", "--detect-size", "16"], "--detect-size", "0 (full size) or >= 32"),
    (["video", "x.mp4", "--fps", "0"], "--fps", "> 0"),
    (["video", "x.mp4", "--fps", "-5"], "--fps", "> 0"),
    (["video", "x.mp4", "--fps", "nan"], "--fps", "> 0, got nan"),
    (["video", "x.mp4", "--fps", "inf"], "--fps", "> 0, got inf"),
    (["video", "x.mp4", "--smooth-param", "-1"], "--smooth-param", ">= 0"),
    (["video", "x.mp4", "--smooth", "ema", "--smooth-param", "0"], "--smooth-param", "> 0"),
    (["video", "x.mp4", "--min-face-size", "-1"], "--min-face-size", ">= 0"),
    (["video", "x.mp4", "--threshold", "1.5"], "--threshold", "> 0 and < 1"),
    (["images", "x.jpg", "--threshold", "nan"], "--threshold", "> 0 and < 1"),
    (["images", "x.jpg", "--max-megapixels", "-1"], "--max-megapixels", "> 0"),
    (["batch", "x", "--fps", "0"], "--fps", "> 0"),
    (["batch", "x", "--workers", "0"], "--workers", ">= 1"),
    (["highlights", "a.mp4", "--fps", "inf"], "--fps", "> 0"),
    (["highlights", "a.mp4", "--top", "0"], "--top", ">= 1"),
    (["highlights", "a.mp4", "--pad", "-1"], "--pad", ">= 0"),
    (["highlights", "a.mp4", "--min-gap", "nan"], "--min-gap", ">= 0"),
    (["serve", "--video-workers", "0"], "--video-workers", ">= 1"),
    (["serve", "--max-image-mb", "-1"], "--max-image-mb", "> 0"),
    (["serve", "--max-video-mb", "0"], "--max-video-mb", "> 0"),
    (["serve", "--port", "70000"], "--port", "<= 65535"),
    (["webcam", "--smoothing", "-1"], "--smoothing", ">= 0"),
    (["webcam", "--max-frames", "0"], "--max-frames", ">= 1"),
    (["demo", "--port", "0"], "--port", ">= 1"),
    (["index", "x.mp4", "--db", "db", "--fps", "0"], "--fps", "> 0"),
    (["index", "x.mp4", "--db", "db", "--window", "-1"], "--window", "> 0"),
    (["search", "--db", "db", "-k", "0"], "-k", ">= 1"),
    (["search", "--db", "db", "--at", "-1"], "--at", ">= 0"),
    (["eval", "classifier", "m", "--limit", "0"], "--limit", ">= 1"),
    (["eval", "embedding", "m", "--limit", "-3"], "--limit", ">= 1"),
    (["probe", "--epochs", "0"], "--epochs", ">= 1"),
]


@pytest.mark.parametrize(("args", "option", "rule"), BAD_NUMBERS,
                         ids=[" ".join(a) for a, _, _ in BAD_NUMBERS])
def test_bad_number_is_one_line_naming_the_option(no_work, tmp_path, monkeypatch, args, option,
                                                  rule):
    monkeypatch.chdir(tmp_path)
    line = _one_line(CliRunner().invoke(app, args))
    assert line.startswith(f"error: {option}") and rule in line, line


def test_highlights_offsets_must_be_finite(no_work):
    line = _one_line(CliRunner().invoke(app, ["highlights", "a.mp4", "b.mp4", "--offsets",
                                              "0,nan"]))
    assert "--offsets must be numbers" in line


def _numeric(hint: object) -> bool:
    base = typing.get_args(hint)[0] if typing.get_origin(hint) is Annotated else hint
    kinds = set(typing.get_args(base)) or {base}
    return bool(kinds & {int, float}) and bool not in kinds


@pytest.mark.parametrize(("name", "command"), COMMANDS + EVAL_COMMANDS + TRAIN_COMMANDS,
                         ids=[n for n, _ in COMMANDS + EVAL_COMMANDS + TRAIN_COMMANDS])
def test_every_numeric_option_declares_its_bounds(name, command):
    hints = typing.get_type_hints(command, include_extras=True)
    for param, hint in hints.items():
        extras = getattr(hint, "__metadata__", ())
        if param != "return" and _numeric(hint):
            assert any(isinstance(x, Bounds) for x in extras), f"{name} --{param}: no Bounds"
        if param in ("output", "outdir"):
            assert any(isinstance(x, Output) for x in extras), f"{name} --{param}: no Output"


def test_detect_size_is_checked_by_the_analyzer_too():
    from emotrace import Analyzer

    with pytest.raises(ValueError, match="video_detect_size must be >= 32"):
        Analyzer(video_detect_size=-5)


@pytest.mark.slow
def test_detect_size_0_is_full_size(tmp_path, pyfeat_dir):
    import pandas as pd

    run = CliRunner().invoke(app, ["video", str(pyfeat_dir / "single_face.mp4"), "-o",
                                   str(tmp_path), "--detect-size", "0", "--fps", "5", "-q"])
    assert run.exit_code == 0, run.output
    df = pd.read_parquet(tmp_path / "single_face.faces.parquet")
    assert len(df) == 12 and (df["face"] == 0).all()  # 2.4 s at 5 per second


# -- 6: output paths -----------------------------------------------------------------------
@pytest.fixture()
def blocker(tmp_path) -> Path:
    path = tmp_path / "a_file"
    path.write_text("x")
    return path


@pytest.mark.parametrize(("command", "make", "problem"), [
    (["images", "x.jpg"], lambda b: b.parent, "is a folder; give a file name"),
    (["images", "x.jpg"], lambda b: b / "predictions.csv", "a_file is a file, not a folder"),
    (["images", "x.jpg"], lambda b: b / "deeper" / "p.csv", "a_file is a file, not a folder"),
    (["video", "x.mp4"], lambda b: b, "is a file, not a folder"),
    (["video", "x.mp4"], lambda b: b / "out", "a_file is a file, not a folder"),
    (["highlights", "x.mp4"], lambda b: b, "is a file, not a folder"),
    (["batch", "x"], lambda b: b, "is a file, not a folder"),
    (["webcam", "--headless"], lambda b: b.parent, "is a folder; give a file name"),
    (["webcam", "--headless"], lambda b: b / "live.mp4", "a_file is a file, not a folder"),
])
def test_output_that_cannot_be_written_is_refused_first(no_work, blocker, command, make,
                                                        problem):
    out = make(blocker)
    line = _one_line(CliRunner().invoke(app, [*command, "-o", str(out)]))
    assert line.startswith(f"error: --output {out}: ") and problem in line, line


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write in any folder")
def test_unwritable_folder_is_refused_first(no_work, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        line = _one_line(CliRunner().invoke(app, ["video", "x.mp4", "-o", str(locked / "o")]))
    finally:
        locked.chmod(0o700)
    assert f"cannot write in {locked}" in line


def test_headless_webcam_without_output_is_refused_first(no_work):
    line = _one_line(CliRunner().invoke(app, ["webcam", "--headless"]))
    assert "--headless needs --output" in line
