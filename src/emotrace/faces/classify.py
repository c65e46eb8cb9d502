"""Expression classification with ONNX Runtime: faces batched, probabilities per class."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from emotrace import models
from emotrace.errors import ModelError
from emotrace.faces.align import align_faces, crop_boxes
from emotrace.results import Detections, Emotions


def softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def calibrated(scores: np.ndarray, card: models.ModelCard) -> np.ndarray:
    """(N, K) probabilities from a model's raw scores, with the card's temperature and class
    bias: softmax(logits / T + b); for a graph that outputs probabilities, log p stands in for
    the logits (equal up to a per-row constant, which softmax ignores)."""
    if card.scores_are_logits:
        z = scores
    else:
        if card.temperature == 1.0 and not card.class_bias:
            return scores / scores.sum(axis=1, keepdims=True)
        z = np.log(np.maximum(scores, np.float32(1e-12)))
    z = z / np.float32(card.temperature)
    if card.class_bias:
        z = z + np.asarray(card.class_bias, np.float32)
    return softmax(z)


class ExpressionClassifier:
    """Classify face crops with an expression model.

    Args:
        name: a registered model with task "expression", an .onnx file written by `emotrace
            train`, or a model already loaded with `models.load` (its session is reused).
        model_path: explicit file for a registered name (checked against the card's SHA256).
        embeddings: also return the model's embedding output where it has one.
        threads: ONNX Runtime intra-op threads (0 = all cores).
    """

    def __init__(
        self,
        name: str | Path | models.LoadedModel = models.DEFAULT_CLASSIFIER,
        model_path: str | Path | None = None,
        embeddings: bool = False,
        threads: int = 0,
    ) -> None:
        if isinstance(name, models.LoadedModel):
            loaded = name
            models.check_task(loaded.card, "expression")
        else:
            loaded = models.load(name, model_path, "expression", threads)
        card = loaded.card
        if loaded.session is None:
            raise ModelError(f"model {card.name!r} has no ONNX Runtime session to run")
        self.card = card
        self.path = loaded.path
        self.labels = card.labels
        self.size = card.input_size[0]
        self._sess = loaded.session
        self._outputs = [card.output_scores]
        self.has_va = card.output_va is not None
        if card.output_va is not None:
            self._outputs.append(card.output_va)
        self.has_embeddings = bool(embeddings and card.output_embedding)
        if embeddings and card.output_embedding:
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
            values = self._sess.run(self._outputs, {self.card.input_name: x})
            for store, value in zip(outs, values, strict=True):
                store.append(value)
        probs = calibrated(np.concatenate(outs[0]).astype(np.float32), self.card)
        va = np.concatenate(outs[1]).astype(np.float32) if self.has_va else None
        emb = np.concatenate(outs[-1]).astype(np.float32) if self.has_embeddings else None
        return Emotions(probs.astype(np.float32), self.labels, emb,
                        None if va is None else va[:, 0].copy(),
                        None if va is None else va[:, 1].copy())
