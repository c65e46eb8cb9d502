"""A bounded load run against a real `emotrace serve`: mixed requests from concurrent clients,
hostile ones mixed in (not a test module; used by test_faults_api_load.py and by
benchmarks/bench_api_load.py).

Each request kind says which statuses are its right answers: a photo is 200, a video upload 202
(or 429 when the queue is full, which is the bound working), a 2 MB image to a 1 MB limit 413,
a 65535 x 65535 PNG header 400, and so on. Anything else, or a connection error, is a fault of
the server. Latencies are per request, from send to the last byte of the answer.
"""

from __future__ import annotations

import random
import struct
import threading
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

IMAGE_MB, VIDEO_MB = 1, 5  # the server under test is started with these limits (serve_args)
KEY = "load-test-key"


def serve_args(video_workers: int = 1, queued: int = 8) -> list[str]:
    """Options for the server the load runs against: small limits so hostile sizes stay small."""
    return ["--api-key", KEY, "--max-image-mb", str(IMAGE_MB), "--max-video-mb", str(VIDEO_MB),
            "--video-workers", str(video_workers), "--max-queued-jobs", str(queued)]


def png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk claiming width x height: no pixel data at all."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)))


@dataclass(frozen=True)
class Kind:
    """One kind of request: how often it is sent, how to send it, its right answers."""

    name: str
    weight: float
    send: Callable[[httpx.Client, Pool], httpx.Response]
    expected: frozenset[int]
    hostile: bool = False


@dataclass
class Pool:
    """Job ids the clients have been given, shared so that any client may poll any job."""

    ids: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, job_id: str) -> None:
        with self.lock:
            self.ids.append(job_id)

    def pick(self, rng: random.Random) -> str | None:
        with self.lock:
            return rng.choice(self.ids) if self.ids else None


def kinds(photos: list[Path], video: Path) -> list[Kind]:
    """The request mix: three quarters ordinary work and polls, a quarter hostile."""
    photo_bytes = [(p.name, p.read_bytes()) for p in photos]
    clip = video.read_bytes()
    jpeg = photo_bytes[0][1]

    def images(client, pool, n=1):
        files = [("files", (name, data, "image/jpeg")) for name, data in photo_bytes[:n]]
        return client.post("/v1/images", files=files)

    def upload_video(client, pool):
        r = client.post("/v1/videos", files={"file": (video.name, clip, "video/mp4")},
                        data={"fps": "5"})
        if r.status_code == 202:
            pool.add(r.json()["id"])
        return r

    def poll(client, pool, suffix=""):
        job = pool.pick(client.rng)
        return client.get(f"/v1/jobs/{job}{suffix}" if job else "/v1/models")

    def chunked(client, pool):
        def body():  # past the 5 MB video limit in 256 KB pieces, no length given
            for _ in range((VIDEO_MB + 1) * 4):
                yield b"\0" * (1 << 18)
        head = (b'--x\r\nContent-Disposition: form-data; name="file"; '
                b'filename="big.mp4"\r\nContent-Type: video/mp4\r\n\r\n')
        return client.post("/v1/videos", content=_chain(head, body()),
                           headers={"Content-Type": "multipart/form-data; boundary=x"})

    def hostile_image(name, data, ctype="image/png"):
        return lambda client, pool: client.post(
            "/v1/images", files=[("files", (name, data, ctype))])

    noise = np.random.default_rng(0).integers(0, 256, (IMAGE_MB + 1) << 20, np.uint8).tobytes()
    ok = frozenset
    return [
        Kind("image", 30, images, ok({200})),
        Kind("two images", 10, lambda c, p: images(c, p, 2), ok({200})),
        Kind("video upload", 4, upload_video, ok({202, 429})),
        Kind("job poll", 25, poll, ok({200})),
        Kind("job faces page", 6, lambda c, p: poll(c, p, "/faces?limit=100"), ok({200, 409})),
        Kind("models", 3, lambda c, p: c.get("/v1/models"), ok({200})),
        Kind("image over the size limit", 2, hostile_image("big.jpg", noise, "image/jpeg"),
             ok({413}), True),
        Kind("chunked video over the limit", 2, chunked, ok({413, 429}), True),
        Kind("65535x65535 PNG header", 3, hostile_image("giant.png", png_header(65535, 65535)),
             ok({400}), True),
        Kind("truncated JPEG", 3, hostile_image("cut.jpg", jpeg[: len(jpeg) // 3], "image/jpeg"),
             ok({400}), True),
        Kind("text named .png", 2, hostile_image("notes.png", b"not an image\n" * 20),
             ok({400}), True),
        Kind("unknown type", 2, hostile_image("tool.exe", b"MZ" * 100, "application/octet-stream"),
             ok({415}), True),
        Kind("300-character suffix", 1, lambda c, p: c.post("/v1/videos", files={"file": (
            "clip." + "x" * 300, b"\0" * 1000, "application/octet-stream")}), ok({415, 429}), True),
        Kind("fps=inf", 2, lambda c, p: c.post("/v1/videos", data={"fps": "inf"}, files={
            "file": (video.name, b"\0" * 1000, "video/mp4")}), ok({422, 429}), True),
        Kind("no API key", 2, lambda c, p: c.get("/v1/models", headers={"X-API-Key": "wrong"}),
             ok({401}), True),
        Kind("unknown job", 2, lambda c, p: c.get("/v1/jobs/no-such-job"), ok({404}), True),
        Kind("unknown route", 1, lambda c, p: c.delete("/v1/everything"), ok({404, 405}), True),
    ]


def _chain(head: bytes, rest):
    yield head
    yield from rest


@dataclass
class Report:
    """What a load run saw: per kind the statuses and latencies, and every unexpected answer."""

    seconds: float
    clients: int
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    unexpected: list[str] = field(default_factory=list)
    hostile: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: Kind, seconds: float, status: int | str, detail: str = "") -> None:
        with self.lock:
            self.latencies[kind.name].append(seconds)
            self.statuses[kind.name][status] += 1
            if kind.hostile:
                self.hostile.add(kind.name)
            if status not in kind.expected:
                self.unexpected.append(f"{kind.name}: {status} {detail[:200]}")

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    def rows(self) -> list[dict]:
        """One row per kind: count, statuses, p50 and p99 latency in ms; then all together."""
        every = [s for v in self.latencies.values() for s in v]
        out = []
        for name, lat in [*sorted(self.latencies.items()), ("all", every)]:
            ms = np.asarray(lat) * 1000
            statuses = (self.statuses[name] if name != "all"
                        else sum(self.statuses.values(), Counter()))
            out.append({"kind": name, "hostile": name in self.hostile, "requests": len(lat),
                        "statuses": " ".join(f"{k}x{v}" for k, v in sorted(
                            statuses.items(), key=lambda kv: str(kv[0]))),
                        "p50_ms": float(np.percentile(ms, 50)),
                        "p99_ms": float(np.percentile(ms, 99))})
        return out


def run_load(url: str, mix: list[Kind], clients: int = 20, seconds: float = 60.0,
             max_requests: int = 100_000, seed: int = 0) -> Report:
    """`clients` threads, each with its own keep-alive connection, send requests drawn from
    `mix` (by weight, seeded) one after another until `seconds` pass or `max_requests` are
    sent in all."""
    report, pool = Report(seconds, clients), Pool()
    deadline = time.monotonic() + seconds
    budget = iter(range(max_requests))
    budget_lock = threading.Lock()
    weights = [k.weight for k in mix]

    def client_loop(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        with httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=120) as client:
            client.rng = rng  # type: ignore[attr-defined]  # for the polls' job choice
            while time.monotonic() < deadline:
                with budget_lock:
                    if next(budget, None) is None:
                        return
                kind = rng.choices(mix, weights)[0]
                start = time.perf_counter()
                try:
                    response = kind.send(client, pool)
                    report.record(kind, time.perf_counter() - start, response.status_code,
                                  response.text if response.status_code >= 500 else "")
                except httpx.HTTPError as exc:
                    report.record(kind, time.perf_counter() - start, type(exc).__name__,
                                  str(exc))

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report.jobs = list(pool.ids)  # type: ignore[attr-defined]
    return report


class MemoryWatch:
    """Samples a process's resident memory every `every` s; `peak_mb` is the largest seen and
    `hwm_mb` the kernel's high-water mark (VmHWM: the peak over the process's whole life)."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        self.pid, self.every, self.peak_mb = pid, every, 0.0
        self._stop = threading.Event()
        self.start_mb = self._read("VmRSS")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _read(self, field_name: str) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.peak_mb = max(self.peak_mb, self._read("VmRSS"))
            except FileNotFoundError:
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.hwm_mb = self._read("VmHWM")


def drain(url: str, job_ids: list[str], timeout: float = 300.0) -> Counter:
    """Wait for every accepted job to end; the count of their final statuses."""
    final: Counter = Counter()
    deadline = time.time() + timeout
    with httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=30) as client:
        for job_id in job_ids:
            while True:
                status = client.get(f"/v1/jobs/{job_id}").json()["status"]
                if status not in ("queued", "running") or time.time() > deadline:
                    final[status] += 1
                    break
                time.sleep(0.5)
    return final
