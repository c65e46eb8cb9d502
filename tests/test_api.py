"""The REST API against a real uvicorn server on 127.0.0.1 (started as `emotrace serve`)."""

from __future__ import annotations

import http.client
import io
import json
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
from apiserver import Server, wait_job  # noqa: E402
from test_uploads import _png_header  # noqa: E402

from emotrace import models  # noqa: E402

pytestmark = pytest.mark.slow  # every test talks to a real server

KEY = "test-key"
HEADERS = {"X-API-Key": KEY}


@pytest.fixture(scope="session")
def happy(pyfeat_dir):
    return pyfeat_dir / "0-f15-hao-ph.jpg"  # a clearly happy face (named 'ha' by its source)


@pytest.fixture(scope="session")
def group(pyfeat_dir):
    return pyfeat_dir / "multi_face.jpg"  # five faces


@pytest.fixture(scope="module")
def served(models_dir, tmp_path_factory):
    server = Server(["--api-key", KEY, "--max-image-mb", "1", "--max-video-mb", "5"],
                    tmp_path_factory.mktemp("api-tmp"))
    assert server.url, server.lines
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(served):
    return served.url


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
    assert face["facing"] is True and abs(face["yaw"]) < 30 and face["face_clipped"] == 0
    assert face["face_brightness"] > 0 and face["face_sharpness"] > 0 and face["face_size"] > 50


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
    assert names[models.DEFAULT_CLASSIFIER]["present"] and r.json()["serving"] == \
        models.DEFAULT_CLASSIFIER
    assert httpx.get(f"{server}/docs", timeout=10).status_code == 200  # docs stay open


def test_video_job_from_submission_to_result(served, happy, pyfeat_dir):
    server = served.url
    video = pyfeat_dir / "single_face.mp4"  # 72 frames, one face throughout
    r = httpx.post(f"{server}/v1/videos", headers=HEADERS, timeout=30,
                   files=[("file", (video.name, video.read_bytes(), "video/mp4"))])
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] in ("queued", "running")
    # the server answers other requests while the job runs
    assert _post_images(server, happy).status_code == 200
    job = wait_job(f"{server}{r.json()['url']}", HEADERS)
    assert job["status"] == "done", job
    assert job["progress"]["frames_done"] == 72
    res = job["results"]
    assert (res["frames"], res["faces"], res["rows"], res["tracks"]) == (72, 72, 72, 1)
    assert (res["partial"], res["partial_reason"]) == (False, "")
    assert (res["frames_decoded"], res["frames_expected"]) == (72, 72)
    # the upload is gone with its job; the results are files in the server's folder
    assert not any((served.folder / "uploads").iterdir())
    kept = served.folder / "results" / job["id"]
    assert {p.name for p in kept.iterdir()} == {"faces.parquet", "faces.csv", "tracks.json"}
    links = res["links"]
    csv = httpx.get(f"{server}{links['csv']}", headers=HEADERS, timeout=10)
    assert csv.status_code == 200 and csv.text.count("\n") == 73
    parquet = httpx.get(f"{server}{links['parquet']}", headers=HEADERS, timeout=10)
    assert parquet.status_code == 200 and parquet.content[:4] == b"PAR1"
    (track,) = httpx.get(f"{server}{links['tracks']}", headers=HEADERS, timeout=10).json()["tracks"]
    assert track["frames"] == 72 and track["dominant"] in job_labels(served)
    assert httpx.get(f"{server}/v1/jobs/nope", headers=HEADERS, timeout=10).status_code == 404


def job_labels(served) -> set[str]:
    r = httpx.get(f"{served.url}/v1/models", headers=HEADERS, timeout=10).json()
    return set(next(m for m in r["models"] if m["name"] == r["serving"])["labels"])


def test_a_poll_is_status_and_progress_and_the_table_comes_in_pages(served, styletalk_dir):
    """Issue 15, 13: a poll never carries the face table; pages and files do."""
    server = served.url
    video = styletalk_dir / "style_clips" / "happyenglish_clip2.mp4"  # 390 frames, one face
    r = httpx.post(f"{server}/v1/videos", headers=HEADERS, timeout=30, data={"fps": "10"},
                   files=[("file", (video.name, video.read_bytes(), "video/mp4"))])
    job = wait_job(f"{server}{r.json()['url']}", HEADERS)
    assert job["status"] == "done", job
    poll = httpx.get(f"{server}/v1/jobs/{job['id']}", headers=HEADERS, timeout=10)
    assert len(poll.content) < 2000 and "faces_table" not in poll.text  # whatever the length
    assert set(poll.json()) <= {"id", "filename", "status", "progress", "created", "finished",
                                "results"}
    total, rows, url = job["results"]["rows"], [], f"{job['results']['links']['faces']}?limit=50"
    assert total == job["results"]["frames"] == job["progress"]["frames_done"] > 100
    while url:
        page = httpx.get(f"{server}{url}", headers=HEADERS, timeout=10).json()
        assert page["total"] == total and len(page["rows"]) <= 50
        rows += page["rows"]
        url = page["next"]
    assert len(rows) == total and [r["frame"] for r in rows] == sorted(r["frame"] for r in rows)
    emotions = [r["emotion"] for r in rows if r["face"] >= 0]
    assert all(isinstance(r["yaw"], float) and isinstance(r["facing"], bool)
               for r in rows if r["face"] >= 0)  # the pose and quality columns, in pages too
    assert max(set(emotions), key=emotions.count) == "happy"
    far = httpx.get(f"{server}{job['results']['links']['faces']}?offset={total}", headers=HEADERS,
                    timeout=10).json()
    assert far["rows"] == [] and far["next"] is None
    r = httpx.get(f"{server}{job['results']['links']['faces']}?limit=100000", headers=HEADERS,
                  timeout=10)
    assert r.status_code == 422 and "detail" in r.json()


def test_a_partial_recording_is_done_and_says_so(served, pyfeat_dir):
    """A recording whose tail is lost (the last 40% of the bytes of one with its index first)
    is analysed as far as it decodes, and its job says it is partial, as `video` does."""
    data = (pyfeat_dir / "WolfgangLanger_Pexels.mp4").read_bytes()
    r = httpx.post(f"{served.url}/v1/videos", headers=HEADERS, timeout=30, data={"fps": "2"},
                   files=[("file", ("lid_closed.mp4", data[: len(data) * 6 // 10], "video/mp4"))])
    job = wait_job(f"{served.url}{r.json()['url']}", HEADERS)
    assert job["status"] == "done", job
    res = job["results"]
    assert res["partial"] is True and res["partial_reason"] == "the stream ends at 12.0 s of 19.7 s"
    assert (res["frames_decoded"], res["frames_expected"]) == (288, 472)
    assert res["frames"] == job["progress"]["frames_done"] == 24  # 12 s at 2 per second
    parquet = httpx.get(f"{served.url}{res['links']['parquet']}", headers=HEADERS, timeout=10)
    table = pd.read_parquet(io.BytesIO(parquet.content))
    assert table.attrs["partial"] is True and table.attrs["frames_decoded"] == 288
    assert len(table) == 24


def test_broken_video_job_fails_cleanly(served, bad_videos):
    server = served.url
    r = httpx.post(f"{server}/v1/videos", headers=HEADERS, timeout=30,
                   files=[("file", ("notes.mp4", bad_videos["text"].read_bytes(), "video/mp4"))])
    job = wait_job(f"{server}{r.json()['url']}", HEADERS)
    assert job["status"] == "failed" and job["error"].startswith("notes.mp4: not a readable video")
    assert not any((served.folder / "uploads").iterdir())  # removed on failure too
    r = httpx.get(f"{server}/v1/jobs/{job['id']}/faces", headers=HEADERS, timeout=10)
    assert r.status_code == 409 and "failed, not done" in r.json()["detail"]


def test_twenty_concurrent_requests(server, group, happy):
    paths = [happy if i % 2 else group for i in range(20)]
    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(lambda p: _post_images(server, p), paths))
    assert all(r.status_code == 200 for r in responses)
    counts = [len(r.json()["results"][0]["faces"]) for r in responses]
    assert counts == [1 if p == happy else 5 for p in paths]
    assert all(r.json()["results"][0]["faces"][0]["emotion"] == "happy"
               for r, p in zip(responses, paths, strict=True) if p == happy)


def test_a_chunked_upload_is_cut_at_the_limit(served):
    """Issue 15, 9: 50 MB sent chunked (no Content-Length) to a server taking 5 MB."""
    boundary, chunk = "emotrace-test", 1 << 20

    def body():
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
               f"filename=\"big.mp4\"\r\nContent-Type: video/mp4\r\n\r\n").encode()
        for _ in range(50):
            yield bytes(chunk)
        yield f"\r\n--{boundary}--\r\n".encode()

    before = served.written()
    r = httpx.post(f"{served.url}/v1/videos", content=body(), timeout=60,
                   headers={**HEADERS, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    written = served.written() - before
    assert r.status_code == 413 and "larger than the limit of 5.06 MB" in r.json()["detail"]
    assert written < (5 << 20) + chunk  # what reached the disk: at most the limit and a chunk
    assert not any((served.folder / "uploads").iterdir())


def test_a_300_character_extension_is_json_and_stored_under_a_safe_name(served, pyfeat_dir):
    """Issue 15, 11: no 500 ("file name too long"); the connection goes on."""
    name, video = "clip." + "x" * 300, (pyfeat_dir / "single_face.mp4").read_bytes()
    with httpx.Client(base_url=served.url, headers=HEADERS, timeout=30) as client:
        r = client.post("/v1/videos", files=[("file", (name, video, "application/octet-stream"))])
        detail = r.json()["detail"]
        assert r.status_code == 415 and "not a video (file type .xxxxxxxxxxxxxxxxxxx...," in detail
        r = client.post("/v1/videos", files=[("file", (name, video, "video/mp4"))])
        assert r.status_code == 202, r.text  # the content type says which allowed suffix
        job = wait_job(f"{served.url}{r.json()['url']}", HEADERS)
        assert job["status"] == "done" and job["filename"] == name
        assert client.get("/v1/models").status_code == 200


def test_an_image_opencv_refuses_is_json_and_the_connection_stays(served):
    """Issue 15, 4 and 5: a 65535 x 65535 header (842 bytes) was a plain-text 500, then a
    reset; now the header is read first and the image refused over the pixel cap (413)."""
    host, port = served.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    body = (b"--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"huge.png\"\r\n"
            b"Content-Type: image/png\r\n\r\n" + _png_header(65535, 65535) + b"\r\n--b--\r\n")
    conn.request("POST", "/v1/images", body, {**HEADERS, "Content-Type":
                                              "multipart/form-data; boundary=b"})
    r = conn.getresponse()
    detail = json.loads(r.read())["detail"]
    assert r.status == 413 and detail.startswith("huge.png: is ") and "megapixels" in detail
    sock = conn.sock
    conn.request("GET", "/v1/models", headers=HEADERS)  # the same keep-alive connection
    r = conn.getresponse()
    assert r.status == 200 and json.loads(r.read())["serving"] and conn.sock is sock
    conn.close()


def test_fps_must_be_a_finite_rate(served, pyfeat_dir):
    video = (pyfeat_dir / "single_face.mp4").read_bytes()
    for fps in ("inf", "nan", "0", "-5"):
        r = httpx.post(f"{served.url}/v1/videos", headers=HEADERS, timeout=30, data={"fps": fps},
                       files=[("file", ("a.mp4", video, "video/mp4"))])
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "fps"], fps


def test_the_start_line_says_where_and_whether_a_key_is_needed(served):
    """Issue 15, 12."""
    (line,) = [x for x in served.lines if x.startswith("emotrace serve:")]
    assert f"listening on {served.url};" in line and "API key required" in line
    assert "videos 5 MB" in line and str(served.folder) in line
