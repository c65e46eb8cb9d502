"""Writing small test videos from BGR frames (not a test module)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import av
import numpy as np


def write_video(path: Path, frames: Iterable[np.ndarray], fps: int = 30) -> Path:
    """An H.264 MP4 of the BGR `frames` at `fps`; the size is the first frame's."""
    with av.open(str(path), "w") as container:
        stream = None
        for k, image in enumerate(frames):
            if stream is None:
                stream = container.add_stream("libx264", rate=fps)
                stream.height, stream.width = image.shape[:2]
                stream.pix_fmt = "yuv420p"
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
            frame.pts = k
            container.mux(stream.encode(frame))
        if stream is not None:
            container.mux(stream.encode())
    return path
