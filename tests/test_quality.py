"""Face quality on real faces made dark, blurred, small or half out of the frame."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from emotrace.face_table import QUALITY_COLUMNS
from emotrace.faces.quality import face_quality

BRIGHT, CONTRAST, SHARP, SIZE, CLIPPED = range(len(QUALITY_COLUMNS))


@pytest.fixture(scope="module")
def photo(analyzer, pyfeat_dir):
    """single_face.jpg and its face's box, as the pipeline detects it."""
    image = cv2.imread(str(pyfeat_dir / "single_face.jpg"))
    det = analyzer.analyze_image(image).frame.detections
    return image, det.boxes[det.largest()]


def _quality(analyzer, image):
    frame = analyzer.analyze_image(image).frame
    assert len(frame) == 1, "the face must still be found"
    return frame.measures.quality[0]


def test_a_darkened_photo_is_darker_and_flatter(analyzer, photo):
    image, _ = photo
    before = _quality(analyzer, image)
    after = _quality(analyzer, (image * 0.4).astype(np.uint8))
    assert after[BRIGHT] == pytest.approx(before[BRIGHT] * 0.4, rel=0.1)
    assert after[CONTRAST] == pytest.approx(before[CONTRAST] * 0.4, rel=0.1)
    assert 0 < before[BRIGHT] < 255 and after[BRIGHT] < 0.5 * before[BRIGHT]


def test_a_blurred_photo_is_less_sharp(analyzer, photo):
    image, _ = photo
    before = _quality(analyzer, image)
    after = _quality(analyzer, cv2.GaussianBlur(image, (0, 0), 3))
    assert after[SHARP] < before[SHARP] / 4
    assert after[BRIGHT] == pytest.approx(before[BRIGHT], rel=0.05)  # blur keeps the light


def test_sharpness_does_not_depend_on_the_face_size(analyzer, photo):
    image, _ = photo
    before = _quality(analyzer, image)
    half = _quality(analyzer, cv2.resize(image, None, fx=0.5, fy=0.5,
                                         interpolation=cv2.INTER_AREA))
    assert half[SIZE] == pytest.approx(before[SIZE] / 2, rel=0.1)
    assert 0.5 < half[SHARP] / before[SHARP] < 2  # both measured at 64x64


@pytest.mark.parametrize("share", [0.5, 0.35])
def test_a_face_partly_out_of_the_frame_is_that_much_clipped(analyzer, photo, share):
    """YuNet's box stops at the frame's edge; the face's whole box is estimated beyond it."""
    image, box = photo
    cut = int(round(box[0] + (box[2] - box[0]) * share))  # the frame now starts there
    frame = analyzer.analyze_image(np.ascontiguousarray(image[:, cut:])).frame
    assert len(frame) == 1 and frame.detections.boxes[0, 0] < 3  # the box ends at the edge
    q = frame.measures.quality[0]
    assert q[CLIPPED] == pytest.approx(share, abs=0.1)
    (whole,) = face_quality(image, box[None])
    assert whole[CLIPPED] == 0 and q[SIZE] == pytest.approx(whole[SIZE], rel=0.15)


def test_a_box_past_the_edge_counts_what_is_outside():
    image = np.full((300, 300, 3), 90, np.uint8)
    q = face_quality(image, np.array([[-50, 100, 50, 230], [250, -65, 350, 65]], np.float32))
    np.testing.assert_allclose(q[:, CLIPPED], [0.5, 0.75], atol=1e-6)
    np.testing.assert_allclose(q[:, SIZE], np.sqrt(100 * 130), rtol=1e-6)


def test_boxes_outside_or_empty_and_no_boxes():
    image = np.full((100, 100, 3), 128, np.uint8)
    q = face_quality(image, np.array([[200, 200, 250, 260], [10, 10, 10, 40],
                                      [20, 20, 60, 70]], np.float32))
    assert q[0, CLIPPED] == 1 and np.isnan(q[0, :SIZE]).all()
    assert np.isnan(q[1, CLIPPED]) and q[1, SIZE] == 0
    assert q[2].tolist() == pytest.approx([128, 0, 0, np.sqrt(40 * 50), 0])
    assert face_quality(image, np.zeros((0, 4), np.float32)).shape == (0, 5)
