"""Teachers for the classifier: soft targets that keep what real-face models know.

FER+'s votes teach the student its annotators' taste (a subtle face is "neutral") on 48x48 grey
crops; the teachers (the RAF-DB MobileFaceNet it starts from, emotrace-fer2013) have seen
other faces and labels. Two uses, both as soft targets, so the trainer's loss is unchanged:

- FER+ faces: the target becomes (1 - weight) x votes + weight x teachers (learning without
  forgetting: the student is pulled towards what its base still says about these faces);
- faces cut from unlabelled videos (real webcam-like frames): the teachers' probabilities,
  each teacher seeing the crop it was trained on (aligned colour for RAF-DB, a box for the FER
  models), the student seeing FER's framing at FER's 48 px, in grey.

Teacher outputs are computed once with ONNX Runtime and cached as .npz (`train/cache.py`: no
pickle, keyed by the teachers' SHA256 and the data's identity: the pixels' hash, the videos'
resolved paths, sizes and mtimes), so a changed file or model never reuses a stale cache.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from emotrace.evaluation.classifier import face_batches
from emotrace.evaluation.datasets import FaceSet
from emotrace.faces.align import crop_boxes
from emotrace.faces.classify import ExpressionClassifier
from emotrace.faces.detect import YuNetDetector
from emotrace.labels import canonical, remap_probs
from emotrace.media.decode import FrameReader
from emotrace.results import Detections
from emotrace.train import cache
from emotrace.train.cache import cache_key, load_npz, save_npz


class Teachers:
    """Registered expression models whose mean probabilities, moved to `labels`, are targets.

    A class a teacher lacks (contempt for the 7-class models) gets nothing from it.
    """

    def __init__(self, names: Sequence[str], labels: tuple[str, ...]) -> None:
        if not names:
            raise ValueError("distill.teachers is empty: name at least one expression model")
        self.models = [ExpressionClassifier(n) for n in names]
        self.labels = labels
        self.key = cache_key({"labels": list(labels)}, model_specs=list(names))

    def _mean(self, per_model: list[np.ndarray]) -> np.ndarray:
        probs = [remap_probs(p, tuple(canonical(x) for x in m.labels),
                             tuple(canonical(x) for x in self.labels))
                 for p, m in zip(per_model, self.models, strict=True)]
        return np.mean(probs, axis=0).astype(np.float32)

    def on_crops(self, faces: np.ndarray, batch_size: int = 128, progress: bool = True
                 ) -> np.ndarray:
        """(N, K) on already cropped faces (N, H, W) grey or (N, H, W, 3) RGB, each resized
        to the teacher's input."""
        out = []
        crops = FaceSet(faces, np.full(len(faces), -1, np.int64), self.labels)
        for m in self.models:
            parts = [m(bgr, batch_size).probs for bgr in tqdm(
                face_batches(crops, m.size, batch_size), desc=f"teacher {m.card.name}",
                total=-(-len(faces) // batch_size), unit="batch", disable=not progress)]
            out.append(np.concatenate(parts))
        return self._mean(out)

    def on_frame(self, frame: np.ndarray, det: Detections) -> np.ndarray:
        """(N, K) on the faces `det` of a BGR frame, each teacher with its own crop."""
        return self._mean([m(m.crops(frame, det)).probs for m in self.models])


def _cached(path: Path, compute: Callable[[], dict[str, np.ndarray]]
            ) -> dict[str, np.ndarray]:
    if path.is_file():
        return load_npz(path)
    arrays = compute()
    save_npz(path, **arrays)
    return arrays


def teacher_targets(faces: FaceSet, teachers: Teachers, cache_dir: Path,
                    progress: bool = True) -> np.ndarray:
    """(N, K) teachers' probabilities on FER-style crops, cached by pixels and teachers."""
    pixels = hashlib.sha256(faces.images.tobytes()).hexdigest()
    key = cache_key({"teachers": teachers.key, "pixels": pixels, "shape": faces.images.shape})
    path = cache_dir / f"teacher_faces_{key}.npz"
    return _cached(path, lambda: {"probs": teachers.on_crops(faces.images, progress=progress)}
                   )["probs"]


def video_files(folders: Sequence[str | Path]) -> list[Path]:
    """Every video under the folders (recursively), sorted; a missing folder is an error."""
    files: list[Path] = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise ValueError(f"distill.videos: {folder} is not a folder")
        files += cache.video_files(folder)
    return files


def video_faces(folders: Sequence[str | Path], teachers: Teachers, cache_dir: Path,
                fps: float = 5.0, size: int = 48, progress: bool = True) -> FaceSet:
    """The largest face of frames sampled at `fps` from every video under `folders`: grey
    box crops at `size` px (FER's framing) with the teachers' probabilities as soft targets."""
    files = video_files(folders)
    if not files:
        raise ValueError(f"distill.videos: no videos under {', '.join(map(str, folders))}")
    key = cache_key({"teachers": teachers.key, "fps": fps, "size": size,
                     "detector": cache.DETECTOR}, files)
    path = cache_dir / f"teacher_videos_{key}.npz"

    def compute() -> dict[str, np.ndarray]:
        detector = YuNetDetector()
        crops, probs = [], []
        for file in tqdm(files, desc="video faces", unit="video", disable=not progress):
            for frame in FrameReader(file, fps=fps):
                det = detector(frame.image, 320)
                top = det.largest()
                if top is None:
                    continue
                one = det.take(np.array([top]))
                crops.append(cv2.cvtColor(crop_boxes(frame.image, one.boxes, size)[0],
                                          cv2.COLOR_BGR2GRAY))
                probs.append(teachers.on_frame(frame.image, one)[0])
        return {"images": np.stack(crops), "probs": np.stack(probs)}

    arrays = _cached(path, compute)
    n = len(arrays["images"])
    return FaceSet(arrays["images"], np.full(n, -1, np.int64), teachers.labels, arrays["probs"])
