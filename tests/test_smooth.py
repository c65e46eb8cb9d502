"""Temporal smoothing: fewer label flips on real talking heads, labels kept where they hold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from emotrace.smooth import ema, flip_rate, gaussian, smooth_table, viterbi

CLIPS = {"happyenglish_clip2.mp4": "happy", "furious_talk1_clip2.mp4": "anger",
         "sad_emotion_clip1.mp4": "sad"}


@pytest.fixture(scope="module")
def tables(analyzer_ferplus8, styletalk_dir):
    out = {}
    for name in CLIPS:
        result = analyzer_ferplus8.analyze_video(styletalk_dir / "style_clips" / name,
                                                 progress=False)
        out[name] = (result.to_pandas(), result.labels)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("method,param", [("gaussian", 0.5), ("viterbi", 8.0), ("ema", 1.0)])
def test_fewer_flips_same_or_better_agreement(tables, method, param):
    raw_flips = smooth_flips = raw_agree = smooth_agree = 0.0
    for name, (df, labels) in tables.items():
        sm = smooth_table(df, labels, method, param)
        raw_flips += flip_rate(df)
        smooth_flips += flip_rate(sm)
        raw_agree += (df["emotion"] == CLIPS[name]).mean()
        smooth_agree += (sm["emotion"] == CLIPS[name]).mean()
        assert (sm["emotion_raw"] == df["emotion"]).all()
        probs = sm[list(labels)].to_numpy()
        assert np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    assert smooth_flips * 3 <= raw_flips, (smooth_flips, raw_flips)
    assert smooth_agree >= raw_agree


def test_viterbi_drops_blips_keeps_real_changes():
    happy, sad = [0.8, 0.2], [0.2, 0.8]
    probs = np.array([happy] * 10 + [sad] + [happy] * 10 + [sad] * 10)
    path = viterbi(probs, switch_cost=4.0)
    assert (path[:21] == 0).all() and (path[21:] == 1).all()
    assert (viterbi(probs, switch_cost=0.0) == probs.argmax(axis=1)).all()


def test_time_aware_filters():
    t = np.array([0.0, 0.5, 1.0])
    p = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    # after one half-life, the past weighs one half
    assert np.allclose(ema(p, t, half_life=0.5)[1], [0.5, 0.5])
    g = gaussian(p, t, sigma=0.5)
    assert g[0, 0] > g[1, 0] > g[2, 0] and np.allclose(g.sum(axis=1), 1)
    with pytest.raises(ValueError, match="half_life"):
        ema(p, t, half_life=0)


@pytest.mark.slow
def test_unknown_method_and_cli(tmp_path, styletalk_dir):
    from emotrace.cli import app

    with pytest.raises(ValueError, match="valid: none, ema, gaussian, viterbi"):
        smooth_table(pd.DataFrame(), ("happy",), "kalman")
    clip = styletalk_dir / "style_clips" / "happyenglish_clip1.mp4"
    run = CliRunner().invoke(app, ["video", str(clip), "-o", str(tmp_path), "-q", "--smooth",
                                   "viterbi", "--smooth-param", "8"])
    assert run.exit_code == 0, run.output
    df = pd.read_csv(tmp_path / "happyenglish_clip1.faces.csv")
    assert "emotion_raw" in df and flip_rate(df) <= flip_rate(df, "emotion_raw")
