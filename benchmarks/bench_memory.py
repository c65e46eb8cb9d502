"""Peak memory against video length: the video as is and concatenated 10 times.

    python benchmarks/bench_memory.py [--times 10]

The long video is made by remuxing the short one's packets 10 times with shifted timestamps
(no re-encoding). Each analysis runs in a fresh process; peak RSS is its ru_maxrss.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import av
from common import ROOT, WOLFGANG, machine

CHILD = """
import resource, sys
sys.path.insert(0, {bench!r})
import common  # sets EMOTRACE_MODEL_DIR
from emotrace import Analyzer
result = Analyzer().analyze_video(sys.argv[1], progress=False)
df = result.to_pandas()
print(len(result.frames), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def concatenate(src: Path, dst: Path, times: int) -> None:
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream_from_template(vin)
        offset = 0
        for _ in range(times):
            inp.seek(0)
            last = 0
            for packet in inp.demux(vin):
                if packet.dts is None:
                    continue
                last = max(last, packet.pts + (packet.duration or 0))
                packet.pts += offset
                packet.dts += offset
                packet.stream = vout
                out.mux(packet)
            offset += last


def peak(video: Path) -> tuple[int, float]:
    code = CHILD.format(bench=str(ROOT / "benchmarks"))
    out = subprocess.run([sys.executable, "-c", code, str(video)], check=True,
                         capture_output=True, text=True).stdout.split()
    return int(out[0]), float(out[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--times", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        long = Path(tmp) / f"wolfgang_x{args.times}.mp4"
        concatenate(WOLFGANG, long, args.times)
        n1, m1 = peak(WOLFGANG)
        n2, m2 = peak(long)
    print(f"# peak RSS, {machine()}")
    print(f"short: {n1} frames, {m1:.0f} MiB")
    print(f"x{args.times}:  {n2} frames, {m2:.0f} MiB ({100 * (m2 / m1 - 1):+.1f}%)")


if __name__ == "__main__":
    main()
