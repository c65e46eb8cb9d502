"""The emotion timeline (PNG) and the colour of each emotion."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from emotrace.outputs.files import Put, atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# One colour per emotion (BGR for OpenCV; the timeline converts to RGB).
COLORS_BGR = {
    "anger": (40, 40, 220), "contempt": (120, 60, 160), "disgust": (40, 140, 60),
    "fear": (160, 60, 120), "happy": (30, 200, 240), "neutral": (170, 170, 170),
    "sad": (200, 110, 30), "surprise": (40, 150, 250), "uncertain": (90, 90, 90),
}


def _rgb(label: str) -> tuple[float, float, float]:
    b, g, r = COLORS_BGR.get(label, (128, 128, 128))
    return (r / 255, g / 255, b / 255)


def new_figure(**kwargs: Any) -> Figure:
    """A `Figure(**kwargs)` drawn by its own Agg canvas, outside pyplot.

    No backend is switched and no figure joins pyplot's list, so a notebook user's backend and
    figures stay as they were; the figure is freed with its last reference.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def plot_timeline(
    df: pd.DataFrame, labels: tuple[str, ...], path: str | Path, title: str = "",
    max_tracks: int = 4, put: Put = atomic_write,
) -> Path:
    """Emotion probabilities over time, one panel per track (the longest `max_tracks`)."""
    faces = df[df["track_id"] >= 0]
    tracks = faces["track_id"].value_counts().index[:max_tracks].tolist() or [None]
    fig = new_figure(figsize=(11, 2.6 * len(tracks) + 0.6))
    axes = fig.subplots(len(tracks), 1, sharex=True, squeeze=False)
    t_max = float(df["timestamp"].max()) if len(df) else 1.0
    for ax, track in zip(axes[:, 0], tracks, strict=True):
        sub = faces[faces["track_id"] == track].sort_values("timestamp")
        for label in labels:
            ax.plot(sub["timestamp"], sub[label], color=_rgb(label), lw=1.3, label=label)
        ax.set_ylim(0, 1.02)
        ax.set_xlim(0, max(t_max, 1e-3))
        ax.set_ylabel("probability")
        ax.set_title(f"track {track}" if track is not None else "no face found", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
    axes[-1, 0].set_xlabel("time (s)")
    if title:
        axes[0, 0].set_title(f"{title} — {axes[0, 0].get_title()}", fontsize=10)
    fig.tight_layout()
    return put(path, lambda p: fig.savefig(p, dpi=110, format="png", bbox_inches="tight"))
