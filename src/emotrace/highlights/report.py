"""The highlights report: one self-contained HTML file (pictures embedded as base64 PNG/JPEG).

Sections: the ranked moments with a still of each (the episode's frame at the peak, or, with
no episode given, the face of the viewer who reacted most), the aggregate curve with the
moments marked, a viewers x time heat map of intensity (missing seconds in grey), each viewer's
own timeline, and any recording that failed.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from emotrace.errors import InputError
from emotrace.outputs.files import Put, atomic_write
from emotrace.outputs.plots import _rgb, new_figure

MAX_VIEWER_PANELS = 12


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _jpeg(image: np.ndarray, width: int = 320) -> str:
    h, w = image.shape[:2]
    image = cv2.resize(image, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return base64.b64encode(data.tobytes()).decode() if ok else ""


def aggregate_figure(result) -> str:
    agg = result.aggregate
    t = agg["time"] + agg.attrs.get("bin_s", 1.0) / 2
    fig = new_figure(figsize=(11, 4.6))
    ax, ax2 = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    ax.plot(t, agg["mean_intensity"], color="0.6", lw=1, label="mean intensity")
    ax.plot(t, agg["score"], color="tab:red", lw=2, label="score (smoothed)")
    for m in result.moments:
        ax.axvspan(m.start, m.end, color="tab:orange", alpha=0.25)
        ax.annotate(f"#{m.rank}", (m.peak, np.nanmax([m.score, 0])), ha="center", va="bottom",
                    fontsize=9, weight="bold")
    ax.set_ylabel("intensity (baseline units)")
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    ax2.bar(t, agg["share_reacting"].fillna(0), width=agg.attrs.get("bin_s", 1.0) * 0.9,
            color="tab:blue", alpha=0.7)
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("share reacting")
    ax2.set_xlabel("episode time (s)")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def heatmap_figure(result) -> str:
    from matplotlib import colormaps

    agg = result.aggregate
    data = np.full((len(result.viewers), len(agg)), np.nan)
    for i, v in enumerate(result.viewers):
        data[i] = v.table["intensity"].reindex(agg.index).to_numpy()
    bin_s = agg.attrs.get("bin_s", 1.0)
    t0, t1 = float(agg["time"].iloc[0]), float(agg["time"].iloc[-1]) + bin_s
    fig = new_figure(figsize=(11, 0.35 * len(result.viewers) + 1.2))
    ax = fig.subplots()
    cmap = colormaps["magma"].with_extremes(bad="0.85")
    im = ax.imshow(np.ma.masked_invalid(data), aspect="auto", cmap=cmap, vmin=0,
                   vmax=max(2.0, float(np.nanmax(data)) if np.isfinite(data).any() else 2.0),
                   extent=(t0, t1, len(result.viewers) - 0.5, -0.5), interpolation="nearest")
    ax.set_yticks(range(len(result.viewers)), [v.name for v in result.viewers], fontsize=8)
    ax.set_xlabel("episode time (s); grey: face missing or outside the recording")
    fig.colorbar(im, ax=ax, label="intensity", pad=0.01)
    fig.tight_layout()
    return _png(fig)


def viewer_figure(v) -> str:
    t = v.table["time"] + v.bin_s / 2
    fig = new_figure(figsize=(11, 2.2))
    ax = fig.subplots()
    emotions = [c for c in v.labels if c not in ("neutral", "uncertain")]
    for label in emotions:
        ax.plot(t, v.table[label], color=_rgb(label), lw=1, label=label)
    ax.plot(t, v.table["expressiveness"], color="k", lw=1.8, marker=".", ms=4,
            label="expressiveness")
    for _, row in v.table[v.table["missing"]].iterrows():
        ax.axvspan(row["time"], row["time"] + v.bin_s, color="0.85", lw=0)
    for _, row in v.table[v.table["reacting"]].iterrows():
        ax.axvspan(row["time"], row["time"] + v.bin_s, color="tab:orange", alpha=0.2, lw=0)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{v.name} (offset {v.offset:+.2f} s; grey: face missing, orange: reacting)",
                 fontsize=9)
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=7, frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def _still(result, moment, content) -> tuple[str, str]:
    """(base64 JPEG, caption) for one moment; ('', reason) if no frame can be had."""
    from emotrace.highlights.trailer import grab_frame

    try:
        if content is not None:
            return _jpeg(grab_frame(content, moment.peak)), f"episode at {moment.peak:.1f} s"
        best = max(result.viewers, key=lambda v: v.table["intensity"].reindex(
            [int(moment.peak // v.bin_s)]).fillna(-1).iloc[0])
        return (_jpeg(grab_frame(best.path, max(0.0, moment.peak - best.offset))),
                f"{best.name} at {moment.peak:.1f} s")
    except InputError as exc:
        return "", exc.problem


def _table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, float_format=lambda x: f"{x:.2f}", border=0, classes="t",
                      na_rep="")


CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table.t{border-collapse:collapse;font-size:14px}table.t td,table.t th{padding:3px 8px;
border-bottom:1px solid #ddd;text-align:right}img{max-width:100%}.fail{color:#b00}
.m{display:inline-block;margin:6px;vertical-align:top;font-size:13px}"""


def write_report(result, path: str | Path, content=None, thumbnails: bool = True,
                 trailer_segments=None, put: Put = atomic_write) -> Path:
    e = html.escape
    head = ("<!doctype html><html><head><meta charset='utf-8'><title>emotrace highlights"
            f"</title><style>{CSS}</style></head><body><h1>Viewer reactions: highlights</h1>")
    parts = [head]
    parts.append(f"<p>{len(result.viewers)} viewer recording(s) used"
                 + (f", {len(result.failures)} failed" if result.failures else "")
                 + (f"; episode: {e(str(content))}" if content else "") + ".</p>")
    if result.failures:
        parts.append("<h2 class='fail'>Recordings that failed</h2><ul>"
                     + "".join(f"<li class='fail'>{e(p)}: {e(msg)}</li>"
                               for p, msg in result.failures)
                     + "</ul>")
    if result.partial:
        parts.append("<h2 class='fail'>Recordings used as far as they decoded</h2><ul>"
                     + "".join(f"<li class='fail'>{e(p)}: {e(msg)}</li>"
                               for p, msg in result.partial)
                     + "</ul>")
    if result.viewers:
        parts.append("<h2>Moments</h2>")
        if result.moments:
            parts.append(_table(result.moments_table()))
            if thumbnails:
                for m in result.moments:
                    img, caption = _still(result, m, content)
                    tag = f"<img src='data:image/jpeg;base64,{img}'>" if img else ""
                    parts.append(f"<div class='m'>{tag}<br><b>#{m.rank}</b> {m.start:.1f}-"
                                 f"{m.end:.1f} s, {e(m.dominant or 'mixed')}, {m.viewers_reacting}"
                                 f"/{m.viewers_present} viewers<br>{e(caption)}</div>")
        else:
            parts.append("<p>No moment stood out above the viewers' baselines.</p>")
        if trailer_segments:
            total = sum(b - a for a, b in trailer_segments)
            parts.append(f"<p>trailer.mp4: {len(trailer_segments)} segment(s), {total:.2f} s.</p>")
        parts.append("<h2>Aggregate reaction</h2>"
                     f"<img src='data:image/png;base64,{aggregate_figure(result)}'>"
                     f"<img src='data:image/png;base64,{heatmap_figure(result)}'>")
        parts.append("<h2>Viewers</h2>")
        va = {v.va_source for v in result.viewers}
        parts.append("<p>Signals are per second on the episode timeline, normalised against "
                     "each viewer's own median and spread. Valence/arousal: "
                     + e(", ".join(sorted(va)))
                     + " (the model's VA is learned from category labels, not VA annotations)."
                     "</p>")
        for v in result.viewers[:MAX_VIEWER_PANELS]:
            parts.append(f"<img src='data:image/png;base64,{viewer_figure(v)}'>")
        if len(result.viewers) > MAX_VIEWER_PANELS:
            parts.append(f"<p>{len(result.viewers) - MAX_VIEWER_PANELS} more viewers: see "
                         "the heat map and signals.csv.</p>")
    parts.append("</body></html>")
    text = "\n".join(parts)

    def write(p: Path) -> None:
        p.write_text(text, encoding="utf-8")

    return put(path, write)
