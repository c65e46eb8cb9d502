"""Errors that reach a user as one clear line: the file (or model) and the problem.

A file is named by `path_text`: a path as text any line or table can hold. A name whose bytes
are not UTF-8 (a Latin-1 name from an old camera, a zip made on Windows) reaches Python with
surrogate escapes, which a terminal, Arrow, Parquet and CSV cannot encode; its bad bytes are
written as `\\xe9` instead.
"""

from __future__ import annotations

import os
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
