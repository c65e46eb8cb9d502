"""Acoustic features per window from real videos; a video without sound is handled."""

from __future__ import annotations

import numpy as np
import pytest

from emotrace.media.audio import audio_features, read_audio

pytest.importorskip("opensmile")


def test_egemaps_per_window_of_a_real_soundtrack(pyfeat_dir):
    f = audio_features(pyfeat_dir / "no_face.mp4", window=1.0)  # 4 s with sound
    assert f.has_audio and f.values.shape == (4, 88) and len(f.names) == 88
    loud = f.values[:, f.names.index("loudness_sma3_amean")]
    assert (loud > 0.05).all()  # there is sound in every second
    df = f.to_pandas()
    assert df["start"].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert np.array_equal(f.at(np.array([0.5, 3.9, 10.0]), 1.0), f.values[[0, 3, 3]])


def test_video_without_audio(styletalk_dir):
    clip = styletalk_dir / "style_clips" / "sadgirl_clip1.mp4"
    assert read_audio(clip) is None
    f = audio_features(clip)
    assert not f.has_audio and f.values.shape == (0, 88)
    assert (f.at(np.array([0.0, 1.0]), 1.0) == 0).all()


def test_silent_track_is_not_sound(pyfeat_dir):
    signal = read_audio(pyfeat_dir / "WolfgangLanger_Pexels.mp4")  # has a track, all zeros
    assert signal is not None and len(signal) > 16000 * 19 and np.abs(signal).max() == 0
