"""What every request to the REST API passes before and after its route: one ASGI middleware.

Before the route reads a byte of the body: the API key (401), the queue's room for a video
(429), the declared size (413 when Content-Length is over the route's limit). While the body
arrives: its bytes are counted, and the request is cut with a 413 as soon as they pass the limit,
whatever Content-Length said or when it says nothing (chunked uploads); the server never reads
more than the limit. After: an exception no handler took becomes a JSON 500 (logged with its
traceback) instead of Starlette's plain-text one, and the connection stays usable for the next
keep-alive request. Every answer is JSON `{"detail": ...}`.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import HTTPException

log = logging.getLogger("emotrace.api")

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


class BodyTooLarge(HTTPException):
    """The request body passed its route's limit (raised from `receive`, mid-upload)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than the limit of {_mb(limit)} for this "
                              "endpoint; the upload was cut there")


def _mb(n: int) -> str:
    return f"{n / (1 << 20):.3g} MB" if n >= 1 << 20 else f"{n / 1024:.3g} KB"


async def send_json(send: Send, status: int, detail: str, headers: dict | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    extra = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *extra]})
    await send({"type": "http.response.body", "body": body})


@dataclass
class Rules:
    """What the guard checks: `limit(path)` the largest body in bytes a path takes, the API key
    (None: none needed) for paths under `keyed_prefix`, and `refuse(method, path)` an early
    (status, detail) or None."""

    limit: Callable[[str], int]
    api_key: str | None = None
    keyed_prefix: str = "/v1/"
    refuse: Callable[[str, str], tuple[int, str] | None] = lambda method, path: None


class Guard:
    """The pure ASGI middleware (`app.add_middleware(Guard, rules=...)`)."""

    def __init__(self, app, rules: Rules) -> None:
        self.app, self.rules = app, rules

    def _before(self, scope: Scope) -> tuple[int, str] | None:
        path, method = scope["path"], scope["method"]
        headers = dict(scope["headers"])
        key = self.rules.api_key
        if key is not None and path.startswith(self.rules.keyed_prefix):
            sent = headers.get(b"x-api-key", b"")
            if not hmac.compare_digest(sent, key.encode()):
                return 401, "missing or wrong API key (send it in the X-API-Key header)"
        refusal = self.rules.refuse(method, path)
        if refusal:
            return refusal
        length, limit = headers.get(b"content-length", b""), self.rules.limit(path)
        if length.isdigit() and int(length) > limit:
            return 413, (f"request of {_mb(int(length))} is larger than the limit of "
                         f"{_mb(limit)} for this endpoint")
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refusal = self._before(scope)
        if refusal:
            status, detail = refusal
            return await send_json(send, status, detail,
                                   {"Retry-After": "30"} if status == 429 else None)
        limit, received, started = self.rules.limit(scope["path"]), 0, False

        async def counted() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge as exc:  # raised where no route turned it into its 413
            if started:
                raise
            await send_json(send, 413, exc.detail)
        except Exception as exc:
            if started:  # half a response went out: only closing the connection is honest
                raise
            log.exception("%s %s failed", scope["method"], scope["path"])
            await send_json(send, 500, f"internal error ({type(exc).__name__}) while answering "
                                       f"{scope['method']} {scope['path']}; the server's log "
                                       "has the details")
