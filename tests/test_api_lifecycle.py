"""`emotrace serve` from start to stop: its folder, the queue's bound, results kept for a time.

Issue 15, 10 (uploads of viewers' faces never outlive the server), 12 (the start line), 13 (the
bounded queue, results on disk and removed after the retention time). Each test starts its own
server on 127.0.0.1 with its own $TMPDIR.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
from apiserver import Server, wait_job  # noqa: E402

pytestmark = pytest.mark.slow  # every test starts a real server

KEEP_HOURS = 0.004  # 14.4 s


def _post_video(url: str, path, fps: str | None = None) -> httpx.Response:
    return httpx.post(f"{url}/v1/videos", timeout=30, data={"fps": fps} if fps else None,
                      files=[("file", (path.name, path.read_bytes(), "video/mp4"))])


def _stale_folders(tmp_path) -> tuple:
    """A folder of a server that is gone (a viewer's video in it) and one of a live process."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead = tmp_path / "emotrace-api-dead"
    (dead / "uploads").mkdir(parents=True)
    (dead / "uploads" / "face.mp4").write_bytes(b"a viewer's face")
    (dead / "server.pid").write_text(f"{proc.pid}\n")
    live = tmp_path / "emotrace-api-live"
    live.mkdir()
    (live / "server.pid").write_text(f"{os.getpid()}\n")  # no start time: the pid alone counts
    return dead, live


def test_queue_bound_results_on_disk_and_the_folder_gone_at_sigterm(models_dir, pyfeat_dir,
                                                                     tmp_path):
    dead, live = _stale_folders(tmp_path)
    server = Server(["--max-queued-jobs", "1", "--keep-results-hours", str(KEEP_HOURS)],
                    tmp_path)
    assert server.url, server.lines
    (line,) = [x for x in server.lines if x.startswith("emotrace serve:")]
    assert "no API key" in line and "1 queued jobs" in line
    assert not dead.exists() and live.exists()  # stale folders are swept at start
    folder = server.folder
    video = pyfeat_dir / "single_face.mp4"
    # one job runs, one waits, the others are refused while they do
    responses = [_post_video(server.url, video) for _ in range(4)]
    codes = [r.status_code for r in responses]
    assert codes[0] == 202 and codes.count(429) >= 2 and set(codes) <= {202, 429}, codes
    refused = responses[codes.index(429)]
    assert "video jobs are waiting already" in refused.json()["detail"]
    assert refused.headers["retry-after"].isdigit()
    jobs = [wait_job(f"{server.url}{r.json()['url']}") for r in responses if r.status_code == 202]
    assert all(j["status"] == "done" for j in jobs), jobs
    assert not any((folder / "uploads").iterdir())  # each upload removed when its job ended
    first = jobs[0]["id"]
    assert (folder / "results" / first / "faces.parquet").is_file()
    # past the retention time a finished job and its files are forgotten
    time.sleep(max(0.0, jobs[-1]["finished"] + KEEP_HOURS * 3600 - time.time()) + 1)
    assert _post_video(server.url, video).status_code == 202  # a submission prunes
    r = httpx.get(f"{server.url}/v1/jobs/{first}", timeout=10)
    assert r.status_code == 404 and "kept" in r.json()["detail"]
    assert not (folder / "results" / first).exists()
    server.stop(signal.SIGTERM)
    assert not folder.exists(), list(folder.rglob("*"))
    assert live.exists()


def test_sigint_while_a_job_runs_removes_the_folder(models_dir, styletalk_dir, tmp_path):
    server = Server([], tmp_path)
    folder = server.folder
    video = styletalk_dir / "style_clips" / "happyenglish_clip2.mp4"  # 390 frames
    r = _post_video(server.url, video)
    assert r.status_code == 202
    deadline = time.time() + 60
    while time.time() < deadline:
        if httpx.get(f"{server.url}{r.json()['url']}", timeout=10).json()["status"] == "running":
            break
        time.sleep(0.1)
    assert any((folder / "uploads").iterdir())  # the viewer's video, being analysed
    started = time.time()
    server.stop(signal.SIGINT)
    assert time.time() - started < 30  # the running job stops at its next frame
    assert not folder.exists()


def test_a_start_that_fails_leaves_no_folder(models_dir, tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "emotrace.cli", "serve", "--port", str(port)],
            env={**os.environ, "TMPDIR": str(tmp_path)}, capture_output=True, text=True,
            timeout=120)
    assert proc.returncode != 0
    assert "address already in use" in proc.stderr.lower(), proc.stderr
    assert not list(tmp_path.glob("emotrace-api-*"))


@pytest.mark.parametrize("args, problem", [
    (["--video-workers", "0"], "--video-workers: must be >= 1, got 0"),
    (["--max-video-mb", "inf"], "--max-video-mb: must be > 0, got inf"),
    (["--max-queued-jobs", "-1"], "--max-queued-jobs: must be >= 1, got -1"),
])
def test_serve_options_are_checked_before_it_starts(args, problem, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "emotrace.cli", "serve", "--port", "0", *args],
                          env={**os.environ, "TMPDIR": str(tmp_path)}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and f"error: {problem}" in proc.stderr
    assert not list(tmp_path.glob("emotrace-api-*"))
