"""Acoustic features of a video's audio track, per window: openSMILE's eGeMAPS functionals.

`audio_features(video, window=1.0)` decodes the audio with PyAV (resampled to 16 kHz mono),
cuts it into windows of `window` seconds and returns, per window, the 88 eGeMAPSv02
functionals (pitch, loudness, jitter/shimmer, spectral balance, ... : the Geneva minimalistic
acoustic parameter set for affective computing). A video without an audio track gives an
empty table with `has_audio` False, never an error. Needs the `audio` extra (opensmile).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pandas as pd

from emotrace.errors import InputError

RATE = 16_000


@dataclass(frozen=True)
class AudioFeatures:
    """starts: (W,) window start times (s); values: (W, 88) float32; names: the 88 columns."""

    path: str
    has_audio: bool
    starts: np.ndarray
    values: np.ndarray
    names: tuple[str, ...]

    def to_pandas(self) -> pd.DataFrame:
        df = pd.DataFrame(self.values, columns=list(self.names))
        df.insert(0, "start", self.starts)
        return df

    def at(self, times: np.ndarray, window: float) -> np.ndarray:
        """The features of the window holding each time (zeros where there is no audio)."""
        out = np.zeros((len(times), len(self.names)), np.float32)
        if not self.has_audio or not len(self.starts):
            return out
        idx = np.clip((np.asarray(times) // window).astype(int), 0, len(self.starts) - 1)
        return self.values[idx]


def read_audio(path: str | Path) -> np.ndarray | None:
    """The audio track as float32 mono at 16 kHz, or None when the video has none."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
            chunks = []
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except av.error.FFmpegError as exc:
        raise InputError(path, f"cannot decode the audio ({exc})") from None
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def audio_features(path: str | Path, window: float = 1.0) -> AudioFeatures:
    try:
        import opensmile
    except ImportError:
        raise RuntimeError("audio features need openSMILE: pip install 'emotrace[audio]'") from None
    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                            feature_level=opensmile.FeatureLevel.Functionals)
    names = tuple(smile.feature_names)
    signal = read_audio(path)
    if signal is None:
        return AudioFeatures(str(path), False, np.zeros(0),
                             np.zeros((0, len(names)), np.float32), names)
    step = int(window * RATE)
    starts, rows = [], []
    for i in range(0, max(len(signal) - step // 2, 0), step):  # a last window under half is dropped
        chunk = signal[i:i + step]
        rows.append(smile.process_signal(chunk, RATE).to_numpy()[0])
        starts.append(i / RATE)
    values = np.nan_to_num(np.array(rows, np.float32).reshape(-1, len(names)))
    return AudioFeatures(str(path), True, np.array(starts), values, names)
