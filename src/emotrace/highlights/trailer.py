"""Cutting the episode: the trailer (chosen segments, in episode order, with audio) and stills.

The trailer is cut by the ffmpeg binary that `imageio-ffmpeg` ships (no system ffmpeg
needed): each segment is one input opened with an accurate seek (`-ss` before `-i` decodes
from the previous key frame and drops frames up to the exact start), and ffmpeg's `concat`
filter joins them, video and audio alike, re-encoded to H.264/AAC. Segment bounds are snapped
to the episode's frame grid first, so the trailer lasts exactly the sum of the segments.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import numpy as np

from emotrace.errors import InputError
from emotrace.media.decode import probe
from emotrace.outputs.files import Put, atomic_write


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def snap_segments(segments: list[tuple[float, float]], fps: float, duration: float
                  ) -> list[tuple[float, float]]:
    """Segments sorted, clipped to [0, duration], with bounds on the frame grid of `fps`."""
    out = []
    for start, end in sorted(segments):
        a = round(max(0.0, start) * fps) / fps
        b = round(min(end, duration) * fps) / fps if duration else round(end * fps) / fps
        if b > a:
            out.append((a, b))
    return out


def cut_trailer(content: str | Path, segments: list[tuple[float, float]], output: str | Path,
                crf: int = 20, put: Put = atomic_write) -> list[tuple[float, float]]:
    """Write the `segments` (episode seconds) of `content` to `output`, in episode order.

    Returns the segments as cut (snapped to frames). Raises `InputError` naming the file if
    the content cannot be read, ValueError if no segment lies inside it.
    """
    content = Path(content)
    info = probe(content)
    snapped = snap_segments(segments, info.fps, info.duration)
    if not snapped:
        raise ValueError(f"no segment lies inside {content} ({info.duration:.1f} s)")
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
    for start, end in snapped:
        cmd += ["-ss", f"{start:.6f}", "-t", f"{end - start:.6f}", "-i", str(content)]
    parts = []
    for i in range(len(snapped)):
        parts.append(f"[{i}:v:0]setpts=PTS-STARTPTS[v{i}]")
        if info.has_audio:
            parts.append(f"[{i}:a:0]asetpts=PTS-STARTPTS[a{i}]")
    inputs = "".join(f"[v{i}]" + (f"[a{i}]" if info.has_audio else "") for i in range(len(snapped)))
    parts.append(f"{inputs}concat=n={len(snapped)}:v=1:a={int(info.has_audio)}[v]"
                 + ("[a]" if info.has_audio else ""))
    cmd += ["-filter_complex", ";".join(parts), "-map", "[v]"]
    if info.has_audio:
        cmd += ["-map", "[a]", "-c:a", "aac", "-b:a", "128k"]
    cmd += ["-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-pix_fmt", "yuv420p",
            "-r", f"{info.fps:.6f}", "-movflags", "+faststart", "-f", "mp4"]

    def run(tmp: Path) -> None:
        done = subprocess.run([*cmd, str(tmp)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise InputError(content, f"cutting the trailer failed: {done.stderr.strip()[-400:]}")

    put(output, run)
    return snapped


def grab_frame(path: str | Path, t: float) -> np.ndarray:
    """The BGR frame of `path` shown at time `t` (seconds from the stream's start)."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if stream.time_base is None:
                raise InputError(path, "its video stream has no time base")
            base = float(stream.time_base)
            start = stream.start_time or 0
            container.seek(int(max(0.0, t) / base) + start, stream=stream, backward=True)
            last = None
            for frame in container.decode(stream):
                last = frame
                if frame.pts is not None and (frame.pts - start) * base >= t - 1e-3:
                    break
    except (av.error.FFmpegError, IndexError) as exc:
        raise InputError(path, f"cannot read a frame at {t:.1f} s ({exc})") from None
    if last is None:
        raise InputError(path, f"no frame at {t:.1f} s")
    return last.to_ndarray(format="bgr24")
