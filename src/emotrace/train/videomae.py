"""VideoMAE as an optional clip backbone for probes (Hugging Face transformers, local checkpoint).

    emotrace probe --videomae CHECKPOINT_DIR --videos FOLDER [--window 2] -o probe/

`VideoMAEClipEmbedder(dir)` loads `VideoMAEModel.from_pretrained(dir, local_files_only=True)`
(nothing is downloaded: the user names a folder holding config.json and the weights, e.g. a
copy of MCG-NJU/videomae-base) and embeds a clip as the mean of the last hidden states over
its tokens. Frames are sampled uniformly over each window (as many as the model's
`num_frames`), resized to its `image_size`, scaled to [0, 1] and normalised with the ImageNet
mean and standard deviation, as VideoMAE's image processor does. The model runs on `device`
(auto: CUDA, then MPS, else the CPU; bfloat16/float16 autocast on CUDA only).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

from emotrace.errors import InputError
from emotrace.media.decode import VIDEO_SUFFIXES, FrameReader
from emotrace.train.run import Precision, choose_device

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


class VideoMAEClipEmbedder:
    def __init__(self, checkpoint: str | Path, threads: int = 0, device: str = "auto") -> None:
        try:
            from transformers import VideoMAEModel
        except ImportError:
            raise RuntimeError(
                "VideoMAE needs transformers: pip install 'emotrace[videomae]'") from None
        checkpoint = Path(checkpoint)
        if not (checkpoint / "config.json").is_file():
            raise InputError(checkpoint, "not a Hugging Face checkpoint folder (no config.json)")
        if threads:
            torch.set_num_threads(threads)
        self.device = choose_device(device, "--device")
        self.amp = Precision(self.device)
        model = VideoMAEModel.from_pretrained(str(checkpoint), local_files_only=True)
        self.model = torch.nn.Module.to(model, self.device).eval()
        cfg = self.model.config
        self.num_frames, self.size = cfg.num_frames, cfg.image_size

    def preprocess(self, frames: list[np.ndarray]) -> torch.Tensor:
        """BGR frames -> (1, T, 3, S, S), T = the model's num_frames (sampled uniformly)."""
        idx = np.linspace(0, len(frames) - 1, self.num_frames).round().astype(int)
        x = np.stack([cv2.resize(frames[i][..., ::-1], (self.size, self.size),
                                 interpolation=cv2.INTER_AREA)
                      for i in idx]).astype(np.float32) / 255
        x = (x - MEAN) / STD
        return torch.from_numpy(x).permute(0, 3, 1, 2)[None].contiguous()

    @torch.no_grad()
    def __call__(self, frames: list[np.ndarray]) -> np.ndarray:
        """One (hidden_size,) embedding for a clip given as a list of BGR frames."""
        with self.amp.autocast():
            out = self.model(pixel_values=self.preprocess(frames).to(self.device))
        return out.last_hidden_state.float().mean(dim=1)[0].cpu().numpy()

    def windows(self, video: str | Path, window: float = 2.0) -> list[tuple[float, np.ndarray]]:
        """(start, embedding) of every full `window` of the video."""
        out: list[tuple[float, np.ndarray]] = []
        frames: list[np.ndarray] = []
        start = 0.0
        for frame in FrameReader(video):
            if frame.timestamp >= start + window:
                if frames:
                    out.append((start, self(frames)))
                frames, start = [], start + window
            frames.append(frame.image)
        if frames and frames[-1] is not None and len(frames) >= self.num_frames:
            out.append((start, self(frames)))
        return out


def clip_table(checkpoint: str | Path, folder: str | Path, out: str | Path,
               window: float = 2.0, device: str = "auto") -> Path:
    """A probe table (.npz): one VideoMAE embedding per window of each labelled video under
    `folder` (labels from `index.csv`'s `weak_label_from_filename`, as in ../shared/data/video).
    Whole videos go to one split (train/valid/test by video), so windows of a clip never sit on
    both sides."""
    folder = Path(folder)
    index = folder / "index.csv"
    if not index.is_file():
        raise InputError(index, "no such file (needs columns file, weak_label_from_filename)")
    df = pd.read_csv(index)
    labelled = [(folder / r.file, r.weak_label_from_filename) for r in df.itertuples()
                if isinstance(r.weak_label_from_filename, str)
                and Path(r.file).suffix.lower() in VIDEO_SUFFIXES]
    if not labelled:
        raise InputError(index, "no labelled video")
    embedder = VideoMAEClipEmbedder(checkpoint, device=device)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(labelled))
    split_of = {}
    for rank, i in enumerate(order):
        split_of[i] = "test" if rank % 5 == 0 else "valid" if rank % 5 == 1 else "train"
    emb, labels, split = [], [], []
    for i, (video, label) in enumerate(labelled):
        for _, vec in embedder.windows(video, window):
            emb.append(vec)
            labels.append(label)
            split.append(split_of[i])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, embeddings=np.array(emb, np.float32), labels=np.array(labels),
             split=np.array(split))
    return out
