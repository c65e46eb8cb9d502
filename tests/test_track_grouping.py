"""Per-track tables of several videos: a track is (source, track_id), never track_id alone.

Two real talking-head clips each have their face as track 0; stacked in one table (as `batch`
output or several `emotrace video` tables read together), smoothing and flip rates must treat
them as two tracks, exactly as each video alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emotrace.smooth import flip_rate, smooth_table

CLIPS = ("happyenglish_clip2.mp4", "furious_talk1_clip2.mp4")


@pytest.fixture(scope="module")
def two_videos(analyzer, styletalk_dir):
    tables = []
    for name in CLIPS:
        result = analyzer.analyze_video(styletalk_dir / "style_clips" / name, fps=10,
                                        progress=False)
        tables.append(result.to_pandas())
    labels = result.labels
    assert all((df.loc[df["track_id"] >= 0, "track_id"] == 0).all() for df in tables)
    return tables, labels


def _flips_and_seconds(df: pd.DataFrame) -> tuple[int, float]:
    rows = df[df["track_id"] >= 0].sort_values("timestamp")
    labels = rows["emotion"].to_numpy()
    return int((labels[1:] != labels[:-1]).sum()), float(np.ptp(rows["timestamp"]))


@pytest.mark.slow
def test_flip_rate_counts_each_video_on_its_own(two_videos):
    tables, _ = two_videos
    both = pd.concat(tables, ignore_index=True)
    counts = [_flips_and_seconds(df) for df in tables]
    expected = sum(f for f, _ in counts) / sum(s for _, s in counts)
    assert flip_rate(both) == pytest.approx(expected)


@pytest.mark.parametrize("method,param", [("viterbi", 8.0), ("gaussian", 0.5)])
def test_smoothing_a_stacked_table_equals_smoothing_each_video(two_videos, method, param):
    tables, labels = two_videos
    both = smooth_table(pd.concat(tables, ignore_index=True), labels, method, param)
    alone = pd.concat([smooth_table(df, labels, method, param) for df in tables],
                      ignore_index=True)
    assert (both["emotion"] == alone["emotion"]).all()
    np.testing.assert_allclose(both[list(labels)].to_numpy(np.float64),
                               alone[list(labels)].to_numpy(np.float64), atol=1e-6)
