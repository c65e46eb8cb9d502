"""A viewer study at scale: 10 viewers x 5 min of 640x480 30 fps recordings, `emotrace
highlights --fps 5` through the batch engine, then the same highlights again from the tables.

    python benchmarks/bench_study.py [--viewers 10] [--minutes 5] [--workers 2] [--keep DIR]

The recordings are made from real face clips (../shared/data/video/unlabelled/liveportrait and
pyfeat, each looped and scaled to 640x480; --keep reuses them between runs). Measured in one
run, on the same files: decoding alone (every frame, PyAV, no conversion to arrays: the
reference), the highlights from the recordings (wall time, real-time factor, peak resident
memory of the process and its workers together, sampled every 0.2 s) and the highlights from
the tables those wrote (other moment settings, nothing decoded). Target (issue 16): >= 40x real
time (<= 75 s for 50 min), peak < 2 GB.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
from common import SHARED, machine

CLIPS = sorted((SHARED / "data" / "video" / "unlabelled" / "liveportrait").glob("*.mp4"))
CLIPS += [SHARED / "data" / "video" / "pyfeat" / "WolfgangLanger_Pexels.mp4"]
SIZE = (640, 480)


def make_recording(source: Path, out: Path, seconds: float, fps: int = 30) -> Path:
    """`source` looped to `seconds`, scaled (letterboxed) into 640x480, at `fps`."""
    with av.open(str(source)) as c:
        frames = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    h, w = frames[0].shape[:2]
    scale = min(SIZE[0] / w, SIZE[1] / h)
    size = (int(w * scale) // 2 * 2, int(h * scale) // 2 * 2)
    canvas = [cv2.copyMakeBorder(cv2.resize(f, size, interpolation=cv2.INTER_AREA),
                                 (SIZE[1] - size[1]) // 2, (SIZE[1] - size[1] + 1) // 2,
                                 (SIZE[0] - size[0]) // 2, (SIZE[0] - size[0] + 1) // 2,
                                 cv2.BORDER_CONSTANT) for f in frames]
    tmp = out.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as o:
        stream = o.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "26"}
        n = len(canvas)
        for k in range(int(seconds * fps)):
            i = k % (2 * n - 2) if n > 1 else 0  # back and forth: no jump at the loop
            frame = av.VideoFrame.from_ndarray(canvas[i if i < n else 2 * n - 2 - i],
                                               format="bgr24")
            frame.pts = k
            for packet in stream.encode(frame):
                o.mux(packet)
        for packet in stream.encode():
            o.mux(packet)
    tmp.rename(out)
    return out


def decode_only(paths: list[Path]) -> float:
    started = time.perf_counter()
    for p in paths:
        with av.open(str(p)) as c:
            stream = c.streams.video[0]
            stream.thread_type = "AUTO"
            for _ in c.decode(stream):
                pass
    return time.perf_counter() - started


def tree_rss_mb(root: int) -> float:
    """Resident memory of a process and all its descendants (Linux /proc), in MB."""
    parents, rss = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid], rss[pid] = int(fields[1]), int(fields[21]) * 4096
    tree, grew = {root}, True
    while grew:
        more = {p for p, parent in parents.items() if parent in tree} - tree
        grew, tree = bool(more), tree | more
    return sum(rss.get(p, 0) for p in tree) / 2**20


def timed(cmd: list[str]) -> tuple[float, float, int]:
    """Wall seconds, peak resident MB of the process tree (sampled), exit code."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = [0.0]

    def watch() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss_mb(proc.pid))
            time.sleep(0.2)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    _, err = proc.communicate()
    thread.join()
    if proc.returncode not in (0, 1):
        print(err[-2000:], file=sys.stderr)
    return time.perf_counter() - started, peak[0], proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=10)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--keep", type=Path, help="make the recordings here once, reuse them")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp())
    folder.mkdir(parents=True, exist_ok=True)
    seconds = args.minutes * 60
    paths = []
    for i in range(args.viewers):
        out = folder / f"viewer{i + 1:02d}_{int(seconds)}s.mp4"
        paths.append(out if out.is_file() else
                     make_recording(CLIPS[i % len(CLIPS)], out, seconds))
    total = seconds * len(paths)
    print(f"# {machine()}; {len(paths)} recordings x {args.minutes:g} min 640x480 30 fps "
          f"= {total / 60:.0f} min; --fps {args.fps:g}, --workers {args.workers}")
    decode = decode_only(paths)
    print(f"decode only (reference): {decode:.1f} s = {total / decode:.0f}x real time")
    with tempfile.TemporaryDirectory() as out:
        base = [sys.executable, "-m", "emotrace.cli", "highlights", *map(str, paths), "-o", out,
                "--fps", f"{args.fps:g}", "-q"]
        wall, peak, code = timed([*base, "--workers", str(args.workers)])
        print(f"highlights from the recordings: {wall:.1f} s = {total / wall:.1f}x real time "
              f"({wall / (total / 60):.2f} s per recording-minute; {wall / decode:.2f}x the "
              f"decode time), peak memory {peak:.0f} MB, exit {code}")
        tables = sorted(str(p) for p in (Path(out) / "faces").glob("*.parquet"))
        again = [sys.executable, "-m", "emotrace.cli", "highlights", *tables, "-o", out + "/t",
                 "--fps", f"{args.fps:g}", "-q", "--top", "5"]
        wall_t, peak_t, code_t = timed(again)
        print(f"highlights from the tables (--top 5): {wall_t:.1f} s ({wall / wall_t:.0f}x "
              f"faster), peak memory {peak_t:.0f} MB, exit {code_t}")


if __name__ == "__main__":
    main()
