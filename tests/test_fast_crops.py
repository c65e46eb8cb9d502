"""Face crops checked on pixels: ArcFace alignment and square box crops on synthetic images
whose answer is known exactly (bilinear sampling at whole pixels returns the pixels)."""

import numpy as np
import pytest

from emotrace.faces.align import ARCFACE_112, align_faces, crop_boxes


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    """Random pixels: any shift, flip or scale error shows as a large difference."""
    return np.random.default_rng(0).integers(0, 256, (400, 500, 3), dtype=np.uint8)


def close(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to the rounding of a float32 transform (at most 1 grey level)."""
    return np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_landmarks_on_the_template_give_the_patch_itself(noise):
    x0, y0 = 130, 70
    crop = align_faces(noise, (ARCFACE_112 + [x0, y0])[None])
    assert crop.shape == (1, 112, 112, 3) and crop.dtype == np.uint8
    assert close(crop[0], noise[y0:y0 + 112, x0:x0 + 112])
    shifted = noise[y0 + 1:y0 + 113, x0:x0 + 112]
    assert not close(crop[0], shifted)  # the check can tell a one-pixel error


def test_a_face_twice_the_template_size_gives_the_patch_resized(noise):
    x0, y0 = 60, 40
    crop = align_faces(noise, (ARCFACE_112 * 2 + [x0, y0])[None])
    # 2:1 bilinear at whole source pixels = every second pixel of the 224x224 patch
    assert close(crop[0], noise[y0:y0 + 224:2, x0:x0 + 224:2])
    small = align_faces(noise, (ARCFACE_112 * 2 + [x0, y0])[None], size=56)
    assert close(small[0], noise[y0:y0 + 224:4, x0:x0 + 224:4])


def test_a_rotated_face_is_turned_upright(noise):
    x0, y0 = 100, 90
    upright = align_faces(noise, (ARCFACE_112 + [x0, y0])[None])[0]
    rotated = np.ascontiguousarray(np.rot90(noise))  # 90 degrees counter-clockwise
    width = noise.shape[1]
    pts = ARCFACE_112 + [x0, y0]
    moved = np.stack([pts[:, 1], width - 1 - pts[:, 0]], axis=1)  # (x, y) -> (y, W-1-x)
    assert close(align_faces(rotated, moved[None])[0], upright)


def test_several_faces_each_get_their_own_crop(noise):
    a, b = ARCFACE_112 + [10, 10], ARCFACE_112 + [300, 200]
    crops = align_faces(noise, np.stack([a, b]))
    assert close(crops[0], noise[10:122, 10:122]) and close(crops[1], noise[200:312, 300:412])
    assert align_faces(noise, np.zeros((0, 5, 2), np.float32)).shape == (0, 112, 112, 3)


def test_crop_boxes_cuts_the_box_pixels(noise):
    boxes = np.array([[50, 60, 114, 124], [200, 100, 264, 164]], np.float32)  # 64 x 64
    crops = crop_boxes(noise, boxes, 64)
    assert (crops[0] == noise[60:124, 50:114]).all()
    assert (crops[1] == noise[100:164, 200:264]).all()
    half = crop_boxes(noise, boxes[:1], 32)  # resized 2:1
    assert (half[0] == noise[60:124:2, 50:114:2]).all()


def test_crop_boxes_squares_a_box_on_its_longer_side(noise):
    wide = np.array([[100, 130, 164, 162]], np.float32)  # 64 wide, 32 high, centre y 146
    crop = crop_boxes(noise, wide, 64)[0]
    assert (crop == noise[114:178, 100:164]).all()
    margin = crop_boxes(noise, np.array([[100, 100, 164, 164]], np.float32), 96, margin=0.25)
    assert (margin[0] == noise[84:180, 84:180]).all()  # 16 px more on each side


def test_a_box_off_the_image_edge_is_filled_with_black(noise):
    h, w = noise.shape[:2]
    boxes = np.array([[-20, -10, 44, 54], [w - 30, h - 40, w + 34, h + 24]], np.float32)
    corner, far = crop_boxes(noise, boxes, 64)
    assert (corner[:10] == 0).all() and (corner[:, :20] == 0).all()
    assert (corner[10:, 20:] == noise[0:54, 0:44]).all()
    assert (far[:40, :30] == noise[h - 40:, w - 30:]).all()
    assert (far[40:] == 0).all() and (far[:, 30:] == 0).all()
