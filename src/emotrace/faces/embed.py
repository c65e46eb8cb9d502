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

import numpy as np

from emotrace.faces.classify import ExpressionClassifier, session
from emotrace.errors import ModelError


def head_metadata(path: str | Path) -> dict[str, str]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(sess.get_modelmeta().custom_metadata_map)


class FaceEmbedder:
    """`spec`: a registry expression model with an embedding output, an ONNX model written by
    `emotrace train` (classifier or fine-tuned embedding), a head .onnx written by `emotrace
    train embedding`, or a clip pooler .onnx written by `emotrace train clip` (for the last two
    the backbone is read from the file)."""

    def __init__(self, spec: str = "emotrace-ferplus8", threads: int = 0) -> None:
        self.spec = str(spec)
        self.head = self.clip = None
        self.clip_window: tuple[int, float] | None = None  # (frames, fps) a pooler was trained on
        backbone = self.spec
        if self.spec.endswith(".onnx"):
            meta = head_metadata(self.spec)
            if meta.get("emotrace_kind") == "embedding-head":
                backbone = meta["emotrace_backbone"]
                self.head = session(Path(self.spec), threads)
                self._head_input = self.head.get_inputs()[0].name
            elif meta.get("emotrace_kind") == "clip-pooler":
                backbone = meta["emotrace_backbone"]
                self.clip = session(Path(self.spec), threads)
                self.clip_window = (int(meta["emotrace_window_frames"]), float(meta["emotrace_fps"]))
        self.backbone_name = backbone
        self.backbone = ExpressionClassifier(backbone, None, True, threads)
        if not self.backbone.has_embeddings:
            raise ModelError(f"model {backbone!r} has no embedding output")
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
            return _unit(self.clip.run(None, {"frames": x[:, None, :]})[0])
        if self.head is not None:
            x = self.head.run(None, {self._head_input: x})[0]
        return _unit(x)

    def pool(self, features: np.ndarray) -> np.ndarray:
        """Backbone embeddings of one face's frames over a window (T, D0), in time order ->
        one unit-length clip embedding (D,)."""
        if not len(features):
            raise ValueError("a clip needs at least one frame")
        if self.clip is not None:
            return _unit(self.clip.run(None, {"frames": features.astype(np.float32)[None]})[0])[0]
        return _unit(self.from_backbone(features).mean(0, keepdims=True))[0]

    def crops(self, image: np.ndarray, detections) -> np.ndarray:
        return self.backbone.crops(image, detections)

    def __call__(self, faces: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Face crops (N, S, S, 3) BGR uint8, as `crops` makes them -> (N, D)."""
        if not len(faces):
            return np.zeros((0, 0), np.float32)
        return self.from_backbone(self.backbone(faces, batch_size).embeddings)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
