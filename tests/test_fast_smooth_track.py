"""Smoothing (ema, gaussian, viterbi) and IoU tracking on synthetic inputs with known answers."""

import numpy as np
import pandas as pd
import pytest

from emotrace.faces.track import IoUTracker, iou_matrix
from emotrace.smooth import ema, flip_rate, gaussian, smooth_table, smooth_track, viterbi

HAPPY, SAD = [0.8, 0.2], [0.2, 0.8]

# -- ema ------------------------------------------------------------------------------------


def test_ema_halves_the_past_per_half_life_whatever_the_sampling():
    half_life = 0.5
    for dt in (0.05, 0.1, 0.25):  # three frame rates
        t = np.arange(0, 2 + 1e-9, dt)
        p = np.array([[1.0, 0.0]] + [[0.0, 1.0]] * (len(t) - 1))  # happy once, then sad
        out = ema(p, t, half_life)
        for k in (1, 2, 4):  # after k half-lives the first frame weighs 0.5**k
            i = int(round(k * half_life / dt))
            assert out[i, 0] == pytest.approx(0.5**k, abs=1e-9)
        assert np.allclose(out.sum(axis=1), 1)


def test_ema_is_causal_and_keeps_a_constant():
    p = np.array([[0.3, 0.7]] * 5 + [[0.9, 0.1]] * 5)
    t = np.arange(10) * 0.1
    out = ema(p, t, 0.3)
    assert np.allclose(out[:5], [0.3, 0.7])  # nothing from the future leaks back
    assert out[5, 0] < 0.9 and np.all(np.diff(out[5:, 0]) > 0)


# -- gaussian -------------------------------------------------------------------------------


def test_gaussian_is_a_centred_weighted_mean_over_time():
    t = np.array([0.0, 0.1, 0.2, 0.5, 1.5])  # irregular times
    p = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    sigma = 0.2
    out = gaussian(p, t, sigma)
    for i in range(len(t)):
        near = np.abs(t - t[i]) <= 3 * sigma
        w = np.exp(-0.5 * ((t[near] - t[i]) / sigma) ** 2)
        assert np.allclose(out[i], w @ p[near] / w.sum())
    assert np.allclose(out[-1], [1.0, 0.0])  # 1 s from any other frame: left alone


def test_gaussian_does_not_lag_a_step():
    t = np.arange(0, 10.05, 0.1)
    step = (t >= 5.0).astype(float)
    p = np.stack([1 - step, step], axis=1)
    out = gaussian(p, t, 0.5)
    crossing = t[np.argmax(out[:, 1] >= 0.5)]
    assert abs(crossing - 4.95) <= 0.1  # the midpoint of the step, not later


# -- viterbi --------------------------------------------------------------------------------


def test_viterbi_removes_a_blip_only_when_two_switches_cost_more_than_it_gains():
    probs = np.array([HAPPY] * 5 + [SAD] + [HAPPY] * 5)
    gain = np.log(0.8 / 0.2)  # what labelling the blip frame 'sad' gains: 1.386 nats
    smoothed = viterbi(probs, switch_cost=gain / 2 + 0.1)  # two switches cost more
    assert (smoothed == 0).all()
    kept = viterbi(probs, switch_cost=gain / 2 - 0.1)  # two switches cost less
    assert kept.tolist() == probs.argmax(axis=1).tolist()


def test_viterbi_keeps_a_lasting_change_at_its_frame():
    probs = np.array([HAPPY] * 8 + [SAD] * 8)
    assert viterbi(probs, switch_cost=4.0).tolist() == [0] * 8 + [1] * 8
    path_probs, labels = smooth_track(probs, np.arange(16) * 0.1, "viterbi", 4.0)
    assert labels.tolist() == [0] * 8 + [1] * 8
    assert np.allclose(path_probs[:8], HAPPY) and np.allclose(path_probs[8:], SAD)


def test_smooth_table_works_per_track_and_flip_rate_counts_changes():
    labels = ("happy", "sad")
    blip = [HAPPY] * 4 + [SAD] + [HAPPY] * 5
    rows = []
    for track in (0, 1):
        for i, p in enumerate(blip if track == 0 else [SAD] * 10):
            rows.append({"source": "v.mp4", "track_id": track, "timestamp": i * 0.1,
                         "face": track, "happy": p[0], "sad": p[1], "emotion_prob": max(p),
                         "emotion": labels[int(np.argmax(p))]})
    df = pd.DataFrame(rows)
    out = smooth_table(df, labels, "viterbi", 4.0)
    assert (out.loc[out["track_id"] == 0, "emotion"] == "happy").all()  # the blip is gone
    assert (out.loc[out["track_id"] == 1, "emotion"] == "sad").all()  # not mixed with track 0
    assert flip_rate(df) > 0 and flip_rate(out) == 0


# -- tracking -------------------------------------------------------------------------------


def box(x: float, y: float, side: float = 40.0) -> np.ndarray:
    return np.array([x, y, x + side, y + side])


def test_iou_matrix_on_known_boxes():
    a = np.stack([box(0, 0, 10), box(100, 100, 10)])
    b = np.stack([box(5, 0, 10), box(0, 0, 10), box(50, 50, 10)])
    # half-overlapping squares: 50 / 150; identical: 1; apart: 0
    assert np.allclose(iou_matrix(a, b), [[1 / 3, 1, 0], [0, 0, 0]])


def test_a_gap_shorter_than_max_gap_keeps_the_id_a_longer_one_gives_a_new_id():
    tracker = IoUTracker(min_iou=0.3, max_gap=1.0)  # times below are exact in binary
    (first,) = tracker.update(np.stack([box(100, 100)]), 0.0)
    assert len(tracker.update(np.zeros((0, 4)), 0.5)) == 0  # a missed detection
    (again,) = tracker.update(np.stack([box(102, 101)]), 0.75)  # 0.75 s unseen < max_gap
    assert again == first
    (later,) = tracker.update(np.stack([box(104, 102)]), 1.75)  # exactly max_gap: still kept
    assert later == first
    (new,) = tracker.update(np.stack([box(104, 102)]), 3.0)  # 1.25 s unseen > max_gap
    assert new != first


def test_two_faces_keep_their_ids_when_they_swap_order_and_new_ones_are_never_reused():
    tracker = IoUTracker(min_iou=0.3, max_gap=0.5)
    ids = tracker.update(np.stack([box(0, 0), box(200, 0)]), 0.0)
    assert ids.tolist() == [0, 1]
    swapped = tracker.update(np.stack([box(203, 2), box(3, 1)]), 0.04)
    assert swapped.tolist() == [1, 0]
    jumped = tracker.update(np.stack([box(3, 1), box(400, 0)]), 0.08)  # too far: IoU 0
    assert jumped.tolist() == [0, 2]
    gone = tracker.update(np.stack([box(200, 0)]), 2.0)  # face 1 came back after the gap
    assert gone.tolist() == [3]


def test_tracker_rejects_bad_settings():
    with pytest.raises(ValueError, match="min_iou"):
        IoUTracker(min_iou=0)
    with pytest.raises(ValueError, match="max_gap"):
        IoUTracker(max_gap=-1)
