"""The REST API server's folder: made with a pid file, removed whole, stale ones swept at start."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from emotrace.apps.workdir import PID_FILE, make_workdir, remove_stale, remove_workdir


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _folder(tmp_path, name: str, pid_text: str | None, age_s: float = 0.0):
    folder = tmp_path / f"emotrace-api-{name}"
    (folder / "uploads").mkdir(parents=True)
    (folder / "uploads" / "face.mp4").write_bytes(b"a viewer's face")
    if pid_text is not None:
        (folder / PID_FILE).write_text(pid_text)
    if age_s:
        old = time.time() - age_s
        os.utime(folder, (old, old))
    return folder


def test_a_server_folder_names_its_process_and_goes_whole(tmp_path):
    folder = make_workdir(tmp_path)
    assert folder.parent == tmp_path and folder.name.startswith("emotrace-api-")
    assert folder.stat().st_mode & 0o077 == 0
    assert (folder / "uploads").is_dir() and (folder / "results").is_dir()
    assert (folder / PID_FILE).read_text().split()[0] == str(os.getpid())
    assert remove_stale(tmp_path) == []  # this process is alive: its folder stays
    (folder / "uploads" / "x.mp4").write_bytes(b"x")
    remove_workdir(folder)
    assert not folder.exists()


def test_folders_of_dead_servers_are_removed_at_start(tmp_path):
    dead = _folder(tmp_path, "dead", f"{_dead_pid()} 1\n")
    reused = _folder(tmp_path, "reused", f"{os.getpid()} 1\n")  # a live pid, another start time
    garbled = _folder(tmp_path, "garbled", "not a pid")
    old_unmarked = _folder(tmp_path, "old", None, age_s=3600)  # before pid files, or a crash
    starting = _folder(tmp_path, "starting", None)  # a server that is writing its pid file
    other = tmp_path / "not-emotrace"
    other.mkdir()
    live = make_workdir(tmp_path)
    assert not any(p.exists() for p in (dead, reused, garbled, old_unmarked))
    assert live.exists() and starting.exists() and other.exists()
