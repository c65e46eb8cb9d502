"""The demo's Embeddings page shows the library's numbers: the same-vs-opposite cosines of
`emotrace eval embedding` and the nearest fragments of `emotrace search`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emotrace import models
from emotrace.apps.demo import embeddings as e
from emotrace.evaluation.embedding import evaluate_embedding

APP = Path(__file__).resolve().parents[1] / "src" / "emotrace" / "apps" / "demo" / "app.py"
OTHER = "mobilefacenet-rafdb"  # an embedder other than the sidebar's default


@pytest.mark.needs_shared
@pytest.mark.slow
def test_pair_cosines_are_those_of_eval_embedding():
    model, n, seed = models.DEFAULT_CLASSIFIER, 200, 3
    pairs = e.ferplus_pair_cosines(e.Embedder.load(model).faces, n=n, seed=seed)
    report = evaluate_embedding(model, limit=n, seed=seed, train_sample=200)
    assert pairs.n_faces == report["n"]
    assert pairs.same.mean() == pytest.approx(report["same_mean_cosine"], abs=1e-6)
    assert pairs.opposite.mean() == pytest.approx(report["opposite_mean_cosine"], abs=1e-6)


@pytest.fixture(scope="module")
def other_index(tmp_path_factory, pyfeat_dir, styletalk_dir):
    pytest.importorskip("lancedb")
    from emotrace.fragments import index_videos

    db = tmp_path_factory.mktemp("index") / "idx"
    index_videos([pyfeat_dir / "single_face.mp4",
                  styletalk_dir / "style_clips" / "sadgirl_clip1.mp4"], db, embedder=OTHER,
                 progress=False)
    return db


@pytest.mark.slow
def test_the_demo_searches_an_index_with_its_own_embedder(other_index, pyfeat_dir):
    """Bug 2: the query was embedded with the sidebar's model whatever built the index."""
    from emotrace.fragments import search

    AppTest = pytest.importorskip("streamlit.testing.v1", reason="needs emotrace[demo]").AppTest
    image = pyfeat_dir / "single_face.jpg"
    at = AppTest.from_file(str(APP), default_timeout=240)
    at.run()
    assert at.sidebar.selectbox(key="model").value != OTHER
    at.sidebar.radio(key="page").set_value("Embeddings").run()
    at.file_uploader(key="emb-A").upload("single_face.jpg", image.read_bytes(), "image/jpeg")
    at.run()
    at.text_input(key="index-dir").set_value(str(other_index)).run()
    assert not at.exception and not at.warning and not at.error
    shown = at.dataframe[-1].value
    expected = search(other_index, image=image, k=5)
    assert list(shown["source"]) == list(expected["source"])
    assert np.allclose(shown["similarity"], expected["similarity"], atol=1e-5)


def test_nearest_fragments_refuse_another_embedder(other_index, pyfeat_dir):
    data = (pyfeat_dir / "single_face.jpg").read_bytes()
    with pytest.raises(ValueError, match=f"built with embedder '{OTHER}'"):
        e.nearest_fragments(other_index, e.Embedder.load(models.DEFAULT_CLASSIFIER),
                            "single_face.jpg", data)
    hits = e.nearest_fragments(other_index, e.Embedder.load(OTHER), "clip.mp4",
                               (pyfeat_dir / "single_face.mp4").read_bytes(), k=3)
    assert hits.loc[0, "source"].endswith("single_face.mp4") and hits.loc[0, "similarity"] > 0.9
