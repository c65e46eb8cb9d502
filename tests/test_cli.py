"""The command line as a package: one error policy, `eval` subcommands (and the older form),
lazy imports, and nothing half-written when an output fails."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from emotrace.cli import app
from emotrace.cli.errors import Failures, error_policy, fail
from emotrace.errors import InputError, ModelError

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("cv2", "onnxruntime", "av", "pandas", "matplotlib", "torch")


def _errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


# -- the error policy ----------------------------------------------------------------------
@pytest.mark.parametrize(("exc", "code", "line"), [
    (ModelError("unknown model 'x'"), 2, "error: unknown model 'x'"),
    (ValueError("threshold must be in (0, 1]"), 2, "error: threshold must be in (0, 1]"),
    (RuntimeError("needs Ray: pip install 'emotrace[ray]'"), 2,
     "error: needs Ray: pip install 'emotrace[ray]'"),
    (PermissionError(13, "Permission denied", "/out/a.csv"), 1,
     "error: /out/a.csv: Permission denied"),
])
def test_error_policy_turns_each_kind_into_one_line(exc, code, line):
    def command() -> None:
        raise exc

    one = typer.Typer()
    one.command()(error_policy(command))
    run = CliRunner().invoke(one, [])
    assert run.exit_code == code
    assert run.output.splitlines() == [line]


def test_fail_and_per_file_failures():
    def command() -> None:
        failures = Failures()
        for name in ("a.mp4", "b.mp4", "c.mp4"):
            with failures.per_file():
                if name != "b.mp4":
                    raise InputError(name, "truncated")
                typer.echo(f"{name} ok")
        failures.exit_if_any(3, "videos")

    one = typer.Typer()
    one.command()(error_policy(command))
    run = CliRunner().invoke(one, [])
    assert run.exit_code == 1
    assert run.output.splitlines() == ["error: a.mp4: truncated", "b.mp4 ok",
                                       "error: c.mp4: truncated", "2 of 3 videos failed"]

    def stops() -> None:
        fail("no videos found in x", 1)

    two = typer.Typer()
    two.command()(error_policy(stops))
    run = CliRunner().invoke(two, [])
    assert (run.exit_code, run.output) == (1, "error: no videos found in x\n")


def test_output_that_cannot_be_written_is_one_line(tmp_path, pyfeat_dir):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / "predictions.csv"
    run = CliRunner().invoke(app, ["images", str(pyfeat_dir / "single_face.jpg"), "-o", str(out),
                                   "-q"])
    assert run.exit_code == 2, run.output  # refused before any work (issue 15, problem 6)
    assert _errors(run.output) == [f"error: --output {out}: {blocker} is a file, not a folder"]
    assert "Traceback" not in run.output


# -- eval ----------------------------------------------------------------------------------
@pytest.mark.needs_shared
@pytest.mark.slow
def test_eval_classifier_and_its_older_form_agree(tmp_path):
    args = ["emotrace-fer2013", "--data", "fer2013-private", "--limit", "50"]
    new = CliRunner().invoke(app, ["eval", "classifier", *args, "-o", str(tmp_path / "a")])
    old = CliRunner().invoke(app, ["eval", *args, "-o", str(tmp_path / "b")])
    assert new.exit_code == 0, new.output
    assert old.exit_code == 0, old.output
    assert "accuracy" in new.stdout and new.stdout == old.stdout
    a, b = (json.loads(next((tmp_path / d).glob("*.json")).read_text()) for d in "ab")
    assert a["accuracy"] == b["accuracy"] and a["n"] == 50
    options_first = CliRunner().invoke(app, ["eval", "--limit", "50", "--data",
                                             "fer2013-private", "emotrace-fer2013", "-o",
                                             str(tmp_path / "c")])
    assert options_first.exit_code == 0, options_first.output
    assert options_first.stdout == new.stdout


@pytest.mark.needs_shared
@pytest.mark.slow
def test_eval_embedding_subcommand(tmp_path, monkeypatch):
    import functools

    import emotrace.evaluation.embedding as embedding

    # the kNN and probe reference: 300 FER+ train faces instead of 6000, to keep this fast
    monkeypatch.setattr(embedding, "evaluate_embedding",
                        functools.partial(embedding.evaluate_embedding, train_sample=300))
    run = CliRunner().invoke(app, ["eval", "embedding", "emotrace-ferplus8", "--data",
                                   "ferplus-test", "--limit", "50", "-o", str(tmp_path)])
    assert run.exit_code == 0, run.output
    assert "same-vs-different ROC-AUC" in run.stdout


@pytest.mark.parametrize("words", [["nope"], ["classifier", "nope"], ["embedding", "nope"]])
def test_eval_unknown_model_is_one_line_exit_2(words, tmp_path):
    run = CliRunner().invoke(app, ["eval", *words, "--limit", "50", "-o", str(tmp_path)])
    assert run.exit_code == 2
    assert run.output.count("\n") == 1 and _errors(run.output), run.output
    assert "nope" in run.output


def test_eval_help_lists_both_subcommands_and_the_short_form():
    run = CliRunner().invoke(app, ["eval", "--help"])
    assert run.exit_code == 0
    assert "classifier" in run.output and "embedding" in run.output
    assert "eval MODEL" in run.output


def test_highlights_takes_recordings_without_a_flag(tmp_path):
    run = CliRunner().invoke(app, ["highlights", "--reactions", str(tmp_path / "a.mp4")])
    assert run.exit_code == 2 and "--reactions" in run.output  # no such option any more


# -- lazy imports --------------------------------------------------------------------------
def test_help_imports_no_heavy_library():
    script = (
        "import sys\n"
        "import emotrace, emotrace.cli\n"
        f"heavy = {HEAVY!r}\n"
        "loaded = {'import': sorted(m for m in heavy if m in sys.modules)}\n"
        "from typer.testing import CliRunner\n"
        "from emotrace.cli import app\n"
        "for words in (['--help'], ['video', '--help'], ['images', '--help'],\n"
        "              ['eval', '--help'], ['train', 'classifier', '--help']):\n"
        "    assert CliRunner().invoke(app, words).exit_code == 0, words\n"
        "    loaded[' '.join(words)] = sorted(m for m in heavy if m in sys.modules)\n"
        "print(loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    loaded = eval(out)  # a dict literal printed by the script above
    assert all(not mods for mods in loaded.values()), loaded


def test_python_m_emotrace_cli_runs():
    run = subprocess.run([sys.executable, "-m", "emotrace.cli", "--help"], capture_output=True,
                         text=True, cwd=ROOT)
    assert run.returncode == 0 and "video" in run.stdout


# -- video outputs (bug 9) -----------------------------------------------------------------
def test_failed_table_write_leaves_no_partial_video(tmp_path, monkeypatch, pyfeat_dir):
    import emotrace.outputs.video_outputs as video_outputs

    def no_space(df, path, **kwargs):  # put=: the FileSet the outputs land in
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(video_outputs, "write_csv", no_space)
    out = tmp_path / "out"
    run = CliRunner().invoke(app, ["video", str(pyfeat_dir / "single_face.mp4"), "-o", str(out),
                                   "--annotate", "--fps", "5", "-q"])
    assert run.exit_code == 1
    assert _errors(run.output) == [f"error: {out / 'single_face.faces.csv'}: "
                                   "No space left on device"]
    assert "Traceback" not in run.output
    assert sorted(p.name for p in out.iterdir()) == []  # no .part.mp4, no half the outputs
