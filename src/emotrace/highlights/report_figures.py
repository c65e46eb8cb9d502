"""The report's pictures: a still per moment (base64 JPEG) and each viewer's own timeline
(base64 PNG, drawn by matplotlib outside pyplot).

A timeline's axes span the page's time range between known fractions of the picture's width,
so the page can put the playback cursor over it and turn a click into a time.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import cv2
import numpy as np

from emotrace.errors import InputError
from emotrace.outputs.plots import _rgb, new_figure


@dataclass(frozen=True)
class Timeline:
    """A viewer's timeline picture and where its time axis lies: from `left` to `right`
    (fractions of the width) for episode times `t0` to `t1`."""

    png: str  # base64
    t0: float
    t1: float
    left: float
    right: float


def png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)  # no tight bbox: the axes stay where they were put
    return base64.b64encode(buf.getvalue()).decode()


def jpeg(image: np.ndarray, width: int = 320) -> str:
    h, w = image.shape[:2]
    image = cv2.resize(image, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return base64.b64encode(data.tobytes()).decode() if ok else ""


def viewer_figure(v, t0: float, t1: float) -> Timeline:
    """One viewer's emotions, expressiveness, missing (grey) and reacting (orange) seconds."""
    t = v.table["time"] + v.bin_s / 2
    fig = new_figure(figsize=(11, 2.2))
    ax = fig.subplots()
    fig.subplots_adjust(left=0.05, right=0.87, top=0.86, bottom=0.16)
    emotions = [c for c in v.labels if c not in ("neutral", "uncertain") and c in v.table]
    for label in emotions:
        ax.plot(t, v.table[label], color=_rgb(label), lw=1, label=label)
    if "expressiveness" in v.table:
        ax.plot(t, v.table["expressiveness"], color="k", lw=1.8, marker=".", ms=4,
                label="expressiveness")
    for _, row in v.table[v.table["missing"]].iterrows():
        ax.axvspan(row["time"], row["time"] + v.bin_s, color="0.85", lw=0)
    for _, row in v.table[v.table["reacting"]].iterrows():
        ax.axvspan(row["time"], row["time"] + v.bin_s, color="tab:orange", alpha=0.2, lw=0)
    ax.set_xlim(t0, t1)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{v.name}  (grey: face missing, orange: reacting)", fontsize=9, loc="left")
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=7, frameon=False)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=8)
    box = ax.get_position()
    return Timeline(png(fig), t0, t1, round(box.x0, 5), round(box.x1, 5))


def still(result, moment, content) -> tuple[str, str]:
    """(base64 JPEG, caption) for one moment: the episode's frame at the peak, or without an
    episode the face of the viewer who reacted most; ('', reason) if no frame can be had."""
    from emotrace.highlights.trailer import grab_frame

    try:
        if content is not None:
            return jpeg(grab_frame(content, moment.peak)), f"episode at {moment.peak:.1f} s"
        best = max(result.viewers, key=lambda v: v.table["intensity"].reindex(
            [int(moment.peak // v.bin_s)]).fillna(-1).iloc[0])
        return (jpeg(grab_frame(best.path, max(0.0, moment.peak - best.offset))),
                f"{best.name} at {moment.peak:.1f} s")
    except InputError as exc:
        return "", exc.problem
