"""Errors that reach a user as one clear line: the file (or model) and the problem."""

from __future__ import annotations

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
