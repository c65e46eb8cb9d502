"""The REST API under load: 20 concurrent clients for 60 s against `emotrace serve` on
127.0.0.1, ordinary requests (photos, video uploads, polls, pages) with hostile ones mixed in.

    python benchmarks/bench_api_load.py [--clients 20] [--seconds 60] [--max-requests 100000]

Prints one row per request kind (count, statuses, p50 / p99 latency), the answers that were not
a right one for their kind (expected: none), the server's resident memory (at start, the peak
sampled every 0.2 s, the kernel's high-water mark), how the accepted video jobs ended, and
whether the server's folder held anything of the uploads afterwards. The load generator is
tests/apiload.py (the fault test runs it smaller).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, SHARED, machine

sys.path.insert(0, str(ROOT / "tests"))
from apiload import MemoryWatch, drain, kinds, run_load, serve_args  # noqa: E402
from apiserver import Server  # noqa: E402

PYFEAT = SHARED / "data" / "video" / "pyfeat"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--max-requests", type=int, default=100_000)
    parser.add_argument("--video-workers", type=int, default=1)
    args = parser.parse_args()
    photos = [PYFEAT / "single_face.jpg", PYFEAT / "multi_face.jpg"]
    mix = kinds(photos, PYFEAT / "single_face.mp4")
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(serve_args(args.video_workers), Path(tmp))
        assert server.url, server.lines
        watch = MemoryWatch(server.proc.pid)
        started = time.perf_counter()
        report = run_load(server.url, mix, args.clients, args.seconds, args.max_requests)
        wall = time.perf_counter() - started
        final = drain(server.url, report.jobs)
        watch.stop()
        uploads = [p.name for p in server.folder.rglob("*") if p.is_file()
                   and p.parent.name == "uploads"]
        code = server.stop()
        left = list(Path(tmp).glob("emotrace-api-*"))
    print(f"# {machine()}; {args.clients} clients, {wall:.1f} s, {report.requests} requests "
          f"({report.requests / wall:.1f}/s), video workers {args.video_workers}")
    print("| kind | hostile | requests | statuses | p50 ms | p99 ms |\n|---|---|---|---|---|---|")
    for row in report.rows():
        print(f"| {row['kind']} | {'yes' if row['hostile'] else ''} | {row['requests']} | "
              f"{row['statuses']} | {row['p50_ms']:.0f} | {row['p99_ms']:.0f} |")
    print(f"unexpected answers: {len(report.unexpected)}")
    for line in report.unexpected[:20]:
        print("  ", line)
    print(f"server memory: {watch.start_mb:.0f} MB at start, peak sampled {watch.peak_mb:.0f} MB,"
          f" high-water mark {watch.hwm_mb:.0f} MB")
    print(f"video jobs accepted: {len(report.jobs)}; ended {dict(final)}")
    print(f"uploads left after the jobs ended: {len(uploads)}; exit after SIGTERM {code}; "
          f"server folders left: {len(left)}")


if __name__ == "__main__":
    main()
