"""Expression classification with ONNX Runtime: faces batched, probabilities per class."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from emotrace import models
from emotrace.faces.align import align_faces, crop_boxes
from emotrace.errors import ModelError
from emotrace.results import Detections, Emotions


def softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def session(path: Path, threads: int = 0) -> ort.InferenceSession:
    """A CPU ONNX Runtime session with warnings silenced (threads 0 = ORT's default)."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class ExpressionClassifier:
    """Classify face crops with a registry model.

    Args:
        name: a registry model with task "expression".
        model_path: explicit file for it (checked against the card's SHA256).
        embeddings: also return the model's embedding output where it has one.
        threads: ONNX Runtime intra-op threads (0 = all cores).
    """

    def __init__(
        self,
        name: str = models.DEFAULT_CLASSIFIER,
        model_path: str | Path | None = None,
        embeddings: bool = False,
        threads: int = 0,
    ) -> None:
        if str(name).endswith(".onnx"):  # a file written by `emotrace train`
            card = models.card_from_onnx(name)
            model_path = name
        else:
            card = models.get_card(name)
        if card.task != "expression":
            raise ModelError(f"model {name!r} is a {card.task} model, not an expression classifier")
        if not card.runnable:
            raise ModelError(f"model {name!r} is kept for training only and cannot be run")
        self.card = card
        self.labels = card.labels
        self.size = card.input_size[0]
        path = model_path if card.source.startswith("local file") else models.resolve(name, model_path)
        self._sess = session(path, threads)
        self._outputs = [card.output_scores]
        self.has_va = card.output_va is not None
        if self.has_va:
            self._outputs.append(card.output_va)
        self.has_embeddings = bool(embeddings and card.output_embedding)
        if self.has_embeddings:
            self._outputs.append(card.output_embedding)

    def crops(self, image: np.ndarray, detections: Detections) -> np.ndarray:
        """The model's crop of each detected face of a BGR image: (N, S, S, 3) uint8."""
        if self.card.crop == "arcface":
            return align_faces(image, detections.landmarks, self.size)
        return crop_boxes(image, detections.boxes, self.size)

    def preprocess(self, faces: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 BGR crops -> the network's (N, C, S, S) float32 input."""
        if faces.shape[1:3] != (self.size, self.size):
            faces = np.stack([cv2.resize(f, (self.size, self.size)) for f in faces])
        if self.card.color in ("gray", "gray3"):
            x = np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in faces])[:, None]
            if self.card.color == "gray3":  # a net trained on grey faces with an RGB input
                x = np.repeat(x, 3, axis=1)
        elif self.card.color == "rgb":
            x = faces[..., ::-1].transpose(0, 3, 1, 2)
        else:
            x = faces.transpose(0, 3, 1, 2)
        x = x.astype(np.float32) * np.float32(1 / 255.0)
        return (x - np.float32(self.card.mean)) / np.float32(self.card.std)

    def __call__(self, faces: np.ndarray, batch_size: int = 32) -> Emotions:
        """Classify (N, S, S, 3) uint8 BGR crops."""
        if len(faces) == 0:
            return Emotions.empty(self.labels)
        step = batch_size if self.card.batchable else 1
        outs: list[list[np.ndarray]] = [[] for _ in self._outputs]
        for start in range(0, len(faces), step):
            x = self.preprocess(faces[start : start + step])
            for store, value in zip(outs, self._sess.run(self._outputs, {self.card.input_name: x})):
                store.append(value)
        s = np.concatenate(outs[0]).astype(np.float32)
        probs = softmax(s) if self.card.scores_are_logits else s / s.sum(axis=1, keepdims=True)
        va = np.concatenate(outs[1]).astype(np.float32) if self.has_va else None
        emb = np.concatenate(outs[-1]).astype(np.float32) if self.has_embeddings else None
        return Emotions(probs.astype(np.float32), self.labels, emb,
                        None if va is None else va[:, 0].copy(),
                        None if va is None else va[:, 1].copy())
