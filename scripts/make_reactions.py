"""Build viewer reaction recordings from real clips, with a known emotional span.

There is no recording of test viewers here, so this script makes some from the real talking-
head clips in ../shared/data/video/styletalk: each "viewer" is calm (a neutral speaker), then
shows an emotional clip at a known episode time, then is calm again; two of the five viewers
also react, more briefly, at a second known time. Different viewers get
different calm speakers, emotional clips, start offsets and frame rates; one can leave the
frame for a while. The tests use it; it also gives a user something to run `emotrace
highlights` on:

    python scripts/make_reactions.py demo-reactions/
    emotrace highlights demo-reactions/viewer*.mp4 --offsets $(cat demo-reactions/offsets.txt) \
        --content ../shared/data/video/pyfeat/WolfgangLanger_Pexels.mp4 -o highlights/

Episode timeline: every viewer reacts during [EMOTION_START, EMOTION_END) seconds of the episode,
viewers 1 and 2 also during SECOND_SPAN; a viewer whose recording starts at episode time
`offset` shows them at recording time (episode time - offset).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

SHARED = Path(os.environ.get("EMOTRACE_SHARED",
                             Path(__file__).resolve().parents[1].parent / "shared"))
STYLETALK = SHARED / "data" / "video" / "styletalk"
NO_FACE = SHARED / "data" / "video" / "pyfeat" / "no_face.mp4"
EMOTION_START, EMOTION_END = 6.0, 11.0
SECOND_SPAN = (14.0, 16.5)
SPANS = ((EMOTION_START, EMOTION_END), SECOND_SPAN)
SIZE = 256


@dataclass(frozen=True)
class Viewer:
    name: str
    calm: str  # styletalk/source_video clip of a calm speaker
    emotion: tuple[str, float]  # styletalk/style_clips clip and the second it starts from
    offset: float  # episode time at which the recording starts
    fps: float
    length: float  # seconds
    away: tuple[float, float] | None = None  # recording seconds with no face in view
    second: tuple[str, float] | None = None  # a clip shown during SECOND_SPAN


VIEWERS = (
    Viewer("viewer1", "Obama_clip1.mp4", ("happyenglish_clip2.mp4", 0.0), 0.0, 30.0, 19.0,
           second=("happyenglish_clip1.mp4", 0.0)),
    Viewer("viewer2", "KristiNoem.mp4", ("furious_talk2_clip6.mp4", 0.0), 1.5, 25.0, 17.5,
           second=("vscodehappy_clip1.mp4", 0.0)),
    Viewer("viewer3", "Obama_clip2.mp4", ("furious_talk1_clip2.mp4", 2.0), -2.0, 30.0, 21.0,
           away=(1.0, 4.0)),
    Viewer("viewer4", "Obama_clip3.mp4", ("happyenglish_clip2.mp4", 7.0), 3.0, 15.0, 16.0),
    Viewer("viewer5", "reagan_clip1.mp4", ("sad_emotion_clip1.mp4", 1.0), 0.5, 30.0, 18.0),
)


def _frames(path: Path) -> tuple[list[np.ndarray], float]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        fps = float(stream.average_rate)
        frames = [cv2.resize(f.to_ndarray(format="bgr24"), (SIZE, SIZE),
                             interpolation=cv2.INTER_AREA)
                  for f in c.decode(stream)]
    return frames, fps


def build(viewer: Viewer, out: Path) -> Path:
    """Write one recording: calm, the emotional clip at its known time, calm again."""
    calm, calm_fps = _frames(STYLETALK / "source_video" / viewer.calm)
    emo_name, emo_from = viewer.emotion
    emo, emo_fps = _frames(STYLETALK / "style_clips" / emo_name)
    blank, blank_fps = _frames(NO_FACE)
    e0, e1 = EMOTION_START - viewer.offset, EMOTION_END - viewer.offset
    s0, s1 = SECOND_SPAN[0] - viewer.offset, SECOND_SPAN[1] - viewer.offset
    second, second_fps = _frames(STYLETALK / "style_clips" / viewer.second[0]) \
        if viewer.second else ([], 1.0)
    out.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(out), "w") as container:
        rate = Fraction(viewer.fps).limit_denominator(1001)
        stream = container.add_stream("libx264", rate=rate)
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for k in range(round(viewer.length * viewer.fps)):
            t = k / viewer.fps
            if e0 <= t < e1:
                image = emo[min(len(emo) - 1, int((emo_from + t - e0) * emo_fps))]
            elif second and s0 <= t < s1:
                image = second[min(len(second) - 1, int((viewer.second[1] + t - s0) * second_fps))]
            elif viewer.away and viewer.away[0] <= t < viewer.away[1]:
                image = blank[min(len(blank) - 1, int((t - viewer.away[0]) * blank_fps))]
            else:
                image = calm[int(t * calm_fps) % len(calm)]
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = k
            frame.time_base = 1 / rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("-n", type=int, default=len(VIEWERS), help="how many viewers (1-5)")
    args = parser.parse_args(argv)
    viewers = VIEWERS[: args.n]
    for v in viewers:
        print(build(v, args.outdir / f"{v.name}.mp4"), file=sys.stderr)
    (args.outdir / "offsets.txt").write_text(",".join(f"{v.offset:g}" for v in viewers) + "\n")
    spans = ", ".join(f"{a:g}-{b:g} s" for a, b in SPANS)
    print(f"emotional spans in episode time: {spans} (the second for viewers 1-2 only)",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
