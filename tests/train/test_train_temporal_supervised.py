"""Temporal heads trained end to end on annotated sequences in the ABAW and AFEW-VA formats.

No Aff-Wild2 or AFEW-VA data is reachable here, so the test writes both formats from real
StyleTalk clips: 112x112 face crops of every 10th of a second (what the organisers'
cropped-aligned folders hold), each frame annotated with its clip's emotion (ABAW EXPR), that
emotion's valence/arousal point (VA; AFEW-VA on its -10..10 scale) and the action units of its
prototype (AU). One frame image is deleted and one label is -1, as in the real sets.
"""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from emotrace.evaluation.temporal_data import ABAW_AUS, ABAW_EXPR, au_f1, read_abaw_au  # noqa: E402
from emotrace.faces.align import crop_boxes  # noqa: E402
from emotrace.labels import VA_POINTS  # noqa: E402
from emotrace.media.decode import FrameReader  # noqa: E402
from emotrace.pipeline import Analyzer  # noqa: E402
from emotrace.train.config import load_config  # noqa: E402
from emotrace.train.temporal import DEFAULTS, train_temporal  # noqa: E402

TRAIN = {"happyenglish_clip2": "happy", "sad_emotion_clip1": "sad", "furious_talk1_clip2": "anger",
         "sadfather_clip1": "sad", "furious_talk2_clip6": "anger"}
VALID = {"happyenglish_clip1": "happy", "sadgirl_clip1": "sad", "furious_talk1_clip1": "anger",
         "vscodehappy_clip1": "happy"}
EXPR = {"happy": "Happiness", "sad": "Sadness", "anger": "Anger"}
AUS = {"happy": {"AU6", "AU12", "AU25"}, "sad": {"AU1", "AU4", "AU15"},
       "anger": {"AU4", "AU7", "AU23"}}


def face_crops(clip: Path) -> list[np.ndarray]:
    """112 px square box crops of the most confident face, 10 frames/s, through the library's
    own detection step (`Analyzer.locate`) and crop (`crop_boxes`)."""
    analyzer, out = Analyzer(), []
    for frame in FrameReader(clip, fps=10.0):
        det = analyzer.locate(frame.image, frame.timestamp)
        if len(det):
            best = det.boxes[[int(det.scores.argmax())]]
            out.append(crop_boxes(frame.image, best, 112)[0])
    return out


@pytest.fixture(scope="module")
def datasets(tmp_path_factory, styletalk_dir):
    root = tmp_path_factory.mktemp("annotated")
    abaw, afew = root / "abaw", root / "afew"
    for split, clips in (("Train_Set", TRAIN), ("Validation_Set", VALID)):
        for video, emotion in clips.items():
            crops = face_crops(styletalk_dir / "style_clips" / f"{video}.mp4")
            frames = abaw / "cropped_aligned" / video
            frames.mkdir(parents=True)
            clip = afew / video
            clip.mkdir(parents=True)
            for i, crop in enumerate(crops):
                cv2.imwrite(str(frames / f"{i + 1:05d}.jpg"), crop)
                cv2.imwrite(str(clip / f"{i:05d}.png"), crop)
            expr = [ABAW_EXPR.index(EXPR[emotion])] * len(crops)
            expr[1] = -1  # not annotated
            (frames / "00003.jpg").unlink()  # no face image for this frame
            v, a = VA_POINTS[emotion]
            au = ",".join("1" if name in AUS[emotion] else "0" for name in ABAW_AUS)
            for task, header, lines in (
                    ("EXPR", ",".join(ABAW_EXPR), [str(e) for e in expr]),
                    ("VA", "valence,arousal", [f"{v},{a}"] * len(crops)),
                    ("AU", ",".join(ABAW_AUS), [au] * len(crops))):
                folder = abaw / "annotations" / f"{task}_Set" / split
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{video}.txt").write_text("\n".join([header, *lines]) + "\n")
            (clip / f"{video}.json").write_text(json.dumps({"frames": {
                f"{i:05d}": {"valence": v * 10, "arousal": a * 10} for i in range(len(crops))}}))
    return abaw, afew


def _config(tmp_path, *overrides):
    return load_config(None, [f"output_dir={tmp_path}", "train.epochs=12", "train.window=16",
                              "train.batch_size=8", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
                              *overrides], DEFAULTS)


@pytest.mark.slow
def test_abaw_expr_and_va(datasets, tmp_path):
    abaw, _ = datasets
    expr = train_temporal(_config(tmp_path, "name=expr", "data.format=abaw", f"data.root={abaw}",
                                  "data.task=expr", "model.kind=tcn"), progress=False)
    assert expr["train_sequences"] == 5 and expr["validation_sequences"] == 4
    # the clips' emotions are told apart on videos never trained on (3 classes present)
    assert expr["validation"]["macro_f1"] > 0.6, expr["validation"]
    run = tmp_path / "expr"
    assert (run / "temporal.pt").is_file() and (run / "metrics.json").is_file()
    va = train_temporal(_config(tmp_path, "name=va", "data.format=abaw", f"data.root={abaw}",
                                "data.task=va", "model.kind=gru"), progress=False)
    # the challenge score: mean CCC of valence and arousal (0.65 when written)
    assert va["validation"]["score"] > 0.45, va["validation"]


@pytest.mark.slow
def test_abaw_au_and_afew_va_through_the_cli(datasets, tmp_path):
    from emotrace.cli import app

    abaw, afew = datasets
    au = train_temporal(_config(tmp_path, "name=au", "data.format=abaw", f"data.root={abaw}",
                                "data.task=au"), progress=False)
    # better than the trivial "every AU active" on the same validation frames
    val = sorted((abaw / "annotations" / "AU_Set" / "Validation_Set").glob("*.txt"))
    y = np.concatenate([read_abaw_au(f) for f in val])
    y = y[(y >= 0).all(1)]
    chance = au_f1(y, np.ones_like(y))
    assert au["validation"]["au_f1"] > chance + 0.1, (au["validation"], chance)
    run = CliRunner().invoke(app, ["train", "temporal", "name=afew", f"output_dir={tmp_path}",
                                   "data.format=afew-va", f"data.root={afew}", "data.task=va",
                                   "data.heldout_every=3", "train.epochs=12", "train.window=16",
                                   "train.batch_size=8", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
                                   "-q"])
    assert run.exit_code == 0, run.output
    assert "afew-va va: validation ccc_valence" in run.output
    metrics = json.loads((tmp_path / "afew" / "metrics.json").read_text())
    assert metrics["validation_sequences"] == 3 and metrics["validation"]["ccc_valence"] > 0.3
    bad = CliRunner().invoke(app, ["train", "temporal", "data.format=abaw",
                                   f"data.root={tmp_path}/none",
                                   f"output_dir={tmp_path}", "-q"])
    assert bad.exit_code == 2 and "no such folder" in bad.output


def test_no_epoch_gives_a_clear_error(datasets, tmp_path):
    abaw, _ = datasets
    cfg = _config(tmp_path, "name=none", "data.format=abaw", f"data.root={abaw}",
                  "data.task=expr", "train.epochs=0")
    with pytest.raises(ValueError, match="no epoch gave a finite validation score"):
        train_temporal(cfg, progress=False)
