"""Highlights from synthetic viewer signals: aggregate and pick_moments find a planted peak."""

import numpy as np
import pandas as pd
import pytest

from emotrace.highlights.moments import MomentSettings, aggregate, moments_table, pick_moments
from emotrace.highlights.reactions import ViewerSignals

BIN_S = 0.5
STEPS = 80  # 40 s of episode


def viewer(name: str, bursts: dict[tuple[int, int], str], seed: int,
           away: tuple[int, int] | None = None) -> ViewerSignals:
    """Quiet intensity around 0, a burst of 4 (reacting, showing an emotion) on each step range
    of `bursts`, and NaN (missing: face not seen) on the steps of `away`."""
    steps = pd.RangeIndex(STEPS, name="step")
    intensity = np.abs(np.random.default_rng(seed).normal(0, 0.1, STEPS))
    dominant = np.array(["neutral"] * STEPS, dtype=object)
    for (lo, hi), emotion in bursts.items():
        intensity[lo:hi] = 4.0
        dominant[lo:hi] = emotion
    missing = np.zeros(STEPS, bool)
    if away:
        missing[away[0]:away[1]] = True
    table = pd.DataFrame({"time": steps * BIN_S, "intensity": np.where(missing, np.nan, intensity),
                          "dominant": np.where(missing, None, dominant), "missing": missing},
                         index=steps)
    table["reacting"] = table["intensity"] >= 1.5
    return ViewerSignals(name=name, path=f"{name}.mp4", offset=0.0, bin_s=BIN_S,
                         labels=("happy", "neutral", "sad"), table=table, baseline={},
                         track_ids=(0,), va_source="model")


def test_a_peak_shared_by_all_viewers_is_found_where_it_was_planted():
    viewers = [viewer(f"v{i}", {(40, 48): "happy"}, seed=i) for i in range(3)]  # 20-24 s
    agg = aggregate(viewers, smooth_s=0.5)
    assert (agg["viewers_present"] == 3).all()
    assert agg.loc[44, "share_reacting"] == 1 and agg.loc[44, "dominant"] == "happy"
    assert agg.loc[10, "viewers_reacting"] == 0 and agg.loc[10, "dominant"] == ""
    (moment,) = pick_moments(agg, viewers, MomentSettings(pad_s=0.0, smooth_s=0.5))
    assert moment.rank == 1 and 20.0 <= moment.peak <= 24.0
    assert moment.start == pytest.approx(20.0, abs=0.5)
    assert moment.end == pytest.approx(24.0, abs=0.5)
    assert moment.dominant == "happy" and moment.agreement == 1.0
    assert moment.viewers_reacting == moment.viewers_present == 3


def test_moments_are_ranked_by_score_padded_and_clipped_to_the_episode():
    # a strong moment (three viewers) at 30-33 s and a weaker one (one viewer) at 5-7 s
    viewers = [viewer("v0", {(60, 66): "sad", (10, 14): "happy"}, seed=0),
               viewer("v1", {(60, 66): "sad"}, seed=1), viewer("v2", {(60, 66): "sad"}, seed=2)]
    agg = aggregate(viewers, smooth_s=0.5)
    moments = pick_moments(agg, viewers, MomentSettings(pad_s=1.0, smooth_s=0.5, min_score=0.5))
    assert [m.rank for m in moments] == [1, 2]
    strong, weak = moments
    assert 30.0 <= strong.peak <= 33.0 and strong.dominant == "sad"
    assert 5.0 <= weak.peak <= 7.0 and weak.viewers_reacting == 1
    assert strong.score > weak.score
    assert strong.start == pytest.approx(29.0, abs=0.5)  # padded by 1 s
    assert strong.end == pytest.approx(34.0, abs=0.5)
    assert len(pick_moments(agg, viewers, MomentSettings(top=1))) == 1
    near_end = viewer("v", {(70, 76): "happy"}, seed=3)  # 35-38 s, padded past 40 s
    (last,) = pick_moments(aggregate([near_end], 0.5), [near_end],
                           MomentSettings(pad_s=5.0, smooth_s=0.5), duration=40.0)
    assert last.end == 40.0
    table = moments_table(moments)
    assert table["rank"].tolist() == [1, 2] and (table["duration"] > 0).all()


def test_a_viewer_who_is_away_is_missing_not_calm():
    present = [viewer(f"v{i}", {(40, 48): "happy"}, seed=i) for i in range(2)]
    away = viewer("gone", {}, seed=5, away=(36, 52))  # not seen during the moment
    agg = aggregate([*present, away], smooth_s=0.5)
    assert agg.loc[44, "viewers_present"] == 2 and agg.loc[10, "viewers_present"] == 3
    assert agg.loc[44, "mean_intensity"] == pytest.approx(4.0)  # not pulled down to 8/3
    (moment,) = pick_moments(agg, [*present, away], MomentSettings(pad_s=0.0, smooth_s=0.5))
    assert moment.viewers_present == 2 and moment.viewers_reacting == 2
    # One viewer, away just before their reaction: the steps nobody saw have no score, and
    # they do not pull the smoothed score of the reaction's first step towards 0.
    alone = viewer("alone", {(40, 48): "happy"}, seed=6, away=(30, 40))
    curve = aggregate([alone], smooth_s=0.5)
    assert (curve.loc[30:39, "viewers_present"] == 0).all()
    assert curve.loc[30:39, "score"].isna().all()
    assert curve.loc[40, "score"] > 3.9


def test_no_reaction_no_moment_and_bad_inputs():
    calm = [viewer(f"v{i}", {}, seed=i) for i in range(3)]
    assert pick_moments(aggregate(calm), calm) == []
    with pytest.raises(ValueError, match="no viewers"):
        aggregate([])
    with pytest.raises(ValueError, match="pad_s must be >= 0"):
        MomentSettings(pad_s=-1)
