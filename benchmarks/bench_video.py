"""End-to-end video throughput: decode -> detect -> align -> classify -> track -> table.

    python benchmarks/bench_video.py [VIDEO] [--repeats 3] [--detect-size 320] [--model NAME]

Reports frames per second over the whole video (model loading excluded, the per-face table
included), the best and the median of the repeats.
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import WOLFGANG, machine

from emotrace import Analyzer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("video", nargs="?", default=str(WOLFGANG))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--detect-size", type=int, default=320)
    ap.add_argument("--model", default=None, help="expression model (default: the registry's)")
    args = ap.parse_args()
    kwargs = {"classifier": args.model} if args.model else {}
    analyzer = Analyzer(video_detect_size=args.detect_size or None, **kwargs)
    analyzer.analyze_image(WOLFGANG.with_name("single_face.jpg"))  # warm-up
    rates = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        result = analyzer.analyze_video(args.video, progress=False)
        df = result.to_pandas()
        rates.append(len(result.frames) / (time.perf_counter() - start))
    print(f"# {args.video} ({len(result.frames)} frames, {len(df)} rows), model "
          f"{analyzer.classifier.card.name}, detect size "
          f"{args.detect_size}, {machine()}")
    print(f"end-to-end: best {max(rates):.1f} frames/s, median {statistics.median(rates):.1f} "
          f"frames/s over {args.repeats} runs")


if __name__ == "__main__":
    main()
