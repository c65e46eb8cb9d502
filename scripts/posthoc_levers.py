"""Levers that need no training, measured on every shared set: crop margin, fusion of two
models' probabilities, temperature scaling and a class bias (logit adjustment).

    python scripts/posthoc_levers.py [--cache runs/posthoc]

Each model's probabilities on sfew_train and taiwanese (full pipeline, as
benchmarks/bench_realfaces.py), FER+ valid/test and FER2013 PrivateTest are computed once
and cached as .npz; the levers are then arithmetic on them. Every choice (fusion weight,
temperature, tau) is printed beside every set's number, so none is picked on a real-face set.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import SHARED  # noqa: E402

from emotrace.evaluation import realfaces as rf  # noqa: E402
from emotrace.evaluation.calibration import (  # noqa: E402
    apply,
    fit_prior_tau,
    fit_temperature,
    prior_bias,
)
from emotrace.evaluation.classifier import face_probs  # noqa: E402
from emotrace.evaluation.datasets import fer2013, ferplus  # noqa: E402
from emotrace.evaluation.metrics import expected_calibration_error  # noqa: E402
from emotrace.faces.classify import ExpressionClassifier  # noqa: E402
from emotrace.labels import FER2013_7, FERPLUS8, canonical, remap_probs  # noqa: E402

MODELS = ("emotrace-ferplus8", "mobilefacenet-rafdb", "emotrace-fer2013")
CROPS = {"ferplus_valid": lambda: ferplus("valid"), "ferplus_test": lambda: ferplus("test"),
         "fer2013_private": lambda: fer2013("PrivateTest")}


def model_probs(name: str, photos: dict, faces: dict, crops: dict, cache: Path) -> dict:
    path = cache / f"{name}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    clf = ExpressionClassifier(name)
    own = tuple(canonical(x) for x in clf.labels)
    out = {n: remap_probs(np.nan_to_num(rf.photo_probs(clf, p, faces[n])), own, FERPLUS8)
           for n, p in photos.items()}
    out.update({n: remap_probs(face_probs(clf, s), own, FERPLUS8) for n, s in crops.items()})
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=ROOT / "runs" / "posthoc")
    ap.add_argument("--margins", type=float, nargs="*", default=[],
                    help="also score these box margins (e.g. -0.1 0 0.1 0.2) and alignment")
    args = ap.parse_args()
    os.environ.setdefault("EMOTRACE_MODEL_DIR", str(SHARED / "models"))
    photos = {n: rf.photo_set(SHARED / "data" / "realfaces" / n) for n in rf_sets()}
    faces = {n: rf.find_faces(p) for n, p in photos.items()}
    crops = {n: make() for n, make in CROPS.items()}
    if args.margins:
        crop_margins(photos, faces, args.margins)
    probs = {m: model_probs(m, photos, faces, crops, args.cache) for m in MODELS}

    def row(label: str, get) -> None:  # get(set name) -> (N, 8) probabilities
        cells = []
        for n, p in photos.items():
            q = get(n).copy()
            q[q.sum(1) == 0] = np.nan  # no face found: wrong
            cells.append(f"{n} {rf.score(q, FERPLUS8, p)['accuracy']:.3f}")
        test, y = get("ferplus_test"), crops["ferplus_test"].labels
        keep = y >= 0
        cells.append(f"FER+ test {(test[keep].argmax(1) == y[keep]).mean():.4f}")
        cells.append(f"ECE {expected_calibration_error(test[keep], y[keep]):.3f}")
        f13 = remap_probs(get("fer2013_private"), FERPLUS8, FER2013_7)
        cells.append(f"FER2013 {(f13.argmax(1) == crops['fer2013_private'].labels).mean():.3f}")
        print(f"| {label} | " + " | ".join(cells) + " |")

    for m in MODELS:
        row(m, lambda n, m=m: probs[m][n])

    def geometric(weights: dict, n: str) -> np.ndarray:
        z = sum(w * np.log(probs[m][n] + 1e-6) for m, w in weights.items())
        return apply(np.exp(z - z.max(1, keepdims=True)))

    for other in ("mobilefacenet-rafdb", "emotrace-fer2013"):
        for w in (0.3, 0.5, 0.7):
            row(f"fusion {w} ferplus8 + {1 - w:.1f} {other}",
                lambda n, w=w, o=other: geometric({"emotrace-ferplus8": w, o: 1 - w}, n))
    valid, y = probs["emotrace-ferplus8"]["ferplus_valid"], crops["ferplus_valid"].labels
    t = fit_temperature(valid, y)
    row(f"ferplus8, temperature {t:.3f} (valid NLL)",
        lambda n: apply(probs["emotrace-ferplus8"][n], t))
    prior = ferplus("train").soft.mean(0)
    tau, _ = fit_prior_tau(apply(valid, t), y, FERPLUS8, prior)
    bias = prior_bias(prior, tau)
    t2 = fit_temperature(valid, y, bias)
    row(f"ferplus8, class bias tau {tau} (valid macro-F1) + temperature {t2:.3f}",
        lambda n: apply(probs["emotrace-ferplus8"][n], t2, bias))


def crop_margins(photos: dict, faces: dict, margins: list[float]) -> None:
    """The default model on the real-face sets with other framings of YuNet's box (a square
    on the box grown by `margin` on each side) and with 5-point alignment."""
    from emotrace.faces.align import align_faces, crop_boxes

    clf = ExpressionClassifier("emotrace-ferplus8")
    framings = {f"box margin {m:+.2f}": (lambda img, det, m=m: crop_boxes(img, det.boxes,
                                                                          clf.size, m))
                for m in margins}
    framings["ArcFace alignment"] = lambda img, det: align_faces(img, det.landmarks, clf.size)
    for label, crop in framings.items():
        clf.crops = crop  # type: ignore[method-assign]  # the one thing that changes
        cells = [f"{n} {rf.score(rf.photo_probs(clf, p, faces[n]), clf.labels, p)['accuracy']:.3f}"
                 for n, p in photos.items()]
        print(f"| emotrace-ferplus8, {label} | " + " | ".join(cells) + " |", flush=True)


def rf_sets() -> tuple[str, ...]:
    return ("sfew_train", "taiwanese")


if __name__ == "__main__":
    main()
