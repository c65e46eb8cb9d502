"""Face detection: YuNet through `cv2.FaceDetectorYN`, every face with a score and 5 landmarks."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from emotrace import models
from emotrace.errors import ModelError
from emotrace.results import Detections

# OpenCV 5 warns on every YuNet load that its new graph engine ignores targets; say only errors.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


class YuNetDetector:
    """Find faces in BGR images.

    Args:
        model_path: explicit file for the model `name` (checked against its card's SHA256).
        score_threshold: minimum detection score in (0, 1); None = the card's default.
        nms_threshold: IoU above which overlapping boxes are suppressed; None = the card's.
        min_face_size: drop faces whose shorter box side is below this many pixels (of the
            original image).
        max_side: detect on a copy whose longer side is at most this many pixels (faster on
            large frames; small faces below about 10 px at that size are lost). None = full size.
        name: a registered face-detection model run by OpenCV's YuNet wrapper (its card's
            `extra` holds the default thresholds and `top_k`).
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        score_threshold: float | None = None,
        nms_threshold: float | None = None,
        min_face_size: int = 0,
        max_side: int | None = 640,
        name: str = models.DEFAULT_DETECTOR,
    ) -> None:
        if min_face_size < 0:
            raise ValueError(f"min_face_size must be >= 0, got {min_face_size}")
        if max_side is not None and max_side < 32:
            raise ValueError(f"max_side must be >= 32 or None, got {max_side}")
        loaded = models.load(name, model_path, "face-detection")
        card = loaded.card
        if card.runtime != "cv2-yunet":
            raise ModelError(f"model {name!r} runs with {card.runtime}; YuNetDetector runs "
                             "cv2-yunet models")
        missing = {"score_threshold", "nms_threshold", "top_k"} - set(card.extra)
        if missing:
            raise ModelError(f"model card {name!r} lacks extra {sorted(missing)}")
        if score_threshold is None:
            score_threshold = float(card.extra["score_threshold"])
        if nms_threshold is None:
            nms_threshold = float(card.extra["nms_threshold"])
        if not 0.0 < score_threshold < 1.0:
            raise ValueError(f"score_threshold must be in (0, 1), got {score_threshold}")
        if not 0.0 < nms_threshold <= 1.0:
            raise ValueError(f"nms_threshold must be in (0, 1], got {nms_threshold}")
        self.card, self.path = card, loaded.path
        self.score_threshold, self.nms_threshold = score_threshold, nms_threshold
        self.min_face_size = min_face_size
        self.max_side = max_side
        # The input size given here is a placeholder: __call__ sets each image's size.
        self._net = cv2.FaceDetectorYN.create(
            str(self.path), "", (320, 320), score_threshold, nms_threshold,
            int(card.extra["top_k"]),
        )
        self._size: tuple[int, int] | None = None

    def __call__(self, image: np.ndarray, max_side: int | None | str = "default") -> Detections:
        """Faces in an HxWx3 BGR image; `max_side` overrides the detector's for this call."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 BGR image, got shape {image.shape}")
        limit = self.max_side if max_side == "default" else max_side
        h, w = image.shape[:2]
        if limit and max(h, w) > limit:
            scale = limit / max(h, w)
            small = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = cv2.resize(image, small, interpolation=cv2.INTER_AREA)
        size = (image.shape[1], image.shape[0])
        if size != self._size:  # setInputSize rebuilds priors: only when the size changes
            self._net.setInputSize(size)
            self._size = size
        _, faces = self._net.detect(image)
        if faces is None or len(faces) == 0:
            return Detections.empty()
        faces = faces.astype(np.float32)
        # Map back to the original image (per axis: the resize rounds each side separately).
        sx, sy = w / size[0], h / size[1]
        x, y, bw, bh = faces[:, 0] * sx, faces[:, 1] * sy, faces[:, 2] * sx, faces[:, 3] * sy
        boxes = np.stack([x, y, x + bw, y + bh], axis=1)
        landmarks = faces[:, 4:14].reshape(-1, 5, 2) * np.array([sx, sy], np.float32)
        det = Detections(boxes, faces[:, 14].copy(), landmarks.astype(np.float32))
        if self.min_face_size:
            det = det.take(np.minimum(bw, bh) >= self.min_face_size)
        return det
