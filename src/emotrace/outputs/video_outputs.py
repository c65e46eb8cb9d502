"""One video to one output folder: face table (CSV + Parquet), track summary, timeline, MP4."""

from __future__ import annotations

from pathlib import Path

from emotrace.pipeline import Analyzer
from emotrace.outputs.files import write_csv, write_parquet
from emotrace.outputs.tables import track_summary
from emotrace.outputs.annotate import VideoWriter, draw
from emotrace.outputs.plots import plot_timeline


def analyze_video_to_dir(
    analyzer: Analyzer, path: Path, outdir: Path, stem: str | None = None,
    fps: float | None = None, annotate: bool = False, plot: bool = False, progress: bool = True,
    smooth: str = "none", smooth_param: float | None = None,
) -> str:
    """Analyse `path` and write `<stem>.faces.csv/.parquet`, `<stem>.tracks.csv` (+ PNG, MP4).

    Nothing is written under a final name unless the whole video was analysed; returns a
    one-line summary. `smooth` (see `emotrace.smooth`) smooths each track's probabilities and
    labels in the tables and plot (the raw label stays in `emotion_raw`); the annotated video,
    drawn while streaming, shows the raw labels.
    """
    stem = stem or path.stem
    writer = None
    on_frame = None
    if annotate:
        from emotrace.media.decode import probe

        info = probe(path)
        writer = VideoWriter(outdir / f"{stem}.annotated.mp4", info.width, info.height,
                             fps or info.fps)
        on_frame = lambda frame, analysis: writer.write(draw(frame.image, analysis), frame.timestamp)
    try:
        result = analyzer.analyze_video(path, fps=fps, progress=progress, on_frame=on_frame)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    df = result.to_pandas()
    if smooth != "none":
        from emotrace.smooth import smooth_table

        df = smooth_table(df, result.labels, smooth, smooth_param)
    write_parquet(df, outdir / f"{stem}.faces.parquet")
    write_csv(df, outdir / f"{stem}.faces.csv")
    tracks = track_summary(df, result.labels)
    write_csv(tracks, outdir / f"{stem}.tracks.csv")
    written = [f"{stem}.faces.csv", f"{stem}.faces.parquet", f"{stem}.tracks.csv"]
    if plot:
        plot_timeline(df, result.labels, outdir / f"{stem}.timeline.png", title=path.name)
        written.append(f"{stem}.timeline.png")
    if writer is not None:
        writer.close()
        written.append(f"{stem}.annotated.mp4")
    n_faces = int((df["face"] >= 0).sum())
    speed = len(result.frames) / result.elapsed if result.elapsed else 0.0
    return (f"{path}: {len(result.frames)} frames analysed ({result.frames_decoded} decoded), "
            f"{n_faces} face rows, {tracks.shape[0]} tracks, {speed:.1f} frames/s -> "
            f"{outdir}/{{{', '.join(written)}}}")
