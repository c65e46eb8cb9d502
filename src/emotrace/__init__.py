"""emotrace: read human emotion from faces in images, videos and live cameras.

The names below are imported on first use (PEP 562), so `import emotrace` and `emotrace --help`
load no OpenCV, ONNX Runtime, PyAV or pandas.

Layers, each using only the ones listed before it (docs/architecture.md):
core (errors, labels, results, models) -> faces/, media/ -> pipeline, smooth -> outputs/ ->
fragments, batch, highlights/, evaluation/ -> apps/ -> cli/; train/ sits beside the apps and is
never imported by inference code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "Analyzer": "emotrace.pipeline",
    "Detections": "emotrace.results",
    "Emotions": "emotrace.results",
    "FrameAnalysis": "emotrace.results",
    "ImageAnalysis": "emotrace.results",
    "VideoAnalysis": "emotrace.results",
    "EmotraceError": "emotrace.errors",
    "InputError": "emotrace.errors",
    "ModelError": "emotrace.errors",
}
__all__ = [
    "Analyzer", "Detections", "EmotraceError", "Emotions", "FrameAnalysis", "ImageAnalysis",
    "InputError", "ModelError", "VideoAnalysis", "__version__",
]

if TYPE_CHECKING:
    from emotrace.errors import EmotraceError, InputError, ModelError
    from emotrace.pipeline import Analyzer
    from emotrace.results import Detections, Emotions, FrameAnalysis, ImageAnalysis, VideoAnalysis


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'emotrace' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
