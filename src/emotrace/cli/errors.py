"""The one error policy of every command: problems reach the user as one line, never a traceback.

- an `EmotraceError` (unknown model, missing model file, unusable input given as a setting),
  a bad setting (a `ValueError`, e.g. from a constructor) or an environment that cannot run the
  command (a `RuntimeError`: a missing extra, no window support) -> `error: <message>`, exit 2;
- a failure writing an output (`OSError`) -> `error: <path>: <problem>`, exit 1;
- a problem a command states itself -> `fail(message, code)`;
- an option outside what it declares (`Bounds`, `Output` in its Annotated type, see
  cli/options.py) -> `error: --option: problem`, exit 2, before the command starts;
- per-file failures (`Failures`): one line each, the other files go on, exit 1 at the end;
  a file that gave part of what it promised (a recording whose tail is lost) is kept and
  reported as `partial: <path>: <why>`, and counts for exit 1 as well.

`error_policy` wraps every command at registration (cli/__init__.py), so no command can miss it.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, NoReturn, TypeVar

import typer

from emotrace.cli.options import Bounds, Output
from emotrace.errors import EmotraceError, InputError, path_text

F = TypeVar("F", bound=Callable[..., object])

SETTING_EXIT = 2  # the command could not start: a bad model, option or setting
FAILED_EXIT = 1  # it ran, but some file failed or an output could not be written


class CommandError(Exception):
    """A problem a command states in its own words, with the exit code it deserves."""

    def __init__(self, message: str, code: int = SETTING_EXIT) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = SETTING_EXIT) -> NoReturn:
    """Stop the command with `error: message` and exit `code`."""
    raise CommandError(message, code)


def echo_error(message: str) -> None:
    typer.echo(f"error: {message}", err=True)


def os_error_line(exc: OSError) -> str:
    """`path: problem` for an OSError (the path, when the error has one)."""
    problem = exc.strerror or str(exc)
    return f"{exc.filename}: {problem}" if exc.filename else problem


Check = Bounds | Output


def declared_checks(command: Callable[..., object]) -> dict[str, tuple[str, list[Check]]]:
    """Parameter name -> (its option's name, the checks its Annotated type declares)."""
    hints = typing.get_type_hints(command, include_extras=True)
    out = {}
    for name, hint in hints.items():
        if typing.get_origin(hint) is not Annotated:
            continue
        extras = hint.__metadata__
        checks = [x for x in extras if isinstance(x, Bounds | Output)]
        if not checks:
            continue
        out[name] = (_option_name(name, extras), checks)
    return out


def _option_name(name: str, extras: tuple[object, ...]) -> str:
    """How the user writes the option: its long name, else its short one, else from `name`.
    (In an Annotated type, typer takes a string `default` of typer.Option as a name too.)"""
    decls = [d for x in extras if hasattr(x, "param_decls")
             for d in (getattr(x, "default", None), *(x.param_decls or ()))  # type: ignore
             if isinstance(d, str) and d.startswith("-")]
    long = [d for d in decls if d.startswith("--")]
    return (long or decls or ["--" + name.replace("_", "-")])[0]


def check_options(checks: dict[str, tuple[str, list[Check]]],
                  arguments: dict[str, object]) -> None:
    """`fail` (exit 2) at the first given option its declared checks refuse."""
    for name, (option, rules) in checks.items():
        value = arguments.get(name)
        if value is None or isinstance(value, bool):
            continue
        for rule in rules:
            problem = rule.problem(value)  # type: ignore[arg-type]
            if problem:
                shown = f"{option} {value}" if isinstance(rule, Output) else option
                fail(f"{shown}: {problem}")


def error_policy(command: F) -> F:
    """`command` with its options' declared checks made first, and the policy above applied
    to whatever it raises."""
    checks = declared_checks(command)
    signature = inspect.signature(command)

    @functools.wraps(command)
    def run(*args: object, **kwargs: object) -> object:
        try:
            if checks:
                check_options(checks, signature.bind_partial(*args, **kwargs).arguments)
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise  # typer's own ways out (RuntimeErrors too): exit as they say
        except CommandError as exc:
            message, code = str(exc), exc.code
        except (EmotraceError, ValueError, RuntimeError) as exc:
            message, code = str(exc), SETTING_EXIT
        except OSError as exc:
            message, code = os_error_line(exc), FAILED_EXIT
        echo_error(message)
        raise typer.Exit(code)

    return run  # type: ignore[return-value]


class Failures:
    """Per-file failures of one command: each reported in one line as it happens, counted;
    partial files (results kept, but of part of the file) are counted apart."""

    def __init__(self) -> None:
        self.count = 0
        self.partials = 0

    def add(self, problem: str | Exception) -> None:
        self.count += 1
        echo_error(str(problem))

    def partial(self, path: object, problem: str) -> None:
        """`path` gave only part of itself (`problem` says how); its results were kept."""
        self.partials += 1
        typer.echo(f"partial: {path_text(str(path))}: {problem}", err=True)

    @contextmanager
    def per_file(self) -> Iterator[None]:
        """An `InputError` inside is this file's failure: reported, and the command goes on."""
        try:
            yield
        except InputError as exc:
            self.add(exc)

    def exit_if_any(self, total: int | None = None, noun: str = "files") -> None:
        """Exit 1 when anything failed or was partial, after `N of TOTAL NOUN failed` (`, K
        partial`) when `total` is given."""
        if self.count or self.partials:
            if total is not None:
                line = (f"{self.count} of {total} {noun} failed" if self.count
                        else f"{self.partials} of {total} {noun} partial")
                if self.count and self.partials:
                    line += f", {self.partials} partial"
                typer.echo(line, err=True)
            raise typer.Exit(FAILED_EXIT)
