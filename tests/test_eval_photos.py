"""`emotrace eval MODEL --data DIR` on uncropped photos runs the full pipeline."""

import json
import shutil

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from emotrace.cli import app
from emotrace.evaluation import realfaces


@pytest.fixture
def photos(tmp_path, pyfeat_dir):
    root = tmp_path / "photos"
    for label, name in [("happy", "0-f15-hao-ph.jpg"), ("surprise", "0-f1-su-ph.jpg"),
                        ("happy", "single_face.jpg")]:
        (root / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(pyfeat_dir / name, root / label / name)
    (root / "sad").mkdir()
    cv2.imwrite(str(root / "sad" / "wall.png"), np.full((200, 200, 3), 128, np.uint8))
    return root


def test_photo_folder_is_scored_through_detection(photos, tmp_path):
    assert realfaces.looks_uncropped(photos)
    out = tmp_path / "eval"
    result = CliRunner().invoke(app, ["eval", "emotrace-ferplus8", "--data", str(photos),
                                      "--against", "mobilefacenet-rafdb", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "full pipeline" in result.output
    report = json.loads((out / "emotrace-ferplus8_photos.json").read_text())
    assert report["photos"] == 4 and report["faces_found"] == 3  # the grey wall has no face
    table = (out / "emotrace-ferplus8_photos.csv").read_text().splitlines()
    by_file = {row.split(",")[0].rsplit("/", 1)[-1]: row for row in table[1:]}
    assert ",happy,happy," in by_file["0-f15-hao-ph.jpg"]
    assert ",surprise,surprise," in by_file["0-f1-su-ph.jpg"]
    assert by_file["wall.png"].endswith(",False,False")  # no face: counted wrong
    assert report["accuracy"] <= 0.75 and report["paired"]["against"] == "mobilefacenet-rafdb"


def test_crops_stay_crops_and_detect_needs_a_folder(tmp_path):
    crops = tmp_path / "crops" / "happy"
    crops.mkdir(parents=True)
    cv2.imwrite(str(crops / "a.png"), np.zeros((48, 48), np.uint8))
    assert not realfaces.looks_uncropped(tmp_path / "crops")
    result = CliRunner().invoke(app, ["eval", "emotrace-ferplus8", "--data", "ferplus-test",
                                      "--detect"])
    assert result.exit_code == 2 and "--detect" in result.output
