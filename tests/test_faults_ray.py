"""Faults on a real Ray cluster: a worker killed while it analyses a recording.

Two Ray nodes (a head and a second node, one CPU each) are started on this machine with
`ray start --block`, each in a session of its own, and `emotrace batch --engine ray
--ray-address` runs on six real recordings from ../shared. A worker is killed (SIGKILL) while it
has a recording open: once for one recording (Ray runs it again: done), on both attempts for
another (failed, with the reason). A rerun completes it, and every table then equals the one of
an uninterrupted run.

How the worker is found: batch names each task `emotrace:<key>`, and Ray gives the worker that
runs a task the process title `ray::<task name>`, so /proc tells which process analyses which
recording, and /proc/PID/fd whether it has the video open (it is decoding, not starting up).
Only processes in the two nodes' sessions are looked at, so nothing of another Ray on the machine
is touched. It needs no hook in emotrace and no Ray state API (which needs `ray[default]`; CI
installs the minimal `ray`).

The nodes are stopped by SIGTERM to their `ray start --block` (which stops the node's processes),
then SIGKILL to whatever is left in their sessions: not `ray stop --force`, which kills every Ray
process of the user, another test's or session's included.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

import emotrace
from emotrace.batch import RAY_RETRIES, ray_failure, read_manifest

FAILS = "pyfeat/WolfgangLanger_Pexels.mp4"  # killed on every attempt: failed
RETRIED = "styletalk/source_video/Obama_clip2.mp4"  # killed once: run again, done
KEYS = [FAILS, RETRIED, "pyfeat/noface_face.mov", "pyfeat/single_face.mp4",
        "styletalk/style_clips/happyenglish_clip1.mp4", "styletalk/style_clips/sadgirl_clip1.mp4"]
FPS = "10"  # about 6 s of analysis for each of the two long ones, time to find and kill
TITLE = "ray::emotrace:"


# -- the cluster --------------------------------------------------------------------------------
@dataclass
class Cluster:
    address: str
    sessions: dict[int, str]  # session id of a node's processes -> "head" or "second"
    env: dict[str, str]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session_pids(sid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and os.getsid(int(entry)) == sid:
                out.append(int(entry))
        except OSError:  # gone meanwhile
            pass
    return out


def _start_node(ray_cli: Path, args: list[str], temp: Path, log: Path,
                env: dict[str, str]) -> subprocess.Popen:
    """`ray start --block` in a new session; returns once the node says it has started."""
    with log.open("w") as out:
        node = subprocess.Popen(
            [str(ray_cli), "start", "--block", "--num-cpus", "1", "--temp-dir", str(temp),
             "--disable-usage-stats",
             "--dashboard-agent-listen-port", str(_free_port()), *args],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while "Ray runtime started" not in log.read_text():
        if node.poll() is not None or time.monotonic() > deadline:
            _stop_node(node)
            pytest.fail(f"ray start {' '.join(args)} did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    return node


def _stop_node(node: subprocess.Popen) -> None:
    node.terminate()
    try:
        node.wait(60)
    except subprocess.TimeoutExpired:
        node.kill()
        node.wait()
    for pid in _session_pids(node.pid):  # anything that outlived it (the session id remains)
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


@pytest.fixture()
def ray_cluster(tmp_path) -> Iterator[Cluster]:
    pytest.importorskip("ray")
    if not sys.platform.startswith("linux"):
        pytest.skip("finds the Ray workers through /proc")
    ray_cli = Path(sys.executable).with_name("ray")
    if not ray_cli.is_file():
        pytest.skip(f"no ray command beside {sys.executable}")
    # the workers import the emotrace this test imports (a worktree's src, or the installed one)
    src = str(Path(emotrace.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    # Token authentication, with a token of its own for every node and the driver: left unset,
    # Ray 2.60's `ray start --head` turns it on when ~/.ray/auth_token exists (any local
    # ray.init() writes one) but `ray start --address` does not, and the second node is refused
    env = {**os.environ, "PYTHONPATH": path, "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    # a short folder, not tmp_path: Ray's Unix sockets live below it, and their paths must stay
    # under 108 bytes
    temp = Path(tempfile.mkdtemp(prefix="emotrace-ray-"))
    port = _free_port()
    nodes: list[tuple[subprocess.Popen, str]] = []
    try:
        head = _start_node(ray_cli, ["--head", "--port", str(port), "--include-dashboard",
                                     "false", "--dashboard-port", str(_free_port())],
                           temp, tmp_path / "head.log", env)
        nodes.append((head, "head"))
        second = _start_node(ray_cli, ["--address", f"127.0.0.1:{port}"], temp,
                             tmp_path / "second.log", env)
        nodes.append((second, "second"))
        yield Cluster(f"127.0.0.1:{port}", {node.pid: name for node, name in nodes}, env)
    finally:
        for node, _ in reversed(nodes):
            _stop_node(node)
        shutil.rmtree(temp, ignore_errors=True)


# -- finding and killing the worker -------------------------------------------------------------
def _workers(sessions: dict[int, str]) -> Iterator[tuple[int, str, str]]:
    """(pid, recording key, node) of every worker in the cluster running an emotrace task."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            node = sessions.get(os.getsid(pid))
            if node is None:
                continue
            title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        except (OSError, UnicodeDecodeError):
            continue
        if title.startswith(TITLE):
            yield pid, title.removeprefix(TITLE), node


def _has_open(pid: int, path: str) -> bool:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == path:
                return True
        except OSError:
            pass
    return False


class WorkerKiller(threading.Thread):
    """Kills the worker analysing a recording (SIGKILL) once it has had the video open for
    `after` seconds, as many times as `plan` says; notes every worker seen on every task."""

    def __init__(self, sessions: dict[int, str], plan: dict[str, int], paths: dict[str, str],
                 after: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.sessions, self.plan, self.paths, self.after = sessions, plan, paths, after
        self.kills: list[dict] = []
        self.seen: dict[str, set[int]] = {}  # key -> pids of the workers seen running it
        self.stopping = threading.Event()
        self.started_at = time.monotonic()

    def run(self) -> None:
        began: dict[tuple[int, str], float] = {}  # (pid, key) -> first seen running the task
        opened: dict[int, float] = {}  # pid -> when it was first seen with the video open
        killed: set[int] = set()
        while not self.stopping.is_set():
            for pid, key, node in _workers(self.sessions):
                self.seen.setdefault(key, set()).add(pid)
                began.setdefault((pid, key), time.monotonic())
                left = self.plan.get(key, 0) - sum(k["key"] == key for k in self.kills)
                if left <= 0 or pid in killed or not _has_open(pid, self.paths[key]):
                    continue
                now = time.monotonic()
                if now - opened.setdefault(pid, now) >= self.after:
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
                    self.kills.append({"key": key, "pid": pid, "node": node,
                                       "began_s": round(began[pid, key] - self.started_at, 2),
                                       "killed_s": round(now - self.started_at, 2),
                                       "open_for_s": round(now - opened[pid], 2)})
            self.stopping.wait(0.05)


# -- the test -------------------------------------------------------------------------------------
def _batch(listing: Path, out: Path, cluster: Cluster) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "emotrace.cli", "batch", str(listing), "-o", str(out), "--engine",
         "ray", "--ray-address", cluster.address, "--fps", FPS, "-q"],
        capture_output=True, text=True, env=cluster.env, timeout=300)
    return run, time.monotonic() - started


def _tables(out: Path) -> dict[str, pd.DataFrame]:
    """Every Parquet file under its final name, read whole (a torn file would not read)."""
    faces = out / "faces"
    return {p.relative_to(faces).as_posix().removesuffix(".parquet"): pd.read_parquet(p)
            for p in sorted(faces.rglob("*.parquet"))}


def test_each_kind_of_ray_failure_is_one_line():
    rex = pytest.importorskip("ray.exceptions")
    tried = f"({RAY_RETRIES + 1} attempts; a rerun tries it again)"
    crash = ray_failure(rex.WorkerCrashedError())
    assert crash == f"the Ray worker analysing it died: killed, crashed or out of memory {tried}"
    assert ray_failure(rex.NodeDiedError("node 1f3 died\nsee raylet.out")) == (
        f"the Ray node analysing it died or was lost {tried}")
    assert ray_failure(rex.OutOfMemoryError("Task was killed due to the node running low on "
                                            "memory.\nMemory on the node ...")).startswith(
        "Ray stopped the worker analysing it: the node ran out of memory")
    missing = ModuleNotFoundError("No module named 'emotrace'")
    wrapped = rex.RayTaskError("run_job", "Traceback (most recent call last):\n  ...", missing)
    assert ray_failure(wrapped) == (
        "Ray could not run it: ModuleNotFoundError: No module named 'emotrace'")
    assert ray_failure(RuntimeError("first\nsecond")) == "Ray could not run it: RuntimeError: first"
    assert ray_failure(RuntimeError()) == "Ray could not run it: RuntimeError"


@pytest.mark.slow
def test_a_ray_worker_killed_mid_recording_is_retried_then_failed_and_a_rerun_completes(
        ray_cluster: Cluster, data_dir: Path, tmp_path: Path):
    video = data_dir / "video"
    listing = tmp_path / "recordings.txt"  # the shared files themselves: nothing is copied
    listing.write_text("".join(f"{video / key}\n" for key in KEYS))
    paths = {key: os.path.realpath(video / key) for key in KEYS}

    reference, reference_s = _batch(listing, tmp_path / "uninterrupted", ray_cluster)
    assert reference.returncode == 0, reference.stderr
    expected = _tables(tmp_path / "uninterrupted")
    assert sorted(expected) == sorted(KEYS)

    out = tmp_path / "out"
    killer = WorkerKiller(ray_cluster.sessions, {FAILS: RAY_RETRIES + 1, RETRIED: 1}, paths)
    killer.start()
    try:
        run, run_s = _batch(listing, out, ray_cluster)
    finally:
        killer.stopping.set()
        killer.join()
    said = [line for line in run.stderr.splitlines()
            if line.startswith("error:") or " recordings: " in line]  # no Ray log lines
    print(f"\nuninterrupted {reference_s:.1f} s; with kills {run_s:.1f} s: {killer.kills}", *said,
          sep="\n")
    assert sorted(k["key"] for k in killer.kills) == sorted([FAILS] * (RAY_RETRIES + 1) + [RETRIED])

    # the driver went on: the recording killed on every attempt failed, with a one-line reason
    assert run.returncode == 1, run.stderr
    manifest = read_manifest(out).set_index("key")
    assert sorted(manifest.index) == sorted(KEYS)
    failed = manifest.loc[FAILS]
    reason = ("the Ray worker analysing it died: killed, crashed or out of memory "
              f"({RAY_RETRIES + 1} attempts; a rerun tries it again)")
    assert (failed["status"], failed["reason"]) == ("failed", reason)
    assert f"error: {paths[FAILS]}: {reason}\n" in run.stderr
    assert "1 failed" in run.stderr
    # the one killed once was run again by another worker and is done; so is every other one,
    # each by one worker process as far as /proc showed (polled every 50 ms)
    others = manifest.drop(FAILS)
    assert (others["status"] == "done").all(), others[["status", "reason"]]
    killed_once = next(k["pid"] for k in killer.kills if k["key"] == RETRIED)
    assert manifest.loc[RETRIED, "worker"].rsplit(":", 1)[1] != str(killed_once)
    assert all(len(killer.seen.get(key, ())) <= 1 for key in KEYS[2:]), killer.seen
    # nothing half-written: each final Parquet reads whole and equals the uninterrupted run's;
    # no file for the failed one, no temporary file left
    tables = _tables(out)
    assert sorted(tables) == sorted(set(KEYS) - {FAILS})
    assert not [p for p in out.rglob("*") if p.name.endswith(".part")]
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "faces").rglob("*.parquet")}

    rerun, rerun_s = _batch(listing, out, ray_cluster)
    print(f"rerun {rerun_s:.1f} s: {rerun.stderr.strip().splitlines()[-1]}")
    assert rerun.returncode == 0, rerun.stderr
    assert "6 recordings: 5 already done, 1 analysed, 0 failed" in rerun.stderr
    assert (read_manifest(out)["status"] == "done").all()
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes  # the done ones left alone
    tables = _tables(out)
    assert sorted(tables) == sorted(KEYS)
    for key in KEYS:
        pd.testing.assert_frame_equal(tables[key], expected[key], obj=key)
        assert tables[key].attrs == expected[key].attrs
