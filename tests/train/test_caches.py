"""Training caches are keyed by content identity, not by names, and hold no pickle.

Face analysis is replaced by small fakes here (what is tested is which cache a call reads or
writes); the fakes' outputs depend on the bytes of the files they are given, so reusing a
cache of other files shows as wrong numbers.
"""

import pickle
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from emotrace.evaluation.datasets import FaceSet  # noqa: E402
from emotrace.train import embedding, temporal  # noqa: E402
from emotrace.train.cache import (  # noqa: E402
    cache_key,
    load_npz,
    load_records,
    model_sha256,
    save_records,
)


class Planted:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _file(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _videos(folder: Path, *sizes: int) -> Path:
    for i, size in enumerate(sizes):
        _file(folder / f"clip{i}.mp4", bytes(size))
    return folder


class _Rows:
    def __init__(self, embeddings):
        self.embeddings = embeddings

    def __len__(self):
        return len(self.embeddings)


class _Track:
    def __init__(self, size: int):
        n = 4 + size % 3
        self.track_id = np.int64(1)
        self.timestamps = np.arange(n) / 10
        self.embeddings = np.full((n, 3), float(size), np.float32)
        self.probs = np.full((n, 2), 0.5, np.float32)

    def windows(self, window_s):
        return [(0.0, _Rows(self.embeddings))]


class FakeAnalyzer:
    """Stands in for the pipeline: one track per video, its features = the file's size."""

    calls: list[str] = []

    def __init__(self, classifier, embeddings=False):
        self.labels = ("happy", "sad")

    def analyze_video(self, video, fps=None, progress=False):
        FakeAnalyzer.calls.append(str(video))
        track = _Track(Path(video).stat().st_size)
        return type("Result", (), {"tracks": lambda self, min_frames=1: [track]})()


@pytest.fixture
def fake_analyzer(monkeypatch):
    FakeAnalyzer.calls = []
    monkeypatch.setattr("emotrace.pipeline.Analyzer", FakeAnalyzer)
    return FakeAnalyzer


def test_two_model_files_both_named_model_onnx_get_different_keys(tmp_path):
    a = _file(tmp_path / "runs" / "a" / "model.onnx", b"first model")
    b = _file(tmp_path / "runs" / "b" / "model.onnx", b"second model")
    assert model_sha256(a) != model_sha256(b)
    assert cache_key({"k": 1}, [], [a]) != cache_key({"k": 1}, [], [b])
    assert cache_key({"k": 1}, [], [a]) == cache_key({"k": 1}, [], [a])
    assert cache_key({"k": 1}, [], [a]) != cache_key({"k": 2}, [], [a])
    assert model_sha256("emotrace-ferplus8") == \
        __import__("emotrace.models").models.get_card("emotrace-ferplus8").sha256


def test_ferplus_features_of_two_model_onnx_files_are_two_caches(tmp_path, monkeypatch):
    faces = FaceSet(np.zeros((6, 48, 48), np.uint8), np.array([0, 1, 2, 0, 1, -1]),
                    ("neutral", "happiness", "surprise"))
    monkeypatch.setattr(embedding, "ferplus", lambda split: faces)
    monkeypatch.setattr(embedding, "face_embeddings", lambda backbone, f: np.full(
        (len(f), 2), float(Path(backbone.name).stat().st_size), np.float32))
    cache = tmp_path / "cache"
    got = []
    for run, size in (("a", 10), ("b", 20)):
        spec = str(_file(tmp_path / "runs" / run / "model.onnx", bytes(size)))
        backbone = type("Backbone", (), {"name": spec, "backbone_name": spec})()
        got.append(embedding.cached_features(backbone, "train", cache, False)[0])
    assert got[0][0, 0] == 10 and got[1][0, 0] == 20  # the second did not read the first
    assert len(list(cache.glob("*.npz"))) == 2
    assert all("/" not in p.name and "model" not in p.name for p in cache.iterdir())


def test_track_caches_of_two_folders_named_video_are_two(tmp_path, fake_analyzer):
    cache = tmp_path / "cache"
    one = _videos(tmp_path / "one" / "video", 100, 200)
    two = _videos(tmp_path / "two" / "video", 300)
    a = temporal.load_tracks("emotrace-ferplus8", one, 10.0, cache)
    b = temporal.load_tracks("emotrace-ferplus8", two, 10.0, cache)
    assert [t["x"][0, 0] for t in a["tracks"]] == [100, 200]
    assert [t["x"][0, 0] for t in b["tracks"]] == [300]  # not folder one's tracks
    assert len(fake_analyzer.calls) == 3 and len(list(cache.glob("tracks_*.npz"))) == 2
    # read again: from the cache, the same arrays and values, no analysis
    again = temporal.load_tracks("emotrace-ferplus8", one, 10.0, cache)
    assert len(fake_analyzer.calls) == 3 and again["labels"] == ["happy", "sad"]
    for x, y in zip(a["tracks"], again["tracks"], strict=True):
        assert x.keys() == y.keys() and x["video"] == y["video"] and x["track"] == 1
        assert all(np.array_equal(x[k], y[k]) for k in ("x", "p", "t"))
    # a video changed in place, or another fps: a new key
    _file(one / "clip1.mp4", bytes(250))
    changed = temporal.load_tracks("emotrace-ferplus8", one, 10.0, cache)
    assert [t["x"][0, 0] for t in changed["tracks"]] == [100, 250]
    temporal.load_tracks("emotrace-ferplus8", one, 5.0, cache)
    assert len(fake_analyzer.calls) == 7


def test_a_path_backbone_saves_a_track_cache(tmp_path, fake_analyzer):
    backbone = str(_file(tmp_path / "runs" / "x" / "model.onnx", b"weights"))
    videos = _videos(tmp_path / "video", 120)
    cache = tmp_path / "cache"
    first = temporal.load_tracks(backbone, videos, 10.0, cache)
    other = str(_file(tmp_path / "runs" / "y" / "model.onnx", b"other weights"))
    temporal.load_tracks(other, videos, 10.0, cache)
    assert [p.parent for p in cache.glob("*.npz")] == [cache, cache]
    assert temporal.load_tracks(backbone, videos, 10.0, cache)["tracks"][0]["video"] == \
        first["tracks"][0]["video"]
    assert len(fake_analyzer.calls) == 2
    # the embedding trainer's track windows alike: two folders named video, two caches
    w1 = embedding.temporal_windows(backbone, videos, 1.0, cache)
    w2 = embedding.temporal_windows(backbone, _videos(tmp_path / "b" / "video", 130), 1.0,
                                    cache)
    assert w1[0][0, 0] == 120 and w2[0][0, 0] == 130


def test_sequence_caches_follow_the_annotation_files(tmp_path, monkeypatch):
    import cv2

    from emotrace.evaluation.temporal_data import ABAW_EXPR
    from emotrace.train.temporal_supervised import load_sequences

    calls = []

    class FakeClassifier:
        size = 8

        def __init__(self, spec, embeddings=False):
            calls.append(spec)

        def __call__(self, faces):
            return type("E", (), {"embeddings": faces.reshape(len(faces), -1)[:, :4]
                                  .astype(np.float32)})()

    monkeypatch.setattr("emotrace.faces.classify.ExpressionClassifier", FakeClassifier)
    root = tmp_path / "abaw"
    for split, video in (("Train_Set", "v1"), ("Validation_Set", "v2")):
        notes = root / "annotations" / "EXPR_Set" / split
        notes.mkdir(parents=True)
        (notes / f"{video}.txt").write_text(",".join(ABAW_EXPR) + "\n1\n2\n-1\n")
        (root / "cropped_aligned" / video).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(root / "cropped_aligned" / video / f"{i + 1:05d}.jpg"),
                        np.full((8, 8, 3), 40 * i, np.uint8))
    backbone = str(_file(tmp_path / "runs" / "m" / "model.onnx", b"w"))
    cfg = {"output_dir": str(tmp_path / "out"), "backbone": backbone,
           "data": {"root": str(root), "format": "abaw", "task": "expr", "heldout_every": 4}}
    train, valid = load_sequences(cfg)
    again = load_sequences(cfg)
    assert len(calls) == 1 and [s["video"] for s in again[0]] == ["v1"]
    assert np.array_equal(train[0]["x"], again[0][0]["x"])
    assert again[0][0]["mask"].tolist() == [True, True, False]
    assert again[1][0]["y"].dtype == np.int64
    (root / "annotations" / "EXPR_Set" / "Train_Set" / "v1.txt").write_text(
        ",".join(ABAW_EXPR) + "\n3\n3\n3\n")
    assert load_sequences(cfg)[0][0]["y"].tolist() == [3, 3, 3] and len(calls) == 2


def test_a_planted_cache_is_refused_without_running_it(tmp_path, fake_analyzer):
    marker = tmp_path / "ran"
    pickled = tmp_path / "pickled.npz"
    pickled.write_bytes(pickle.dumps(Planted(marker)))
    objects = tmp_path / "objects.npz"
    np.savez(objects, features=np.array([Planted(marker)], dtype=object))
    for path in (pickled, objects):
        with pytest.raises(ValueError, match="not a readable cache"):
            load_npz(path)
        with pytest.raises(ValueError, match="not a readable cache"):
            load_records(path)
    # planted where the trainer's own cache would be: refused, not run, not recomputed over
    videos = _videos(tmp_path / "video", 50)
    cache = tmp_path / "cache"
    temporal.load_tracks("emotrace-ferplus8", videos, 10.0, cache)
    [path] = cache.glob("tracks_*.npz")
    path.write_bytes(pickle.dumps(Planted(marker)))
    with pytest.raises(ValueError, match=f"{path.name}: not a readable cache"):
        temporal.load_tracks("emotrace-ferplus8", videos, 10.0, cache)
    assert not marker.exists()


def test_records_round_trip_and_mismatched_records_are_refused(tmp_path):
    recs = [{"x": np.ones((2, 3)), "y": np.arange(2), "name": "a", "n": None},
            {"x": np.zeros((0, 3)), "y": np.arange(0), "name": "b", "n": 3}]
    save_records(tmp_path / "r.npz", {"g": recs, "empty": []}, {"labels": ["p"]})
    groups, meta = load_records(tmp_path / "r.npz")
    assert meta == {"labels": ["p"]} and groups["empty"] == []
    assert [r["name"] for r in groups["g"]] == ["a", "b"] and groups["g"][1]["n"] == 3
    assert groups["g"][0]["x"].shape == (2, 3) and groups["g"][1]["x"].shape == (0, 3)
    with pytest.raises(ValueError, match="record 1 of 'g' has arrays"):
        save_records(tmp_path / "bad.npz", {"g": [recs[0], {"x": np.ones((1, 3))}]})
