"""Face embeddings for inference (ONNX Runtime, no torch): a backbone plus an optional head.

A *frame embedding* is a registry expression model's embedding output (the backbone), passed
through a projection head trained by `emotrace train embedding` (an ONNX file whose metadata
names its backbone), and L2-normalised. A *clip embedding* (`pool`) is one vector for the
frames of a face over a window: by default the renormalised mean of their frame embeddings; with
a clip pooler from `emotrace train clip` (`clip.onnx`: attention, GRU or TCN over the backbone
embeddings) the pooler's output.

    >>> embedder = FaceEmbedder("runs/supcon/head.onnx")   # or a registry name: no head
    >>> vectors = embedder(face_crops)                      # (N, D), unit length
    >>> clip = FaceEmbedder("runs/clip_tcn/clip.onnx").pool(backbone_features)  # (D,)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from emotrace import models
from emotrace.errors import ModelError
from emotrace.faces.classify import ExpressionClassifier

if TYPE_CHECKING:
    import onnxruntime as ort


class FaceEmbedder:
    """`spec`: a registry expression model with an embedding output, an ONNX model written by
    `emotrace train` (classifier or fine-tuned embedding), a head .onnx written by `emotrace
    train embedding`, or a clip pooler .onnx written by `emotrace train clip` (for the last two
    the backbone is read from the file). Each file is loaded once, through `models.load`."""

    def __init__(self, spec: str | Path = "emotrace-ferplus8", threads: int = 0) -> None:
        self.spec = str(spec)
        self.head: ort.InferenceSession | None = None
        self.clip: ort.InferenceSession | None = None
        self.clip_window: tuple[int, float] | None = None  # (frames, fps) a pooler was trained on
        loaded = models.load(self.spec, threads=threads)
        card = loaded.card
        if card.task in ("embedding-head", "clip-pooler"):
            if card.backbone is None or loaded.session is None:
                raise ModelError(f"{loaded.path}: a {card.task} needs a backbone and a session")
            backbone: str | models.LoadedModel = card.backbone
            if card.task == "embedding-head":
                self.head = loaded.session
                self._head_input = self.head.get_inputs()[0].name
            else:
                self.clip = loaded.session
                self.clip_window = (int(card.extra["window_frames"]), float(card.extra["fps"]))
            self.backbone_name = card.backbone
        else:
            backbone, self.backbone_name = loaded, self.spec
        self.backbone = ExpressionClassifier(backbone, None, True, threads)
        if not self.backbone.has_embeddings:
            raise ModelError(f"model {self.backbone_name!r} has no embedding output")
        self.size = self.backbone.size
        self.labels = self.backbone.labels

    @property
    def name(self) -> str:
        return self.spec

    def from_backbone(self, features: np.ndarray) -> np.ndarray:
        """Backbone embeddings (N, D0) -> final unit-length embeddings (N, D); with a clip
        pooler each face is a one-frame clip."""
        x = features.astype(np.float32)
        if self.clip is not None:
            return unit_rows(self.clip.run(None, {"frames": x[:, None, :]})[0])
        if self.head is not None:
            x = self.head.run(None, {self._head_input: x})[0]
        return unit_rows(x)

    def pool(self, features: np.ndarray) -> np.ndarray:
        """Backbone embeddings of one face's frames over a window (T, D0), in time order ->
        one unit-length clip embedding (D,)."""
        if not len(features):
            raise ValueError("a clip needs at least one frame")
        if self.clip is not None:
            pooled = self.clip.run(None, {"frames": features.astype(np.float32)[None]})[0]
            return unit_rows(pooled)[0]
        return unit_rows(self.from_backbone(features).mean(0, keepdims=True))[0]

    def crops(self, image: np.ndarray, detections) -> np.ndarray:
        return self.backbone.crops(image, detections)

    def features(self, faces: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """The backbone's embeddings (N, F) of face crops, before any head (what `pool` takes)."""
        features = self.backbone(faces, batch_size).embeddings
        if features is None:  # cannot happen: __init__ checked the backbone has embeddings
            raise ModelError(f"model {self.backbone_name!r} returned no embeddings")
        return features

    def __call__(self, faces: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Face crops (N, S, S, 3) BGR uint8, as `crops` makes them -> (N, D)."""
        if not len(faces):
            return np.zeros((0, 0), np.float32)
        return self.from_backbone(self.features(faces, batch_size))


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Each row of (N, D) scaled to length 1 (a zero row stays zero)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
