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

from emotrace.faces.embed import FaceEmbedder
from emotrace.errors import InputError
from emotrace.pipeline import Analyzer, read_image
from emotrace.media.decode import FrameReader

TABLE = "fragments"
META = "emotrace_index.json"


def _connect(db: str | Path):
    try:
        import lancedb
    except ImportError:
        raise RuntimeError("the fragment index needs LanceDB: pip install 'emotrace[index]'") from None
    return lancedb.connect(str(db))


def fragments_of(analysis, embedder: FaceEmbedder, window: float) -> pd.DataFrame:
    """One row per (track, window) of an analysed video (embeddings asked from the Analyzer)."""
    rows, vecs = [], []
    labels = analysis.labels
    groups: dict[tuple[int, int], list] = {}
    for frame in analysis.frames:
        if not len(frame):
            continue
        for i, track in enumerate(frame.track_ids):
            key = (int(track), int(frame.timestamp // window))
            groups.setdefault(key, []).append((frame.timestamp, frame.emotions.embeddings[i],
                                               frame.emotions.probs[i]))
    for (track, w), items in sorted(groups.items()):
        v = embedder.pool(np.stack([e for _, e, _ in items]))
        probs = np.mean([p for _, _, p in items], axis=0)
        rows.append({"source": analysis.info.path, "track_id": track, "start": w * window,
                     "end": (w + 1) * window, "frames": len(items),
                     "dominant": labels[int(probs.argmax())]})
        vecs.append(v.astype(np.float32))
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
    """Add every video's fragments to the index; returns (fragments added, failures).
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
        if df.empty:
            continue
        if TABLE in conn.table_names():
            table = conn.open_table(TABLE)
            table.delete(f"source = '{analysis.info.path.replace(chr(39), chr(39) * 2)}'")
            table.add(df)
        else:
            conn.create_table(TABLE, df)
        added += len(df)
    return added, failures


def read_index(db: str | Path) -> tuple[pd.DataFrame, dict]:
    """All fragments (with their `vector`) and the index's settings."""
    db = Path(db)
    if not (db / META).is_file():
        raise InputError(db, "is not a fragment index (build one with `emotrace index VIDEOS --db DIR`)")
    conn = _connect(db)
    if TABLE not in conn.table_names():
        raise InputError(db, "the index holds no fragment yet")
    return conn.open_table(TABLE).to_pandas(), json.loads((db / META).read_text())


def _largest(det):
    """The largest of the detected faces (the one a query is about)."""
    area = (det.boxes[:, 2] - det.boxes[:, 0]) * (det.boxes[:, 3] - det.boxes[:, 1])
    return det.take(np.array([int(area.argmax())]))


def query_from_video(embedder: FaceEmbedder, video: str | Path, at: float, window: float,
                     analyzer: Analyzer, fps: float = 10.0) -> np.ndarray:
    """The clip embedding of the largest face in `video` over [at, at + window)."""
    vecs = []
    for frame in FrameReader(video, fps=fps):
        if frame.timestamp < at:
            continue
        if frame.timestamp >= at + window:
            break
        det = analyzer.detector(frame.image, analyzer.video_detect_size)
        if len(det):
            crop = embedder.crops(frame.image, _largest(det))
            vecs.append(embedder.backbone(crop).embeddings[0])
    if not vecs:
        raise InputError(video, f"no face between {at:g} and {at + window:g} s")
    return embedder.pool(np.stack(vecs))


def query_from_image(embedder: FaceEmbedder, image: str | Path, analyzer: Analyzer) -> np.ndarray:
    array = read_image(image)
    det = analyzer.detector(array, analyzer.image_detect_size)
    if not len(det):
        raise InputError(image, "no face found")
    return embedder(embedder.crops(array, _largest(det)))[0]


def search(db: str | Path, video: str | Path | None = None, at: float | None = None,
           image: str | Path | None = None, k: int = 10) -> pd.DataFrame:
    """The `k` fragments nearest (cosine) to a video moment or a face image."""
    if (video is None) == (image is None) or (video is not None and at is None):
        raise ValueError("give --video FILE --at SECONDS, or --image FILE")
    db = Path(db)
    if not (db / META).is_file():
        raise InputError(db, "is not a fragment index (build one with `emotrace index VIDEOS --db DIR`)")
    meta = json.loads((db / META).read_text())
    embedder = FaceEmbedder(meta["embedder"])
    analyzer = Analyzer(classifier=embedder.backbone_name)
    query = (query_from_video(embedder, video, at, meta["window"], analyzer, meta.get("fps", 10.0))
             if video is not None
             else query_from_image(embedder, image, analyzer))
    conn = _connect(db)
    if TABLE not in conn.table_names():
        raise InputError(db, "the index holds no fragment yet")
    hits = conn.open_table(TABLE).search(query.astype(np.float32)).distance_type("cosine").limit(k).to_pandas()
    hits["similarity"] = 1.0 - hits["_distance"]
    return hits.drop(columns=["vector", "_distance"]).reset_index(drop=True)
