"""Across viewers: the aggregate reaction curve and the ranked moments picked from it.

`aggregate` puts every viewer's per-step signals on the episode timeline and gives, per step:
how many viewers are present, their mean `intensity`, the share of them reacting, the dominant
emotion among those reacting and how far they agree on it, and the smoothed `score` the
moments are picked from (Gaussian smoothing that ignores missing steps rather than reading them
as calm).

`pick_moments` finds peaks of the score (`scipy.signal.find_peaks` with a minimum distance and
prominence), takes each peak's extent where the score stays above half its prominence
(`peak_widths`), pads it, merges moments that overlap, and ranks them by peak score.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks, peak_widths

from emotrace.highlights.reactions import ViewerSignals


@dataclass(frozen=True)
class MomentSettings:
    """top: most moments to keep. min_gap_s: least distance between two peaks (seconds).
    pad_s: seconds added before and after each moment. smooth_s: Gaussian sigma (seconds) of
    the score. min_prominence / min_score: how far a peak must stand above its surroundings /
    above the viewers' baselines (intensity units: baseline scales). rel_height: where a
    moment's extent is cut, as a share of the peak's prominence."""

    top: int = 10
    min_gap_s: float = 5.0
    pad_s: float = 1.0
    smooth_s: float = 1.0
    min_prominence: float = 0.3
    min_score: float = 0.5
    rel_height: float = 0.5

    def __post_init__(self) -> None:
        for name in ("min_gap_s", "pad_s", "smooth_s", "min_prominence", "min_score"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.top < 1:
            raise ValueError(f"top must be >= 1, got {self.top}")
        if not 0 < self.rel_height <= 1:
            raise ValueError(f"rel_height must be in (0, 1], got {self.rel_height}")


@dataclass(frozen=True)
class Moment:
    """One ranked moment on the episode timeline (seconds)."""

    rank: int
    start: float
    end: float
    peak: float
    score: float  # smoothed aggregate score at the peak
    mean_intensity: float  # mean over the moment's steps
    dominant: str  # most frequent dominant emotion among reacting viewer-steps ("" if none)
    agreement: float  # share of those viewer-steps that show `dominant`
    viewers_reacting: int  # viewers reacting at some step of the moment
    viewers_present: int  # viewers whose face was seen during the moment

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict:
        return {**asdict(self), "duration": self.duration}


def aggregate(viewers: list[ViewerSignals], smooth_s: float = 1.0) -> pd.DataFrame:
    """Per-step aggregate over viewers (index `step`, column `time` in seconds)."""
    if not viewers:
        raise ValueError("no viewers to aggregate")
    bin_s = viewers[0].bin_s
    if any(v.bin_s != bin_s for v in viewers):
        raise ValueError("all viewers must use the same step width (bin_s)")
    lo = min(0, *(int(v.table.index.min()) for v in viewers))
    hi = max(int(v.table.index.max()) for v in viewers)
    index = pd.RangeIndex(lo, hi + 1, name="step")

    def column(name: str) -> pd.DataFrame:
        return pd.DataFrame({i: v.table[name] if name in v.table else
                             pd.Series(np.nan, v.table.index)  # e.g. no attention column
                             for i, v in enumerate(viewers)}).reindex(index)

    intensity, reacting, dominant = column("intensity"), column("reacting"), column("dominant")
    present = intensity.notna()
    reacting = reacting.fillna(False).astype(bool) & present

    out = pd.DataFrame(index=index)
    out.attrs["bin_s"] = bin_s
    out["time"] = index * bin_s
    out["viewers_present"] = present.sum(axis=1)
    out["mean_intensity"] = intensity.mean(axis=1)  # NaN where nobody is present
    out["viewers_reacting"] = reacting.sum(axis=1)
    out["share_reacting"] = out["viewers_reacting"] / out["viewers_present"].replace(0, np.nan)
    # the attention curve: share of frames facing the screen, over the viewers whose
    # recording covers the step (NaN where the tables carry no head pose)
    out["attention"] = column("attention").astype(float).mean(axis=1)
    doms, agree = [], []
    for step in index:
        shown = dominant.loc[step][reacting.loc[step]].dropna().tolist()
        if shown:
            label, count = Counter(shown).most_common(1)[0]
            doms.append(label)
            agree.append(count / len(shown))
        else:
            doms.append("")
            agree.append(np.nan)
    out["dominant"] = doms
    out["agreement"] = agree
    # Normalised convolution: smooth the values and the presence mask alike and divide, so
    # steps nobody saw neither pull the curve to zero nor get invented values of their own.
    sigma = smooth_s / bin_s
    values = out["mean_intensity"].fillna(0.0).to_numpy()
    mask = out["mean_intensity"].notna().to_numpy(float)
    if sigma > 0:
        num = gaussian_filter1d(values * mask, sigma, mode="constant")
        den = gaussian_filter1d(mask, sigma, mode="constant")
    else:
        num, den = values * mask, mask
    with np.errstate(invalid="ignore", divide="ignore"):
        out["score"] = np.where(mask > 0, num / den, np.nan)
    return out


def pick_moments(agg: pd.DataFrame, viewers: list[ViewerSignals],
                 settings: MomentSettings | None = None,
                 duration: float | None = None) -> list[Moment]:
    """Ranked moments from the aggregate curve (see module doc); `duration` clips the ends."""
    settings = settings or MomentSettings()
    if agg.empty:
        return []
    bin_s = agg.attrs.get("bin_s", 1.0)
    t0 = float(agg["time"].iloc[0])
    score = agg["score"].fillna(0.0).to_numpy()
    peaks, _ = find_peaks(score, height=settings.min_score,
                              prominence=settings.min_prominence,
                              distance=max(1, round(settings.min_gap_s / bin_s)))
    if not len(peaks):
        return []
    _, _, left, right = peak_widths(score, peaks, rel_height=settings.rel_height)
    end_limit = duration if duration is not None else float(agg["time"].iloc[-1]) + bin_s
    spans = []
    for p, lft, rgt in zip(peaks, left, right, strict=True):
        # step i stands for [time_i, time_i + bin_s), i.e. its centre; the crossings are
        # fractional step indices between centres
        start = max(0.0, t0 + (lft + 0.5) * bin_s - settings.pad_s)
        end = min(end_limit, t0 + (rgt + 0.5) * bin_s + settings.pad_s)
        spans.append([start, end, int(p)])
    spans.sort()
    merged: list[list] = []
    for start, end, p in spans:
        if merged and start <= merged[-1][1]:
            last = merged[-1]
            last[1] = max(last[1], end)
            last[2] = last[2] if score[last[2]] >= score[p] else p
        else:
            merged.append([start, end, p])
    merged.sort(key=lambda m: -score[m[2]])
    moments = [_describe(rank + 1, start, end, p, agg, viewers, bin_s, score)
               for rank, (start, end, p) in enumerate(merged[: settings.top])]
    return moments


def _describe(rank: int, start: float, end: float, peak: int, agg: pd.DataFrame,
              viewers: list[ViewerSignals], bin_s: float, score: np.ndarray) -> Moment:
    inside = (agg["time"] + bin_s > start) & (agg["time"] < end)
    shown: list[str] = []
    reacting = present = 0
    for v in viewers:
        t = v.table
        rows = t[(t["time"] + bin_s > start) & (t["time"] < end) & ~t["missing"]]
        if rows.empty:
            continue
        present += 1
        hit = rows[rows["reacting"]]
        if not hit.empty:
            reacting += 1
            shown.extend(hit["dominant"].dropna().tolist())
    dominant, agreement = ("", float("nan"))
    if shown:
        dominant, count = Counter(shown).most_common(1)[0]
        agreement = count / len(shown)
    return Moment(
        rank=rank, start=round(start, 3), end=round(end, 3),
        peak=round(float(agg["time"].iloc[peak]) + bin_s / 2, 3), score=float(score[peak]),
        mean_intensity=float(agg.loc[inside, "mean_intensity"].mean()),
        dominant=dominant, agreement=agreement,
        viewers_reacting=reacting, viewers_present=present,
    )


def moments_table(moments: list[Moment]) -> pd.DataFrame:
    columns = ["rank", "start", "end", "duration", "peak", "score", "mean_intensity",
               "dominant", "agreement", "viewers_reacting", "viewers_present"]
    return pd.DataFrame([m.to_dict() for m in moments], columns=columns)
