"""One per-frame engine: the webcam runs `Analyzer.analyze_frame`, smoothed live per track.

`TrackSmoother` on synthetic signals (it is `smooth.ema` per track, independent of the frame
rate) and `EmotionRecognizer` on real frames of WolfgangLanger_Pexels.mp4 (sad, then happy).
"""

from __future__ import annotations

import numpy as np
import pytest

from emotrace import Analyzer
from emotrace.apps.webcam import EmotionRecognizer
from emotrace.faces.track import IoUTracker
from emotrace.media.decode import FrameReader
from emotrace.smooth import TrackSmoother, ema


@pytest.fixture(scope="module")
def wolfgang(pyfeat_dir) -> list[tuple[float, np.ndarray]]:
    """(timestamp, BGR frame) of every third frame (about 8 frames/s)."""
    frames = list(FrameReader(pyfeat_dir / "WolfgangLanger_Pexels.mp4"))
    return [(f.timestamp, f.image) for f in frames[::3]]


def test_track_smoother_is_ema_per_track():
    rng = np.random.default_rng(0)
    t = np.cumsum(rng.uniform(0.02, 0.2, 40))  # irregular frame times
    probs = rng.dirichlet(np.ones(7), size=(40, 2))  # two faces per frame
    smoother = TrackSmoother(0.5)
    out = np.stack([smoother.update(t[i], np.array([4, 9]), probs[i], {4, 9})
                    for i in range(40)])
    for face in range(2):
        assert np.allclose(out[:, face], ema(probs[:, face], t, 0.5))
    assert not np.allclose(out, probs)
    untracked = smoother.update(t[-1] + 0.1, np.array([-1]), probs[0, :1], {4, 9})
    assert np.array_equal(untracked, probs[0, :1])


def test_track_smoother_does_not_depend_on_the_frame_rate():
    def signal(t: np.ndarray) -> np.ndarray:  # a slow swing plus a step at 2 s
        x = 0.5 + 0.3 * np.sin(2 * np.pi * t / 3) + 0.15 * (t >= 2)
        return np.stack([x, 1 - x], axis=1)

    smoothed = {}
    for fps in (10, 30):
        t = np.arange(0, 6, 1 / fps)
        smoother = TrackSmoother(0.4)
        values = [smoother.update(ti, np.array([0]), signal(t[i:i + 1]), {0})[0]
                  for i, ti in enumerate(t)]
        smoothed[fps] = dict(zip(np.round(t, 6), values, strict=True))
    common = sorted(set(smoothed[10]) & set(smoothed[30]))
    assert len(common) >= 55
    a = np.array([smoothed[10][t][0] for t in common if abs(t - 2) > 0.5])
    b = np.array([smoothed[30][t][0] for t in common if abs(t - 2) > 0.5])
    raw = signal(np.array([t for t in common if abs(t - 2) > 0.5]))[:, 0]
    assert np.abs(a - b).max() < 0.03, np.abs(a - b).max()
    assert np.abs(b - raw).max() > 0.1  # it does smooth


def test_track_smoother_forgets_dropped_tracks_and_checks_its_input():
    smoother = TrackSmoother(1.0)
    smoother.update(0.0, np.array([0, 1]), np.eye(2), {0, 1})
    assert len(smoother) == 2
    smoother.update(0.1, np.zeros(0, np.int64), np.zeros((0, 2)), {1})
    assert len(smoother) == 1
    fresh = smoother.update(0.2, np.array([1]), np.array([[1.0, 0.0]]), {1})
    assert fresh[0, 0] < 0.5  # track 1 continued from its state (0, 1)
    restarted = smoother.update(0.0, np.array([1]), np.array([[1.0, 0.0]]), {1})
    assert np.array_equal(restarted, [[1.0, 0.0]])  # time went back: a new start
    with pytest.raises(ValueError, match="half_life"):
        TrackSmoother(0)
    with pytest.raises(ValueError, match="2 track ids but 1 rows"):
        smoother.update(0.3, np.array([1, 2]), np.ones((1, 2)), {1})
    with pytest.raises(ValueError, match="smoothing"):
        EmotionRecognizer(smoothing=-1)


def test_webcam_runs_the_analyzers_frame_step(wolfgang):
    recognizer = EmotionRecognizer(smoothing=0)
    reference = Analyzer(video_detect_size=320)
    tracker = IoUTracker()
    for i, (t, image) in enumerate(wolfgang[:5]):
        live = recognizer.analyze(image, t)
        ref = reference.analyze_frame(image, t, tracker, i)
        assert live.frame_index == i and len(live) == len(ref) == 1
        assert np.array_equal(live.detections.boxes, ref.detections.boxes)
        assert np.array_equal(live.track_ids, ref.track_ids)
        assert np.allclose(live.emotions.probs, ref.emotions.probs)
    assert recognizer.analyzer.video_detect_size == 320


def _labels(recognizer: EmotionRecognizer, frames) -> list[str]:
    out = []
    for t, image in frames:
        analysis = recognizer.analyze(image, t)
        assert len(analysis) == 1
        out.append(analysis.emotions.top[0])
    return out


@pytest.mark.slow
def test_smoothing_lowers_label_flips_on_a_real_face(wolfgang):
    raw = _labels(EmotionRecognizer(smoothing=0), wolfgang)
    smooth = _labels(EmotionRecognizer(smoothing=0.5), wolfgang)
    flips_raw = sum(a != b for a, b in zip(raw, raw[1:], strict=False))
    flips_smooth = sum(a != b for a, b in zip(smooth, smooth[1:], strict=False))
    assert flips_raw >= 10 and flips_smooth * 2 <= flips_raw, (flips_raw, flips_smooth)
    assert raw[0] == smooth[0]  # the first frame of a track has no past
    assert "sad" in smooth[: len(smooth) // 2] and smooth[-1] == "happy"


def test_a_missed_detection_keeps_the_state(wolfgang):
    (t1, first), (t2, second) = wolfgang[40], wolfgang[41]
    empty = np.zeros_like(first)
    # emotrace-ferplus8: its probabilities move between these two frames (the calibrated
    # default is ~0.99 sure on both), which the arithmetic below needs to be seen
    raw = EmotionRecognizer("emotrace-ferplus8", smoothing=0)
    p1 = raw.analyze(first, t1).emotions.probs[0]
    p2 = raw.analyze(second, t2).emotions.probs[0]
    assert not np.allclose(p1, p2, atol=0.01)
    recognizer = EmotionRecognizer("emotrace-ferplus8", smoothing=0.5)
    recognizer.analyze(first, t1)
    assert len(recognizer.analyze(empty, (t1 + t2) / 2)) == 0
    after = recognizer.analyze(second, t2)
    keep = 0.5 ** ((t2 - t1) / 0.5)  # the gap counts from the last frame the face was seen
    assert after.track_ids.tolist() == [0]
    assert np.allclose(after.emotions.probs[0], keep * p1 + (1 - keep) * p2, atol=1e-5)
    # once the tracker drops the face (unseen for longer than max_gap) its state goes too
    assert len(recognizer.analyze(empty, t2 + 1.5)) == 0
    again = recognizer.analyze(second, t2 + 1.6)
    assert again.track_ids.tolist() == [1]
    assert np.allclose(again.emotions.probs[0], p2, atol=1e-5)
