"""One video to one output folder: face table (CSV + Parquet), track summary, timeline, MP4."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from emotrace.errors import path_text
from emotrace.outputs.annotate import VideoWriter, draw
from emotrace.outputs.files import write_csv, write_parquet
from emotrace.outputs.plots import plot_timeline
from emotrace.outputs.tables import track_summary
from emotrace.pipeline import Analyzer
from emotrace.results import TABLE_META, VideoAnalysis


@dataclass(frozen=True)
class VideoSummary:
    """What `analyze_video_to_dir` did: a one-line summary, and `partial` (why the video gave
    fewer frames than its header promised; "" when it gave them all)."""

    line: str
    partial: str = ""


def analyze_video_to_dir(
    analyzer: Analyzer, path: Path, outdir: Path, stem: str | None = None,
    fps: float | None = None, annotate: bool = False, plot: bool = False, progress: bool = True,
    smooth: str = "none", smooth_param: float | None = None,
) -> VideoSummary:
    """Analyse `path` and write `<stem>.faces.csv/.parquet`, `<stem>.tracks.csv` (+ PNG, MP4).

    Nothing is written under a final name unless the analysis ran to its end and every output
    was written: on any failure (of the analysis or of an output) the annotated video's
    temporary file is removed and the outputs this call already wrote are removed again. A
    video that ends early or breaks part way is analysed as far as it decodes and its outputs
    are written, marked partial: the Parquet table's metadata (`DataFrame.attrs`: `partial`,
    `partial_reason`, `frames_decoded`, `frames_expected`) and the track summary's columns
    `partial`, `frames_decoded`, `frames_expected` say so (for every video, whole or not).
    `smooth` (see `emotrace.smooth`) smooths each track's probabilities and labels in the
    tables and plot (the raw label stays in `emotion_raw`); the annotated video, drawn while
    streaming, shows the raw labels.
    """
    stem = path_text(stem or path.stem)  # a name Arrow can write (see errors.path_text)
    writer = None
    on_frame = None
    if annotate:
        from emotrace.media.decode import probe

        info = probe(path)
        writer = VideoWriter(outdir / f"{stem}.annotated.mp4", info.width, info.height,
                             fps or info.fps)

        def on_frame(frame, analysis) -> None:
            writer.write(draw(frame.image, analysis), frame.timestamp)
    written: list[Path] = []
    try:
        result = analyzer.analyze_video(path, fps=fps, progress=progress, on_frame=on_frame)
        n_faces, n_tracks = _write_tables(result, outdir, stem, smooth, smooth_param,
                                          path.name if plot else None, written)
        if writer is not None:
            written.append(writer.close())
    except BaseException:
        if writer is not None:
            writer.abort()
        for output in written:
            output.unlink(missing_ok=True)
        raise
    speed = len(result.frames) / result.elapsed if result.elapsed else 0.0
    return VideoSummary(
        f"{path_text(path)}: {len(result.frames)} frames analysed ({result.frames_decoded} "
        f"decoded), {n_faces} face rows, {n_tracks} tracks, {speed:.1f} frames/s -> "
        f"{outdir}/{{{', '.join(p.name for p in written)}}}", result.partial_problem())


def _write_tables(result: VideoAnalysis, outdir: Path, stem: str, smooth: str,
                  smooth_param: float | None, plot_title: str | None,
                  written: list[Path]) -> tuple[int, int]:
    """Write the face table, the track summary and (given a `plot_title`) the timeline,
    appending each path to `written` as it lands; (face rows, tracks)."""
    df = result.to_pandas()
    meta = df.attrs[TABLE_META]
    if smooth != "none":
        from emotrace.smooth import smooth_table

        df = smooth_table(df, result.labels, smooth, smooth_param)
    # the probabilities of a smoothed table are not the model's: say so with the table
    meta["settings"]["smooth"] = None if smooth == "none" else [smooth, smooth_param]
    df.attrs[TABLE_META] = meta
    completeness = result.completeness()
    df.attrs.update(completeness)  # kept in the Parquet file
    written.append(write_parquet(df, outdir / f"{stem}.faces.parquet"))
    written.append(write_csv(df, outdir / f"{stem}.faces.csv"))
    del completeness["partial_reason"]  # the track summary: counts, no sentence in every row
    tracks = track_summary(df, result.labels).assign(**completeness)
    written.append(write_csv(tracks, outdir / f"{stem}.tracks.csv"))
    if plot_title is not None:
        written.append(plot_timeline(df, result.labels, outdir / f"{stem}.timeline.png",
                                     title=plot_title))
    return int((df["face"] >= 0).sum()), int(tracks.shape[0])
