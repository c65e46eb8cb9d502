import cv2
import numpy as np
import pytest

from emotrace.faces.align import ARCFACE_112, align_faces, similarity_transform
from emotrace.faces.detect import YuNetDetector
from emotrace.faces.track import IoUTracker, iou_matrix


@pytest.fixture(scope="module")
def detector(models_dir):
    return YuNetDetector()


def test_single_face_jpg_has_exactly_one_face(detector, pyfeat_dir):
    det = detector(cv2.imread(str(pyfeat_dir / "single_face.jpg")))
    assert len(det) == 1
    (x1, y1, x2, y2), lm = det.boxes[0], det.landmarks[0]
    assert (lm[:, 0] > x1).all() and (lm[:, 0] < x2).all()
    assert (lm[:, 1] > y1).all() and (lm[:, 1] < y2).all()


def test_multi_face_jpg_has_all_five_faces(detector, pyfeat_dir):
    # Counted by looking at the picture: five young people, all facing the camera.
    det = detector(cv2.imread(str(pyfeat_dir / "multi_face.jpg")))
    assert len(det) == 5
    assert (det.scores > 0.8).all()


def test_min_face_size_and_blank_image(detector, pyfeat_dir):
    image = cv2.imread(str(pyfeat_dir / "multi_face.jpg"))
    small = YuNetDetector(min_face_size=10_000)(image)
    assert len(small) == 0
    assert len(detector(np.full((240, 320, 3), 127, np.uint8))) == 0


def test_detection_at_reduced_size_maps_back_to_full_size(detector, pyfeat_dir):
    image = cv2.imread(str(pyfeat_dir / "single_face.jpg"))
    full = YuNetDetector(max_side=None)(image)
    reduced = YuNetDetector(max_side=256)(image)
    # A wrong scale back would move the box by ~half its size; detector jitter is far smaller.
    assert iou_matrix(full.boxes, reduced.boxes)[0, 0] > 0.8
    width = full.boxes[0, 2] - full.boxes[0, 0]
    assert np.abs(full.landmarks - reduced.landmarks).max() < 0.08 * width


def test_similarity_transform_recovers_a_known_one():
    angle, scale, t = np.deg2rad(12), 1.7, np.array([5.0, -3.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = ARCFACE_112.astype(np.float64)
    dst = src @ rot.T + t
    m = similarity_transform(src, dst)
    assert np.allclose(m[:, :2], rot, atol=1e-4) and np.allclose(m[:, 2], t, atol=1e-3)


def test_aligned_face_puts_landmarks_on_the_template(detector, pyfeat_dir):
    image = cv2.imread(str(pyfeat_dir / "single_face.jpg"))
    det = detector(image)
    crop = align_faces(image, det.landmarks)
    assert crop.shape == (1, 112, 112, 3)
    # The crop's own pixels: detected again (at 224 px, with a border so the detector sees a
    # whole face), its eyes, nose and mouth sit on the template. A crop shifted by 2 px, one not
    # scaled to `size` (the face in a corner) or a wrong rotation fails this.
    big = align_faces(image, det.landmarks, size=224)[0]
    canvas = np.zeros((448, 448, 3), np.uint8)
    canvas[112:336, 112:336] = big
    again = detector(canvas)
    assert len(again) == 1
    found = (again.landmarks[0] - 112) / 2  # back to the 112-pixel template's frame
    error = np.linalg.norm(found - ARCFACE_112, axis=1)
    assert error.mean() < 6 and error.max() < 12, error  # pixels, on a 112-pixel crop
    halved = cv2.resize(big, (112, 112), interpolation=cv2.INTER_AREA)
    assert np.abs(halved.astype(int) - crop[0].astype(int)).mean() < 8  # one face, two sizes
    m = similarity_transform(det.landmarks[0], ARCFACE_112)
    moved = det.landmarks[0] @ m[:, :2].T + m[:, 2]
    assert np.abs(moved - ARCFACE_112).max() < 6  # the transform's least-squares fit


def test_tracker_keeps_ids_and_retires_after_gap():
    tracker = IoUTracker(max_gap=0.5)
    a, b = np.array([0, 0, 10, 10.0]), np.array([50, 50, 60, 60.0])
    first = tracker.update(np.stack([a, b]), 0.0)
    second = tracker.update(np.stack([b + 1, a + 1]), 0.04)  # order swapped, slight motion
    assert list(second) == list(first[::-1])
    assert len(tracker.update(np.zeros((0, 4)), 0.08)) == 0
    third = tracker.update(np.stack([a]), 0.4)  # seen again within the gap: same id
    assert third[0] == first[0]
    fourth = tracker.update(np.stack([a]), 2.0)  # unseen for longer than max_gap: new id
    assert fourth[0] not in first
