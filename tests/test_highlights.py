"""Highlights from viewer reactions, on recordings built from real clips with a known span.

scripts/make_reactions.py makes each viewer calm, then shows a real emotional clip during the
episode's seconds 6-11, then calm again; viewers 1 and 2 react again during 14-16.5; viewers
differ in speaker, clip, offset (-2 to 3 s), frame rate (15/25/30) and length, and one leaves
the frame for 3 s.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from emotrace.highlights import find_highlights, parse_offsets, snap_moments, write_highlights
from emotrace.highlights.moments import MomentSettings
from emotrace.highlights.trailer import snap_segments
from emotrace.media.decode import probe

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_reactions.py"
spec = importlib.util.spec_from_file_location("make_reactions", SCRIPT)
make_reactions = importlib.util.module_from_spec(spec)
sys.modules["make_reactions"] = make_reactions  # dataclasses look their module up there
spec.loader.exec_module(make_reactions)
SPANS = make_reactions.SPANS  # (6, 11) for all five viewers, (14, 16.5) for viewers 1-2
NO_PAD = MomentSettings(pad_s=0.0)


@pytest.fixture(scope="session")
def content(pyfeat_dir):
    return pyfeat_dir / "WolfgangLanger_Pexels.mp4"  # 19.7 s with audio: the "episode"


@pytest.fixture(scope="module")
def recordings(tmp_path_factory, styletalk_dir):  # make_reactions reads the clips there
    folder = tmp_path_factory.mktemp("reactions")
    return [(make_reactions.build(v, folder / f"{v.name}.mp4"), v) for v in make_reactions.VIEWERS]


@pytest.fixture(scope="module")
def five(recordings, analyzer_ferplus8):
    return find_highlights([p for p, _ in recordings], [v.offset for _, v in recordings],
                           analyzer_ferplus8, moment_settings=NO_PAD, progress=False)


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def precision_recall(moments, spans=SPANS) -> tuple[float, float]:
    """Share of the moments' time inside a known span; share of the spans' time covered."""
    found = sum(m.duration for m in moments)
    hit = sum(_overlap((m.start, m.end), span) for m in moments for span in spans)
    return hit / found if found else 0.0, hit / sum(b - a for a, b in spans)


@pytest.mark.slow
def test_one_viewer_moment_matches_the_emotional_span(recordings, analyzer):
    path, viewer = recordings[0]
    result = find_highlights([path], [viewer.offset], analyzer, moment_settings=NO_PAD,
                             progress=False)
    assert not result.failures
    precision, recall = precision_recall(result.moments)
    assert precision >= 0.8 and recall >= 0.85, (result.moments, precision, recall)
    assert len(result.moments) == 2
    assert all(m.dominant == "happy" and m.viewers_reacting == 1 for m in result.moments)


@pytest.mark.slow
def test_five_viewers_with_offsets_and_frame_rates(five):
    assert not five.failures and len(five.viewers) == 5
    precision, recall = precision_recall(five.moments)
    assert precision >= 0.8 and recall >= 0.85, (five.moments, precision, recall)
    assert len(five.moments) == 2
    top, second = five.moments
    # the span all five react to ranks first, the one only two react to second
    assert SPANS[0][0] <= top.peak <= SPANS[0][1] and SPANS[1][0] <= second.peak <= SPANS[1][1]
    assert top.viewers_present == 5 and top.viewers_reacting >= 4
    assert top.dominant == "happy"  # three of the five clips are happy
    assert second.viewers_reacting == 2 and second.score < top.score


@pytest.mark.slow
def test_missing_face_is_missing_not_calm(five, recordings):
    viewer3 = next(v for v in five.viewers if v.name == "viewer3")
    away = make_reactions.VIEWERS[2].away
    offset = make_reactions.VIEWERS[2].offset
    t = viewer3.table
    gone = t[(t["time"] >= away[0] + offset) & (t["time"] + 1 <= away[1] + offset)]
    assert len(gone) >= 2
    assert gone["missing"].all() and gone["intensity"].isna().all()
    assert gone["expressiveness"].isna().all()
    # the aggregate counts only the viewers present at each second
    agg = five.aggregate
    assert (agg.loc[gone.index, "viewers_present"] < 5).all()


@pytest.mark.slow
def test_signals_are_per_viewer_baselines(five):
    signals = five.signals_table()
    assert set(signals["viewer"]) == {f"viewer{i}" for i in range(1, 6)}
    calm = signals[(signals["time"] < SPANS[0][0] - 1)
                   | (signals["time"].between(SPANS[0][1] + 1, SPANS[1][0] - 1))]
    calm = calm[~calm["missing"]]
    # calm seconds sit near each viewer's own baseline
    assert calm.groupby("viewer")["z_expressiveness"].median().abs().max() < 1.0


@pytest.mark.slow
def test_trailer_lasts_the_sum_of_the_moments(five, tmp_path, content):
    written = write_highlights(five, tmp_path, content=content)
    names = {p.name for p in written}
    assert {"moments.csv", "moments.json", "report.html", "trailer.mp4", "signals.csv"} <= names
    moments = pd.read_csv(tmp_path / "moments.csv")
    info = probe(tmp_path / "trailer.mp4")
    assert info.has_audio
    assert abs(info.n_frames / info.fps - moments["duration"].sum()) <= 1 / info.fps + 1e-6
    doc = json.loads((tmp_path / "moments.json").read_text())
    assert doc["moments"][0]["rank"] == 1 and len(doc["viewers"]) == 5
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3 and "data:image/jpeg;base64," in html


@pytest.mark.slow
def test_writing_leaves_the_result_unchanged(five, tmp_path, content):
    # moments off the content's frame grid, so that writing with content has to snap them
    off_grid = [replace(m, start=m.start + 0.013, end=m.end - 0.017) for m in five.moments]
    result = replace(five, moments=off_grid)
    before = [replace(m) for m in off_grid]
    write_highlights(result, tmp_path, content=content, thumbnails=False)
    assert result.moments is off_grid and result.moments == before
    written = pd.read_csv(tmp_path / "moments.csv")  # the files hold the snapped moments
    snapped = snap_moments(before, content)
    assert [m.start for m in snapped] != [m.start for m in before]
    assert written["start"].to_numpy() == pytest.approx([m.start for m in snapped], abs=1e-3)
    assert written["end"].to_numpy() == pytest.approx([m.end for m in snapped], abs=1e-3)


@pytest.mark.slow
def test_broken_recording_is_reported_and_the_rest_used(recordings, bad_videos, tmp_path, content):
    from emotrace.cli import app

    good = [recordings[0], recordings[1]]
    broken = bad_videos["truncated_index"]  # half a video with its index at the end: unreadable
    args = ["highlights", str(good[0][0]), str(broken),
            str(good[1][0]), "--offsets", f"{good[0][1].offset},0,{good[1][1].offset}",
            "--content", str(content), "--pad", "0", "-o", str(tmp_path), "-q"]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 1, run.output
    assert f"error: {broken}: not a readable video" in run.output
    doc = json.loads((tmp_path / "moments.json").read_text())
    assert [f["path"] for f in doc["failures"]] == [str(broken)]
    assert len(doc["viewers"]) == 2
    assert "truncated_index.mp4" in (tmp_path / "report.html").read_text()
    precision, recall = precision_recall(
        [type("M", (), {"start": m["start"], "end": m["end"], "duration": m["duration"]})
         for m in doc["moments"]])
    assert precision >= 0.8 and recall >= 0.85
    assert len(doc["moments"]) == 2 and (tmp_path / "trailer.mp4").is_file()


def test_all_recordings_broken_writes_no_highlights(bad_videos, tmp_path):
    from emotrace.cli import app

    run = CliRunner().invoke(app, ["highlights", str(bad_videos["text"]),
                                   "-o", str(tmp_path / "o")])
    assert run.exit_code == 1
    assert "notes.mp4" in run.output and "no highlights written" in run.output
    # only the analysis record (the batch manifest, saying why) is there: no moments, no report
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["manifest.csv"]


def test_offsets_and_segments_are_checked():
    assert parse_offsets("0,1.5,-2", 3) == [0.0, 1.5, -2.0]
    assert parse_offsets(None, 2) == [0.0, 0.0]
    with pytest.raises(ValueError, match="2 values for 3"):
        parse_offsets("0,1", 3)
    with pytest.raises(ValueError, match="numbers"):
        parse_offsets("0,a", 2)
    assert snap_segments([(5.01, 6.0), (-1.0, 0.5), (19.0, 30.0)], 10.0, 20.0) == [
        (0.0, 0.5), (5.0, 6.0), (19.0, 20.0)]
