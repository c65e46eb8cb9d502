"""Input paths: what is wrong with one that cannot be opened, in words.

`path_problem` says why a path is not a file to read: missing, a folder, a symbolic link that
loops (`a -> b -> a`, or one to itself) or leads nowhere. Without it a looping
link reads as "no such file", which sends the user looking for a file that is there.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from emotrace.errors import path_text


def path_problem(path: str | Path) -> str | None:
    """Why `path` cannot be read as a file, in words; None when it is a file."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symbolic link that loops (it never reaches a file)"
        if os.path.islink(path):
            return f"is a broken symbolic link (to {path_text(os.readlink(path))}, not found)"
        if exc.errno == errno.ENOENT:
            return "no such file"
        return f"cannot be read ({exc.strerror or exc})"
    if not Path(path).is_file():
        return "not a file"
    return None
