"""The REST API against a real uvicorn server on 127.0.0.1 (started as `emotrace serve`)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytestmark = pytest.mark.slow  # every test talks to a real server

KEY = "test-key"
HEADERS = {"X-API-Key": KEY}


@pytest.fixture(scope="session")
def happy(pyfeat_dir):
    return pyfeat_dir / "0-f15-hao-ph.jpg"  # a clearly happy face (named 'ha' by its source)


@pytest.fixture(scope="session")
def group(pyfeat_dir):
    return pyfeat_dir / "multi_face.jpg"  # five faces


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(models_dir):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "emotrace.cli", "serve", "--port", str(port), "--api-key", KEY,
         "--max-image-mb", "1", "--max-video-mb", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited: {proc.stdout.read()}")
        try:
            if httpx.get(f"{url}/openapi.json", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("server did not start in 60 s")
    yield url
    proc.terminate()
    proc.wait(10)


def _post_images(url, *paths, headers=HEADERS):
    files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in paths]
    return httpx.post(f"{url}/v1/images", files=files, headers=headers, timeout=60)


def test_a_face_image(server, happy):
    r = _post_images(server, happy)
    assert r.status_code == 200, r.text
    (result,) = r.json()["results"]
    (face,) = result["faces"]
    assert face["emotion"] == "happy" and face["probability"] > 0.5
    assert abs(sum(face["probabilities"].values()) - 1) < 1e-3
    assert face["valence"] > 0 and len(face["landmarks"]) == 5


def test_several_images_and_one_bad(server, group, happy):
    files = [("files", (group.name, group.read_bytes(), "image/jpeg")),
             ("files", ("broken.jpg", happy.read_bytes()[:500], "image/jpeg"))]
    r = httpx.post(f"{server}/v1/images", files=files, headers=HEADERS, timeout=60)
    assert r.status_code == 200
    group, broken = r.json()["results"]
    assert len(group["faces"]) == 5
    assert broken["error"].startswith("broken.jpg: not a readable image")


def test_corrupt_image_is_400(server):
    r = httpx.post(f"{server}/v1/images", headers=HEADERS, timeout=30,
                   files=[("files", ("bad.jpg", b"\xff\xd8\xff garbage", "image/jpeg"))])
    assert r.status_code == 400 and "bad.jpg: not a readable image" in r.json()["detail"]


def test_oversized_and_wrong_type(server, happy):
    big = b"\xff\xd8" + bytes(2 << 20)  # 2 MB; the server allows 1 MB per image
    r = httpx.post(f"{server}/v1/images", headers=HEADERS, timeout=30,
                   files=[("files", ("big.jpg", big, "image/jpeg"))])
    assert r.status_code == 413 and "big.jpg: larger than the limit of 1 MB" in r.json()["detail"]
    huge = bytes(40 << 20)  # over the whole-request ceiling: refused before it is read
    r = httpx.post(f"{server}/v1/videos", headers=HEADERS, timeout=30,
                   files=[("file", ("huge.mp4", huge, "video/mp4"))])
    assert r.status_code == 413
    r = httpx.post(f"{server}/v1/images", headers=HEADERS, timeout=30,
                   files=[("files", ("notes.txt", b"hello", "text/plain"))])
    assert r.status_code == 415 and "notes.txt: not an image" in r.json()["detail"]
    r = httpx.post(f"{server}/v1/videos", headers=HEADERS, timeout=30,
                   files=[("file", ("photo.jpg", happy.read_bytes(), "image/jpeg"))])
    assert r.status_code == 415


def test_api_key_is_required(server):
    assert httpx.get(f"{server}/v1/models", timeout=10).status_code == 401
    r = httpx.get(f"{server}/v1/models", headers=HEADERS, timeout=10)
    assert r.status_code == 200
    names = {m["name"]: m for m in r.json()["models"]}
    assert names["emotrace-ferplus8"]["present"] and r.json()["serving"] == "emotrace-ferplus8"
    assert httpx.get(f"{server}/docs", timeout=10).status_code == 200  # docs stay open


def test_video_job_from_submission_to_result(server, happy, pyfeat_dir):
    video = pyfeat_dir / "single_face.mp4"  # 72 frames, one face throughout
    r = httpx.post(f"{server}/v1/videos", headers=HEADERS, timeout=30,
                   files=[("file", (video.name, video.read_bytes(), "video/mp4"))])
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] in ("queued", "running")
    # the server answers other requests while the job runs
    assert _post_images(server, happy).status_code == 200
    deadline = time.time() + 120
    while job["status"] in ("queued", "running") and time.time() < deadline:
        time.sleep(0.3)
        job = httpx.get(f"{server}{r.json()['url']}", headers=HEADERS, timeout=10).json()
    assert job["status"] == "done", job
    assert job["progress"]["frames_done"] == 72
    res = job["results"]
    assert res["frames"] == 72 and res["faces"] == 72 and len(res["tracks"]) == 1
    csv = httpx.get(f"{server}{res['download']['csv']}", headers=HEADERS, timeout=10)
    assert csv.status_code == 200 and csv.text.count("\n") == 73
    assert httpx.get(f"{server}/v1/jobs/nope", headers=HEADERS, timeout=10).status_code == 404


def test_broken_video_job_fails_cleanly(server, bad_videos):
    r = httpx.post(f"{server}/v1/videos", headers=HEADERS, timeout=30,
                   files=[("file", ("notes.mp4", bad_videos["text"].read_bytes(), "video/mp4"))])
    url = f"{server}{r.json()['url']}"
    for _ in range(100):
        job = httpx.get(url, headers=HEADERS, timeout=10).json()
        if job["status"] not in ("queued", "running"):
            break
        time.sleep(0.2)
    assert job["status"] == "failed" and job["error"].startswith("notes.mp4: not a readable video")


def test_twenty_concurrent_requests(server, group, happy):
    paths = [happy if i % 2 else group for i in range(20)]
    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(lambda p: _post_images(server, p), paths))
    assert all(r.status_code == 200 for r in responses)
    counts = [len(r.json()["results"][0]["faces"]) for r in responses]
    assert counts == [1 if p == happy else 5 for p in paths]
    assert all(r.json()["results"][0]["faces"][0]["emotion"] == "happy"
               for r, p in zip(responses, paths, strict=True) if p == happy)
