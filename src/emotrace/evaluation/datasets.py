"""Face expression data sets as in-memory arrays: FER+, FER2013 and general loaders (no torch).

Every loader returns a `FaceSet`: grey or colour face crops (N, H, W[, 3]) uint8, integer labels
(-1 = no label), optional soft targets (N, K) (vote distributions) and optional valence/arousal
(N, 2), with the label names in order. Faces are kept as given (FER crops are 48x48 grey); the
transforms resize them to the network's input.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from emotrace.errors import InputError
from emotrace.labels import FER2013_7, FERPLUS8, SUBMISSION9, canonical


@dataclass
class FaceSet:
    images: np.ndarray  # (N, H, W) or (N, H, W, 3) uint8 (RGB)
    labels: np.ndarray  # (N,) int64, -1 where unlabelled
    names: tuple[str, ...]
    soft: np.ndarray | None = None  # (N, K) float32, rows sum to 1
    va: np.ndarray | None = None  # (N, 2) float32 valence, arousal in [-1, 1]

    def __post_init__(self) -> None:
        n = len(self.images)
        if len(self.labels) != n:
            raise ValueError(f"{n} images but {len(self.labels)} labels")
        if self.soft is not None and self.soft.shape != (n, len(self.names)):
            raise ValueError(f"soft targets must be ({n}, {len(self.names)}), "
                             f"got {self.soft.shape}")
        if self.va is not None and self.va.shape != (n, 2):
            raise ValueError(f"va must be ({n}, 2), got {self.va.shape}")

    def __len__(self) -> int:
        return len(self.images)

    def take(self, idx: np.ndarray) -> FaceSet:
        return FaceSet(self.images[idx], self.labels[idx], self.names,
                       None if self.soft is None else self.soft[idx],
                       None if self.va is None else self.va[idx])


def shared_dir() -> Path:
    """`EMOTRACE_SHARED`, or ../shared beside the repository."""
    env = os.environ.get("EMOTRACE_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[3].parent / "shared"


def ferplus_files(root: Path | None = None) -> list[Path]:
    """The files `ferplus` reads (pixels and index), to key caches of what it gives."""
    root = root or shared_dir() / "data" / "ferplus"
    return [root / "ferplus_48x48.npz", root / "index.csv"]


def ferplus(split: str, label_set: str = "ferplus8", root: Path | None = None) -> FaceSet:
    """FER+ (train / valid / test) with majority labels and the annotators' vote distribution.

    label_set "ferplus8": the 8 emotions; images whose emotion votes tie, or where 'unknown' or
    'not a face' got at least as many votes as the top emotion, get label -1 (the majority
    protocol of the FER+ paper leaves them out of accuracy); 'not a face' images are dropped.
    label_set "submission9": the 9-class set, FER+'s 'unknown' votes as 'uncertain'.
    """
    root = root or shared_dir() / "data" / "ferplus"
    data = np.load(root / "ferplus_48x48.npz")
    if split not in ("train", "valid", "test"):
        raise ValueError(f"split must be train, valid or test, got {split!r}")
    keep = data["split"] == split
    votes = data["votes"][keep].astype(np.float32)
    images = data["images"][keep]
    majority = pd.read_csv(root / "index.csv", usecols=["majority8"])["majority8"].to_numpy()[keep]
    if label_set == "ferplus8":
        names, counts = FERPLUS8, votes[:, :8]
        labels = majority.astype(np.int64)
    elif label_set == "submission9":
        names = SUBMISSION9
        ferplus9 = (*FERPLUS8, "uncertain")  # votes columns 0..8
        counts = votes[:, [ferplus9.index(n) for n in SUBMISSION9]]
        top = counts.argmax(1)
        tied = (counts == counts.max(1, keepdims=True)).sum(1) > 1
        labels = np.where(tied, -1, top).astype(np.int64)
    else:
        raise ValueError(f"label_set must be ferplus8 or submission9, got {label_set!r}")
    usable = counts.sum(1) > 0  # drop images with no emotion vote (not a face)
    soft = counts[usable] / counts[usable].sum(1, keepdims=True)
    return FaceSet(images[usable], labels[usable], names, soft.astype(np.float32))


def fer2013(usage: str = "PrivateTest", root: Path | None = None) -> FaceSet:
    """The original FER2013 7-class labels on the FER+ pixels (usage: Training, PublicTest,
    PrivateTest). The 26 images without pixels here are left out."""
    root = root or shared_dir() / "data"
    table = pd.read_csv(root / "fer2013" / "labels.csv")
    table = table[(table["usage"] == usage) & (table["ferplus_row"] >= 0)]
    if table.empty:
        raise ValueError(f"no FER2013 rows with usage {usage!r}")
    images = np.load(root / "ferplus" / "ferplus_48x48.npz")["images"]
    return FaceSet(images[table["ferplus_row"].to_numpy()], table["label"].to_numpy(np.int64),
                   FER2013_7)


def _read(path: Path, size: int | None) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(path, "not a readable image")
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA) if size else image


def _stack(paths: list[Path], size: int) -> np.ndarray:
    if not paths:
        return np.zeros((0, size, size, 3), np.uint8)
    return np.stack([_read(p, size) for p in paths])


def image_folder(root: str | Path, size: int = 112) -> FaceSet:
    """A folder with one sub-folder per class (`root/happy/x.jpg`); names are canonicalised."""
    root = Path(root)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise InputError(root, "has no class sub-folders")
    names = tuple(canonical(c) for c in classes)
    paths, labels = [], []
    for i, c in enumerate(classes):
        for p in sorted((root / c).iterdir()):
            if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp", ".webp"}:
                paths.append(p)
                labels.append(i)
    return FaceSet(_stack(paths, size), np.array(labels, np.int64), names)


def _table_set(table: pd.DataFrame, base: Path, path_col: str, label_col: str, size: int,
               names: tuple[str, ...] | None, va_cols: tuple[str, str] | None) -> FaceSet:
    raw = table[label_col]
    if names is None:
        if pd.api.types.is_numeric_dtype(raw):
            raise ValueError(f"numeric labels in column {label_col!r} need `names`")
        names = tuple(sorted({canonical(v) for v in raw}))
    if pd.api.types.is_numeric_dtype(raw):
        labels = raw.to_numpy(np.int64)
    else:
        labels = np.array([names.index(canonical(v)) for v in raw], np.int64)
    va = table[list(va_cols)].to_numpy(np.float32) if va_cols else None
    paths = [base / p for p in table[path_col]]
    return FaceSet(_stack(paths, size), labels, names, va=va)


def label_csv(csv: str | Path, size: int = 112, names: tuple[str, ...] | None = None) -> FaceSet:
    """A CSV of `path,label` (paths relative to the CSV's folder; labels names or ids)."""
    csv = Path(csv)
    table = pd.read_csv(csv)
    missing = {"path", "label"} - set(table.columns)
    if missing:
        raise InputError(csv, f"needs columns path,label (missing {', '.join(sorted(missing))})")
    return _table_set(table, csv.parent, "path", "label", size, names, None)


#: AffectNet's expression ids (0..7; 8-10 = none / uncertain / no face).
AFFECTNET8 = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")


def affectnet_table(csv: str | Path, size: int = 112,
                    image_root: str | Path | None = None) -> FaceSet:
    """An AffectNet-style table: `subDirectory_filePath` (or `path`), `expression` (0..7,
    AffectNet order; rows with 8..10 are dropped), `valence`, `arousal` in [-1, 1]."""
    csv = Path(csv)
    table = pd.read_csv(csv)
    path_col = "subDirectory_filePath" if "subDirectory_filePath" in table else "path"
    missing = {path_col, "expression", "valence", "arousal"} - set(table.columns)
    if missing:
        raise InputError(csv, f"missing columns {', '.join(sorted(missing))}")
    table = table[table["expression"].between(0, 7)]
    base = Path(image_root) if image_root else csv.parent
    return _table_set(table, base, path_col, "expression", size, AFFECTNET8, ("valence", "arousal"))


def load_named(name: str, label_set: str = "ferplus8") -> FaceSet:
    """A data set by name: ferplus-{train,valid,test}, fer2013-{train,public,private}, a class
    folder, a `path,label` CSV or an AffectNet-style CSV (has `expression` and `valence`)."""
    if name.startswith("ferplus-"):
        return ferplus(name.split("-", 1)[1], label_set)
    usage = {"fer2013-train": "Training", "fer2013-public": "PublicTest",
             "fer2013-private": "PrivateTest"}
    if name in usage:
        return fer2013(usage[name])
    path = Path(name)
    if path.is_dir():
        return image_folder(path)
    if path.suffix.lower() == ".csv" and path.is_file():
        columns = pd.read_csv(path, nrows=0).columns
        return affectnet_table(path) if "expression" in columns else label_csv(path)
    raise InputError(name, "not a known data set name, class folder or CSV "
                     "(known: ferplus-train/valid/test, fer2013-train/public/private)")
