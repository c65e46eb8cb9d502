"""Frame sampling on a generated variable-frame-rate clip: FrameReader reports each frame's
true time (its pts) and, at `fps`, takes the first frame at or after each point of the
sampling grid (one per grid slot, never one twice)."""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from emotrace.errors import InputError
from emotrace.media.decode import FrameReader, probe

# Bursts and pauses: gaps from 30 ms to 0.78 s.
TIMES = [0.0, 0.03, 0.07, 0.40, 0.45, 0.52, 1.30, 1.33, 1.36, 1.90, 2.05, 2.50]


def grey(i: int) -> int:
    """Frame i is one flat grey level, so a decoded frame tells which one it is."""
    return 20 + 18 * i


def write_vfr(path: Path, times: list[float], size: int = 64) -> Path:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "qp": "0"}
        stream.codec_context.time_base = Fraction(1, 1000)
        for i, t in enumerate(times):
            image = np.full((size, size, 3), grey(i), np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = round(t * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def vfr(tmp_path_factory) -> Path:
    return write_vfr(tmp_path_factory.mktemp("vfr") / "vfr.mp4", TIMES)


def which(frame) -> int:
    """The index of the written frame a decoded image shows (by its grey level)."""
    return int(round((float(frame.image.mean()) - 20) / 18))


def test_every_frame_comes_with_its_own_time(vfr):
    frames = list(FrameReader(vfr))
    assert [f.index for f in frames] == list(range(len(TIMES)))
    assert [which(f) for f in frames] == list(range(len(TIMES)))
    assert np.allclose([f.timestamp for f in frames], TIMES, atol=1e-3)
    assert probe(vfr).n_frames == len(TIMES)


def expected_sample(times: list[float], fps: float) -> list[int]:
    """Written independently of FrameReader: for each grid point k/fps, the first frame at or
    after it that was not already taken for an earlier point."""
    picked: list[int] = []
    for k in range(int(times[-1] * fps) + 1):
        after = [i for i, t in enumerate(times) if t >= k / fps - 1e-6]
        if after and (not picked or after[0] > picked[-1]):
            picked.append(after[0])
    return picked


@pytest.mark.parametrize("fps", [2.0, 4.0, 1.0])
def test_sampling_takes_the_first_frame_at_or_after_each_grid_point(vfr, fps):
    reader = FrameReader(vfr, fps=fps)
    frames = list(reader)
    want = expected_sample(TIMES, fps)
    assert [f.index for f in frames] == want
    assert [which(f) for f in frames] == want  # the image is that frame's, not a neighbour's
    assert np.allclose([f.timestamp for f in frames], [TIMES[i] for i in want], atol=1e-3)
    assert reader.frames_decoded == len(TIMES)  # skipped frames are decoded, not converted


def test_sampling_the_example_by_hand(vfr):
    # grid 0, 0.5, 1, 1.5, 2, 2.5 s -> 0, 0.52 (the first after 0.5), 1.30 (nothing in 0.5-1.3
    # but 0.52, already taken), 1.90, 2.05, 2.50; 1.33 and 1.36 lie before the 1.5 s point.
    times = [f.timestamp for f in FrameReader(vfr, fps=2.0)]
    assert np.allclose(times, [0.0, 0.52, 1.30, 1.90, 2.05, 2.50], atol=1e-3)


def test_bad_fps_and_unreadable_files(tmp_path):
    with pytest.raises(ValueError, match="fps must be > 0"):
        FrameReader(write_vfr(tmp_path / "a.mp4", [0.0, 0.1]), fps=0)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(InputError, match="not a readable video"):
        FrameReader(text)
