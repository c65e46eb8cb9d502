"""Head pose: the angles' signs on synthetic faces, and on real photos and clips (a mirrored photo,
a still face, a head that turns), and the pose columns wherever the face table goes."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from emotrace.face_table import POSE_COLUMNS, QUALITY_COLUMNS, frames_to_pandas
from emotrace.faces.pose import FACE_3D, HeadPose, camera_matrix
from emotrace.results import Detections, Emotions, FaceMeasures, FrameAnalysis

POSE = HeadPose()


def _project(yaw: float, pitch: float, roll: float, at=(0.0, 0.0, 60.0), size=(640, 480)):
    """The 5 landmarks of the 3D face turned by (yaw, pitch, roll) degrees in the module's
    signs, its eyes' middle at `at` (cm, camera frame), seen by the ideal camera."""
    y, p, r = np.radians([yaw, pitch, roll])
    turn = (cv2.Rodrigues(np.array([0, -y, 0.0]))[0] @ cv2.Rodrigues(np.array([-p, 0, 0.0]))[0]
            @ cv2.Rodrigues(np.array([0, 0, r]))[0])
    at = np.asarray(at)
    ray = at / np.linalg.norm(at)
    # the pose is against the line of sight: turn the face with the ray from the camera
    axis = np.cross([0.0, 0.0, 1.0], ray)
    if np.linalg.norm(axis) > 1e-9:
        angle = np.arcsin(np.linalg.norm(axis))
        turn = cv2.Rodrigues(axis / np.linalg.norm(axis) * angle)[0] @ turn
    points = FACE_3D @ turn.T + at
    uv = points @ camera_matrix(*size).T
    return (uv[:, :2] / uv[:, 2:]).astype(np.float32)


@pytest.mark.parametrize("angles", [(20, 0, 0), (0, 15, 0), (0, 0, 10), (25, -10, 5),
                                    (-40, 20, -15)])
def test_known_rotations_are_recovered(angles):
    got = POSE(_project(*angles)[None], 640, 480)[0]
    np.testing.assert_allclose(got, angles, atol=0.05)


def test_signs_say_where_the_nose_and_eyes_go():
    frontal = _project(0, 0, 0)
    left = _project(20, 0, 0)  # the person turns to their left: the nose goes to image right
    assert left[2, 0] - left[:2, 0].mean() > frontal[2, 0] - frontal[:2, 0].mean() + 5
    up = _project(0, 15, 0)  # looking up: the nose rises towards the eyes
    assert up[2, 1] - up[:2, 1].mean() < frontal[2, 1] - frontal[:2, 1].mean() - 5
    tilt = _project(0, 0, 10)  # towards the left shoulder: their left eye (image right) drops
    assert tilt[1, 1] > tilt[0, 1] + 5


def test_a_face_off_centre_looking_at_the_camera_reads_zero():
    corner = _project(0, 0, 0, at=(-20.0, -12.0, 60.0))
    assert corner[:, 0].max() < 200 and corner[:, 1].max() < 200  # the top-left quarter
    np.testing.assert_allclose(POSE(corner[None], 640, 480)[0], 0, atol=0.05)


def test_synthetic_mirror_flips_yaw_and_roll():
    points = _project(25, -10, 5, at=(8.0, 3.0, 60.0))
    mirrored = points.copy()
    mirrored[:, 0] = 640 - mirrored[:, 0]
    mirrored = mirrored[[1, 0, 2, 4, 3]]  # the image's left eye is now the person's right
    yaw, pitch, roll = POSE(np.stack([points, mirrored]), 640, 480).T
    assert yaw[0] == pytest.approx(-yaw[1], abs=0.05) and roll[0] == pytest.approx(-roll[1],
                                                                                   abs=0.05)
    assert pitch[0] == pytest.approx(pitch[1], abs=0.05)


def test_no_landmarks_no_pose_and_facing_limits():
    landmarks = np.stack([_project(0, 0, 0), np.full((5, 2), np.nan, np.float32),
                          _project(35, 0, 0), _project(0, -30, 0)])
    pose = POSE(landmarks, 640, 480)
    assert np.isnan(pose[1]).all() and np.isfinite(pose[[0, 2, 3]]).all()
    assert POSE.facing(pose).tolist() == [True, False, False, False]
    assert HeadPose(facing_yaw=40, facing_pitch=35).facing(pose).tolist() == [True, False, True,
                                                                              True]
    assert POSE(np.zeros((0, 5, 2), np.float32), 640, 480).shape == (0, 3)
    with pytest.raises(ValueError, match="facing_yaw"):
        HeadPose(facing_yaw=0)


# -- real photos and clips -------------------------------------------------------------------
def _pose(analyzer, image: np.ndarray) -> np.ndarray:
    frame = analyzer.analyze_image(image).frame
    return frame.measures.pose[frame.detections.largest()]


def test_a_mirrored_photo_gets_the_opposite_yaw(analyzer, pyfeat_dir):
    image = cv2.imread(str(pyfeat_dir / "single_face.jpg"))
    pose, mirrored = _pose(analyzer, image), _pose(analyzer, image[:, ::-1].copy())
    assert pose[0] < -4 and mirrored[0] > 4  # measured -7.6 and +7.5
    assert abs(pose[0] + mirrored[0]) < 3 and abs(pose[1] - mirrored[1]) < 6
    # a face clearly turned to its right (image left), and its mirror image to the left
    turned = cv2.imread(str(pyfeat_dir / "45-m7-di-ph.jpg"))
    pose, mirrored = _pose(analyzer, turned), _pose(analyzer, turned[:, ::-1].copy())
    assert pose[0] < -25 and mirrored[0] > 25  # measured -36 and +43


def test_mirrored_real_faces_agree_in_the_median(analyzer, data_dir):
    paths = sorted((data_dir / "realfaces" / "taiwanese" / "images").glob("*.jpg"))[::50]
    errors = []
    for path in paths:
        image = cv2.imread(str(path))
        pose, mirrored = _pose(analyzer, image), _pose(analyzer, image[:, ::-1].copy())
        errors.append([pose[0] + mirrored[0], pose[1] - mirrored[1], pose[2] + mirrored[2]])
    median = np.median(np.abs(errors), axis=0)
    assert len(errors) >= 20
    assert median[0] < 4 and median[1] < 4 and median[2] < 6, median  # YuNet's landmarks differ


def test_a_still_face_is_stable(analyzer, pyfeat_dir):
    """The same photo with camera noise and a pixel of shake: the pose barely moves."""
    image = cv2.imread(str(pyfeat_dir / "single_face.jpg")).astype(np.float32)
    rng = np.random.default_rng(0)
    poses = []
    for _ in range(12):
        noisy = image + rng.normal(0, 3, image.shape)
        shift = np.float32([[1, 0, rng.uniform(-1, 1)], [0, 1, rng.uniform(-1, 1)]])
        noisy = cv2.warpAffine(np.clip(noisy, 0, 255).astype(np.uint8), shift, image.shape[1::-1])
        poses.append(_pose(analyzer, noisy))
    assert np.std(poses, axis=0).max() < 1.5, np.std(poses, axis=0)


def _clip_poses(analyzer, path) -> pd.DataFrame:
    df = analyzer.analyze_video(path, progress=False).to_pandas()
    return df[df["face"] == 0].set_index("frame")


def test_a_still_clip_jitters_little(analyzer, data_dir):
    rows = _clip_poses(analyzer, data_dir / "video" / "unlabelled" / "liveportrait" / "d0.mp4")
    steps = rows[POSE_COLUMNS].diff().dropna()
    assert len(steps) > 70 and (steps.std() / np.sqrt(2)).max() < 1.0  # measured 0.3-0.4


def test_a_head_turn_clip_follows_the_turn(analyzer, data_dir):
    """d3.mp4: the person looks to their right (~frames 15-30), to their left (~255-275),
    then to their right again (~295-315), as FaceMesh also sees it (docs/pose.md)."""
    rows = _clip_poses(analyzer, data_dir / "video" / "unlabelled" / "liveportrait" / "d3.mp4")
    yaw = rows["yaw"]
    assert yaw.loc[15:30].mean() < -8 and yaw.loc[295:315].mean() < -8
    assert yaw.loc[255:275].mean() > 12
    assert rows["facing"].mean() > 0.9  # within 30 degrees nearly all the time


# -- the columns, wherever the table goes ------------------------------------------------------
MEASURE_COLUMNS = [*POSE_COLUMNS, "facing", *QUALITY_COLUMNS]


def test_images_and_video_tables_have_the_measures(analyzer, pyfeat_dir):
    df = analyzer.analyze_image(pyfeat_dir / "multi_face.jpg").to_pandas()
    assert list(df.columns[-len(MEASURE_COLUMNS):]) == MEASURE_COLUMNS
    assert len(df) == 5 and df[MEASURE_COLUMNS].notna().all().all()
    assert df["facing"].dtype == bool and df["facing"].all()
    video = analyzer.analyze_video(pyfeat_dir / "noface_face.mov", fps=5, progress=False)
    df = video.to_pandas()
    faces, empty = df[df["face"] >= 0], df[df["face"] < 0]
    assert len(faces) and len(empty)  # the face enters part way
    assert faces[MEASURE_COLUMNS].notna().all().all()
    assert empty[[*POSE_COLUMNS, *QUALITY_COLUMNS]].isna().all().all()
    assert not empty["facing"].any()


def test_cropped_faces_have_quality_but_no_pose(analyzer, pyfeat_dir):
    df = analyzer.analyze_image(pyfeat_dir / "0-f1-su-ph.jpg", cropped=True).to_pandas()
    assert df[POSE_COLUMNS].isna().all().all() and not df["facing"].any()
    assert df[QUALITY_COLUMNS].notna().all().all() and df["face_clipped"].iloc[0] == 0


def test_frames_without_measures_give_empty_columns():
    det = Detections(np.array([[0, 0, 10, 10]], np.float32), np.ones(1, np.float32),
                     np.zeros((1, 5, 2), np.float32))
    emo = Emotions(np.ones((1, 1), np.float32), ("neutral",))
    df = frames_to_pandas("x", [FrameAnalysis(0, 0.0, det, emo)], ("neutral",))
    assert df[POSE_COLUMNS + QUALITY_COLUMNS].isna().all().all() and not df["facing"].any()
    with pytest.raises(ValueError, match="measured faces"):
        FrameAnalysis(0, 0.0, det, emo, FaceMeasures.unknown(2))


def test_api_results_and_webcam_carry_the_pose(analyzer, pyfeat_dir):
    pytest.importorskip("fastapi")
    from emotrace.apps.api import faces_json
    from emotrace.apps.webcam import EmotionRecognizer, face_lines

    frame = analyzer.analyze_image(pyfeat_dir / "single_face.jpg").frame
    (face,) = faces_json(frame)
    assert set(MEASURE_COLUMNS) <= set(face) and face["facing"] is True
    assert face["yaw"] == pytest.approx(float(frame.measures.pose[0, 0]), abs=0.05)
    assert isinstance(face["face_sharpness"], float)
    recognizer = EmotionRecognizer(smoothing=0.5)
    image = cv2.imread(str(pyfeat_dir / "single_face.jpg"))
    (pred,) = recognizer.predict(image)
    assert np.isfinite(pred.pose).all() and pred.facing
    analysis = recognizer.analyze(image)
    assert analysis.measures is not None  # kept through the smoothing
    assert face_lines(analysis, 0)[-1].startswith("yaw ")
