"""The logic behind the Streamlit demo (`emotrace demo`), kept free of Streamlit.

Everything here takes bytes or arrays and an `Analyzer` and returns plain results, tables or
Altair charts, so the demo script stays a thin page layout and the logic is testable alone.
Errors about an upload are `InputError`s that name the uploaded file (not a temporary path).
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from emotrace import models
from emotrace.faces.classify import ExpressionClassifier
from emotrace.errors import InputError
from emotrace.pipeline import IMAGE_SUFFIXES, Analyzer, read_image
from emotrace.outputs.tables import track_summary
from emotrace.results import FrameAnalysis, VideoInfo
from emotrace.media.decode import VIDEO_SUFFIXES, probe
from emotrace.outputs.annotate import draw
from emotrace.outputs.plots import COLORS_BGR

#: The upload limit `emotrace demo` passes to Streamlit (server.maxUploadSize), in MB.
MAX_UPLOAD_MB = 200
#: Frames kept (annotated, evenly spread) to browse a video's result.
KEPT_FRAMES = 60
#: FER+ emotions on either side of valence for the "opposite emotion" pairs.
POSITIVE = ("happy",)
NEGATIVE = ("sad", "anger", "disgust", "fear")
ProgressCallback = Callable[[int, int], None]


# -- models and uploads ---------------------------------------------------------------------
def expression_models() -> list[str]:
    """Runnable expression models whose file is here (checked by SHA256), default first."""
    names = [c.name for c in models.list_models()
             if c.task == "expression" and c.runnable and models.is_present(c)]
    names.sort(key=lambda n: n != models.DEFAULT_CLASSIFIER)
    return names


def upload_kind(name: str) -> str | None:
    """Whether a file is an "image" or a "video" (by its suffix); None for anything else."""
    suffix = Path(name).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None


def accepted_suffixes() -> str:
    return (f"images ({', '.join(sorted(IMAGE_SUFFIXES))}) or videos "
            f"({', '.join(sorted(VIDEO_SUFFIXES))})")


def check_upload(name: str, size: int, limit_mb: float,
                 kinds: tuple[str, ...] = ("image", "video")) -> str | None:
    """A one-line problem with an upload (too large, unsupported type), or None if fine."""
    if size > limit_mb * 1024 * 1024:
        return f"{name}: {size / 2**20:.1f} MB is over the {limit_mb:g} MB upload limit"
    kind = upload_kind(name)
    if kind is None or kind not in kinds:
        what = accepted_suffixes() if len(kinds) == 2 else f"{kinds[0]}s"
        return f"{name}: unsupported file type {Path(name).suffix or '(no suffix)'}; upload {what}"
    return None


@contextmanager
def saved_upload(name: str, data: bytes) -> Iterator[Path]:
    """The uploaded bytes as a temporary file (same suffix), removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="emotrace-demo-") as folder:
        path = Path(folder) / f"upload{Path(name).suffix.lower()}"
        path.write_bytes(data)
        yield path


def _renamed(exc: InputError, name: str) -> InputError:
    return InputError(name, exc.problem)


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
        return largest_face(self.frame)


def largest_face(frame: FrameAnalysis) -> int | None:
    if not len(frame):
        return None
    b = frame.detections.boxes
    return int(((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).argmax())


def analyze_image_bytes(analyzer: Analyzer, name: str, data: bytes) -> ImageResult:
    """Every face in an uploaded image; `InputError(name, ...)` if it is not a readable image."""
    with saved_upload(name, data) as path:
        try:
            image = read_image(path)
        except InputError as exc:
            raise _renamed(exc, name) from None
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
        try:
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
        except InputError as exc:
            raise _renamed(exc, name) from None
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


# -- embeddings -----------------------------------------------------------------------------
def normalised(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(normalised(a), normalised(b)))


@dataclass
class FaceEmbedding:
    name: str
    vector: np.ndarray  # (D,) L2-normalised
    preview: np.ndarray  # RGB, the face (image) or a frame of the clip, annotated
    n_faces: int  # faces in the image / frames of the clip that went into the mean
    note: str


def _no_embeddings(analyzer: Analyzer) -> None:
    if not analyzer.classifier.has_embeddings:
        raise ValueError(f"model {analyzer.classifier.card.name!r} has no embedding output; "
                         "pick emotrace-ferplus8 or mobilefacenet-rafdb")


def image_embedding(analyzer: Analyzer, name: str, data: bytes) -> FaceEmbedding:
    """The L2-normalised embedding of the largest face in an image."""
    _no_embeddings(analyzer)
    result = analyze_image_bytes(analyzer, name, data)
    face = result.main_face
    if face is None:
        raise InputError(name, "no face found")
    vector = normalised(result.frame.emotions.embeddings[face])
    note = f"largest of {result.n_faces} faces" if result.n_faces > 1 else "one face"
    return FaceEmbedding(name, vector, result.annotated, 1, note)


def clip_embedding(analyzer: Analyzer, name: str, data: bytes, fps: float = 5.0) -> FaceEmbedding:
    """The mean of the L2-normalised per-frame embeddings of a clip's most persistent face
    (its longest track), analysed at `fps` frames per second, normalised again."""
    _no_embeddings(analyzer)
    with saved_upload(name, data) as path:
        preview: list[np.ndarray] = []

        def keep_first(frame, analysis: FrameAnalysis) -> None:
            if not preview and len(analysis):
                preview.append(to_rgb(draw(frame.image, analysis), 640))

        try:
            video = analyzer.analyze_video(path, fps=fps, progress=False, on_frame=keep_first)
        except InputError as exc:
            raise _renamed(exc, name) from None
    by_track: dict[int, list[np.ndarray]] = {}
    for frame in video.frames:
        for i, track in enumerate(frame.track_ids):
            by_track.setdefault(int(track), []).append(frame.emotions.embeddings[i])
    if not by_track:
        raise InputError(name, "no face found in any analysed frame")
    track, vectors = max(by_track.items(), key=lambda kv: len(kv[1]))
    vector = normalised(normalised(np.stack(vectors)).mean(axis=0))
    note = f"mean of {len(vectors)} frames of track {track} ({fps:g} frames/s)"
    return FaceEmbedding(name, vector, preview[0], len(vectors), note)


def upload_embedding(analyzer: Analyzer, name: str, data: bytes) -> FaceEmbedding:
    kind = upload_kind(name)
    if kind == "video":
        return clip_embedding(analyzer, name, data)
    if kind == "image":
        return image_embedding(analyzer, name, data)
    raise InputError(name, f"unsupported file type; upload {accepted_suffixes()}")


def crop_embeddings(classifier: ExpressionClassifier, images: np.ndarray,
                    batch_size: int = 128) -> np.ndarray:
    """L2-normalised embeddings of already cropped faces (grey or RGB), each resized to the
    model's input as `emotrace eval` does."""
    size, out = classifier.size, []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        bgr = np.stack([
            cv2.resize(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) if f.ndim == 2 else f[..., ::-1],
                       (size, size), interpolation=cv2.INTER_LINEAR) for f in chunk])
        out.append(classifier(bgr, batch_size).embeddings)
    return normalised(np.concatenate(out))


@dataclass
class PairCosines:
    same: np.ndarray  # cosine of every pair of faces with the same FER+ majority emotion
    opposite: np.ndarray  # cosine of every happy x (sad | anger | disgust | fear) pair
    n_faces: int
    counts: dict[str, int]  # faces per emotion in the sample

    @property
    def separation(self) -> float:
        """P(a random same-emotion pair is more similar than a random opposite pair)."""
        opposite = np.sort(self.opposite)
        return float(np.searchsorted(opposite, self.same).mean() / max(len(opposite), 1))


def ferplus_pair_cosines(classifier: ExpressionClassifier, n: int = 600, seed: int = 0,
                         root: Path | None = None) -> PairCosines:
    """Same- vs opposite-emotion cosine similarities on a fixed random subset of FER+ test
    (`n` faces with a majority emotion label, drawn with `seed`)."""
    from emotrace.evaluation.datasets import ferplus

    if not classifier.has_embeddings:
        raise ValueError(f"model {classifier.card.name!r} has no embedding output")
    faces = ferplus("test", root=root)
    labelled = np.flatnonzero(faces.labels >= 0)
    idx = np.sort(np.random.default_rng(seed).choice(labelled, min(n, len(labelled)), replace=False))
    sample = faces.take(idx)
    emb = crop_embeddings(classifier, sample.images)
    i, j = np.triu_indices(len(sample), 1)
    sims = np.einsum("nd,nd->n", emb[i], emb[j])
    li, lj = sample.labels[i], sample.labels[j]
    pos = [sample.names.index(x) for x in POSITIVE]
    neg = [sample.names.index(x) for x in NEGATIVE]
    opposite = (np.isin(li, pos) & np.isin(lj, neg)) | (np.isin(li, neg) & np.isin(lj, pos))
    counts = {name: int((sample.labels == k).sum()) for k, name in enumerate(sample.names)}
    return PairCosines(sims[li == lj], sims[opposite], len(sample), counts)


def histogram_chart(pairs: PairCosines, marker: float | None = None, bins: int = 50):
    """Two overlaid density histograms (same / opposite emotion); a rule at `marker`."""
    import altair as alt

    lo = float(min(pairs.same.min(), pairs.opposite.min()))
    hi = float(max(pairs.same.max(), pairs.opposite.max()))
    edges = np.linspace(lo, hi, bins + 1)
    rows = []
    for group, values in (("same emotion", pairs.same), ("opposite emotion", pairs.opposite)):
        density, _ = np.histogram(values, edges, density=True)
        rows.append(pd.DataFrame({"start": edges[:-1], "end": edges[1:], "density": density,
                                  "zero": 0.0, "pairs": group}))
    data = pd.concat(rows, ignore_index=True)
    chart = alt.Chart(data).mark_rect(opacity=0.55).encode(
        x=alt.X("start:Q", title="cosine similarity"), x2="end:Q",
        y=alt.Y("density:Q", title="density"), y2="zero:Q",
        color=alt.Color("pairs:N", scale=alt.Scale(domain=["same emotion", "opposite emotion"],
                                                   range=["#2a9d8f", "#e76f51"])),
        tooltip=["pairs:N", alt.Tooltip("start:Q", format=".2f"),
                 alt.Tooltip("density:Q", format=".2f")],
    ).properties(height=260)
    if marker is not None:
        rule = alt.Chart(pd.DataFrame({"cosine": [marker], "label": ["your pair"]})).mark_rule(
            color="black", strokeWidth=2, strokeDash=[5, 3]).encode(
            x="cosine:Q", tooltip=["label:N", alt.Tooltip("cosine:Q", format=".3f")])
        chart = chart + rule
    return chart


# -- nearest fragments (the index built by `emotrace index`) --------------------------------
def read_fragment_index(folder: str | Path) -> pd.DataFrame | None:
    """The fragments of an index folder made by `emotrace index VIDEOS --db DIR` (columns
    `source`, `track_id`, `start`, `end`, `frames`, `dominant`, `embedding`), or None when the
    folder holds no index. `df.attrs["embedder"]` names the embedder it was built with."""
    from emotrace.fragments import META, read_index

    if not (Path(folder) / META).is_file():
        return None
    table, meta = read_index(folder)
    table = table.rename(columns={"vector": "embedding"})
    table.attrs["embedder"] = meta["embedder"]
    return table


def nearest_fragments(index: pd.DataFrame, query: np.ndarray, k: int = 5) -> pd.DataFrame:
    """The `k` fragments whose embedding is most similar (cosine) to `query`."""
    vectors = normalised(np.stack(index["embedding"].to_numpy()))
    if vectors.shape[1] != len(query):
        raise ValueError(f"the index was built with {index.attrs.get('embedder', 'another embedder')} "
                         f"({vectors.shape[1]}-d); pick that model to search it")
    scores = vectors @ normalised(query)
    order = np.argsort(-scores)[:k]
    out = index.drop(columns=["embedding"]).iloc[order].reset_index(drop=True)
    out.insert(0, "cosine", scores[order])
    return out
