"""Similar fragments: window embeddings of face tracks in an embedded vector database.

    emotrace index VIDEOS... --db DIR [--window 1.0] [--embedder emotrace-ferplus8]
    emotrace search --db DIR (--video FILE --at SECONDS | --image FILE) -k 10

A *fragment* is one face track over one window of `window` seconds: its clip embedding
(`FaceEmbedder.pool`: the renormalised mean of its frames' unit embeddings from a registry
backbone or a head of `emotrace train embedding`, or a clip pooler of `emotrace train clip`
over the frames in time order), with the video, track, start, end, frame count and dominant
emotion. A pooler is best used with the window and frame rate it was trained on (printed).
Fragments live in a LanceDB table (`DIR/fragments.lance`): embedded (no server), on disk, Arrow
columns that pandas reads directly, and vector search with cosine distance that scales to
millions of rows with an ANN index; `DIR/emotrace_index.json` records the embedder and window,
so a search embeds its query the same way. Re-indexing a video replaces its fragments.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from emotrace.errors import InputError
from emotrace.faces.embed import FaceEmbedder
from emotrace.media.decode import FrameReader
from emotrace.media.images import MAX_PIXELS, read_image
from emotrace.pipeline import Analyzer
from emotrace.results import VideoAnalysis

TABLE = "fragments"
META = "emotrace_index.json"


def _connect(db: str | Path):
    try:
        import lancedb
    except ImportError:
        raise RuntimeError("the fragment index needs LanceDB: pip install 'emotrace[index]'"
                           ) from None
    return lancedb.connect(str(db))


def fragments_of(analysis: VideoAnalysis, embedder: FaceEmbedder, window: float) -> pd.DataFrame:
    """One row per (track, window) of an analysed video (embeddings asked from the Analyzer)."""
    rows, vecs = [], []
    for track in analysis.tracks():
        if track.embeddings is None:
            raise ValueError("fragments need the faces' embeddings: Analyzer(embeddings=True)")
        for w, part in track.windows(window):
            assert part.embeddings is not None  # a part of a track with embeddings has them
            rows.append({"source": track.source, "track_id": track.track_id,
                         "start": w * window, "end": (w + 1) * window, "frames": len(part),
                         "dominant": track.labels[int(part.probs.mean(axis=0).argmax())]})
            vecs.append(embedder.pool(part.embeddings).astype(np.float32))
    df = pd.DataFrame(rows, columns=["source", "track_id", "start", "end", "frames", "dominant"])
    df["vector"] = vecs
    return df


def _check_meta(db: Path, embedder: str, window: float, fps: float) -> None:
    path = db / META
    if path.is_file():
        meta = json.loads(path.read_text())
        if meta["embedder"] != embedder or meta["window"] != window or meta.get("fps", 10.0) != fps:
            raise ValueError(f"{db} was built with embedder {meta['embedder']!r}, window "
                             f"{meta['window']} s and {meta.get('fps', 10.0)} frames/s; use the "
                             "same, or a new --db")
    else:
        db.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"embedder": embedder, "window": window, "fps": fps}) + "\n")


def index_videos(videos: Iterable[str | Path], db: str | Path, embedder: str = "emotrace-ferplus8",
                 window: float | None = None, fps: float = 10.0, progress: bool = True
                 ) -> tuple[int, list[InputError]]:
    """Add every video's fragments to the index, replacing the ones it had (a video that now
    yields none loses its old ones); returns (fragments added, failures).
    `window` (s): 1.0 by default; a clip pooler's own window (its frames / its fps)."""
    emb = FaceEmbedder(embedder)
    if window is None:
        window = emb.clip_window[0] / emb.clip_window[1] if emb.clip_window else 1.0
    if window <= 0 or fps <= 0:
        raise ValueError(f"window and fps must be > 0, got {window} and {fps}")
    db = Path(db)
    _check_meta(db, embedder, window, fps)
    analyzer = Analyzer(classifier=emb.backbone_name, embeddings=True)
    conn = _connect(db)
    added, failures = 0, []
    for video in videos:
        try:
            analysis = analyzer.analyze_video(video, fps=fps, progress=progress)
        except InputError as exc:
            failures.append(exc)
            continue
        df = fragments_of(analysis, emb, window)
        if TABLE in conn.table_names():
            table = conn.open_table(TABLE)
            table.delete(f"source = '{analysis.info.path.replace(chr(39), chr(39) * 2)}'")
            if not df.empty:
                table.add(df)
        elif not df.empty:
            conn.create_table(TABLE, df)
        added += len(df)
    return added, failures


def read_meta(db: str | Path) -> dict:
    """The index's settings (`embedder`, `window`, `fps`) from its emotrace_index.json."""
    path = Path(db) / META
    if not path.is_file():
        raise InputError(db, "is not a fragment index (build one with `emotrace index VIDEOS "
                         "--db DIR`)")
    return json.loads(path.read_text())


def _fragments_table(db: str | Path):
    conn = _connect(db)
    if TABLE not in conn.table_names():
        raise InputError(db, "the index holds no fragment yet")
    return conn.open_table(TABLE)


def count_fragments(db: str | Path) -> int:
    """How many fragments the index holds (without reading them)."""
    read_meta(db)
    return _fragments_table(db).count_rows()


def read_index(db: str | Path) -> tuple[pd.DataFrame, dict]:
    """All fragments (with their `vector`) and the index's settings."""
    meta = read_meta(db)
    return _fragments_table(db).to_pandas(), meta


def query_from_video(embedder: FaceEmbedder, video: str | Path, at: float, window: float,
                     analyzer: Analyzer, fps: float = 10.0) -> np.ndarray:
    """The clip embedding of the largest face in `video` over [at, at + window)."""
    vecs = []
    for frame in FrameReader(video, fps=fps):
        if frame.timestamp < at:
            continue
        if frame.timestamp >= at + window:
            break
        det = analyzer.locate(frame.image, frame.timestamp)
        face = det.largest()
        if face is not None:
            crop = embedder.crops(frame.image, det.take(np.array([face])))
            vecs.append(embedder.features(crop)[0])
    if not vecs:
        raise InputError(video, f"no face between {at:g} and {at + window:g} s")
    return embedder.pool(np.stack(vecs))


def query_from_image(embedder: FaceEmbedder, image: str | Path | np.ndarray,
                     analyzer: Analyzer, name: str | None = None,
                     max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """The embedding of the largest face in an image (a path, or a BGR array named `name`);
    an image file over `max_pixels` is refused before decoding."""
    array = image if isinstance(image, np.ndarray) else read_image(image, max_pixels)
    det = analyzer.locate(array, still=True)
    face = det.largest()
    if face is None:
        raise InputError(name or str(image), "no face found")
    return embedder(embedder.crops(array, det.take(np.array([face]))))[0]


def index_embedder(db: str | Path) -> tuple[FaceEmbedder, Analyzer, dict]:
    """The embedder the index was built with, an Analyzer to find faces for it, and the
    index's settings: a query must be embedded the way the fragments were."""
    meta = read_meta(db)
    embedder = FaceEmbedder(meta["embedder"])
    return embedder, Analyzer(classifier=embedder.backbone_name), meta


def nearest(db: str | Path, query: np.ndarray, k: int = 10) -> pd.DataFrame:
    """The `k` fragments nearest (cosine) to a query embedded by the index's embedder."""
    table = _fragments_table(db)
    hits = table.search(query.astype(np.float32)).distance_type("cosine").limit(k).to_pandas()
    hits["similarity"] = 1.0 - hits["_distance"]
    return hits.drop(columns=["vector", "_distance"]).reset_index(drop=True)


def search(db: str | Path, video: str | Path | None = None, at: float | None = None,
           image: str | Path | None = None, k: int = 10,
           max_pixels: int | None = MAX_PIXELS) -> pd.DataFrame:
    """The `k` fragments nearest (cosine) to a video moment or a face image (refused when
    larger than `max_pixels`)."""
    if (video is None) == (image is None) or (video is not None and at is None):
        raise ValueError("give --video FILE --at SECONDS, or --image FILE")
    embedder, analyzer, meta = index_embedder(db)
    if video is not None:
        assert at is not None  # checked above
        query = query_from_video(embedder, video, at, meta["window"], analyzer,
                                 meta.get("fps", 10.0))
    else:
        assert image is not None
        query = query_from_image(embedder, image, analyzer, max_pixels=max_pixels)
    return nearest(db, query, k)
