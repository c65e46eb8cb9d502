"""The logic behind the Streamlit demo (`emotrace demo`), kept free of Streamlit.

Everything here takes bytes or arrays and an `Analyzer` and returns plain results, tables or
Altair charts, so the demo script stays a thin page layout and the logic is testable alone.
Errors about an upload are `InputError`s that name the uploaded file (not a temporary path).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
import pandas as pd

from emotrace import models
from emotrace.apps.uploads import decode_image, saved_upload
from emotrace.media.decode import probe
from emotrace.outputs.annotate import draw
from emotrace.outputs.plots import COLORS_BGR
from emotrace.outputs.tables import track_summary
from emotrace.pipeline import Analyzer
from emotrace.results import FrameAnalysis, VideoInfo

#: The upload limit `emotrace demo` passes to Streamlit (server.maxUploadSize), in MB.
MAX_UPLOAD_MB = 200
#: Frames kept (annotated, evenly spread) to browse a video's result.
KEPT_FRAMES = 60
ProgressCallback = Callable[[int, int], None]


# -- models ---------------------------------------------------------------------------------
def expression_models() -> list[str]:
    """Runnable expression models whose file is here (checked by SHA256), default first."""
    names = [c.name for c in models.list_models()
             if c.task == "expression" and c.runnable and models.is_present(c)]
    names.sort(key=lambda n: n != models.DEFAULT_CLASSIFIER)
    return names


def fit(image: np.ndarray, max_side: int | None = None) -> np.ndarray:
    """`image` shrunk so that its longer side is at most `max_side` (None: as is)."""
    if max_side and max(image.shape[:2]) > max_side:
        scale = max_side / max(image.shape[:2])
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return image


def to_rgb(image: np.ndarray, max_side: int | None = None) -> np.ndarray:
    return cv2.cvtColor(fit(image, max_side), cv2.COLOR_BGR2RGB)


def jpeg(image: np.ndarray, max_side: int | None = None) -> bytes:
    """A BGR image as JPEG bytes (how the demo keeps a video's frames: small)."""
    return cv2.imencode(".jpg", fit(image, max_side), [cv2.IMWRITE_JPEG_QUALITY, 88])[1].tobytes()


# -- analysis -------------------------------------------------------------------------------
@dataclass
class ImageResult:
    name: str
    annotated: np.ndarray  # RGB
    table: pd.DataFrame  # the per-face table
    labels: tuple[str, ...]
    frame: FrameAnalysis

    @property
    def n_faces(self) -> int:
        return len(self.frame)

    @property
    def main_face(self) -> int | None:
        """Index of the largest face, or None."""
        return self.frame.detections.largest()


def analyze_image_bytes(analyzer: Analyzer, name: str, data: bytes) -> ImageResult:
    """Every face in an uploaded image; `InputError(name, ...)` if it is not a readable image."""
    image = decode_image(name, data)
    result = analyzer.analyze_image(image, name=name)
    return ImageResult(name, to_rgb(draw(image, result.frame)), result.to_pandas(),
                       result.labels, result.frame)


@dataclass
class VideoResult:
    name: str
    info: VideoInfo
    labels: tuple[str, ...]
    table: pd.DataFrame
    summary: pd.DataFrame
    frames: list[tuple[float, bytes]] = field(default_factory=list)  # (s, annotated JPEG)
    elapsed: float = 0.0
    n_analysed: int = 0

    @property
    def n_faces(self) -> int:
        return int((self.table["face"] >= 0).sum())

    @property
    def n_tracks(self) -> int:
        return int(self.table.loc[self.table["track_id"] >= 0, "track_id"].nunique())


def expected_frames(info: VideoInfo, fps: float | None) -> int:
    """How many frames `analyze_video` will analyse (as its own progress bar counts them)."""
    return info.n_frames if fps is None else int(info.duration * fps) + 1


def analyze_video_bytes(
    analyzer: Analyzer, name: str, data: bytes, fps: float | None = None,
    on_progress: ProgressCallback | None = None, keep: int = KEPT_FRAMES,
) -> VideoResult:
    """Analyse an uploaded video; `on_progress(done, total)` after each analysed frame (total 0
    when the header does not say). Keeps `keep` annotated frames spread over the video."""
    with saved_upload(name, data) as path:
        info = probe(path)
        total = expected_frames(info, fps)
        stride = max(1, total // keep) if total else 1
        kept: list[tuple[float, bytes]] = []
        done = 0

        def on_frame(frame, analysis: FrameAnalysis) -> None:
            nonlocal done
            if done % stride == 0 and len(kept) < keep:
                kept.append((frame.timestamp, jpeg(draw(frame.image, analysis), 960)))
            done += 1
            if on_progress is not None:
                on_progress(done, total)

        video = analyzer.analyze_video(path, fps=fps, progress=False, on_frame=on_frame)
    info.path = name
    table = video.to_pandas()
    table["source"] = name
    return VideoResult(name, info, video.labels, table, track_summary(table, video.labels),
                       kept, video.elapsed, len(video.frames))


# -- tables and charts ----------------------------------------------------------------------
def csv_bytes(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False, float_format="%.6g").encode()


def parquet_bytes(df: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    df.to_parquet(buffer, index=False)
    return buffer.getvalue()


def emotion_color(label: str) -> str:
    b, g, r = COLORS_BGR.get(label, (128, 128, 128))
    return f"#{r:02x}{g:02x}{b:02x}"


def longest_tracks(df: pd.DataFrame, n: int | None = None) -> list[int]:
    counts = df.loc[df["track_id"] >= 0, "track_id"].value_counts()
    return [int(t) for t in counts.index[:n]]


def timeline_frame(df: pd.DataFrame, labels: tuple[str, ...], tracks: list[int],
                   max_points: int = 1500) -> pd.DataFrame:
    """Long table (timestamp, track, emotion, probability) of `tracks`, thinned to at most
    `max_points` time points per track."""
    parts = []
    for track in tracks:
        sub = df[df["track_id"] == track].sort_values("timestamp")
        step = max(1, int(np.ceil(len(sub) / max_points)))
        sub = sub.iloc[::step]
        long = sub.melt(id_vars=["timestamp"], value_vars=list(labels), var_name="emotion",
                        value_name="probability")
        long["track"] = f"track {track}"
        parts.append(long)
    if not parts:
        return pd.DataFrame(columns=["timestamp", "emotion", "probability", "track"])
    return pd.concat(parts, ignore_index=True)


def timeline_chart(df: pd.DataFrame, labels: tuple[str, ...], track: int):
    """Interactive Altair chart of one track's emotion probabilities over time (drag / scroll
    to pan and zoom the time axis; click a legend entry to highlight one emotion)."""
    import altair as alt

    data = timeline_frame(df, labels, [track])
    pick = alt.selection_point(fields=["emotion"], bind="legend")
    zoom = alt.selection_interval(bind="scales", encodings=["x"])
    return alt.Chart(data, title=f"track {track}").mark_line(strokeWidth=1.6).encode(
        x=alt.X("timestamp:Q", title="time (s)"),
        y=alt.Y("probability:Q", title="probability", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("emotion:N", sort=list(labels),
                        scale=alt.Scale(domain=list(labels),
                                        range=[emotion_color(x) for x in labels])),
        opacity=alt.condition(pick, alt.value(1.0), alt.value(0.12)),
        tooltip=[alt.Tooltip("timestamp:Q", format=".2f"), "emotion:N",
                 alt.Tooltip("probability:Q", format=".2f")],
    ).properties(height=220).add_params(pick, zoom)
