"""`eval embedding` on a set whose classes are ordered otherwise than FER+ (FER2013).

The kNN, the linear probe and the video kNN labels are fitted on FER+ train; their label ids
must be put in the evaluated set's order (by name) before they are compared with its labels.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from emotrace.evaluation.classifier import evaluate
from emotrace.evaluation.embedding import evaluate_embedding, to_label_order
from emotrace.labels import FER2013_7, FERPLUS8

MODEL = "emotrace-ferplus8"
CLIP = "happyenglish_clip2.mp4"  # a happy talking head


def test_label_ids_refer_to_the_same_names():
    ferplus_ids = np.arange(len(FERPLUS8))
    fer2013_ids = to_label_order(ferplus_ids, FERPLUS8, FER2013_7)
    for i, j in zip(ferplus_ids, fer2013_ids, strict=True):
        assert FER2013_7[j] == FERPLUS8[i] if j >= 0 else FERPLUS8[i] == "contempt"
    # names are compared canonically; -1 (no label) stays -1
    assert list(to_label_order(np.array([0, -1, 1]), ("Happiness", "angry"), FER2013_7)) == [
        FER2013_7.index("happy"), -1, FER2013_7.index("anger")]


@pytest.fixture(scope="module")
def report(styletalk_dir, tmp_path_factory):
    videos = tmp_path_factory.mktemp("videos")
    shutil.copy(styletalk_dir / "style_clips" / CLIP, videos / CLIP)
    pd.DataFrame({"file": [CLIP], "weak_label_from_filename": ["happy"]}).to_csv(
        videos / "index.csv", index=False)
    return evaluate_embedding(MODEL, "fer2013-private", limit=300, train_sample=2000,
                              videos=videos)


@pytest.mark.slow
def test_knn_and_probe_on_fer2013_are_near_the_classifier(report):
    classifier = evaluate(MODEL, "fer2013-private", limit=300)["accuracy"]  # same 300 faces
    assert report["n"] == 300
    # with the label orders mixed up both were near 0.08, far below chance (1/7)
    assert report["knn10_accuracy"] > classifier - 0.15, (report["knn10_accuracy"], classifier)
    probe = report["linear_probe_accuracy"]
    if probe is not None:  # needs scikit-learn
        assert probe > classifier - 0.15, (probe, classifier)


def test_video_knn_labels_use_the_set_label_names(report):
    (video,) = report["video_flips"]["videos"]
    assert video["agreement_classifier"] > 0.8
    assert video["agreement_knn"] > 0.6, video
