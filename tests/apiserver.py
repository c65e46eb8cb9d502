"""`emotrace serve` as a subprocess on 127.0.0.1, for the REST API tests (not a test module).

The server is started with `--port 0` and found by the line it prints at start, so no port is
guessed; its $TMPDIR is the test's, so its folder can be looked at and its removal checked.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

STARTED = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")


class Server:
    def __init__(self, args: list[str], tmpdir: Path, timeout: float = 120.0) -> None:
        self.tmpdir = tmpdir
        env = {**os.environ, "TMPDIR": str(tmpdir)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "emotrace.cli", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.url = self._wait_started(timeout)

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def _wait_started(self, timeout: float) -> str | None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            for line in self.lines:
                if found := STARTED.search(line):
                    return found.group(1)
            if self.proc.poll() is not None:
                time.sleep(0.2)  # the last lines
                return None
            time.sleep(0.1)
        self.proc.kill()
        raise AssertionError(f"the server did not start in {timeout:.0f} s: {self.lines}")

    @property
    def folder(self) -> Path:
        (folder,) = [p for p in self.tmpdir.glob("emotrace-api-*")
                     if (p / "server.pid").is_file()
                     and (p / "server.pid").read_text().split()[0] == str(self.proc.pid)]
        return folder

    def written(self) -> int:
        """Bytes the server process has written (all write calls: files and sockets)."""
        io = Path(f"/proc/{self.proc.pid}/io").read_text()
        return int(re.search(r"wchar: (\d+)", io).group(1))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"the server did not stop in {timeout:.0f} s after {sig!r}")


def wait_job(url: str, headers: dict | None = None, timeout: float = 180.0) -> dict:
    """Poll a job until it is done or failed."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = httpx.get(url, headers=headers, timeout=10).json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {url} still {job['status']} after {timeout:.0f} s")
