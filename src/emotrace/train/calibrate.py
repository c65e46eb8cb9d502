"""Calibrate an expression model file: fit its temperature (and a class bias) on a
validation set and write them into the file's metadata, where inference applies them.

    emotrace train calibrate runs/NAME/model.onnx --data ferplus-valid --prior

The network is not changed: `faces.classify.calibrated` divides its scores by the temperature
and adds the bias on every call, so the file's ECE is that of the calibrated probabilities.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from emotrace.errors import ModelError
from emotrace.evaluation.calibration import (
    apply,
    fit_prior_tau,
    fit_temperature,
    prior_bias,
)
from emotrace.evaluation.classifier import face_probs
from emotrace.evaluation.datasets import FaceSet, load_named
from emotrace.evaluation.metrics import classification_report
from emotrace.faces.classify import ExpressionClassifier
from emotrace.labels import canonical

CALIBRATIONS = ("none", "temperature", "temperature+prior")


def class_prior(data: str, labels: tuple[str, ...]) -> np.ndarray:
    """Each class's share of the training targets (vote distributions where there are)."""
    faces = load_named(data, "ferplus8" if "uncertain" not in labels else "submission9")
    if faces.soft is not None:
        prior = faces.soft.mean(0)
    else:
        prior = np.bincount(faces.labels[faces.labels >= 0], minlength=len(faces.names))
        prior = prior / prior.sum()
    return prior.astype(np.float64)


def fit(model: str | Path, valid: str | FaceSet = "ferplus-valid",
        method: str = "temperature", prior_data: str = "ferplus-train") -> dict:
    """The calibration of `model` fitted on `valid` (a data set name or faces); the model's
    scores are taken raw (any calibration already in the file is ignored)."""
    if method not in CALIBRATIONS:
        raise ValueError(f"calibration must be one of {', '.join(CALIBRATIONS)}, got {method!r}")
    clf = ExpressionClassifier(model)
    clf.card = replace(clf.card, temperature=1.0, class_bias=())
    faces = valid if isinstance(valid, FaceSet) else load_named(
        valid, "submission9" if "uncertain" in clf.labels else "ferplus8")
    if tuple(canonical(x) for x in clf.labels) != tuple(canonical(x) for x in faces.names):
        raise ModelError(f"{model}: labels {clf.labels} are not those of the valid set "
                         f"({faces.names}); calibrate on a set with the model's labels")
    raw = face_probs(clf, faces)
    out: dict = {"method": method, "data": valid if isinstance(valid, str) else "valid set",
                 "temperature": 1.0, "class_bias": None,
                 "valid_raw": _summary(raw, faces.labels, faces.names)}
    if method == "none":
        return out
    bias = None
    if method == "temperature+prior":
        t0 = fit_temperature(raw, faces.labels)
        prior = class_prior(prior_data, clf.labels)
        out["tau"], out["tau_table"] = fit_prior_tau(apply(raw, t0), faces.labels, faces.names,
                                                     prior)
        bias = prior_bias(prior, out["tau"])
        out["class_bias"] = [round(float(b), 5) for b in bias]
    out["temperature"] = round(fit_temperature(raw, faces.labels, bias), 5)
    out["valid_calibrated"] = _summary(apply(raw, out["temperature"], bias), faces.labels,
                                       faces.names)
    return out


def _summary(probs: np.ndarray, labels: np.ndarray, names: tuple[str, ...]) -> dict:
    rep = classification_report(probs, labels, names)
    return {k: rep[k] for k in ("accuracy", "macro_f1", "ece")}


def write(model_path: str | Path, calibration: dict, out_path: str | Path | None = None) -> Path:
    """Write `calibration`'s temperature and class bias into a copy (or, with no
    `out_path`, the file itself) of an emotrace ONNX file."""
    import onnx

    model_path = Path(model_path)
    out_path = Path(out_path or model_path)
    proto = onnx.load(str(model_path))
    meta = {p.key: p.value for p in proto.metadata_props}
    if "emotrace_labels" not in meta:
        raise ModelError(f"{model_path}: not an emotrace expression model (no emotrace_labels "
                         "in its metadata); a registered model is calibrated in its card")
    meta["emotrace_temperature"] = repr(float(calibration["temperature"]))
    bias = calibration.get("class_bias")
    meta["emotrace_class_bias"] = ",".join(repr(float(b)) for b in bias) if bias else ""
    meta["emotrace_calibration"] = (f"{calibration['method']} fitted on {calibration['data']}"
                                    + (f", tau {calibration['tau']}" if "tau" in calibration
                                       else ""))
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    tmp = out_path.with_suffix(".tmp.onnx")
    onnx.save(proto, str(tmp))
    tmp.replace(out_path)
    return out_path
