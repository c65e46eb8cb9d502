"""emotrace: read human emotion from faces in images, videos and live cameras."""

from emotrace.errors import EmotraceError, InputError, ModelError
from emotrace.pipeline import Analyzer
from emotrace.types import Detections, Emotions, FrameAnalysis, ImageAnalysis, VideoAnalysis

__version__ = "0.1.0"
__all__ = [
    "Analyzer", "Detections", "Emotions", "EmotraceError", "FrameAnalysis", "ImageAnalysis",
    "InputError", "ModelError", "VideoAnalysis", "__version__",
]
