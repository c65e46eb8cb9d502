"""Export a trained EmotionNet to ONNX: probabilities, valence/arousal and the embedding
(and an embedding head: `export_head`).

Input `data` (N, 3, S, S): RGB face scaled to [-1, 1], as the OpenCV Zoo model. Outputs
`probs` (N, K) (softmax applied), `va` (N, 2) valence/arousal (zeros when the net has no VA
head), `embedding` (N, 512).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from emotrace.labels import va_points
from emotrace.train.nets import EmotionNet
from emotrace.train.run import write_onnx


class _Exported(nn.Module):
    points: torch.Tensor

    def __init__(self, net: EmotionNet, labels: tuple[str, ...]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("points", torch.from_numpy(va_points(labels)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.net(x)
        emb = out["embedding"]
        if "logits" in out:
            probs = F.softmax(out["logits"], dim=1)
        else:  # VA-only: the nearer an emotion's point, the likelier the emotion
            d2 = ((out["va"][:, None, :] - self.points[None]) ** 2).sum(-1)
            probs = F.softmax(-d2 / 0.05, dim=1)
        va = out["va"] if "va" in out else torch.zeros(x.shape[0], 2)
        return probs, va, emb


def export_onnx(net: EmotionNet, labels: tuple[str, ...], path: str | Path, crop: str = "box",
                color: str = "gray3") -> Path:
    """Write `net` as ONNX with its labels and preprocessing in the file's metadata.

    crop: how emotrace should crop a detected face for it: "box" (a loose square box crop, like
    FER's faces) or "arcface" (5-point alignment). color: "gray3" (grey copied to 3 channels,
    for nets trained on grey FER faces) or "rgb".
    """
    size = net.backbone.input_size
    meta = {"emotrace_labels": ",".join(labels), "emotrace_input_size": str(size),
            "emotrace_color": color, "emotrace_mean": "0.5", "emotrace_std": "0.5",
            "emotrace_crop": crop, "emotrace_has_va": str(net.va is not None)}
    # What emotrace needs to run the file without a registry card (see models.card_from_metadata).
    return write_onnx(_Exported(net, labels), (torch.zeros(2, 3, size, size),), path, ["data"],
                      ["probs", "va", "embedding"],
                      {name: {0: "N"} for name in ("data", "probs", "va", "embedding")}, meta)


def export_head(head: nn.Module, in_dim: int, backbone: str, path: Path) -> Path:
    """ONNX file of an embedding head, (N, in_dim) backbone features -> (N, D); its metadata
    tells `FaceEmbedder` which backbone feeds it."""
    return write_onnx(head, (torch.zeros(2, in_dim),), path, ["features"], ["embedding"],
                      {"features": {0: "N"}, "embedding": {0: "N"}},
                      {"emotrace_kind": "embedding-head", "emotrace_backbone": backbone})
