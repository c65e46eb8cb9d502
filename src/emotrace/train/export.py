"""Export a trained EmotionNet to ONNX: probabilities, valence/arousal and the embedding.

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


class _Exported(nn.Module):
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
    path = Path(path)
    net = net.eval()
    size = net.backbone.input_size
    dummy = torch.zeros(2, 3, size, size)
    torch.onnx.export(
        _Exported(net, labels).eval(), (dummy,), str(path), input_names=["data"],
        output_names=["probs", "va", "embedding"],
        dynamic_axes={"data": {0: "N"}, "probs": {0: "N"}, "va": {0: "N"}, "embedding": {0: "N"}},
        opset_version=17, dynamo=False,
    )
    # What emotrace needs to run the file without a registry card (see models.card_from_metadata).
    import onnx

    model = onnx.load(str(path))
    meta = {"emotrace_labels": ",".join(labels), "emotrace_input_size": str(size),
            "emotrace_color": color, "emotrace_mean": "0.5", "emotrace_std": "0.5",
            "emotrace_crop": crop, "emotrace_has_va": str(net.va is not None)}
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path
