"""Head pose from YuNet's 5 landmarks: a perspective fit of a generic 3D face (`cv2.solvePnP`).

Angles are in degrees, in the camera's frame (x to the image's right, y down, z away from the
camera), for the image as it is (a mirrored selfie view gives mirrored angles):

- **yaw** > 0: the person turns to *their* left, so the nose points to the image's right;
- **pitch** > 0: the person looks up (chin up, the nose points up in the image);
- **roll** > 0: the head tilts towards the person's left shoulder: the line from their right
  eye (image left) to their left eye turns clockwise on the screen.

All three are 0 for a face looking straight at the camera, and a mirrored image gives -yaw, the
same pitch and -roll. They are the head's rotation against the line of sight from the camera to
the face (`towards_line_of_sight`), not against the camera's axis, so a viewer near the image's
edge who looks at the camera reads 0 too. The camera is assumed ideal, with a focal length of
the image's longer side in pixels (about 53 degrees across that side) and the principal point
in the image's middle.

The 3D face is in cm, origin between the eyes: its x and y come from the ArcFace 5-point
template (the average layout of these landmarks on frontal faces, scaled to a 6.3 cm distance
between the eyes), its depths from MediaPipe's canonical face mesh (nose tip 3.5 cm in front of
the eyes, mouth corners 0.3 cm). Yaw and pitch scale with the nose's depth, so on a face whose
nose differs from the average they are off by the same factor;
scripts/pose_measurements.py measures how they behave on real frames (docs/pose.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: Landmarks in YuNet's order (right eye, left eye, nose tip, right and left mouth corner).
FACE_3D = np.array([
    [-3.15, 0.00, 0.00],
    [3.15, 0.00, 0.00],
    [0.00, 3.60, -3.50],
    [-2.61, 7.27, -0.30],
    [2.61, 7.27, -0.30],
], np.float64)
FACING_YAW = 30.0
FACING_PITCH = 25.0


def camera_matrix(width: int, height: int) -> np.ndarray:
    """An ideal camera for a `width` x `height` image: focal length = the longer side."""
    f = float(max(width, height))
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], np.float64)


def euler_angles(rotation: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) degrees of a face-to-camera rotation, in the module doc's signs.

    The rotation is split as R = Ry(-yaw) Rx(-pitch) Rz(roll): turn, then nod, then tilt.
    """
    forward = -rotation[:, 2]  # out of the face, towards the camera for a frontal face
    yaw = np.arctan2(forward[0], -forward[2])
    pitch = np.arcsin(np.clip(-forward[1], -1.0, 1.0))
    # undo the turn and the nod, then the face's x axis (to its left) lies in the image plane
    cy, sy, cp, sp = np.cos(-yaw), np.sin(-yaw), np.cos(-pitch), np.sin(-pitch)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    x_axis = rx.T @ ry.T @ rotation[:, 0]
    roll = np.arctan2(x_axis[1], x_axis[0])
    return np.degrees([yaw, pitch, roll])


def towards_line_of_sight(position: np.ndarray) -> np.ndarray:
    """The rotation that takes the ray from the camera to `position` onto the camera's axis.

    Applied to a face's rotation it gives the pose against the line of sight: 0 for a face
    that looks at the camera wherever it is in the image.
    """
    ray = position / np.linalg.norm(position)
    axis = np.cross(ray, [0.0, 0.0, 1.0])
    sin = np.linalg.norm(axis)
    if sin < 1e-9:
        return np.eye(3)
    angle = np.arctan2(sin, ray[2])
    return cv2.Rodrigues(axis / sin * angle)[0]


@dataclass(frozen=True)
class HeadPose:
    """Yaw, pitch and roll of faces from their landmarks; `facing` by two thresholds.

    facing_yaw / facing_pitch: a face is facing the screen (camera) when |yaw| and |pitch|
    are at most these many degrees.
    """

    facing_yaw: float = FACING_YAW
    facing_pitch: float = FACING_PITCH

    def __post_init__(self) -> None:
        for name in ("facing_yaw", "facing_pitch"):
            value = getattr(self, name)
            if not 0 < value <= 180:
                raise ValueError(f"{name} must be in (0, 180] degrees, got {value}")

    def __call__(self, landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
        """(N, 5, 2) landmark pixels of a `width` x `height` image -> (N, 3) float32 yaw,
        pitch, roll; NaN for a face without landmarks or whose fit fails."""
        landmarks = np.asarray(landmarks, np.float64)
        out = np.full((len(landmarks), 3), np.nan, np.float32)
        camera = camera_matrix(width, height)
        for i, points in enumerate(landmarks):
            if not np.isfinite(points).all():
                continue
            # SQPnP: the global least-squares pose from as few as 3 points (the iterative
            # solver's start needs 6 non-coplanar ones)
            ok, rvec, tvec = cv2.solvePnP(FACE_3D, points, camera, None,
                                          flags=cv2.SOLVEPNP_SQPNP)
            if ok:
                out[i] = euler_angles(towards_line_of_sight(tvec.ravel())
                                      @ cv2.Rodrigues(rvec)[0])
        return out

    def facing(self, pose: np.ndarray) -> np.ndarray:
        """(N,) bool: |yaw| <= facing_yaw and |pitch| <= facing_pitch (False where unknown)."""
        with np.errstate(invalid="ignore"):
            return (np.abs(pose[:, 0]) <= self.facing_yaw) & (
                np.abs(pose[:, 1]) <= self.facing_pitch)
