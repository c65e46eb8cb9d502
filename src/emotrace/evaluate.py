"""`emotrace eval`: a classifier on a labelled face set -> accuracy, macro-F1, per-class
recall, confusion matrix PNG, expected calibration error. ONNX Runtime only (no torch)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from emotrace.classify import ExpressionClassifier
from emotrace.datasets import FaceSet, load_named
from emotrace.labels import remap_probs
from emotrace.metrics import classification_report, plot_confusion
from emotrace.tables import write_json


def face_batches(faces: FaceSet, size: int, batch_size: int = 64) -> Iterator[np.ndarray]:
    """Already cropped faces as BGR batches (B, size, size, 3), each resized (bilinear)."""
    for start in range(0, len(faces), batch_size):
        chunk = faces.images[start : start + batch_size]
        yield np.stack([
            cv2.resize(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) if f.ndim == 2 else f[..., ::-1],
                       (size, size), interpolation=cv2.INTER_LINEAR)
            for f in chunk
        ])


def face_probs(clf: ExpressionClassifier, faces: FaceSet, batch_size: int = 64) -> np.ndarray:
    """Classify already cropped faces: each is resized to the model's input (bilinear)."""
    out = [clf(bgr, batch_size).probs for bgr in face_batches(faces, clf.size, batch_size)]
    return np.concatenate(out) if out else np.zeros((0, len(clf.labels)), np.float32)


def evaluate(model: str, data: str, outdir: str | Path | None = None, limit: int | None = None,
             seed: int = 0) -> dict:
    """Evaluate `model` (registry name or emotrace ONNX file) on `data` (a name or path, see
    `datasets.load_named`). `limit` evaluates a fixed random subset of that size."""
    clf = ExpressionClassifier(model)
    label_set = "submission9" if "uncertain" in clf.labels else "ferplus8"
    faces = load_named(data, label_set)
    if limit and limit < len(faces):
        faces = faces.take(np.sort(np.random.default_rng(seed).choice(len(faces), limit, replace=False)))
    probs = remap_probs(face_probs(clf, faces), clf.labels, faces.names)
    report = classification_report(probs, faces.labels, faces.names)
    report.update(model=model, data=data, limit=limit)
    if outdir is not None:
        outdir = Path(outdir)
        stem = f"{Path(model).stem}_{Path(data).name}"
        write_json(report, outdir / f"{stem}.json")
        plot_confusion(np.array(report["confusion"]), faces.names, outdir / f"{stem}.confusion.png",
                       f"{model} on {data}: accuracy {report['accuracy']:.3f}")
    return report


def format_report(report: dict) -> str:
    lines = [f"{report['model']} on {report['data']} ({report['n']} faces)",
             f"accuracy   {report['accuracy']:.4f}",
             f"macro-F1   {report['macro_f1']:.4f}",
             f"ECE        {report['ece']:.4f}",
             "recall     " + ", ".join(f"{k} {v:.2f}" for k, v in report["recall"].items())]
    return "\n".join(lines)
