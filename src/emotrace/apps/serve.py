"""Run the REST API with uvicorn: say where it listens, and leave nothing behind when it stops.

`serve` prints one line once the socket is bound (the address with the real port, so `--port 0`
works; whether an API key is required; the limits) and removes the server's folder however it
ends: uvicorn's graceful shutdown on SIGTERM / SIGINT runs the app's lifespan end, and a start
that fails (the port is taken) or any other exit runs the `finally` below.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI


def _url(sockname: tuple) -> str:
    host, port = sockname[0], sockname[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def describe(app: FastAPI, urls: list[str], api_key: bool) -> str:
    """The line `serve` prints at start."""
    service = app.state.service
    lim = service.limits
    key = ("API key required (X-API-Key header)" if api_key
           else "no API key: anyone who can reach this address may use it")
    every = " (every interface)" if any("0.0.0.0" in u or "[::]" in u for u in urls) else ""
    return (f"emotrace serve: listening on {', '.join(urls)}{every}; {key}; docs at /docs; "
            f"model {service.model}; limits: images {lim.image_bytes / (1 << 20):g} MB "
            f"({lim.images_per_request} per request), videos {lim.video_bytes / (1 << 20):g} MB, "
            f"{lim.queued_jobs} queued jobs, results kept {lim.keep_results_s / 3600:g} h; "
            f"uploads in {service.folder} (removed at exit); Ctrl-C stops it")


def serve(app: FastAPI, host: str, port: int, api_key: bool,
          echo: Callable[[str], None] | None = None) -> None:
    """Serve `app` until SIGTERM or SIGINT; `echo` (default: stderr) gets the start line."""
    say = echo if echo is not None else (lambda line: print(line, file=sys.stderr, flush=True))

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if self.started:
                urls = [_url(s.getsockname()) for srv in self.servers for s in srv.sockets]
                say(describe(app, urls, api_key))

    config = uvicorn.Config(app, host=host, port=port, log_level="warning")
    try:
        Server(config).run()
    finally:
        app.state.service.close()
