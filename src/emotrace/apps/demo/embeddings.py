"""The logic of the demo's Embeddings page, kept free of Streamlit: a thin client of the library.

Every number it shows comes from the function the command line uses: face and clip embeddings
from `FaceEmbedder` (a still's largest face as `emotrace search --image` embeds it, a clip's
longest track pooled by `FaceEmbedder.pool`), the same- vs opposite-emotion cosines from
`emotrace.evaluation.embedding` (the faces and pairs `emotrace eval embedding` samples), and the
nearest fragments from `emotrace.fragments`, the query embedded with the index's own embedder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from emotrace import fragments
from emotrace.apps.demo.helpers import to_rgb
from emotrace.apps.uploads import accepted_suffixes, decode_image, saved_upload, upload_kind
from emotrace.errors import InputError
from emotrace.evaluation.embedding import (
    face_embeddings,
    labelled_sample,
    pair_similarities,
    roc_auc,
)
from emotrace.faces.embed import FaceEmbedder
from emotrace.outputs.annotate import draw
from emotrace.pipeline import Analyzer
from emotrace.results import FrameAnalysis

#: Frames per second a clip is analysed at to embed it.
CLIP_FPS = 5.0
#: FER+ test faces drawn for the same- vs opposite-emotion reference.
REFERENCE_FACES = 600


@dataclass(frozen=True)
class Embedder:
    """A `FaceEmbedder` and the Analyzer that finds faces for it (the same backbone, with
    embeddings), so a face is detected and cropped as the library does it."""

    faces: FaceEmbedder
    analyzer: Analyzer

    def __post_init__(self) -> None:
        model = self.analyzer.classifier.card.name
        if model != self.faces.backbone_name or not self.analyzer.classifier.has_embeddings:
            raise ValueError(f"the analyzer ({model}) must give the embeddings of "
                             f"{self.faces.backbone_name}")

    @classmethod
    def load(cls, spec: str) -> Embedder:
        faces = FaceEmbedder(spec)
        return cls(faces, Analyzer(classifier=faces.backbone_name, embeddings=True))


@dataclass
class FaceEmbedding:
    name: str
    vector: np.ndarray  # (D,) unit length
    preview: np.ndarray  # RGB, the face (image) or a frame of the clip, annotated
    n_faces: int  # faces in the image / frames of the clip that went into the embedding
    note: str


def similarity(a: FaceEmbedding, b: FaceEmbedding) -> float:
    """The cosine of two unit-length embeddings."""
    return float(np.dot(a.vector, b.vector))


def image_embedding(embedder: Embedder, name: str, data: bytes) -> FaceEmbedding:
    """The embedding of the largest face in an image (`emotrace search --image`'s query)."""
    image = decode_image(name, data)
    vector = fragments.query_from_image(embedder.faces, image, embedder.analyzer, name)
    frame = embedder.analyzer.analyze_image(image, name=name).frame  # to show what was found
    note = f"largest of {len(frame)} faces" if len(frame) > 1 else "one face"
    return FaceEmbedding(name, vector, to_rgb(draw(image, frame)), 1, note)


def clip_embedding(embedder: Embedder, name: str, data: bytes,
                   fps: float = CLIP_FPS) -> FaceEmbedding:
    """The pooled embedding (`FaceEmbedder.pool`) of a clip's most persistent face (its longest
    track), analysed at `fps` frames per second."""
    preview: list[np.ndarray] = []

    def keep_first(frame, analysis: FrameAnalysis) -> None:
        if not preview and len(analysis):
            preview.append(to_rgb(draw(frame.image, analysis), 640))

    with saved_upload(name, data) as path:
        video = embedder.analyzer.analyze_video(path, fps=fps, progress=False,
                                                on_frame=keep_first)
    tracks = video.tracks()
    if not tracks:
        raise InputError(name, "no face found in any analysed frame")
    track = max(tracks, key=len)
    assert track.embeddings is not None  # the analyzer gives embeddings (checked on creation)
    note = f"{len(track)} frames of track {track.track_id} ({fps:g} frames/s)"
    return FaceEmbedding(name, embedder.faces.pool(track.embeddings), preview[0], len(track),
                         note)


def upload_embedding(embedder: Embedder, name: str, data: bytes,
                     fps: float = CLIP_FPS) -> FaceEmbedding:
    kind = upload_kind(name)
    if kind == "video":
        return clip_embedding(embedder, name, data, fps)
    if kind == "image":
        return image_embedding(embedder, name, data)
    raise InputError(name, f"unsupported file type; upload {accepted_suffixes()}")


# -- same vs opposite emotion ---------------------------------------------------------------
@dataclass
class PairCosines:
    same: np.ndarray  # cosines of sampled pairs of faces with the same FER+ majority emotion
    opposite: np.ndarray  # of sampled happy x (sad | anger | disgust | fear) pairs
    n_faces: int
    counts: dict[str, int]  # faces per emotion in the sample

    @property
    def separation(self) -> float:
        """P(a random same-emotion pair is more similar than a random opposite pair)."""
        return roc_auc(self.same, self.opposite)


def ferplus_pair_cosines(embedder: FaceEmbedder, n: int = REFERENCE_FACES, seed: int = 0,
                         data: str = "ferplus-test") -> PairCosines:
    """Same- vs opposite-emotion cosines of the faces and pairs `emotrace eval embedding
    --limit n` samples with `seed` (`n` faces drawn, those with an emotion label kept)."""
    faces = labelled_sample(data, n, np.random.default_rng(seed))
    sims = pair_similarities(face_embeddings(embedder, faces), faces.labels, faces.names,
                             seed=seed)
    counts = {name: int((faces.labels == k).sum()) for k, name in enumerate(faces.names)}
    return PairCosines(sims["same"], sims["opposite"], len(faces), counts)


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
def index_settings(folder: str | Path) -> dict | None:
    """The settings of the index in `folder` (its `embedder`, `window`, `fps`) and its size
    (`fragments`), or None when the folder holds no index."""
    if not (Path(folder) / fragments.META).is_file():
        return None
    return {**fragments.read_meta(folder), "fragments": fragments.count_fragments(folder)}


def nearest_fragments(folder: str | Path, embedder: Embedder, name: str, data: bytes,
                      k: int = 5) -> pd.DataFrame:
    """The `k` fragments nearest to an uploaded face, `embedder` being the index's own (its
    clips analysed at the index's frame rate), as `emotrace search` finds them."""
    meta = fragments.read_meta(folder)
    if embedder.faces.spec != meta["embedder"]:
        raise ValueError(f"{folder} was built with embedder {meta['embedder']!r}, not "
                         f"{embedder.faces.spec!r}: embed the query with the index's own")
    query = upload_embedding(embedder, name, data, meta.get("fps", 10.0))
    return fragments.nearest(folder, query.vector, k)
