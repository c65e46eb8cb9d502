"""The highlights report as a workspace (issue 16, item 7): the page's parts, the data it
embeds (strict JSON), escaping of hostile names, the episode referenced or embedded, and a
real headless Chromium that seeks the episode from a moment, a curve and the map, and moves
the cursor during playback."""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from browser import CHROMIUM, headless_chromium, wait_for

from emotrace.highlights import HighlightsResult
from emotrace.highlights.groups import compare_groups, group_views
from emotrace.highlights.moments import MomentSettings, aggregate, pick_moments
from emotrace.highlights.quality import grade
from emotrace.highlights.reactions import ViewerSignals
from emotrace.highlights.report import render, write_report
from emotrace.highlights.report_data import episode_source

STEPS, EPISODE_S = 20, 19.7  # the episode: pyfeat's WolfgangLanger_Pexels.mp4
LABELS = ("neutral", "happy", "sad")
HOSTILE = "<script>alert(1)</script>"
GOOD = {"face_share": 1.0, "face_size": 120.0, "brightness": 120.0, "contrast": 40.0,
        "sharpness": 600.0, "clipped": 0.0, "frame_rate": 10.0, "gaps": 0.0, "attention": 0.9}
DATA = re.compile(r"<script type='application/json' id='emotrace-data'>(.*?)</script>", re.S)


def _viewer(name: str, group: str, spans, rng, attention: bool, **measures) -> ViewerSignals:
    """A viewer calm except during `spans` (steps), face missing at steps 17-18."""
    intensity = rng.normal(0.2, 0.1, STEPS).clip(0)
    for a, b in spans:
        intensity[a:b] = rng.normal(3.0, 0.3, b - a)
    happy = np.clip(intensity / 4, 0, 1)
    table = pd.DataFrame({"time": np.arange(STEPS, dtype=float), "presence": 1.0,
                          "attention": 0.9 if attention else np.nan, "missing": False,
                          "neutral": 1 - happy, "happy": happy, "sad": 0.02,
                          "expressiveness": happy, "dominant": "happy", "intensity": intensity},
                         index=pd.RangeIndex(STEPS, name="step"))
    table.loc[17:18, ["missing", "intensity"]] = [True, np.nan]
    table["reacting"] = table["intensity"] >= 1.5
    m = {**GOOD, **measures}
    return ViewerSignals(name, f"/recordings/{name}.mp4", 0.5, 1.0, LABELS, table, {}, (0,),
                         "model", {"plan": group}, m, grade(m))


def audience(attention: bool = True) -> HighlightsResult:
    """Subscribers react at 5-10 s and 13-16 s, free viewers at 5-10 s only; one subscriber
    has a hostile name, one free viewer a small, dark face."""
    rng = np.random.default_rng(3)
    viewers = ([_viewer(f"s{i}", "subscriber", [(5, 10), (13, 16)], rng, attention)
                for i in range(3)]
               + [_viewer(f"f{i}", "free", [(5, 10)], rng, attention) for i in range(3)])
    viewers[0] = replace(viewers[0], name=HOSTILE)
    viewers[5] = replace(viewers[5], quality=grade({**GOOD, "face_size": 30, "brightness": 20}))
    settings = MomentSettings(pad_s=0)
    agg = aggregate(viewers, settings.smooth_s)
    agg = agg[agg["time"] < EPISODE_S]
    moments = pick_moments(agg, viewers, settings, EPISODE_S)
    return HighlightsResult(
        viewers, agg, moments, failures=[("/in/<b>broken</b>.mp4", "not a video")],
        settings={"min_quality": "fair"}, partial=[("/in/cut.mp4", "decoded 90 of 300 frames")],
        notes=[("/in/old.parquet", "fps 5 (this run: 10)")],
        excluded=[("dim & dark", "quality poor: too dark; face small")],
        groups=group_views(viewers, settings, EPISODE_S),
        differences=compare_groups(moments, viewers, n_boot=200))


@pytest.fixture(scope="module")
def result() -> HighlightsResult:
    return audience()


def page_data(text: str) -> dict:
    def no_nan(name):
        raise AssertionError(f"not strict JSON: {name}")

    return json.loads(DATA.search(text).group(1), parse_constant=no_nan)


def test_the_page_embeds_its_data_as_strict_json(result, tmp_path):
    text = render(result, tmp_path, thumbnails=False)
    data = page_data(text)
    assert len(result.moments) == 2 and [m["rank"] for m in data["moments"]] == [1, 2]
    assert data["moments"][0]["start"] == result.moments[0].start
    assert len(data["times"]) == len(data["agg"]["score"]) == len(result.aggregate)
    assert [v["name"] for v in data["viewers"]] == [v.name for v in result.viewers]
    assert data["viewers"][1]["intensity"][17] is None  # face missing: null, not NaN
    assert data["has_attention"] and data["agg"]["attention"][3] == pytest.approx(0.9)
    (plan,) = data["groups"]
    assert plan["column"] == "plan" and [c["value"] for c in plan["curves"]] == ["free",
                                                                                 "subscriber"]
    assert data["t0"] == 0 and data["t1"] == STEPS and data["duration"] is None


def test_hostile_names_are_escaped(result, tmp_path):
    text = render(result, tmp_path, thumbnails=False)
    assert HOSTILE not in text and "<b>broken</b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text  # the viewers table, the picture's alt
    assert "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e" in text  # the JSON
    assert text.count("<script") == 2 and text.count("</script>") == 2  # data and code only
    assert "dim &amp; dark" in text


def test_the_page_shows_quality_groups_offsets_and_problems(result, tmp_path):
    text = render(result, tmp_path, thumbnails=False)
    for part in ("chart-reaction", "chart-reacting", "chart-attention", "chart-heatmap",
                 "chart-group-0", "Recordings that failed (1)", "/in/cut.mp4",
                 "Viewers left out below --min-quality fair (1)", "fps 5 (this run: 10)",
                 "mean reaction per group", "<td class='num offset'>+0.50 s</td>"):
        assert part in text, part
    assert text.count("class='badge good'") == 5 and "class='badge poor'" in text
    assert "face small: 30 px" in text and "too dark" in text
    assert text.count("<tr data-seek=") >= len(result.moments)  # rows that seek
    assert text.count("class='moment nostill'") == 2  # no episode: no stills, no player
    assert "<video" not in text
    assert "No episode given" in text


def test_without_head_pose_the_page_says_so(tmp_path):
    text = render(audience(attention=False), tmp_path, thumbnails=False)
    assert "no head pose" in text and "chart-attention" not in text
    assert page_data(text)["has_attention"] is False


def test_the_episode_is_referenced_by_a_relative_path_or_embedded(tmp_path):
    episode = tmp_path / "media" / "my episode #1.mp4"
    episode.parent.mkdir()
    episode.write_bytes(b"\0" * 1000)  # not a video: the duration is unknown, nothing fails
    far = episode_source(episode, tmp_path / "out", embed_limit_mb=0)
    assert not far.embedded and far.src == "../media/my%20episode%20%231.mp4"
    assert "relative to this page" in far.note and far.duration is None
    near = episode_source(episode, tmp_path / "out", embed_limit_mb=1)
    assert near.embedded and near.src.startswith("data:video/mp4;base64,AAAA")
    assert "embedded in this page" in near.note


def test_write_report_writes_the_page(result, tmp_path):
    path = write_report(result, tmp_path / "out" / "report.html", thumbnails=False)
    assert path.read_text(encoding="utf-8").startswith("<!doctype html>")


# -- a real browser -------------------------------------------------------------------------
def _box(browser, selector: str) -> dict:
    return browser.evaluate(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
        e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect();
        return {{x: r.left, y: r.top, w: r.width, h: r.height}}; }})()""")


def _cursor_x(browser) -> float:
    return float(browser.evaluate(
        "document.querySelector('#chart-reaction line.cursor').getAttribute('x1')"))


def _x_of(data: dict, t: float, width: float) -> float:  # report.js: xOf, LEFT 130, RIGHT 12
    return 130 + (t - data["t0"]) / (data["t1"] - data["t0"]) * (width - 142)


def _seek_by_click(browser, x: float, y: float) -> float:
    """Click at (x, y); the episode's time once the seek it caused is over."""
    browser.click(x, y)
    time.sleep(0.3)
    wait_for(lambda: browser.evaluate("!episode.seeking"), 10, "the seek")
    return browser.evaluate("episode.currentTime")


def _open(browser, page) -> dict:
    browser.call("Page.navigate", url=page.as_uri())
    wait_for(lambda: browser.evaluate("document.readyState === 'complete' && "
                                      "document.getElementById('episode').readyState >= 1"),
             60, "the episode's metadata")
    return browser.evaluate("window.emotrace.data")


@pytest.mark.slow
@pytest.mark.needs_shared
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH "
                    "(Debian: apt-get install chromium; .ci/run installs it)")
def test_the_report_plays_and_seeks_the_episode_in_a_browser(result, tmp_path, pyfeat_dir):
    import cv2

    content = pyfeat_dir / "WolfgangLanger_Pexels.mp4"  # H.264 + AAC, 19.7 s
    linked = write_report(result, tmp_path / "linked" / "report.html", content, embed_limit_mb=0)
    embedded = write_report(result, tmp_path / "embedded" / "report.html", content)
    assert "data:video/mp4;base64," in embedded.read_text()
    assert "data:video/mp4;base64," not in linked.read_text()
    with headless_chromium(tmp_path / "profile", 1400, 1000, ("--mute-audio",)) as browser:
        for domain in ("Runtime", "Log", "Page"):
            browser.call(f"{domain}.enable")
        data = _open(browser, embedded)
        assert browser.evaluate("episode.duration") == pytest.approx(EPISODE_S, abs=0.1)
        data = _open(browser, linked)
        assert browser.evaluate("episode.duration") == pytest.approx(EPISODE_S, abs=0.1)
        # a moment's card: the episode goes to the moment's start
        second = result.moments[1]
        card = _box(browser, ".moment[data-rank='2']")
        assert _seek_by_click(browser, card["x"] + 40, card["y"] + 20) == pytest.approx(
            second.start, abs=0.1)
        assert browser.evaluate("document.querySelector('.moment.active').dataset.rank") == "2"
        # a point of the aggregate curve, then a cell of the viewers x time map
        chart = _box(browser, "#chart-reaction")
        at = _seek_by_click(browser, chart["x"] + _x_of(data, 12.3, chart["w"]),
                            chart["y"] + 100)
        assert at == pytest.approx(12.3, abs=0.1)
        assert _cursor_x(browser) == pytest.approx(_x_of(data, at, chart["w"]), abs=1)
        heat = _box(browser, "#chart-heatmap")
        assert _seek_by_click(browser, heat["x"] + _x_of(data, 7.0, heat["w"]),
                              heat["y"] + 2 * 16 + 8) == pytest.approx(7.0, abs=0.1)
        # the cursor follows the player's own events: a seek from its controls, playback
        browser.evaluate("episode.currentTime = 3.0")
        wait_for(lambda: abs(_cursor_x(browser) - _x_of(data, 3.0, chart["w"])) < 1, 10,
                 "the cursor at 3 s")
        browser.evaluate("episode.play()", user_gesture=True)
        time.sleep(1.5)
        browser.evaluate("episode.pause()")
        now = browser.evaluate("episode.currentTime")
        assert now > 3.5, f"the episode did not play: at {now} s"
        wait_for(lambda: abs(_cursor_x(browser) - _x_of(data, now, chart["w"])) < 1, 10,
                 "the cursor where playback paused")
        # "play the moment" plays it and stops at its end
        _box(browser, ".moment[data-rank='2'] button")
        browser.evaluate("document.querySelector(\".moment[data-rank='2'] button\").click()",
                         user_gesture=True)
        wait_for(lambda: browser.evaluate("episode.paused && episode.currentTime > "
                                          f"{second.start + 0.5}"), 20, "the moment's end")
        assert browser.evaluate("episode.currentTime") == pytest.approx(second.end, abs=0.15)
        shot = browser.screenshot(tmp_path / "report.png")
        assert browser.errors() == []
    image = cv2.imread(str(shot))
    assert image is not None and image.shape == (1000, 1400, 3) and image.std() > 10
