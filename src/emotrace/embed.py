"""Face embeddings for inference (ONNX Runtime, no torch): a backbone plus an optional head.

A *frame embedding* is a registry expression model's embedding output (the backbone), passed
through a projection head trained by `emotrace train embedding` (an ONNX file whose metadata
names its backbone), and L2-normalised.

    >>> embedder = FaceEmbedder("runs/supcon/head.onnx")   # or a registry name: no head
    >>> vectors = embedder(face_crops)                      # (N, D), unit length
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emotrace.classify import ExpressionClassifier, session
from emotrace.errors import ModelError


def head_metadata(path: str | Path) -> dict[str, str]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(sess.get_modelmeta().custom_metadata_map)


class FaceEmbedder:
    """`spec`: a registry expression model with an embedding output, or a head .onnx file
    written by `emotrace train embedding` (its backbone is read from the file)."""

    def __init__(self, spec: str = "emotrace-ferplus8", threads: int = 0) -> None:
        self.spec = str(spec)
        self.head = None
        backbone = self.spec
        if self.spec.endswith(".onnx"):
            meta = head_metadata(self.spec)
            if meta.get("emotrace_kind") == "embedding-head":
                backbone = meta["emotrace_backbone"]
                self.head = session(Path(self.spec), threads)
                self._head_input = self.head.get_inputs()[0].name
        self.backbone = ExpressionClassifier(backbone, None, True, threads)
        if not self.backbone.has_embeddings:
            raise ModelError(f"model {backbone!r} has no embedding output")
        self.size = self.backbone.size
        self.labels = self.backbone.labels

    @property
    def name(self) -> str:
        return self.spec

    def from_backbone(self, features: np.ndarray) -> np.ndarray:
        """Backbone embeddings (N, D0) -> final unit-length embeddings (N, D)."""
        x = features.astype(np.float32)
        if self.head is not None:
            x = self.head.run(None, {self._head_input: x})[0]
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    def crops(self, image: np.ndarray, detections) -> np.ndarray:
        return self.backbone.crops(image, detections)

    def __call__(self, faces: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Face crops (N, S, S, 3) BGR uint8, as `crops` makes them -> (N, D)."""
        if not len(faces):
            return np.zeros((0, 0), np.float32)
        return self.from_backbone(self.backbone(faces, batch_size).embeddings)
