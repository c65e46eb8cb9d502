"""Non-learned temporal smoothing of per-frame emotions along a face track.

Per-frame classifiers flicker: a face that stays happy is called happy, neutral, happy, ...
from one frame to the next. Three smoothers, each applied to one track at a time and aware of
the frames' timestamps (so sampling at --fps or dropped frames do not change their meaning):

- `ema`: exponential moving average of the probabilities, causal (usable live), with a
  half-life in seconds.
- `gaussian`: a Gaussian window over time (sigma in seconds), centred, so it does not lag.
- `viterbi`: the most likely label sequence under an HMM whose emissions are the classifier's
  probabilities and whose transitions cost `switch_cost` nats per change of label (per second
  of gap is not modelled: a change costs the same after one frame or ten); it gives labels,
  and probabilities averaged over each run of one label.

`flip_rate` counts label changes between adjacent frames of a track per second. Tables of
several videos are grouped by (source, track_id), as `outputs.tables.track_summary` does.
`TrackSmoother` is `ema` frame by frame for live use (the webcam): one state per track id.
"""

from __future__ import annotations

import math
from collections.abc import Collection

import numpy as np
import pandas as pd

from emotrace.results import table_tracks

METHODS = ("none", "ema", "gaussian", "viterbi")


def ema(probs: np.ndarray, t: np.ndarray, half_life: float = 0.5) -> np.ndarray:
    """Causal exponential moving average; probs (N, K), t (N,) seconds, increasing."""
    if half_life <= 0:
        raise ValueError(f"half_life must be > 0, got {half_life}")
    out = np.empty_like(probs, dtype=np.float64)
    if not len(probs):
        return out
    out[0] = probs[0]
    for i in range(1, len(probs)):
        keep = 0.5 ** ((t[i] - t[i - 1]) / half_life)  # weight of the past after dt seconds
        out[i] = keep * out[i - 1] + (1 - keep) * probs[i]
    return out


class TrackSmoother:
    """`ema` applied live, one frame at a time, with one state per track id.

    Each call gets one frame's faces; a face continues its track's average with the weight of
    the past `0.5 ** (dt / half_life)`, dt being the seconds since that track was last seen,
    so the result does not depend on the frame rate and a missed detection only lengthens dt.
    A track's state lives while the tracker keeps its id (`live`), and is dropped with it.
    Faces with track id -1 (untracked) pass through unchanged.
    """

    def __init__(self, half_life: float) -> None:
        if not half_life > 0:
            raise ValueError(f"half_life must be > 0 s, got {half_life}")
        self.half_life = half_life
        self._state: dict[int, tuple[float, np.ndarray]] = {}  # id -> (last seen, average)

    def __len__(self) -> int:
        return len(self._state)

    def update(self, timestamp: float, track_ids: np.ndarray, values: np.ndarray,
               live: Collection[int]) -> np.ndarray:
        """Smoothed `values` (N, K) of this frame's faces with their `track_ids` (N,).

        `live`: the ids the tracker still holds after this frame; other states are forgotten.
        """
        if len(track_ids) != len(values):
            raise ValueError(f"{len(track_ids)} track ids but {len(values)} rows of values")
        out = np.asarray(values, np.float64).copy()
        for i, tid in enumerate(int(t) for t in track_ids):
            if tid < 0:
                continue
            past = self._state.get(tid)
            if past is not None and timestamp >= past[0]:  # time going back: start afresh
                keep = 0.5 ** ((timestamp - past[0]) / self.half_life)
                out[i] = keep * past[1] + (1 - keep) * out[i]
            self._state[tid] = (timestamp, out[i].copy())
        alive = {int(t) for t in live}
        self._state = {k: v for k, v in self._state.items() if k in alive}
        return out


def gaussian(probs: np.ndarray, t: np.ndarray, sigma: float = 0.5) -> np.ndarray:
    """Centred Gaussian window over time (weights by time distance, window +-3 sigma)."""
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    out = np.empty_like(probs, dtype=np.float64)
    lo = np.searchsorted(t, t - 3 * sigma, side="left")
    hi = np.searchsorted(t, t + 3 * sigma, side="right")
    for i in range(len(probs)):
        w = np.exp(-0.5 * ((t[lo[i]:hi[i]] - t[i]) / sigma) ** 2)
        out[i] = w @ probs[lo[i]:hi[i]] / w.sum()
    return out


def viterbi(probs: np.ndarray, switch_cost: float = 4.0) -> np.ndarray:
    """Most likely label path (N,) with a cost of `switch_cost` nats per label change."""
    if switch_cost < 0:
        raise ValueError(f"switch_cost must be >= 0, got {switch_cost}")
    n, k = probs.shape
    if n == 0:
        return np.zeros(0, np.int64)
    emit = np.log(np.clip(probs, 1e-9, 1.0))
    score = emit[0].copy()
    back = np.zeros((n, k), np.int64)
    for i in range(1, n):
        best_prev = int(score.argmax())
        stay = score  # staying in the same label costs nothing
        switch = score[best_prev] - switch_cost  # the best label to come from, minus the cost
        take_switch = switch > stay
        back[i] = np.where(take_switch, best_prev, np.arange(k))
        score = np.where(take_switch, switch, stay) + emit[i]
    path = np.empty(n, np.int64)
    path[-1] = int(score.argmax())
    for i in range(n - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    return path


def _run_means(probs: np.ndarray, path: np.ndarray) -> np.ndarray:
    """Each frame gets the mean probabilities of its run of one label (so argmax == label
    in nearly every case; where not, the label is set by `smooth_track` anyway)."""
    out = np.empty_like(probs, dtype=np.float64)
    start = 0
    for i in range(1, len(path) + 1):
        if i == len(path) or path[i] != path[start]:
            out[start:i] = probs[start:i].mean(axis=0)
            start = i
    return out


PARAMS = {"ema": ("a half-life (s)", 0.5), "gaussian": ("a sigma (s)", 0.5),
          "viterbi": ("a switch cost (nats)", 4.0)}


def check_smoothing(method: str, param: float | None) -> None:
    """A `ValueError` naming the option unless `method` is known and `param` (None: its
    default) suits it: > 0 for ema and gaussian, >= 0 for viterbi, finite. Check before work."""
    if method not in METHODS:
        raise ValueError(f"unknown --smooth {method!r}; valid: {', '.join(METHODS)}")
    if param is None or method == "none":
        return
    zero_ok = method == "viterbi"  # no switch cost: the per-frame labels
    if not (math.isfinite(param) and (param >= 0 if zero_ok else param > 0)):
        raise ValueError(f"--smooth-param for {method} is {PARAMS[method][0]}: must be "
                         f"{'>= 0' if zero_ok else '> 0'}, got {param:g}")


def smooth_track(probs: np.ndarray, t: np.ndarray, method: str, param: float | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(smoothed probabilities (N, K), labels (N,)) of one track with `method`."""
    if method == "none":
        return probs.astype(np.float64), probs.argmax(axis=1)
    if method == "ema":
        p = ema(probs, t, PARAMS["ema"][1] if param is None else param)
        return p, p.argmax(axis=1)
    if method == "gaussian":
        p = gaussian(probs, t, PARAMS["gaussian"][1] if param is None else param)
        return p, p.argmax(axis=1)
    if method == "viterbi":
        path = viterbi(probs, PARAMS["viterbi"][1] if param is None else param)
        return _run_means(probs, path), path
    raise ValueError(f"unknown smoothing {method!r}; valid: {', '.join(METHODS)}")


def smooth_table(df: pd.DataFrame, labels: tuple[str, ...], method: str,
                 param: float | None = None) -> pd.DataFrame:
    """The per-face table with each track's probabilities and `emotion` smoothed.

    The raw top label is kept as `emotion_raw`; rows without a track (still images, frames
    without a face) are left as they are. A track is one (source, track_id): the table may
    hold several videos whose track ids repeat. `method`: one of `METHODS`; `param`: half-life
    (ema, s), sigma (gaussian, s) or switch cost (viterbi, nats); None = the default.
    """
    if method not in METHODS:
        raise ValueError(f"unknown smoothing {method!r}; valid: {', '.join(METHODS)}")
    out = df.copy()
    out["emotion_raw"] = df["emotion"]
    cols = list(labels)
    lab = np.asarray(labels, dtype=object)
    prob_dtype = out["emotion_prob"].dtype
    for _, rows in table_tracks(df):
        p, path = smooth_track(rows[cols].to_numpy(np.float64), rows["timestamp"].to_numpy(),
                               method, param)
        out.loc[rows.index, cols] = p.astype(np.float32)
        out.loc[rows.index, "emotion"] = lab[path]
        out.loc[rows.index, "emotion_prob"] = p[np.arange(len(p)), path].astype(prob_dtype)
    out.attrs["smoothing"] = method if param is None else f"{method}({param:g})"
    return out


def flip_rate(df: pd.DataFrame, column: str = "emotion") -> float:
    """Label changes between adjacent frames of the same track (one source and track id),
    per second of track."""
    flips = seconds = 0.0
    for _, rows in table_tracks(df):
        labels = rows[column].to_numpy()
        flips += float((labels[1:] != labels[:-1]).sum())
        t = rows["timestamp"].to_numpy()
        if len(t) > 1:
            seconds += float(t[-1] - t[0])
    return flips / seconds if seconds else 0.0
