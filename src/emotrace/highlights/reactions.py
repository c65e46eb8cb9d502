"""One viewer's reaction signals: their face track, per-second signals, their own baseline.

A reaction recording films one test viewer watching the episode. `viewer_signals` turns the
per-frame analysis of that recording into a per-second table on the *episode's* timeline
(episode time = recording time + offset):

- which face is the viewer: the most persistent track, extended by later or earlier tracks at
  the same place that never overlap it in time (the viewer left the frame or the tracker lost
  them); every other face (someone walking past) is ignored;
- per second: `presence` (share of analysed frames with the viewer's face), `attention`
  (share of analysed frames in which they faced the screen, from the table's `facing`; NaN
  for a table without head pose), `expressiveness` (1 - P(neutral)), `valence`, `arousal`,
  each emotion's mean probability, `change` (total variation between this second's mean
  distribution and the previous one's) and `dominant` (the most probable non-neutral
  emotion), all over the frames where the viewer faced the screen. A second with such a face
  in fewer than half of its frames is *missing*: its signals are NaN, never zero, so a viewer
  who looked away counts neither as calm nor as reacting;
- each signal normalised against the viewer's own baseline: z = (x - median) / scale, with the
  median and the scaled MAD over all the viewer's seconds (reactions are brief, so the median
  is the viewer's resting face), and a floor on the scale so a very still face does not turn
  noise into reactions;
- `intensity`, a weighted mean of the positive parts of the z-scores (|z| for valence: a
  reaction can be positive or negative; `change` only where expressiveness rises, so the
  return to rest is not a reaction of its own), and `reacting` = intensity >= a threshold.

Valence and arousal come from the model's VA head; for a model without one they are the
expectation of the emotion points in `labels.VA_POINTS` under the class probabilities (a proxy,
said so in `ViewerSignals.va_source`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from emotrace.highlights.inputs import FaceTable, table_of
from emotrace.highlights.quality import Quality, QualitySettings, measure
from emotrace.labels import canonical, va_points
from emotrace.results import VideoAnalysis, table_tracks

SIGNALS = ("expressiveness", "valence", "arousal", "change")
#: Not counted as a reaction when picking the dominant emotion.
RESTING = frozenset({"neutral", "uncertain"})


@dataclass(frozen=True)
class ReactionSettings:
    """How per-second signals are built and normalised.

    bin_s: width of one timeline step (seconds). min_presence: share of a step's frames that
    must show the viewer's face, else the step is missing. scale_floor: smallest baseline
    scale per signal (probability / VA units), so that noise on a still face is not a
    reaction. weights: contribution of each z-scored signal to `intensity` (chosen by
    judgement: no labelled reaction data exists here to fit them). react_threshold: intensity
    (baseline-scale units) from which a viewer counts as reacting. z_cap: z-scores are clipped
    to +-z_cap so that one viewer cannot outweigh all the others.
    """

    bin_s: float = 1.0
    min_presence: float = 0.5
    scale_floor: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SIGNALS, 0.05))
    weights: dict[str, float] = field(default_factory=lambda: {
        "expressiveness": 0.4, "valence": 0.2, "arousal": 0.2, "change": 0.2})
    react_threshold: float = 1.5
    z_cap: float = 8.0

    def __post_init__(self) -> None:
        if self.bin_s <= 0:
            raise ValueError(f"bin_s must be > 0, got {self.bin_s}")
        if not 0 < self.min_presence <= 1:
            raise ValueError(f"min_presence must be in (0, 1], got {self.min_presence}")
        unknown = (set(self.weights) | set(self.scale_floor)) - set(SIGNALS)
        if unknown:
            raise ValueError(f"unknown signals {sorted(unknown)}; valid: {', '.join(SIGNALS)}")
        if any(w < 0 for w in self.weights.values()) or not sum(self.weights.values()):
            raise ValueError(f"weights must be >= 0 and not all 0, got {self.weights}")


@dataclass(frozen=True)
class ViewerSignals:
    """Per-step reaction signals of one viewer, indexed by episode step.

    table: one row per step the recording covers (index `step`; `time` = step start in
    episode seconds), columns `presence`, the `SIGNALS`, one probability column per emotion,
    `dominant`, `z_<signal>`, `intensity`, `reacting`, `missing`.
    """

    name: str
    path: str
    offset: float
    bin_s: float
    labels: tuple[str, ...]
    table: pd.DataFrame
    baseline: dict[str, tuple[float, float]]  # signal -> (median, scale)
    track_ids: tuple[int, ...]
    va_source: str  # "model" or "class-probability proxy"
    groups: dict[str, str] = field(default_factory=dict)  # group column -> this viewer's value
    measures: dict[str, float] = field(default_factory=dict)  # recording quality (`quality`)
    quality: Quality | None = None  # the grade of `measures` (set by find_highlights)

    @property
    def seconds_present(self) -> float:
        return float((~self.table["missing"]).sum())


def persons(df: pd.DataFrame) -> list[pd.DataFrame]:
    """The people in a recording, most persistent first: each is a track plus the later or
    earlier tracks at the same place that never overlap it in time (they left the frame or
    the tracker lost them). Returns each person's face rows (a subset of `df`), by time."""
    tracks = dict(table_tracks(df))
    if not tracks:
        return []
    span = {key: (rows["timestamp"].iloc[0], rows["timestamp"].iloc[-1])
            for key, rows in tracks.items()}
    place = {key: (float(((rows["x1"] + rows["x2"]) / 2).median()),
                   float(((rows["y1"] + rows["y2"]) / 2).median()),
                   float((rows["x2"] - rows["x1"]).median())) for key, rows in tracks.items()}
    people: list[list[tuple[str, int]]] = []
    for key in sorted(tracks, key=lambda key: -len(tracks[key])):  # stable: ties by track id
        for person in people:
            anchor = place[person[0]]
            near = np.hypot(place[key][0] - anchor[0], place[key][1] - anchor[1]) <= anchor[2]
            overlaps = any(span[key][0] <= span[c][1] and span[c][0] <= span[key][1]
                           for c in person)
            if near and not overlaps:
                person.append(key)
                break
        else:
            people.append([key])
    out = []
    for person in people:
        rows = pd.concat([tracks[key] for key in person])
        # Two faces of one person's tracks in one frame cannot happen (no overlap in time),
        # but keep the best-scoring one per frame to be safe.
        best = rows.sort_values("det_score", ascending=False).drop_duplicates("frame")
        out.append(best.sort_values("timestamp"))
    return out


def viewer_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The viewer's face in each frame: the most persistent person (`persons`)."""
    people = persons(df)
    return people[0] if people else df[df["track_id"] >= 0]


def _robust_z(x: pd.Series, floor: float, cap: float) -> tuple[pd.Series, float, float]:
    valid = x.dropna()
    if valid.empty:
        return x * np.nan, float("nan"), float("nan")
    median = float(valid.median())
    scale = max(1.4826 * float((valid - median).abs().median()), floor)
    return ((x - median) / scale).clip(-cap, cap), median, scale


def viewer_signals(
    source: VideoAnalysis | FaceTable, offset: float = 0.0, name: str | None = None,
    settings: ReactionSettings | None = None, rows: pd.DataFrame | None = None,
    max_gap_s: float = QualitySettings.max_gap_s,
) -> ViewerSignals:
    """Per-step signals of the viewer in one reaction recording (see module doc), from its
    analysis or its face table (the same signals either way); `rows`: the face rows of one
    person of `persons` (default: the most persistent one); `max_gap_s`: the pause between
    analysed frames that counts as a gap in the quality measures."""
    settings = settings or ReactionSettings()
    faces = source if isinstance(source, FaceTable) else table_of(source)
    labels, df = faces.labels, faces.rows
    step = np.floor((df.groupby("frame")["timestamp"].first() + offset) / settings.bin_s)
    frames_per_step = step.value_counts().sort_index()
    rows = (viewer_rows(df) if rows is None else rows).copy()
    rows["step"] = np.floor((rows["timestamp"] + offset) / settings.bin_s).astype(np.int64)
    rows, va_source = _face_signals(rows, labels)
    table = _steps(rows, frames_per_step, settings, list(labels))
    baseline = _normalise(table, settings)
    measures = measure(rows, table, df["timestamp"], max_gap_s)
    return ViewerSignals(
        name=name or faces.source, path=faces.source, offset=offset,
        bin_s=settings.bin_s, labels=labels, table=table, baseline=baseline,
        track_ids=tuple(int(t) for t in rows["track_id"].unique()), va_source=va_source,
        measures=measures,
    )


def _face_signals(rows: pd.DataFrame, labels: tuple[str, ...]) -> tuple[pd.DataFrame, str]:
    """Valence, arousal (the model's, else the proxy) and expressiveness of every face row."""
    emo = list(labels)
    if "valence" in rows and rows["valence"].notna().any():
        va_source = "model"
    else:
        va = rows[emo].to_numpy(np.float32) @ va_points(labels)
        rows["valence"], rows["arousal"] = va[:, 0], va[:, 1]
        va_source = "class-probability proxy"
    neutral = [c for c in emo if canonical(c) == "neutral"]
    rows["expressiveness"] = 1.0 - (rows[neutral[0]] if neutral else 0.0)
    return rows, va_source


def _steps(rows: pd.DataFrame, frames_per_step: pd.Series, settings: ReactionSettings,
           emo: list[str]) -> pd.DataFrame:
    """The per-step table before normalisation: presence, attention, missing, the means of
    the signals over the frames where the viewer faced the screen, change and dominant."""
    table = pd.DataFrame(index=pd.RangeIndex(int(frames_per_step.index.min()),
                                             int(frames_per_step.index.max()) + 1, name="step"))
    table["time"] = table.index * settings.bin_s
    table["presence"] = (rows.groupby("step").size() / frames_per_step).reindex(
        table.index).fillna(0.0)
    if "facing" in rows and rows["facing"].notna().any():
        # a viewer looking away is neither calm nor reacting: those frames give no emotion
        # signal (the step may become missing), but they count for attention (as not facing)
        rows = rows[rows["facing"].fillna(False).astype(bool)]
        table["attention"] = (rows.groupby("step").size() / frames_per_step).reindex(
            table.index).fillna(0.0)
    else:
        table["attention"] = np.nan  # a table without head pose: attention unknown
    seen = (rows.groupby("step").size() / frames_per_step).reindex(table.index).fillna(0.0)
    table["missing"] = seen < settings.min_presence
    g = rows.groupby("step")
    means = g[["expressiveness", "valence", "arousal", *emo]].mean().reindex(table.index)
    means.loc[table["missing"].to_numpy()] = np.nan
    table = table.join(means)
    probs = table[emo].to_numpy()
    # total variation between consecutive steps' mean distributions: robust to the frame rate,
    # unlike frame-to-frame differences, whose noise grows with the number of frames
    tv = 0.5 * np.abs(np.diff(probs, axis=0)).sum(axis=1)
    table["change"] = np.concatenate([[np.nan], tv])
    resting = [c for c in emo if canonical(c) in RESTING]
    active = table[[c for c in emo if c not in resting]]
    table["dominant"] = active.fillna(-1.0).idxmax(axis=1).where(~table["missing"], None)
    return table


def _normalise(table: pd.DataFrame, settings: ReactionSettings) -> dict[str, tuple[float, float]]:
    """Add the z-scores, `intensity` and `reacting` to `table`; the baseline per signal."""
    baseline = {}
    intensity = pd.Series(0.0, index=table.index)
    for signal in SIGNALS:
        z, median, scale = _robust_z(table[signal], settings.scale_floor.get(signal, 0.05),
                                     settings.z_cap)
        table[f"z_{signal}"] = z
        baseline[signal] = (median, scale)
        part = z.abs() if signal == "valence" else z.clip(lower=0)
        if signal == "change":
            # a change counts towards a reaction only on the way into an expression: the
            # return to rest after a reaction is not a new reaction
            part = part.where(table["expressiveness"].diff() > 0, 0.0)
        intensity += settings.weights.get(signal, 0.0) * part.fillna(0.0)
    intensity /= sum(settings.weights.values())
    table["intensity"] = intensity.where(~table["missing"])
    table["reacting"] = table["intensity"] >= settings.react_threshold
    return baseline
