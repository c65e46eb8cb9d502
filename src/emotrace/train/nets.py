"""MobileFaceNet in PyTorch, loadable from the OpenCV Zoo fp32 ONNX weights, with heads.

Shapes: input (N, 3, S, S) RGB scaled to [-1, 1]; S = 112 reproduces the ONNX model exactly.
For another S (a multiple of 16) the global depthwise conv's 7x7 kernel is resized to S/16 and
rescaled so its response keeps the same magnitude: a starting point for fine-tuning, not an
exact copy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class ConvAct(nn.Sequential):
    """Conv2d (+ PReLU); BatchNorm is already folded into the conv in the source weights."""

    def __init__(self, cin: int, cout: int, k: int = 1, s: int = 1, groups: int = 1,
                 act: bool = True) -> None:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups)]
        if act:
            layers.append(nn.PReLU(cout))
        super().__init__(*layers)


class Bottleneck(nn.Module):
    """1x1 expand (PReLU) -> 3x3 depthwise (PReLU) -> 1x1 linear project (+ residual)."""

    def __init__(self, cin: int, hidden: int, cout: int, stride: int) -> None:
        super().__init__()
        self.residual = stride == 1 and cin == cout
        self.body = nn.Sequential(
            ConvAct(cin, hidden, 1),
            ConvAct(hidden, hidden, 3, stride, groups=hidden),
            ConvAct(hidden, cout, 1, act=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


def _stage(cin: int, hidden: int, cout: int, n_residual: int, res_hidden: int) -> list[nn.Module]:
    return [Bottleneck(cin, hidden, cout, 2), *[
        Bottleneck(cout, res_hidden, cout, 1) for _ in range(n_residual)
    ]]


class MobileFaceNet(nn.Module):
    """The OpenCV Zoo expression network's backbone: (N, 3, S, S) -> (N, 512) embedding."""

    def __init__(self, input_size: int = 112) -> None:
        super().__init__()
        if input_size % 16:
            raise ValueError(f"input_size must be a multiple of 16, got {input_size}")
        self.input_size = input_size
        k = input_size // 16
        self.features = nn.Sequential(
            ConvAct(3, 64, 3, 2),
            ConvAct(64, 64, 3, 1, groups=64),
            *_stage(64, 128, 64, 4, 128),
            *_stage(64, 256, 128, 6, 256),
            *_stage(128, 512, 128, 2, 256),
            ConvAct(128, 512, 1),
            nn.Conv2d(512, 512, k, groups=512),  # global depthwise conv (GDC)
            nn.Conv2d(512, 512, 1),
            nn.Flatten(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class EmotionNet(nn.Module):
    """Backbone + heads. Outputs a dict: `embedding` (N, 512), `logits` (N, K) when
    `n_classes`, `va` (N, 2) valence/arousal in [-1, 1] (tanh) when `va_head`."""

    def __init__(self, n_classes: int = 7, va_head: bool = False, input_size: int = 112,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if n_classes < 0:
            raise ValueError(f"n_classes must be >= 0, got {n_classes}")
        self.backbone = MobileFaceNet(input_size)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(512, n_classes) if n_classes else None
        self.va = nn.Linear(512, 2) if va_head else None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        emb = self.backbone(x)
        out = {"embedding": emb}
        h = self.dropout(emb)
        if self.classifier is not None:
            out["logits"] = self.classifier(h)
        if self.va is not None:
            out["va"] = torch.tanh(self.va(h))
        return out


def onnx_class_head(onnx_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The weight (K, 512) and bias (K,) of a model whose only Gemm is its class head (the
    OpenCV Zoo MobileFaceNet). An emotrace export has two (classes, valence/arousal): read it
    with `load_exported`, which finds them by name."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    init = {i.name: i for i in graph.initializer}
    gemms = [n for n in graph.node if n.op_type == "Gemm"]
    if len(gemms) != 1:
        raise ValueError(f"{onnx_path}: {len(gemms)} Gemm layers, so no one class head; "
                         "an emotrace export loads with load_exported")
    return (numpy_helper.to_array(init[gemms[0].input[1]]).copy(),
            numpy_helper.to_array(init[gemms[0].input[2]]).copy())


def onnx_metadata(onnx_path: str | Path) -> dict[str, str]:
    """The file's metadata; an export of `emotrace train` has emotrace_* keys."""
    import onnx

    return {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}


def load_onnx_weights(net: EmotionNet, onnx_path: str | Path, classifier: bool = True) -> None:
    """Copy the ONNX model's weights into `net`, in graph order (convs, PReLUs, then Gemm).

    `classifier=False` leaves the class head as initialised (a new label set).
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path))
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    convs = [m for m in net.backbone.modules() if isinstance(m, nn.Conv2d)]
    prelus = [m for m in net.backbone.modules() if isinstance(m, nn.PReLU)]
    nodes = {op: [n for n in model.graph.node if n.op_type == op] for op in ("Conv", "PRelu")}
    if len(nodes["Conv"]) != len(convs) or len(nodes["PRelu"]) != len(prelus):
        raise ValueError(f"{onnx_path}: graph does not match MobileFaceNet "
                         f"({len(nodes['Conv'])} convs, {len(nodes['PRelu'])} PReLUs)")
    with torch.no_grad():
        for node, conv in zip(nodes["Conv"], convs, strict=True):
            w = torch.from_numpy(init[node.input[1]].copy())
            if w.shape != conv.weight.shape:  # the GDC at another input size: resize the kernel
                k = conv.weight.shape[-1]
                w = F.interpolate(w, size=(k, k), mode="bilinear", align_corners=False)
                w = w * (init[node.input[1]].shape[-1] ** 2 / k**2)
            conv.weight.copy_(w)
            if conv.bias is None:
                raise ValueError(f"{onnx_path}: expected folded convolutions with a bias")
            conv.bias.copy_(torch.from_numpy(init[node.input[2]].copy()))
        for node, prelu in zip(nodes["PRelu"], prelus, strict=True):
            prelu.weight.copy_(torch.from_numpy(init[node.input[1]].reshape(-1).copy()))
        if classifier and net.classifier is not None:
            head_w, head_b = onnx_class_head(onnx_path)
            if head_w.shape != tuple(net.classifier.weight.shape):
                raise ValueError(f"class head is {tuple(net.classifier.weight.shape)}, "
                                 f"the ONNX one {head_w.shape}: pass classifier=False")
            net.classifier.weight.copy_(torch.from_numpy(head_w))
            net.classifier.bias.copy_(torch.from_numpy(head_b))


def load_exported(onnx_path: str | Path) -> tuple[EmotionNet, tuple[str, ...]]:
    """An EmotionNet rebuilt from an ONNX file written by `emotrace train` (`export.export_onnx`),
    e.g. the shipped emotrace-ferplus8, and its labels: the starting point for fine-tuning it
    further. Convs and PReLUs are copied in graph order, the heads by their names."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path))
    meta = {p.key: p.value for p in model.metadata_props}
    if "emotrace_labels" not in meta:
        raise ValueError(f"{onnx_path}: not written by `emotrace train` (no emotrace metadata)")
    labels = tuple(meta["emotrace_labels"].split(","))
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    has_classes = "net.classifier.weight" in init
    net = EmotionNet(len(labels) if has_classes else 0, meta.get("emotrace_has_va") == "True",
                     int(meta["emotrace_input_size"]))
    load_onnx_weights(net, onnx_path, classifier=False)
    with torch.no_grad():
        for name in ("classifier", "va"):
            layer = getattr(net, name)
            if layer is not None:
                layer.weight.copy_(torch.from_numpy(init[f"net.{name}.weight"].copy()))
                layer.bias.copy_(torch.from_numpy(init[f"net.{name}.bias"].copy()))
    return net, labels


def load_pretrained(onnx_path: str | Path, labels: tuple[str, ...]
                    ) -> tuple[EmotionNet, tuple[str, ...]]:
    """Any expression model the trainers start from, rebuilt in PyTorch with all its heads,
    and its labels: an emotrace export through `load_exported` (labels from its metadata);
    another (the OpenCV Zoo MobileFaceNet, 112 px, one class head) from its graph, with
    `labels` (its registry card's)."""
    if "emotrace_labels" in onnx_metadata(onnx_path):
        return load_exported(onnx_path)
    net = EmotionNet(len(labels), False, 112)
    load_onnx_weights(net, onnx_path)
    return net, labels
