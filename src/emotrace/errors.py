"""Errors that reach a user as one clear line: the file (or model) and the problem.

A file is named by `path_text`: a path as text any line or table can hold. A name whose bytes
are not UTF-8 (a Latin-1 name from an old camera, a zip made on Windows) reaches Python with
surrogate escapes, which a terminal, Arrow, Parquet and CSV cannot encode; its bad bytes are
written as `\\xe9` instead.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path


def path_text(path: str | Path) -> str:
    """`path` as a string that encodes as UTF-8: undecodable bytes of its name as `\\xNN`."""
    text = os.fspath(path)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:  # the escapes os.fsdecode made for bytes that are not UTF-8: show those bytes
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # another lone surrogate: show it as its code
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


class EmotraceError(Exception):
    """Base class of every error emotrace raises on purpose."""


class InputError(EmotraceError):
    """An input file is missing, unreadable, truncated or of the wrong kind."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = path_text(path)
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
