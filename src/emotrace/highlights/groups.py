"""Viewers by group (age band, subscriber or not, ...): curves, moments and differences.

Groups come from the further columns of viewers.csv (`Viewer.groups`). For every group column
and value, `group_views` gives the aggregate curve and the moments of that group's viewers
alone, beside the whole audience's. `compare_groups` asks, for each moment of the whole
audience, whether the groups reacted differently: each viewer's reaction to the moment is
their mean `intensity` over the moment's steps where their face was seen; the statistic is
the range of the group means (largest minus smallest); its null distribution comes from a
bootstrap over viewers that ignores the groups (viewers drawn with replacement from all of
them into groups of the observed sizes), so p is the share of resamples whose range is at
least the observed one. With several moments, p values are adjusted for the number of moments
(Benjamini-Hochberg) before a difference is called: `differ` is adjusted p < `alpha`.
Each group mean also carries a 95% bootstrap interval (viewers of that group resampled).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control

from emotrace.highlights.moments import Moment, MomentSettings, aggregate, pick_moments
from emotrace.highlights.reactions import ViewerSignals

#: A group needs this many viewers seen during a moment to be compared.
MIN_GROUP_VIEWERS = 2


@dataclass(frozen=True)
class GroupView:
    """One group's viewers alone: column and value, how many, their curve and moments."""

    column: str
    value: str
    viewers: tuple[str, ...]
    aggregate: pd.DataFrame
    moments: list[Moment]


@dataclass(frozen=True)
class GroupDifference:
    """Whether the groups of one column reacted differently to one moment (see module doc)."""

    moment: int  # the moment's rank
    column: str
    means: dict[str, float]  # group value -> mean reaction of its viewers
    intervals: dict[str, tuple[float, float]]  # group value -> 95% bootstrap interval
    viewers: dict[str, int]  # group value -> viewers seen during the moment
    p: float  # NaN when fewer than two groups have MIN_GROUP_VIEWERS viewers
    p_adjusted: float = float("nan")
    differ: bool = False

    def to_dict(self) -> dict:
        return {"moment": self.moment, "column": self.column, "means": self.means,
                "intervals": {k: list(v) for k, v in self.intervals.items()},
                "viewers": self.viewers, "p": self.p, "p_adjusted": self.p_adjusted,
                "differ": self.differ}


def group_columns(viewers: Sequence[ViewerSignals]) -> list[str]:
    """Group columns with at least two values among the viewers, in the order first seen."""
    columns: list[str] = []
    for v in viewers:
        columns.extend(c for c in v.groups if c not in columns)
    return [c for c in columns if len({v.groups.get(c, "") for v in viewers}) >= 2]


def group_views(viewers: Sequence[ViewerSignals], settings: MomentSettings,
                duration: float | None = None) -> list[GroupView]:
    """Curve and moments of each group's viewers alone, for every group column."""
    out = []
    for column in group_columns(viewers):
        for value in sorted({v.groups.get(column, "") for v in viewers}):
            members = [v for v in viewers if v.groups.get(column, "") == value]
            agg = aggregate(members, settings.smooth_s)
            if duration is not None:
                agg = agg[agg["time"] < duration]
            out.append(GroupView(column, value, tuple(v.name for v in members), agg,
                                 pick_moments(agg, members, settings, duration)))
    return out


def reaction_to(viewer: ViewerSignals, moment: Moment) -> float:
    """A viewer's mean intensity over the moment's steps where their face was seen (NaN if
    it never was)."""
    t = viewer.table
    rows = t[(t["time"] + viewer.bin_s > moment.start) & (t["time"] < moment.end) & ~t["missing"]]
    return float(rows["intensity"].mean()) if not rows.empty else float("nan")


def _range(values: np.ndarray, sizes: list[int]) -> float:
    means, start = [], 0
    for n in sizes:
        means.append(values[start:start + n].mean())
        start += n
    return float(max(means) - min(means))


def compare_one(moment: Moment, viewers: Sequence[ViewerSignals], column: str,
                n_boot: int = 2000, seed: int = 0) -> GroupDifference:
    """Group means, intervals and the bootstrap p of one moment for one group column."""
    rng = np.random.default_rng(seed)
    by_group: dict[str, np.ndarray] = {}
    for value in sorted({v.groups.get(column, "") for v in viewers}):
        reactions = np.array([reaction_to(v, moment) for v in viewers
                              if v.groups.get(column, "") == value])
        by_group[value] = reactions[np.isfinite(reactions)]
    means = {k: float(x.mean()) if len(x) else float("nan") for k, x in by_group.items()}
    intervals = {}
    for k, x in by_group.items():
        if len(x) >= MIN_GROUP_VIEWERS:
            boot = rng.choice(x, (n_boot, len(x))).mean(axis=1)
            intervals[k] = (float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5)))
    counts = {k: len(x) for k, x in by_group.items()}
    compared = [x for x in by_group.values() if len(x) >= MIN_GROUP_VIEWERS]
    p = float("nan")
    if len(compared) >= 2:
        sizes = [len(x) for x in compared]
        pooled = np.concatenate(compared)
        observed = _range(pooled, sizes)
        draws = rng.choice(pooled, (n_boot, len(pooled)))
        null = np.array([_range(d, sizes) for d in draws])
        p = float((1 + np.sum(null >= observed - 1e-12)) / (n_boot + 1))
    return GroupDifference(moment.rank, column, means, intervals, counts, p)


def compare_groups(moments: Sequence[Moment], viewers: Sequence[ViewerSignals],
                   alpha: float = 0.05, n_boot: int = 2000,
                   seed: int = 0) -> list[GroupDifference]:
    """For every moment and group column: do the groups differ beyond chance (module doc)."""
    out = []
    for column in group_columns(viewers):
        found = [compare_one(m, viewers, column, n_boot, seed + m.rank) for m in moments]
        tested = [i for i, d in enumerate(found) if np.isfinite(d.p)]
        if tested:
            adjusted = false_discovery_control([found[i].p for i in tested])
            for i, q in zip(tested, adjusted, strict=True):
                d = found[i]
                found[i] = GroupDifference(d.moment, d.column, d.means, d.intervals, d.viewers,
                                           d.p, float(q), bool(q < alpha))
        out.extend(found)
    return out


def group_curves_table(views: Sequence[GroupView]) -> pd.DataFrame:
    """Every group's curve in one long table: column, value, step, time, score, ..."""
    if not views:
        return pd.DataFrame(columns=["group", "value", "step", "time", "score"])
    return pd.concat([v.aggregate.reset_index().assign(group=v.column, value=v.value)
                      for v in views], ignore_index=True)[
        ["group", "value", "step", "time", "viewers_present", "mean_intensity",
         "viewers_reacting", "share_reacting", "dominant", "score"]]
