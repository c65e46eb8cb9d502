"""The highlights report: one HTML page that is a workspace for the episode's moments.

On the left the episode (`--content`) in a player and the ranked moments with a still each;
on the right the audience's curves (the smoothed score and mean intensity with the moments
shaded, the share of viewers reacting, attention), a viewers x time map of intensity, each
group's curve beside the whole audience's with whether the groups differ per moment, the
viewers with their recording quality and offset, each viewer's own timeline, and what went
wrong (recordings that failed or were partial, viewers left out by --min-quality, tables
made with other settings). A click on a moment, a curve or the map seeks the episode there;
a cursor follows playback across every curve.

The page is self-contained apart from a large episode (`report_data.episode_source`): the
curves are drawn by a small inline script (report.js, report.css beside this module) from
data embedded as JSON, so it works offline, from a file. Every name that comes from the user
(viewers, files, groups) is HTML-escaped, and the embedded JSON cannot end its script block.
"""

from __future__ import annotations

import html
from importlib.resources import files
from pathlib import Path

from emotrace.highlights.report_data import (
    EMBED_LIMIT_MB,
    Episode,
    episode_source,
    page_data,
    script_json,
)
from emotrace.highlights.report_figures import still, viewer_figure
from emotrace.outputs.files import Put, atomic_write

MAX_VIEWER_PANELS = 12
DASH = "\u2013"
e = html.escape


def _asset(name: str) -> str:
    return files("emotrace.highlights").joinpath(name).read_text(encoding="utf-8")


def _num(value: float | None, digits: int = 2, unit: str = "") -> str:
    if value is None or value != value:  # None or NaN
        return "\u2013"
    return f"{value:.{digits}f}{unit}"


def _list(title: str, items: list[tuple[str, str]], css: str = "warn") -> str:
    rows = "".join(f"<li><b>{e(a)}</b>: {e(b)}</li>" for a, b in items)
    return f"<h3 class='{css}'>{e(title)}</h3><ul class='problems'>{rows}</ul>"


def _problems(result) -> str:
    """Recordings that failed or were partial, viewers left out, settings that differ."""
    parts = []
    if result.failures:
        parts.append(_list(f"Recordings that failed ({len(result.failures)})", result.failures))
    if result.partial:
        parts.append(_list(f"Recordings used as far as they decoded ({len(result.partial)})",
                           result.partial))
    if result.excluded:
        limit = result.settings.get("min_quality")
        below = f"below --min-quality {limit}" if limit else "for their recording quality"
        parts.append(_list(f"Viewers left out {below} ({len(result.excluded)})",
                           result.excluded))
    if result.notes:
        parts.append(_list("Face tables made with other settings than this run's",
                           result.notes, "note"))
    return f"<div class='panel'><h2>Problems</h2>{''.join(parts)}</div>" if parts else ""


def _player(episode: Episode | None, content) -> str:
    if episode is None:
        return ("<div class='panel'><p class='note'>No episode given (<code>--content</code>):"
                " no player. A click on a curve or a moment moves the cursor to that time "
                "(<span id='clock' class='clock'>0.0 s</span>).</p></div>")
    return (f"<div class='panel'><video id='episode' controls preload='auto' "
            f"src='{e(episode.src)}'></video>"
            "<p>Episode time <span id='clock' class='clock'>0.0 s</span>"
            + (f" of {episode.duration:.1f} s" if episode.duration else "")
            + f"</p><p class='note'>{e(Path(content).name)}: {e(episode.note)}</p>"
            "<p id='episode-error' class='warn' hidden></p></div>")


def _differ_badges(result, rank: int) -> str:
    found = [d for d in result.differences if d.moment == rank and d.differ]
    return "".join(f" <span class='badge differ' title='adjusted p {d.p_adjusted:.3g}'>"
                   f"{e(d.column)} groups differ</span>" for d in found)


def _moment_cards(result, content, thumbnails: bool, playable: bool) -> str:
    if not result.moments:
        return "<p>No moment stood out above the viewers' baselines.</p>"
    cards = []
    for m in result.moments:
        img, caption = still(result, m, content) if thumbnails else ("", "")
        picture = (f"<img src='data:image/jpeg;base64,{img}' alt='still of moment {m.rank}'>"
                   if img else "")
        play = (f"<button type='button' data-seek='{m.start}' data-play='{m.end}'>"
                "&#9654; play the moment</button>" if playable else "")
        agreement = f" (agreement {m.agreement:.0%})" if m.agreement == m.agreement else ""
        cards.append(
            f"<div class='moment{'' if img else ' nostill'}' data-seek='{m.start}' "
            f"data-start='{m.start}' "
            f"data-end='{m.end}' data-rank='{m.rank}' title='seek to {m.start:.2f} s'>"
            f"{picture}<div><span class='rank'>#{m.rank}</span> {m.start:.1f}\u2013"
            f"{m.end:.1f} s <span class='note'>({m.duration:.1f} s)</span><br>"
            f"{e(m.dominant or 'mixed')}{agreement}, {m.viewers_reacting}/{m.viewers_present}"
            f" viewers reacting<br>score {m.score:.2f}{_differ_badges(result, m.rank)}<br>"
            f"<span class='note'>{e(caption)}</span><br>{play}</div></div>")
    return f"<div class='moments'>{''.join(cards)}</div>"


def _audience(result, has_attention: bool) -> str:
    attention = ("<div class='chart' id='chart-attention' data-kind='attention'></div>"
                 if has_attention else
                 "<p class='note'>Attention: no head pose in the face tables (tables made "
                 "before head pose was recorded), so whether viewers faced the screen is "
                 "unknown.</p>")
    return ("<div class='panel'><h2>Audience</h2><div class='legend'>"
            "<span><i style='background:#d62728'></i>score (mean intensity, smoothed)</span>"
            "<span><i style='background:#999'></i>mean intensity</span>"
            "<span><i style='background:#e69500;opacity:.4;height:10px'></i>moments</span>"
            "<span><i style='background:#1f77b4'></i>share of viewers reacting</span>"
            + ("<span><i style='background:#2ca02c'></i>attention: share of frames facing "
               "the screen</span>" if has_attention else "")
            + "</div><div class='chart' id='chart-reaction' data-kind='reaction'></div>"
            "<div class='chart' id='chart-reacting' data-kind='reacting'></div>"
            + attention + "<p class='note'>Intensity is in units of each viewer's own "
            "baseline spread (0: their resting face). Click anywhere on a curve to seek.</p>"
            "</div>")


def _heatmap(result, vmax: float) -> str:
    return ("<div class='panel'><h2>Viewers x time</h2><div class='legend'><span>intensity 0"
            f"<span id='colorbar' class='colorbar'></span>{vmax:.1f}</span>"
            "<span><i style='background:#c8c8c8;height:10px'></i>face missing</span>"
            "<span><i style='background:#f1f1ef;height:10px;border:1px solid #ddd'></i>"
            "outside the recording</span></div>"
            "<div class='chart' id='chart-heatmap' data-kind='heatmap'></div></div>")


def _differences_table(result, column: str) -> str:
    rows = []
    for d in (d for d in result.differences if d.column == column):
        m = next((m for m in result.moments if m.rank == d.moment), None)
        groups = "; ".join(
            f"{e(k or '(none)')} {_num(d.means[k])}"
            + (f" [{d.intervals[k][0]:.2f}, {d.intervals[k][1]:.2f}]" if k in d.intervals
               else "") + f" (n={d.viewers.get(k, 0)})" for k in d.means)
        verdict = ("<span class='badge differ'>differ</span>" if d.differ
                   else "not tested (fewer than 2 groups with 2 viewers)" if d.p != d.p
                   else "no difference beyond chance")
        seek = f" data-seek='{m.start}'" if m else ""
        rows.append(f"<tr{seek}><td>#{d.moment}</td><td>{groups}</td>"
                    f"<td class='num'>{_num(d.p, 3)}</td>"
                    f"<td class='num'>{_num(d.p_adjusted, 3)}</td><td>{verdict}</td></tr>")
    if not rows:
        return ""
    return ("<table class='t'><tr><th>moment</th><th>mean reaction per group [95% interval]"
            "</th><th>p</th><th>p adjusted</th><th>groups</th></tr>" + "".join(rows)
            + "</table>")


def _groups(result, data: dict) -> str:
    if not data["groups"]:
        return ""
    parts = ["<div class='panel'><h2>Groups</h2><p class='note'>Each group's score (its "
             "viewers alone) beside the whole audience's (dashed). Per moment: each group's "
             "mean reaction, and whether the groups differ beyond chance (bootstrap over "
             "viewers, p adjusted for the number of moments).</p>"]
    for i, g in enumerate(data["groups"]):
        legend = "".join(f"<span><i data-colour='{k}'></i>{e(c['value'] or '(none)')} "
                         f"({c['viewers']} viewers)</span>" for k, c in enumerate(g["curves"]))
        parts.append(f"<h3>{e(g['column'])}</h3><div class='legend'><span><i style='"
                     "background:#333'></i>all viewers</span>" + legend + "</div>"
                     f"<div class='chart' id='chart-group-{i}' data-kind='group' "
                     f"data-group='{i}'></div>" + _differences_table(result, g["column"]))
        moments = [(g["column"], v.value, m) for v in result.groups
                   if v.column == g["column"] for m in v.moments]
        if moments:
            parts.append("<p class='note'>The groups' own moments: " + "; ".join(
                f"<a href='#' data-seek='{m.start}'>{e(val or '(none)')} #{m.rank} "
                f"{m.start:.1f}\u2013{m.end:.1f} s</a>" for _, val, m in moments) + ".</p>")
    parts.append("</div>")
    return "".join(parts)


def _moments_table(result) -> str:
    if not result.moments:
        return ""
    rows = "".join(
        f"<tr data-seek='{m.start}'><td>#{m.rank}</td><td class='num'>{m.start:.2f}</td>"
        f"<td class='num'>{m.end:.2f}</td><td class='num'>{m.duration:.2f}</td>"
        f"<td class='num'>{m.peak:.2f}</td><td class='num'>{m.score:.2f}</td>"
        f"<td class='num'>{_num(m.mean_intensity)}</td><td>{e(m.dominant or 'mixed')}</td>"
        f"<td class='num'>{_num(m.agreement)}</td>"
        f"<td class='num'>{m.viewers_reacting}/{m.viewers_present}</td>"
        f"<td>{_differ_badges(result, m.rank) or DASH}</td></tr>" for m in result.moments)
    return ("<div class='panel'><h2>Moments in numbers</h2><table class='t'><tr><th>moment</th>"
            "<th>start (s)</th><th>end</th><th>duration</th><th>peak</th><th>score</th>"
            "<th>mean intensity</th><th>dominant</th><th>agreement</th><th>reacting</th>"
            "<th>groups</th></tr>" + rows + "</table><p class='note'>Click a row to seek."
            "</p></div>")


def _offset_cell(result, v) -> str:
    """The viewer's offset (episode time at which the recording starts).

    SYNC: sound synchronisation adds here where the offset came from (given, or found in
    the sound) and its confidence; this cell is the one place the viewers table shows it.
    """
    return f"<td class='num offset'>{v.offset:+.2f} s</td>"


def _quality_cell(v) -> str:
    q = v.quality
    if q is None:
        return "<td>\u2013</td>"
    reasons = "; ".join(e(r) for r in q.reasons) or "all checks passed"
    measures = ", ".join(f"{e(k)} {_num(x)}" for k, x in q.measures.items())
    return (f"<td><span class='badge {e(q.grade)}'>{e(q.grade)}</span> {reasons}"
            f"<details><summary class='note'>measures</summary><span class='note'>{measures}"
            "</span></details></td>")


def _viewers_table(result) -> str:
    rows = []
    for v in result.viewers:
        groups = ", ".join(f"{e(k)}: {e(x)}" for k, x in v.groups.items()) or "\u2013"
        steps = len(v.table)
        rows.append(f"<tr><td><b>{e(v.name)}</b></td><td>{groups}</td>{_quality_cell(v)}"
                    f"{_offset_cell(result, v)}"
                    f"<td class='num'>{v.seconds_present * v.bin_s:.0f} of {steps * v.bin_s:.0f}"
                    f" s</td><td title='{e(str(v.path))}'>{e(Path(str(v.path)).name)}</td></tr>")
    va = ", ".join(sorted({e(v.va_source) for v in result.viewers}))
    return ("<div class='panel'><h2>Viewers</h2><table class='t'><tr><th>viewer</th>"
            "<th>groups</th><th>recording quality</th><th>offset</th><th>face seen</th>"
            "<th>recording</th></tr>" + "".join(rows) + "</table><p class='note'>Offset: the"
            " episode time at which the recording starts. Signals are per second on the "
            "episode timeline, normalised against each viewer's own median and spread. "
            f"Valence/arousal: {va} (the model's VA is learned from category labels, not VA "
            "annotations).</p></div>")


def _timelines(result, data: dict) -> str:
    parts = ["<div class='panel'><h2>Each viewer</h2>"]
    for v in result.viewers[:MAX_VIEWER_PANELS]:
        fig = viewer_figure(v, data["t0"], data["t1"])
        parts.append(f"<div class='png' data-t0='{fig.t0}' data-t1='{fig.t1}' "
                     f"data-left='{fig.left}' data-right='{fig.right}'>"
                     f"<img src='data:image/png;base64,{fig.png}' alt='timeline of "
                     f"{e(v.name)}'></div>")
    if len(result.viewers) > MAX_VIEWER_PANELS:
        parts.append(f"<p>{len(result.viewers) - MAX_VIEWER_PANELS} more viewers: see "
                     "the map above and signals.csv.</p>")
    return "".join(parts) + "</div>"


def _summary(result, trailer_segments) -> str:
    text = f"{len(result.viewers)} viewer recording(s) used"
    if result.failures:
        text += f", {len(result.failures)} failed"
    if result.excluded:
        text += f", {len(result.excluded)} left out"
    text += f"; {len(result.moments)} moment(s)."
    if trailer_segments:
        total = sum(b - a for a, b in trailer_segments)
        text += (f" <a href='trailer.mp4'>trailer.mp4</a>: {len(trailer_segments)} "
                 f"segment(s), {total:.2f} s.")
    return f"<p class='note'>{text}</p>"


def render(result, report_dir: str | Path, content=None, thumbnails: bool = True,
           trailer_segments=None, embed_limit_mb: float = EMBED_LIMIT_MB) -> str:
    """The page's HTML (module doc) for a report written in `report_dir`."""
    episode = episode_source(content, report_dir, embed_limit_mb) if content else None
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'><meta name="
             "'viewport' content='width=device-width, initial-scale=1'><title>emotrace "
             f"highlights</title><style>{_asset('report.css')}</style></head><body>"
             "<div class='layout'><aside><h1>Viewer reactions: highlights</h1>",
             _summary(result, trailer_segments), _player(episode, content), "<h2>Moments</h2>"]
    if not result.viewers:
        return "".join(parts) + "<p>No recording could be used.</p></aside><main>" + \
            _problems(result) + "</main></div></body></html>"
    data = page_data(result, episode.duration if episode else None)
    parts += [_moment_cards(result, content, thumbnails, episode is not None),
              "</aside><main>", _problems(result), _audience(result, data["has_attention"]),
              _heatmap(result, data["vmax"]), _groups(result, data), _moments_table(result),
              _viewers_table(result), _timelines(result, data), "</main></div>",
              f"<script type='application/json' id='emotrace-data'>{script_json(data)}"
              f"</script><script>{_asset('report.js')}</script></body></html>"]
    return "".join(parts)


def write_report(result, path: str | Path, content=None, thumbnails: bool = True,
                 trailer_segments=None, embed_limit_mb: float = EMBED_LIMIT_MB,
                 put: Put = atomic_write) -> Path:
    """Write the report page (module doc) to `path`, atomically (or into a `FileSet`, with
    `put`)."""
    path = Path(path)
    text = render(result, path.parent, content, thumbnails, trailer_segments, embed_limit_mb)

    def write(p: Path) -> None:
        p.write_text(text, encoding="utf-8")

    return put(path, write)
