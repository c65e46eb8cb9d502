"""The fragment index keeps exactly the fragments of each video's latest indexing."""

from __future__ import annotations

import shutil

import pytest

from emotrace.fragments import index_videos, read_index

pytest.importorskip("lancedb")


def test_reindexing_a_video_without_faces_now_drops_its_fragments(tmp_path, pyfeat_dir,
                                                                   styletalk_dir):
    video = tmp_path / "clip.mp4"
    other = styletalk_dir / "style_clips" / "sadgirl_clip1.mp4"  # 3 s, one face: 3 fragments
    shutil.copy(pyfeat_dir / "single_face.mp4", video)
    db = tmp_path / "idx"
    added, failures = index_videos([video, other], db, progress=False)
    assert not failures and added > 3
    assert (read_index(db)[0]["source"] == str(video)).any()

    shutil.copy(pyfeat_dir / "no_face.mp4", video)  # the same file now shows no face
    added, failures = index_videos([video], db, progress=False)
    assert (added, failures) == (0, [])
    table = read_index(db)[0]
    assert set(table["source"]) == {str(other)} and len(table) == 3
