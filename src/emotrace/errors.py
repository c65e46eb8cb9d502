"""Errors that reach a user as one clear line: the file (or model) and the problem."""

from __future__ import annotations

import signal
from pathlib import Path


class EmotraceError(Exception):
    """Base class of every error emotrace raises on purpose."""


class InputError(EmotraceError):
    """An input file is missing, unreadable, truncated or of the wrong kind."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ModelError(EmotraceError):
    """A model name is unknown, or its file is missing or corrupt."""


class Interrupted(KeyboardInterrupt):
    """The process was told to stop by a signal (SIGTERM; Ctrl-C's SIGINT raises the plain
    KeyboardInterrupt). Raised in the main thread like Ctrl-C, so every `finally` on the way
    out runs: the atomic writers remove their temporary files, a pool stops its workers."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


def raise_on_sigterm() -> None:
    """From now on SIGTERM raises `Interrupted` (Python's default ends the process on the spot,
    leaving temporary files). A second SIGTERM, during the clean-up, ends it at once."""
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    signal.signal(signum, signal.SIG_DFL)
    raise Interrupted(signum)
