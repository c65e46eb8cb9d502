"""Recording quality per viewer (issue 16, item 4) on recordings made dark, blurred and half
out of frame from a real clip: each is graded below good with the reason, the original good."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest
from videos import write_video

from emotrace.highlights import find_highlights
from emotrace.highlights.quality import QualitySettings, grade


def _altered(src, out, change):
    with av.open(str(src)) as inp:
        return write_video(out, (change(f.to_ndarray(format="bgr24"))
                                 for f in inp.decode(video=0)))


def _half_out(image):
    # the face in single_face.mp4 spans x = 214-412: shift it so a third leaves the frame
    shifted = np.zeros_like(image)
    shifted[:, : image.shape[1] - 280] = image[:, 280:]
    return shifted


@pytest.fixture(scope="module")
def graded(tmp_path_factory, pyfeat_dir, analyzer_ferplus8):
    folder = tmp_path_factory.mktemp("quality")
    src = pyfeat_dir / "single_face.mp4"
    videos = {"original": _altered(src, folder / "original.mp4", lambda x: x),
              "dark": _altered(src, folder / "dark.mp4", lambda x: (x * 0.15).astype(np.uint8)),
              "blurred": _altered(src, folder / "blurred.mp4",
                                  lambda x: cv2.GaussianBlur(x, (0, 0), 5)),
              "half_out": _altered(src, folder / "half_out.mp4", _half_out)}
    result = find_highlights(list(videos.values()), analyzer=analyzer_ferplus8, fps=10,
                             progress=False)
    return {v.name: v.quality for v in result.viewers}


def test_the_original_recording_is_good(graded):
    assert graded["original"].grade == "good", graded["original"]


@pytest.mark.parametrize("name, reason", [("dark", "too dark"), ("blurred", "blurred"),
                                          ("half_out", "out of frame")])
def test_a_weak_recording_is_graded_down_with_its_reason(graded, name, reason):
    quality = graded[name]
    assert quality.grade != "good" and any(reason in r for r in quality.reasons), quality


def test_min_quality_leaves_poor_recordings_out_and_says_so(tmp_path, pyfeat_dir,
                                                            analyzer_ferplus8):
    src = pyfeat_dir / "single_face.mp4"
    ok = _altered(src, tmp_path / "ok.mp4", lambda x: x)
    dark = _altered(src, tmp_path / "dim.mp4", lambda x: (x * 0.15).astype(np.uint8))
    result = find_highlights([ok, dark], analyzer=analyzer_ferplus8, fps=10, progress=False,
                             min_quality="good")
    assert [v.name for v in result.viewers] == ["ok"]
    assert result.excluded and result.excluded[0][0] == "dim"


def test_a_measure_the_table_lacks_is_not_judged():
    measures = {"face_share": 1.0, "face_size": 100.0, "brightness": float("nan"),
                "contrast": float("nan"), "sharpness": float("nan"), "clipped": float("nan"),
                "frame_rate": 10.0, "gaps": 0.0, "attention": float("nan")}
    assert grade(measures).grade == "good"
    assert grade({**measures, "face_share": 0.1}, QualitySettings()).grade == "fair"
