"""Score an expression model on uncropped photos through the full pipeline.

A set of photos is scored as a user meets them: YuNet finds the faces at the still-image size,
the model's own crop policy cuts the largest face out, the model classifies it. A photo where
no face is found counts as wrong, and so does a class the set lacks (a model's "contempt" on a
7-class set). Detection runs once per set and is shared by every model scored on it.

A set is a folder with an `index.csv` (`file`, `label`, optionally `not_a_face` = 1 for rows to
leave out) or a folder of class folders (`happy/*.jpg`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from emotrace.errors import InputError
from emotrace.faces.classify import ExpressionClassifier
from emotrace.faces.detect import YuNetDetector
from emotrace.labels import canonical
from emotrace.media.images import IMAGE_SUFFIXES, as_bgr, read_image
from emotrace.models import output_stem
from emotrace.pipeline import IMAGE_DETECT_SIZE
from emotrace.results import Detections


@dataclass(frozen=True)
class PhotoSet:
    """Labelled photos: `files[i]` shows `labels[i]` (an emotrace canonical name)."""

    name: str
    files: tuple[Path, ...]
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.files) != len(self.labels):
            raise ValueError(f"{len(self.files)} files but {len(self.labels)} labels")

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.labels)))


def photo_set(root: str | Path, name: str | None = None) -> PhotoSet:
    """The photos of a folder with index.csv (file, label[, not_a_face]) or class folders."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "not a folder of photos")
    index = root / "index.csv"
    if index.is_file():
        table = pd.read_csv(index)
        missing = {"file", "label"} - set(table.columns)
        if missing:
            raise InputError(index, "needs the columns file and label (missing "
                             f"{', '.join(sorted(missing))})")
        if "not_a_face" in table.columns:
            table = table[table["not_a_face"].fillna(0).astype(int) == 0]
        files = [root / f for f in table["file"]]
        labels = [canonical(str(x)) for x in table["label"]]
    else:
        files, labels = [], []
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            for path in sorted(folder.iterdir()):
                if path.suffix.lower() in IMAGE_SUFFIXES:
                    files.append(path)
                    labels.append(canonical(folder.name))
    if not files:
        raise InputError(root, "no labelled photos (an index.csv with file,label or class "
                         "folders such as happy/, sad/)")
    return PhotoSet(name or root.name, tuple(files), tuple(labels))


@dataclass(frozen=True)
class FoundFaces:
    """The largest face found in each photo of a set; `found[i]` False: none was found."""

    found: np.ndarray  # (N,) bool
    boxes: np.ndarray  # (N, 4) float32, zeros where none was found
    landmarks: np.ndarray  # (N, 5, 2) float32
    scores: np.ndarray  # (N,) float32

    def detections(self, i: int) -> Detections:
        return Detections(self.boxes[i : i + 1], self.scores[i : i + 1],
                          self.landmarks[i : i + 1])


def find_faces(photos: PhotoSet, detector: YuNetDetector | None = None,
               detect_size: int | None = IMAGE_DETECT_SIZE) -> FoundFaces:
    """Detect faces in every photo once; keep the largest face of each."""
    detector = detector or YuNetDetector()
    n = len(photos.files)
    found = np.zeros(n, bool)
    boxes = np.zeros((n, 4), np.float32)
    landmarks = np.zeros((n, 5, 2), np.float32)
    scores = np.zeros(n, np.float32)
    for i, path in enumerate(photos.files):
        det = detector(as_bgr(read_image(path)), detect_size)
        top = det.largest()
        if top is not None:
            found[i], boxes[i], landmarks[i] = True, det.boxes[top], det.landmarks[top]
            scores[i] = det.scores[top]
    return FoundFaces(found, boxes, landmarks, scores)


def photo_probs(clf: ExpressionClassifier, photos: PhotoSet, faces: FoundFaces,
                batch_size: int = 32) -> np.ndarray:
    """(N, len(clf.labels)) probabilities of each photo's face; NaN rows where none was found."""
    probs = np.full((len(photos.files), len(clf.labels)), np.nan, np.float32)
    idx = np.flatnonzero(faces.found)
    for start in range(0, len(idx), batch_size):
        chunk = idx[start : start + batch_size]
        crops = np.concatenate([clf.crops(as_bgr(read_image(photos.files[i])),
                                          faces.detections(i)) for i in chunk])
        probs[chunk] = clf(crops, batch_size).probs
    return probs


def score(probs: np.ndarray, model_labels: tuple[str, ...], photos: PhotoSet) -> dict:
    """Accuracy, per-class recall and the share of photos called neutral.

    A photo without a face (a NaN row) is wrong; so is a predicted class the set lacks.
    """
    names = [canonical(x) for x in model_labels]
    found = ~np.isnan(probs).any(axis=1)
    pred = np.array([names[j] if ok else "" for j, ok in
                     zip(np.nan_to_num(probs, nan=-1).argmax(axis=1), found, strict=True)])
    truth = np.array(photos.labels)
    correct = pred == truth
    recall = {c: float(correct[truth == c].mean()) for c in photos.classes}
    return {"set": photos.name, "photos": len(truth), "faces_found": int(found.sum()),
            "accuracy": float(correct.mean()), "mean_recall": float(np.mean(list(recall.values()))),
            "called_neutral": float((pred == "neutral").mean()), "recall": recall,
            "correct": correct}


def looks_uncropped(root: str | Path, sample: int = 20, side: int = 96) -> bool:
    """True when a labelled folder holds photos to detect faces in rather than face crops:
    it has an index.csv of file,label, or its images' median shorter side exceeds `side`
    pixels (FER-style crops are 48 px)."""
    import cv2

    root = Path(root)
    if (root / "index.csv").is_file():
        return True
    sides = []
    for path in sorted(root.rglob("*"))[: sample * 10]:
        if path.suffix.lower() in IMAGE_SUFFIXES:
            header = cv2.imread(str(path), cv2.IMREAD_REDUCED_GRAYSCALE_8)
            if header is not None:
                sides.append(min(header.shape) * 8)
        if len(sides) >= sample:
            break
    return bool(sides) and float(np.median(sides)) > side


def evaluate_photos(model: str, root: str | Path, outdir: str | Path | None = None,
                    against: str | None = None) -> dict:
    """`emotrace eval MODEL --data DIR --detect`: the full pipeline on a folder of photos,
    with `against`, an exact McNemar test against a second model on the same photos."""
    from emotrace.evaluation.metrics import mcnemar
    from emotrace.outputs.files import write_csv, write_json

    clf = ExpressionClassifier(model)
    other = ExpressionClassifier(against) if against is not None else None
    photos = photo_set(root)
    faces = find_faces(photos)
    probs = photo_probs(clf, photos, faces)
    report = score(probs, clf.labels, photos)
    correct = report.pop("correct")
    report.update(model=model, data=str(root))
    if other is not None:
        other_report = score(photo_probs(other, photos, faces), other.labels, photos)
        report["paired"] = {**mcnemar(correct, other_report["correct"]), "against": against,
                            "accuracy_b": other_report["accuracy"]}
    if outdir is not None:
        outdir = Path(outdir)
        stem = f"{output_stem(model)}_{Path(root).name}"
        write_json(report, outdir / f"{stem}.json")
        names = [canonical(x) for x in clf.labels]
        top = np.nan_to_num(probs, nan=-1).argmax(1)
        table = pd.DataFrame({"file": [str(f) for f in photos.files], "label": photos.labels,
                              "predicted": [names[j] if ok else "" for j, ok in
                                            zip(top, faces.found, strict=True)],
                              "face_found": faces.found, "correct": correct})
        write_csv(table, outdir / f"{stem}.csv")
    return report


def format_photo_report(r: dict) -> str:
    lines = [f"{r['model']} on {r['data']} ({r['photos']} photos, faces found in "
             f"{r['faces_found']}; full pipeline: detection, crop, classification)",
             f"accuracy     {r['accuracy']:.4f}",
             f"mean recall  {r['mean_recall']:.4f}",
             f"called neutral {r['called_neutral']:.3f}",
             "recall       " + ", ".join(f"{k} {v:.2f}" for k, v in r["recall"].items())]
    if paired := r.get("paired"):
        lines.append(f"against      {paired['against']}: accuracy {paired['accuracy_b']:.4f}; "
                     f"McNemar only {r['model']} right {paired['a_only']}, only "
                     f"{paired['against']} right {paired['b_only']}, exact p = "
                     f"{paired['p_value']:.2g}")
    return "\n".join(lines)


def clip_probs(clf: ExpressionClassifier, path: Path, detector: YuNetDetector,
               fps: float = 5.0) -> np.ndarray:
    """A labelled clip's probabilities: the mean over frames sampled at `fps` of its largest
    face's; a NaN row when no frame has a face."""
    from emotrace.media.decode import FrameReader
    from emotrace.pipeline import VIDEO_DETECT_SIZE

    rows = []
    for frame in FrameReader(path, fps=fps):
        det = detector(frame.image, VIDEO_DETECT_SIZE)
        top = det.largest()
        if top is not None:
            rows.append(clf(clf.crops(frame.image, det.take(np.array([top])))).probs[0])
    return np.mean(rows, axis=0) if rows else np.full(len(clf.labels), np.nan, np.float32)
