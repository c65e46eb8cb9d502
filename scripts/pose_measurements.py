"""How the pipeline's head pose behaves on real frames: the figures and the plot of docs/pose.md.

    PYTHONPATH=src python scripts/pose_measurements.py ../shared docs/images/pose_yaw.png \
        [--facemesh docs/eval/pose_facemesh.csv]

Runs `Analyzer` as `emotrace images` / `emotrace video` do and prints JSON:
- mirror: each photo and its mirror image (largest face): median |yaw + yaw'|, |pitch - pitch'|,
  |roll + roll'| (0 for a perfect estimate), on the pyfeat photos and samples of the
  realfaces sets;
- still photo: single_face.jpg 20 times with camera noise (sd 3 grey levels) and up to a pixel
  of shake: the standard deviation of each angle;
- clips: frame-to-frame jitter (sd of the step between frames / sqrt 2) and the yaw range;
and plots yaw over time for clips where the head turns, with FaceMesh's yaw on the same frames
where `--facemesh` gives the CSV written by scripts/pose_facemesh.py.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from emotrace import Analyzer  # noqa: E402

TURNING = ["unlabelled/liveportrait/d3.mp4", "unlabelled/liveportrait/d12.mp4",
           "unlabelled/liveportrait/d9.mp4"]
STILL = ["unlabelled/liveportrait/d0.mp4", "styletalk/source_video/Obama_clip1.mp4",
         "pyfeat/single_face.mp4"]


def largest_pose(analyzer: Analyzer, image: np.ndarray) -> np.ndarray | None:
    frame = analyzer.analyze_image(image).frame
    i = frame.detections.largest()
    return None if i is None else frame.measures.pose[i]


def mirror(analyzer: Analyzer, paths: list[Path]) -> dict:
    errors = []
    for path in paths:
        image = cv2.imread(str(path))
        a, b = largest_pose(analyzer, image), largest_pose(analyzer, image[:, ::-1].copy())
        if a is not None and b is not None:
            errors.append([a[0] + b[0], a[1] - b[1], a[2] + b[2]])
    e = np.abs(errors)
    return {"n": len(e), "median |yaw+yaw'|, |pitch-pitch'|, |roll+roll'|":
            np.median(e, 0).round(2).tolist(), "p90": np.percentile(e, 90, 0).round(2).tolist()}


def still_photo(analyzer: Analyzer, path: Path, copies: int = 20) -> dict:
    image = cv2.imread(str(path)).astype(np.float32)
    rng = np.random.default_rng(0)
    poses = []
    for _ in range(copies):
        noisy = np.clip(image + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8)
        shift = np.float32([[1, 0, rng.uniform(-1, 1)], [0, 1, rng.uniform(-1, 1)]])
        poses.append(largest_pose(analyzer, cv2.warpAffine(noisy, shift, image.shape[1::-1])))
    return {"copies": copies, "sd yaw, pitch, roll": np.std(poses, 0).round(2).tolist()}


def clip_pose(analyzer: Analyzer, path: Path) -> pd.DataFrame:
    df = analyzer.analyze_video(path, progress=False).to_pandas()
    return df[df["face"] == 0].set_index("frame")[["timestamp", "yaw", "pitch", "roll",
                                                   "facing"]]


def clip_figures(rows: pd.DataFrame) -> dict:
    steps = rows[["yaw", "pitch", "roll"]].diff().dropna()
    return {"frames": len(rows), "jitter yaw, pitch, roll":
            (steps.std() / np.sqrt(2)).round(2).tolist(),
            "yaw range": [round(float(rows["yaw"].min()), 1), round(float(rows["yaw"].max()), 1)],
            "facing share": round(float(rows["facing"].mean()), 3)}


def plot(clips: dict[str, pd.DataFrame], facemesh: pd.DataFrame | None, out: Path) -> None:
    fig, axes = plt.subplots(len(clips), 1, figsize=(8, 2.3 * len(clips)), sharey=True)
    for ax, (name, rows) in zip(np.atleast_1d(axes), clips.items()):
        ax.plot(rows["timestamp"], rows["yaw"], lw=1.2, label="emotrace (5-point solvePnP)")
        if facemesh is not None:
            mesh = facemesh[facemesh["clip"] == name].set_index("frame")["mesh_yaw"]
            t = rows["timestamp"].reindex(mesh.index)
            ax.plot(t, mesh, lw=1, ls="--", color="0.45", label="FaceMesh 468 points")
        ax.axhline(0, color="0.8", lw=0.8)
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("yaw (deg)")
    ax.set_xlabel("time (s); yaw > 0: the person turns to their left (nose to image right)")
    np.atleast_1d(axes)[0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("shared", type=Path)
    ap.add_argument("plot", type=Path)
    ap.add_argument("--facemesh", type=Path, help="per-frame CSV of scripts/pose_facemesh.py")
    args = ap.parse_args()
    data = args.shared / "data"
    analyzer = Analyzer()
    report = {
        "mirror pyfeat photos": mirror(analyzer, sorted((data / "video/pyfeat").glob("*.jpg"))),
        "mirror taiwanese (every 12th)": mirror(
            analyzer, sorted((data / "realfaces/taiwanese/images").glob("*.jpg"))[::12]),
        "mirror sfew (every 8th)": mirror(
            analyzer, sorted((data / "realfaces/sfew_train/Train").glob("*/*.png"))[::8]),
        "still photo": still_photo(analyzer, data / "video/pyfeat/single_face.jpg"),
    }
    turning = {}
    for name in STILL + TURNING:
        rows = clip_pose(analyzer, data / "video" / name)
        report[name] = clip_figures(rows)
        if name in TURNING:
            turning[name] = rows
    facemesh = pd.read_csv(args.facemesh) if args.facemesh else None
    plot(turning, facemesh, args.plot)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
