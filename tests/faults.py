"""Helpers of the fault tests: `emotrace` as a child process, what a folder holds, its tables.

The fault tests run the real command line in a child process, as a user or a service manager
does, because signals and file size limits act on a whole process.
"""

from __future__ import annotations

import hashlib
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

EMOTRACE = [sys.executable, "-m", "emotrace.cli"]


class Run:
    """`emotrace ARGS` started in the background, its stderr collected as it comes."""

    def __init__(self, args: list[object], **popen: object) -> None:
        self.proc = subprocess.Popen([*EMOTRACE, *map(str, args)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, **popen)  # type: ignore[call-overload]
        self._err = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while chunk := self.proc.stderr.read1(65536):  # type: ignore[union-attr]
            self._err.extend(chunk)

    @property
    def stderr(self) -> str:
        """What it wrote to stderr so far, progress bars' carriage returns as line ends."""
        return bytes(self._err).decode(errors="replace").replace("\r", "\n")

    def frames(self) -> int:
        """The last frame count its progress bar showed (`N/M [`), 0 before the first."""
        counts = re.findall(r"(\d+)/\d+ \[", self.stderr)
        return int(counts[-1]) if counts else 0

    def wait_until(self, condition: Callable[[], object], timeout: float = 180.0) -> None:
        """Poll `condition` until it holds; fail if the command ends or time runs out first."""
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.proc.poll() is None, f"it ended first ({self.proc.returncode}):\n" \
                                             f"{self.stderr[-3000:]}"
            assert time.monotonic() < deadline, f"still waiting after {timeout} s"
            time.sleep(0.02)

    def stop(self, sig: int, timeout: float = 60.0) -> tuple[int, float]:
        """Send `sig`; (exit status, seconds it took to end)."""
        started = time.monotonic()
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        seconds = time.monotonic() - started
        self._reader.join(10)
        return code, seconds


def emotrace(args: list[object], max_file_bytes: int | None = None,
             timeout: float = 300.0) -> subprocess.CompletedProcess:
    """Run `emotrace ARGS` to its end; with `max_file_bytes`, under a file size limit (`ulimit
    -f`), SIGXFSZ ignored so that a write past it fails with EFBIG ("File too large")."""
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    return subprocess.run([*EMOTRACE, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, preexec_fn=limit if max_file_bytes else None,
                          check=False)


def children(pid: int) -> dict[int, str]:
    """The live child processes of `pid` (Linux /proc): pid -> command name."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # it ended meanwhile
        name, rest = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:]
        state, ppid = rest.split()[:2]
        if int(ppid) == pid and state != "Z":
            out[int(stat.parent.name)] = name
    return out


def alive(pids: object) -> list[int]:
    """Those of `pids` still running (zombies count as ended)."""
    running = []
    for pid in pids:  # type: ignore[attr-defined]
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            running.append(pid)
    return running


def snapshot(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under `folder` (hidden ones too): relative path -> (size, mtime_ns, sha1)."""
    return {p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns,
                                               hashlib.sha1(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def temporaries(folder: Path) -> list[str]:
    """Temporary files of emotrace's writers left under `folder` (`.NAME.XXXX.part`,
    `.NAME.part.mp4`)."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob(".*")
                  if ".part" in p.name)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def assert_same_faces(path: Path, reference: Path) -> None:
    """Two face tables of one recording hold the same rows: frames, faces, tracks, labels,
    boxes and probabilities (to ONNX Runtime's float noise)."""
    a, b = pd.read_parquet(path), pd.read_parquet(reference)
    assert list(a.columns) == list(b.columns) and len(a) == len(b) > 0
    exact = [c for c in a.columns if a[c].dtype.kind != "f"]  # ids, frame numbers, labels
    pd.testing.assert_frame_equal(a[exact], b[exact])
    close = [c for c in a.columns if c not in exact]
    assert (a[close] - b[close]).abs().max().max() < 1e-4
