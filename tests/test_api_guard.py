"""The API's guard: bodies cut at the limit as they arrive, every error JSON, keep-alive kept.

A small FastAPI app with the same middleware as the API (no models), called as ASGI and served
by a real uvicorn on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
from typing import Annotated

import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
from fastapi import FastAPI, File, UploadFile  # noqa: E402

from emotrace.apps.guard import Guard, Rules  # noqa: E402

LIMIT = 1 << 20
CHUNK = 64 << 10
BOUNDARY = "testboundary"


def _app(api_key: str | None = None) -> FastAPI:
    app = FastAPI()
    app.add_middleware(Guard, rules=Rules(lambda path: LIMIT, api_key))

    @app.post("/v1/upload")
    def upload(file: Annotated[UploadFile, File()]) -> dict:
        return {"bytes": len(file.file.read())}

    @app.get("/v1/boom")
    def boom() -> dict:
        raise RuntimeError("a fault in a route")

    @app.get("/v1/ok")
    def ok() -> dict:
        return {"ok": True}

    return app


def _multipart_chunks(n: int):
    yield (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
           f"filename=\"big.mp4\"\r\nContent-Type: video/mp4\r\n\r\n").encode()
    for _ in range(n):
        yield bytes(CHUNK)
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def _call(app, chunks, headers: list[tuple[bytes, bytes]]) -> tuple[int, dict, int]:
    """Run one request through the ASGI app: (status, JSON body, body bytes the app pulled)."""
    chunks, pulled, sent = list(chunks), 0, []

    async def receive() -> dict:
        nonlocal pulled
        if not chunks:
            return {"type": "http.request", "body": b"", "more_body": False}
        body = chunks.pop(0)
        pulled += len(body)
        return {"type": "http.request", "body": body, "more_body": bool(chunks)}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/v1/upload", "raw_path": b"/v1/upload",
             "query_string": b"", "root_path": "", "server": ("127.0.0.1", 80),
             "client": ("127.0.0.1", 1), "headers": [
                 (b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode()),
                 *headers]}
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), pulled


def test_a_chunked_body_is_cut_at_the_limit_whatever_content_length_says():
    app = _app()
    # no Content-Length (chunked): 6.4 MB offered, cut after the limit
    status, body, pulled = _call(app, _multipart_chunks(100), [])
    assert status == 413 and "larger than the limit of 1 MB" in body["detail"]
    assert pulled <= LIMIT + CHUNK
    # a Content-Length that lies small: the count still cuts it
    status, body, pulled = _call(app, _multipart_chunks(100), [(b"content-length", b"1000")])
    assert status == 413 and pulled <= LIMIT + CHUNK
    # a Content-Length over the limit: refused before a byte is read
    status, body, pulled = _call(app, _multipart_chunks(100), [(b"content-length", b"9999999")])
    assert status == 413 and pulled == 0
    # under the limit: the route gets the whole file
    status, body, _ = _call(app, _multipart_chunks(8), [])
    assert status == 200 and body == {"bytes": 8 * CHUNK}


def test_the_api_key_is_checked_before_the_body_is_read():
    status, body, pulled = _call(_app("secret"), _multipart_chunks(100), [])
    assert status == 401 and "X-API-Key" in body["detail"] and pulled == 0
    status, _, _ = _call(_app("secret"), _multipart_chunks(1), [(b"x-api-key", b"secret")])
    assert status == 200


@pytest.fixture(scope="module")
def served():
    server = uvicorn.Server(uvicorn.Config(_app(), host="127.0.0.1", port=0, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started
    yield server.servers[0].sockets[0].getsockname()[1]
    server.should_exit = True
    thread.join(10)


def test_a_fault_is_a_json_500_and_the_connection_stays_usable(served):
    conn = http.client.HTTPConnection("127.0.0.1", served, timeout=10)
    conn.request("GET", "/v1/boom")
    r = conn.getresponse()
    body = r.read()
    assert r.status == 500 and r.getheader("content-type") == "application/json"
    assert "internal error (RuntimeError)" in json.loads(body)["detail"]
    sock = conn.sock
    assert sock is not None  # the server did not ask to close
    for path in ("/v1/ok", "/v1/boom", "/v1/ok"):  # the same keep-alive connection
        conn.request("GET", path)
        r = conn.getresponse()
        assert json.loads(r.read()) and conn.sock is sock
    assert r.status == 200
    conn.close()


def test_unknown_routes_and_methods_are_json_too(served):
    conn = http.client.HTTPConnection("127.0.0.1", served, timeout=10)
    for method, path, status in [("GET", "/nope", 404), ("DELETE", "/v1/ok", 405)]:
        conn.request(method, path)
        r = conn.getresponse()
        assert r.status == status and "detail" in json.loads(r.read())
    conn.close()
