"""The REST API server's own folder: the uploads it analyses and the results it keeps.

Each server process makes one `$TMPDIR/emotrace-api-XXXXXXXX/` (readable by its user only) with
a `server.pid` file naming the process (its pid and, on Linux, its start time, so that a reused
pid is not taken for the server). The server removes its folder when it stops; a folder left by a
server that could not (SIGKILL, a power cut) is removed by the next server that starts, which
first removes every `emotrace-api-*` folder of this user whose process is gone. Uploaded videos
are viewers' faces: none outlives the server that received it by more than its next start.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

PREFIX = "emotrace-api-"
PID_FILE = "server.pid"
#: A folder without a pid file younger than this may belong to a server that is starting.
STARTING_S = 60.0


def _start_time(pid: int) -> str | None:
    """The process's start time (Linux: /proc/PID/stat field 22), "" where there is no /proc
    but the process exists, None when there is no such process."""
    if Path("/proc/self/stat").exists():
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        except (OSError, IndexError):
            return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # someone else's process: it exists
    return ""


def _identity() -> str:
    return f"{os.getpid()} {_start_time(os.getpid()) or ''}".strip()


def server_alive(folder: Path) -> bool:
    """Whether the server that made `folder` still runs (a folder being made counts as alive)."""
    try:
        pid, *start = (folder / PID_FILE).read_text().split()
        now = _start_time(int(pid))
    except FileNotFoundError:
        try:
            return time.time() - folder.stat().st_mtime < STARTING_S
        except OSError:
            return False
    except (OSError, ValueError):
        return False  # an unreadable or garbled pid file: no server wrote it whole
    return now is not None and (not start or not now or start[0] == now)


def remove_stale(tmp: Path | None = None) -> list[Path]:
    """Remove this user's `emotrace-api-*` folders in `tmp` ($TMPDIR) whose server is gone."""
    tmp = Path(tmp or tempfile.gettempdir())
    removed = []
    for folder in sorted(tmp.glob(f"{PREFIX}*")):
        try:
            mine = folder.is_dir() and not folder.is_symlink() and (
                folder.stat().st_uid == os.getuid())
        except OSError:
            continue
        if mine and not server_alive(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def make_workdir(tmp: Path | None = None) -> Path:
    """A new server folder (with `uploads/`, `results/` and the pid file), stale ones removed."""
    remove_stale(tmp)
    folder = Path(tempfile.mkdtemp(prefix=PREFIX, dir=tmp))
    (folder / "uploads").mkdir()
    (folder / "results").mkdir()
    part = folder / f".{PID_FILE}.part"
    part.write_text(_identity() + "\n")
    part.replace(folder / PID_FILE)  # whole or absent
    return folder


def remove_workdir(folder: Path) -> None:
    """Remove a server folder and everything in it (uploads, results, the pid file)."""
    shutil.rmtree(folder, ignore_errors=True)
