"""Batch transforms on tensors (kornia): faces (N, H, W[, 3]) uint8 -> (N, 3, S, S) in [-1, 1].

Augmentation runs on whole batches, which on a CPU is far cheaper than per-image pipelines,
and on the device the faces are on (a uint8 tensor on a GPU is augmented there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import kornia.augmentation as K
import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class AugmentConfig:
    enabled: bool = True
    crop_scale: tuple[float, float] = (0.8, 1.0)  # random resized crop, share of the area
    flip: bool = True
    rotation: float = 10.0  # degrees, +-
    jitter: float = 0.3  # brightness and contrast, +-
    blur_p: float = 0.2
    erase_p: float = 0.25
    noise_p: float = 0.0  # Gaussian sensor noise (std 0.04 of the range), as in dim webcam frames
    jpeg_p: float = 0.0  # JPEG compression (quality 30-90), as in streamed video

    def __post_init__(self) -> None:
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < lo <= hi <= 1, got {self.crop_scale}")
        for name in ("blur_p", "erase_p", "noise_p", "jpeg_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]")


def to_tensor(faces: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(N, H, W) grey or (N, H, W, 3) RGB uint8 -> (N, 3, H, W) float in [0, 1]; a tensor
    stays on its device (uint8 faces moved to a GPU are augmented there)."""
    if not isinstance(faces, torch.Tensor):
        faces = torch.from_numpy(np.ascontiguousarray(faces))
    x = faces.float().div(255.0)
    if x.ndim == 3:
        return x[:, None].expand(-1, 3, -1, -1).contiguous()
    return x.permute(0, 3, 1, 2).contiguous()


def jpeg(faces: np.ndarray | torch.Tensor, p: float, quality: tuple[int, int] = (30, 90)
         ) -> np.ndarray | torch.Tensor:
    """Each uint8 face, with probability p, through JPEG at a random quality (OpenCV's codec
    on the CPU: on 48 px faces microseconds each, where a differentiable JPEG costs a second a
    batch). A tensor comes back as a tensor on its device."""
    device = faces.device if isinstance(faces, torch.Tensor) else None
    array = faces.cpu().numpy() if isinstance(faces, torch.Tensor) else faces
    out = array.copy()
    for i in np.flatnonzero(np.random.random(len(array)) < p):
        q = int(np.random.randint(quality[0], quality[1] + 1))
        ok, buf = cv2.imencode(".jpg", array[i], [cv2.IMWRITE_JPEG_QUALITY, q])
        decoded = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if ok else None
        if decoded is not None:
            out[i] = decoded.reshape(array[i].shape)
    return torch.from_numpy(out).to(device) if device is not None else out


class EvalTransform:
    """Resize to S x S (bilinear) and scale to [-1, 1]: the ONNX model's preprocessing."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, faces: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = to_tensor(faces)
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return (x - 0.5) / 0.5


class TrainTransform(EvalTransform):
    """Random resized crop, flip, small rotation, brightness/contrast, blur, random erasing."""

    def __init__(self, size: int, cfg: AugmentConfig) -> None:
        super().__init__(size)
        self.cfg = cfg
        ops: list[Any] = [  # kornia augmentations
            K.RandomResizedCrop((size, size), scale=cfg.crop_scale, ratio=(0.9, 1.1)),
        ]
        if cfg.flip:
            ops.append(K.RandomHorizontalFlip())
        if cfg.rotation:
            ops.append(K.RandomRotation(cfg.rotation, p=0.5))
        if cfg.jitter:
            ops.append(K.ColorJitter(brightness=cfg.jitter, contrast=cfg.jitter, p=0.8))
        if cfg.blur_p:
            ops.append(K.RandomGaussianBlur((3, 3), (0.1, 1.2), p=cfg.blur_p))
        if cfg.noise_p:
            ops.append(K.RandomGaussianNoise(std=0.04, p=cfg.noise_p))
        self.ops = K.AugmentationSequential(*ops)
        self.erase = K.RandomErasing(scale=(0.02, 0.15), p=cfg.erase_p) if cfg.erase_p else None

    def __call__(self, faces: np.ndarray | torch.Tensor) -> torch.Tensor:
        if not self.cfg.enabled:
            return super().__call__(faces)
        if self.cfg.jpeg_p:
            faces = jpeg(faces, self.cfg.jpeg_p)
        x = self.ops(to_tensor(faces)).clamp_(0, 1)
        x = (x - 0.5) / 0.5
        return self.erase(x) if self.erase is not None else x
