"""Tables derived from the per-face table: the per-track summary."""

from __future__ import annotations

import pandas as pd


def track_summary(df: pd.DataFrame, labels: tuple[str, ...]) -> pd.DataFrame:
    """One row per track: when it was seen, for how long, mean probabilities, dominant emotion.

    `dominant` is the emotion with the highest mean probability over the track; `share_<e>`
    columns are not given: the mean probabilities are the summary a timeline needs.
    """
    faces = df[df["track_id"] >= 0]
    cols = list(labels)
    if faces.empty:
        return pd.DataFrame(columns=["source", "track_id", "start", "end", "frames",
                                     "mean_det_score", *cols, "dominant"])
    g = faces.groupby(["source", "track_id"], sort=True)
    out = g.agg(start=("timestamp", "min"), end=("timestamp", "max"),
                frames=("frame", "count"), mean_det_score=("det_score", "mean"))
    means = g[cols].mean()
    out = out.join(means).reset_index()
    out["dominant"] = means.idxmax(axis=1).to_numpy()
    if "valence" in faces:
        out = out.merge(g[["valence", "arousal"]].mean().reset_index(), on=["source", "track_id"])
    return out
