"""Every expression model on every shared real-face set, FER+ test and FER2013 PrivateTest.

    python benchmarks/bench_realfaces.py [--onnx runs/NAME/model.onnx ...] [--models a b]
                                         [--against emotrace-ferplus8] [--csv out.csv]

Real-face sets (../shared/data/realfaces, evaluation only) go through the full pipeline:
YuNet at the still-image size, the model's own crop, the largest face; a photo without a
found face is wrong, and so is a class the set lacks (contempt on a 7-class set). CREMA-D
clips: frames at 5 fps, the largest face's probabilities averaged over the clip, scored
against the acted emotion. FER+ test: the 48 px crops, 8 classes (accuracy, ECE over 15 bins);
FER2013 PrivateTest: the probabilities moved to its 7 classes. Each model is compared with
`--against` on the same items by an exact McNemar test (p in the table). ms/face: one
classifier call on 32 real face crops, median of 20, measured in this run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from common import SHARED, WOLFGANG, machine

from emotrace import models
from emotrace.evaluation import realfaces as rf
from emotrace.evaluation.classifier import face_probs
from emotrace.evaluation.datasets import fer2013, ferplus
from emotrace.evaluation.metrics import expected_calibration_error, mcnemar
from emotrace.faces.classify import ExpressionClassifier
from emotrace.faces.detect import YuNetDetector
from emotrace.labels import FER2013_7, FERPLUS8, canonical, remap_probs
from emotrace.media.decode import FrameReader

PHOTO_SETS = ("sfew_train", "taiwanese")


def ms_per_face(clf: ExpressionClassifier, crops: np.ndarray) -> float:
    clf(crops, 32)
    times = []
    for _ in range(20):
        start = time.perf_counter()
        clf(crops, 32)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times) / len(crops)


def wolfgang_faces(detector: YuNetDetector, n: int = 32) -> list:
    found = []
    for frame in FrameReader(WOLFGANG, fps=5):
        det = detector(frame.image)
        if len(det):
            found.append((frame.image, det.take(np.array([det.largest()]))))
        if len(found) == n:
            break
    return found


def crop_accuracy(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    keep = labels >= 0
    return probs[keep].argmax(1) == labels[keep]


def evaluate_model(name: str, photos: dict, faces: dict, clips: rf.PhotoSet,
                   detector: YuNetDetector, crop_sets: dict, speed_faces: list) -> dict:
    clf = ExpressionClassifier(name)
    own = tuple(canonical(x) for x in clf.labels)
    out: dict = {"model": name}
    for set_name, photo in photos.items():
        report = rf.score(rf.photo_probs(clf, photo, faces[set_name]), clf.labels, photo)
        out[set_name] = report["accuracy"]
        out[f"{set_name}_correct"] = report["correct"]
        out[f"{set_name}_neutral"] = report["called_neutral"]
    clip_rows = np.stack([rf.clip_probs(clf, f, detector) for f in clips.files])
    cremad = rf.score(clip_rows, clf.labels, clips)
    out["cremad"], out["cremad_correct"] = cremad["accuracy"], cremad["correct"]
    fp = remap_probs(face_probs(clf, crop_sets["ferplus"]), own, FERPLUS8)
    labels = crop_sets["ferplus"].labels
    out["ferplus_correct"] = crop_accuracy(fp, labels)
    out["ferplus"] = float(out["ferplus_correct"].mean())
    out["ferplus_ece"] = expected_calibration_error(fp[labels >= 0], labels[labels >= 0])
    f13 = remap_probs(face_probs(clf, crop_sets["fer2013"]), own, FER2013_7)
    out["fer2013_correct"] = crop_accuracy(f13, crop_sets["fer2013"].labels)
    out["fer2013"] = float(out["fer2013_correct"].mean())
    crops = np.concatenate([clf.crops(img, det) for img, det in speed_faces])
    out["ms_per_face"] = ms_per_face(clf, crops)
    return out


def table(rows: list[dict], against: str) -> str:
    base = next((r for r in rows if r["model"] == against), None)
    cols = ("sfew_train", "taiwanese", "cremad", "ferplus", "fer2013")
    head = ("| model | sfew_train | taiwanese | CREMA-D clips | FER+ test | FER+ ECE | "
            "FER2013 private | called neutral (sfew / taiwanese) | ms/face at batch 32 |")
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        cells = []
        for c in cols:
            cell = f"{r[c]:.3f}"
            if base is not None and r is not base:
                p = mcnemar(r[f"{c}_correct"], base[f"{c}_correct"])["p_value"]
                cell += f" (p={p:.2g})"
            cells.append(cell)
        cells.insert(4, f"{r['ferplus_ece']:.3f}")
        cells.append(f"{r['sfew_train_neutral']:.2f} / {r['taiwanese_neutral']:.2f}")
        cells.append(f"{r['ms_per_face']:.2f}")
        lines.append(f"| {r['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=None,
                    help="registered models (default: every runnable expression model here)")
    ap.add_argument("--onnx", nargs="*", default=[], help="model files from emotrace train")
    ap.add_argument("--against", default="emotrace-ferplus8",
                    help="the model every other one is tested against (McNemar)")
    ap.add_argument("--csv", default=None, help="also write the numbers as CSV")
    args = ap.parse_args()
    names = args.models if args.models is not None else [
        c.name for c in models.list_models("expression", present=True) if c.runnable]
    names += args.onnx
    root = SHARED / "data" / "realfaces"
    detector = YuNetDetector()
    photos = {n: rf.photo_set(root / n) for n in PHOTO_SETS}
    faces = {n: rf.find_faces(p, detector) for n, p in photos.items()}
    clips = rf.photo_set(root / "cremad", "cremad")
    crop_sets = {"ferplus": ferplus("test"), "fer2013": fer2013("PrivateTest")}
    speed_faces = wolfgang_faces(detector)
    print(f"# bench_realfaces on {machine()}", flush=True)
    rows = []
    for name in names:
        started = time.perf_counter()
        rows.append(evaluate_model(name, photos, faces, clips, detector, crop_sets, speed_faces))
        print(f"{name}: {time.perf_counter() - started:.0f} s", flush=True)
    print(table(rows, args.against))
    if args.csv:
        import pandas as pd

        pd.DataFrame([{k: v for k, v in r.items() if not k.endswith("_correct")}
                      for r in rows]).to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
