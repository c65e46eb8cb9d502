"""`emotrace eval`: a classifier on a labelled face set -> accuracy, macro-F1, per-class
recall, confusion matrix PNG, expected calibration error; with `against`, a paired comparison
with a second model on the same faces. ONNX Runtime only (no torch)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from emotrace.evaluation.datasets import FaceSet, load_named
from emotrace.evaluation.metrics import (
    bootstrap_accuracy_difference,
    classification_report,
    mcnemar,
    plot_confusion,
)
from emotrace.faces.classify import ExpressionClassifier
from emotrace.labels import remap_probs
from emotrace.models import output_stem
from emotrace.outputs.files import write_json


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
             seed: int = 0, against: str | None = None) -> dict:
    """Evaluate `model` (registry name or emotrace ONNX file) on `data` (a name or path, see
    `datasets.load_named`). `limit` evaluates a fixed random subset of that size. `against`: a
    second model classified on the same faces; the report gets a `paired` section (exact
    McNemar test and a bootstrap 95% interval of the accuracy difference)."""
    clf = ExpressionClassifier(model)
    other = ExpressionClassifier(against) if against is not None else None  # fail early
    label_set = "submission9" if "uncertain" in clf.labels else "ferplus8"
    faces = load_named(data, label_set)
    if limit and limit < len(faces):
        pick = np.random.default_rng(seed).choice(len(faces), limit, replace=False)
        faces = faces.take(np.sort(pick))
    probs = remap_probs(face_probs(clf, faces), clf.labels, faces.names)
    report = classification_report(probs, faces.labels, faces.names)
    report.update(model=model, data=data, limit=limit)
    if other is not None:
        other_probs = remap_probs(face_probs(other, faces), other.labels, faces.names)
        report["paired"] = paired_comparison(probs, other_probs, faces.labels)
        report["paired"]["against"] = against
    if outdir is not None:
        outdir = Path(outdir)
        stem = f"{output_stem(model)}_{Path(data).name}"
        write_json(report, outdir / f"{stem}.json")
        plot_confusion(np.array(report["confusion"]), faces.names, outdir / f"{stem}.confusion.png",
                       f"{model} on {data}: accuracy {report['accuracy']:.3f}")
    return report


def paired_comparison(probs_a: np.ndarray, probs_b: np.ndarray, y_true: np.ndarray) -> dict:
    """Two models' (N, K) probabilities on the same faces: McNemar + bootstrap of A - B."""
    keep = y_true >= 0
    right_a = probs_a[keep].argmax(1) == y_true[keep]
    right_b = probs_b[keep].argmax(1) == y_true[keep]
    ones = np.ones(len(right_a))
    out = mcnemar(right_a, right_b)
    out["bootstrap"] = bootstrap_accuracy_difference(right_a, ones, right_b, ones)
    return out


def format_report(report: dict) -> str:
    lines = [f"{report['model']} on {report['data']} ({report['n']} faces)",
             f"accuracy   {report['accuracy']:.4f}",
             f"macro-F1   {report['macro_f1']:.4f}",
             f"ECE        {report['ece']:.4f}",
             "recall     " + ", ".join(f"{k} {v:.2f}" for k, v in report["recall"].items())]
    if paired := report.get("paired"):
        boot = paired["bootstrap"]
        lines += [
            f"against    {paired['against']}: accuracy {paired['accuracy_b']:.4f}",
            (f"difference {boot['difference']:+.4f} (95% bootstrap interval {boot['low']:+.4f} "
            f"to {boot['high']:+.4f})"),
            (f"McNemar    only {report['model']} right: {paired['a_only']}, only "
            f"{paired['against']} right: {paired['b_only']}, exact p = {paired['p_value']:.2g}"),
        ]
    return "\n".join(lines)
