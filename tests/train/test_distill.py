"""Real-face teachers: their targets on real faces, cached by content, and a trainer run that
uses them and calibrates its model file."""

import os
import shutil

import numpy as np
import pytest

pytest.importorskip("torch")

from emotrace.evaluation.datasets import FaceSet  # noqa: E402
from emotrace.labels import FERPLUS8  # noqa: E402
from emotrace.media.images import read_image  # noqa: E402
from emotrace.train import distill  # noqa: E402
from emotrace.train.transforms import jpeg  # noqa: E402


@pytest.fixture(scope="module")
def teachers(models_dir):
    return distill.Teachers(["mobilefacenet-rafdb", "emotrace-fer2013"], FERPLUS8)


def test_teachers_read_a_real_smile_and_leave_contempt_out(teachers, pyfeat_dir, analyzer):
    image = read_image(pyfeat_dir / "0-f15-hao-ph.jpg")  # a broad smile
    det = analyzer.locate(image, still=True)
    probs = teachers.on_frame(image, det.take(np.array([det.largest()])))
    assert probs.shape == (1, 8) and np.isclose(probs.sum(), 1, atol=1e-5)
    assert FERPLUS8[int(probs.argmax())] == "happy"
    assert probs[0, FERPLUS8.index("contempt")] == 0  # neither teacher has contempt


def test_video_faces_are_cached_by_content(teachers, styletalk_dir, tmp_path, monkeypatch):
    videos = tmp_path / "video"
    videos.mkdir()
    clip = videos / "clip.mp4"
    shutil.copy(styletalk_dir / "style_clips" / "happyenglish_clip2.mp4", clip)
    faces = distill.video_faces([videos], teachers, tmp_path / "cache", fps=2, progress=False)
    assert len(faces) > 5 and faces.images.shape[1:] == (48, 48)
    assert np.allclose(faces.soft.sum(1), 1, atol=1e-5) and (faces.labels == -1).all()
    # most frames of a happy talking clip look happy to the teachers
    assert (faces.soft.argmax(1) == FERPLUS8.index("happy")).mean() > 0.5
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1

    def no_teacher(*args):
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(distill.Teachers, "on_frame", no_teacher)
    again = distill.video_faces([videos], teachers, tmp_path / "cache", fps=2, progress=False)
    assert np.array_equal(again.images, faces.images)
    # another folder with the same name, or the same file changed, is not the cached one
    st = clip.stat()
    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="cache should have answered"):
        distill.video_faces([videos], teachers, tmp_path / "cache", fps=2, progress=False)


def test_jpeg_changes_pixels_only_when_drawn():
    import torch

    faces = np.random.default_rng(0).integers(0, 255, (6, 48, 48), dtype=np.uint8)
    assert np.array_equal(jpeg(faces, 0.0), faces)
    out = jpeg(torch.from_numpy(faces), 1.0)
    assert isinstance(out, torch.Tensor) and out.shape == (6, 48, 48)
    assert (out.numpy() != faces).any()


def test_distill_needs_soft_targets_and_a_sane_weight(tmp_path):
    from emotrace.train.classifier import DEFAULTS, with_teachers
    from emotrace.train.config import load_config

    faces = FaceSet(np.zeros((2, 48, 48), np.uint8), np.zeros(2, np.int64), FERPLUS8)
    cfg = load_config(None, ["distill.teachers=[mobilefacenet-rafdb]"], DEFAULTS)
    with pytest.raises(ValueError, match="needs soft targets"):
        with_teachers(cfg, faces)
    soft = FaceSet(faces.images, faces.labels, FERPLUS8, np.full((2, 8), 1 / 8, np.float32))
    cfg["distill"]["weight"] = 1.5
    with pytest.raises(ValueError, match=r"distill.weight must be in \[0, 1\]"):
        with_teachers(cfg, soft)


@pytest.mark.slow
def test_a_distilled_run_writes_a_calibrated_model(tmp_path, models_dir, styletalk_dir):
    from emotrace import models
    from emotrace.train.classifier import DEFAULTS, train_classifier
    from emotrace.train.config import load_config

    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(styletalk_dir / "style_clips" / "sad_emotion_clip1.mp4", videos / "a.mp4")
    cfg = load_config(None, [
        "name=d", f"output_dir={tmp_path}", "data.subset=256", "data.eval_subset=300",
        "model.input_size=48", "train.epochs=1", "train.max_steps_per_epoch=2",
        "train.batch_size=32", "distill.teachers=[emotrace-fer2013]", f"distill.videos=[{videos}]",
        "distill.video_fps=2", f"distill.cache_dir={tmp_path / 'cache'}",
        "augment.jpeg_p=0.5", "augment.noise_p=0.5", "train.calibration=temperature+prior",
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db"], DEFAULTS)
    results = train_classifier(cfg, progress=False)
    cal = results["calibration"]
    assert cal["method"] == "temperature+prior" and cal["temperature"] > 0
    assert len(cal["class_bias"]) == 8 and 0 <= cal["tau"] <= 1
    card = models.load(tmp_path / "d" / "model.onnx").card
    assert card.temperature == pytest.approx(cal["temperature"])
    assert card.class_bias == pytest.approx(cal["class_bias"])
