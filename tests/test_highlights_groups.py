"""Groups of viewers (issue 16, item 5): per-group curves and moments, and whether groups
reacted differently to a moment beyond chance (bootstrap over viewers)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emotrace.highlights.groups import compare_groups, group_columns, group_views, reaction_to
from emotrace.highlights.moments import Moment, MomentSettings
from emotrace.highlights.reactions import ViewerSignals

STEPS = 40


def _viewer(name: str, group: str, spans: list[tuple[int, int]], rng) -> ViewerSignals:
    """A viewer calm (intensity ~0.2) except during `spans` (intensity ~3), 40 s long."""
    intensity = rng.normal(0.2, 0.1, STEPS).clip(0)
    for a, b in spans:
        intensity[a:b] = rng.normal(3.0, 0.3, b - a)
    table = pd.DataFrame({"time": np.arange(STEPS, dtype=float), "intensity": intensity,
                          "missing": False, "dominant": "happy"},
                         index=pd.RangeIndex(STEPS, name="step"))
    table["reacting"] = table["intensity"] >= 1.5
    return ViewerSignals(name, name, 0.0, 1.0, ("neutral", "happy"), table, {}, (0,),
                         "model", {"plan": group})


@pytest.fixture(scope="module")
def audience():
    rng = np.random.default_rng(1)
    # everyone reacts at 5-10 s; only subscribers at 25-30 s
    subs = [_viewer(f"s{i}", "subscriber", [(5, 10), (25, 30)], rng) for i in range(8)]
    free = [_viewer(f"f{i}", "free", [(5, 10)], rng) for i in range(8)]
    return subs + free


def _moment(rank: int, start: float, end: float) -> Moment:
    return Moment(rank, start, end, (start + end) / 2, 1.0, 1.0, "happy", 1.0, 1, 1)


def test_groups_that_react_alike_do_not_differ_and_those_that_do_not_do(audience):
    both, only_subs = _moment(1, 5, 10), _moment(2, 25, 30)
    found = {d.moment: d for d in compare_groups([both, only_subs], audience)}
    assert not found[1].differ and found[1].p > 0.2
    assert found[2].differ and found[2].p_adjusted < 0.01
    assert found[2].means["subscriber"] > 2.5 > 0.5 > found[2].means["free"]
    low, high = found[2].intervals["subscriber"]
    assert low < found[2].means["subscriber"] < high
    assert found[2].viewers == {"free": 8, "subscriber": 8}


def test_each_group_gets_its_own_curve_and_moments(audience):
    views = {v.value: v for v in group_views(audience, MomentSettings(pad_s=0))}
    assert group_columns(audience) == ["plan"] and set(views) == {"subscriber", "free"}
    peaks = {k: sorted(m.peak for m in v.moments) for k, v in views.items()}
    assert len(peaks["subscriber"]) == 2 and 25 <= peaks["subscriber"][1] <= 30
    assert len(peaks["free"]) == 1 and 5 <= peaks["free"][0] <= 10


def test_a_group_with_one_viewer_is_not_tested(audience):
    lone = audience[:8] + audience[8:9]
    (d,) = compare_groups([_moment(1, 25, 30)], lone)
    assert np.isnan(d.p) and not d.differ and d.viewers == {"free": 1, "subscriber": 8}


def test_a_viewer_never_seen_in_a_moment_does_not_count(audience):
    v = audience[0]
    gone = ViewerSignals(v.name, v.path, 0, 1.0, v.labels,
                         v.table.assign(missing=True), {}, (0,), "model", v.groups)
    assert np.isnan(reaction_to(gone, _moment(1, 5, 10)))
    assert reaction_to(v, _moment(1, 5, 10)) > 2.5
