"""Similar fragments: index real clips in LanceDB, search by a video moment and by an image."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from emotrace.errors import InputError
from emotrace.fragments import index_videos, read_index, search

pytest.importorskip("lancedb")
pytestmark = pytest.mark.slow  # the index holds three whole clips


@pytest.fixture(scope="session")
def happy(styletalk_dir):
    return styletalk_dir / "style_clips" / "happyenglish_clip1.mp4"  # 4.5 s, broadly happy


@pytest.fixture(scope="session")
def sad(styletalk_dir):
    return styletalk_dir / "style_clips" / "sadgirl_clip1.mp4"  # 3 s, sad


@pytest.fixture(scope="session")
def angry(styletalk_dir):
    return styletalk_dir / "style_clips" / "furious_talk2_clip1.mp4"  # 2 s, angry


@pytest.fixture(scope="module")
def db(tmp_path_factory, angry, happy, sad):
    folder = tmp_path_factory.mktemp("index")
    added, failures = index_videos([happy, sad, angry], folder, progress=False)
    assert added == 5 + 3 + 2 and not failures  # one 1-s fragment per second of each track
    return folder


def test_index_holds_fragments_with_times(db, happy, sad):
    table, meta = read_index(db)
    assert meta == {"embedder": "emotrace-ferplus8", "window": 1.0, "fps": 10.0}
    rows = table[table["source"] == str(happy)].sort_values("start")
    assert rows["start"].tolist() == [0, 1, 2, 3, 4] and (rows["dominant"] == "happy").all()
    assert (table[table["source"] == str(sad)]["dominant"] == "sad").all()
    # re-indexing a video replaces its fragments
    index_videos([sad], db, progress=False)
    assert len(read_index(db)[0]) == 10


def test_search_by_video_moment(db, happy):
    hits = search(db, video=happy, at=2.0, k=4)
    assert hits.loc[0, "source"] == str(happy) and hits.loc[0, "start"] == 2.0
    assert hits.loc[0, "similarity"] > 0.99  # the moment itself
    assert (hits["dominant"] == "happy").all()  # the nearest fragments are the happy ones


def test_search_by_image(db, happy, pyfeat_dir):
    hits = search(db, image=pyfeat_dir / "0-f15-hao-ph.jpg", k=3)  # a broad smile
    assert hits.loc[0, "dominant"] == "happy" and str(happy) in set(hits["source"])


def test_errors(db, tmp_path, bad_videos, happy, pyfeat_dir, sad):
    with pytest.raises(InputError, match="not a fragment index"):
        search(tmp_path, image=pyfeat_dir / "single_face.jpg")
    with pytest.raises(ValueError, match="--video FILE --at SECONDS, or --image FILE"):
        search(db, video=happy)
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 128, np.uint8))
    with pytest.raises(InputError, match="blank.png: no face found"):
        search(db, image=blank)
    with pytest.raises(InputError, match="not a readable image"):
        search(db, image=pyfeat_dir / "no_face.mp4")
    with pytest.raises(ValueError, match="built with embedder"):
        index_videos([sad], db, embedder="mobilefacenet-rafdb", progress=False)
    from emotrace.cli import app

    out = tmp_path / "idx"
    run = CliRunner().invoke(app, ["index", str(sad), str(bad_videos["text"]), "--db", str(out),
                                   "-q"])
    assert run.exit_code == 1 and "notes.mp4" in run.output
    assert "1 videos, 3 fragments" in run.output
    run = CliRunner().invoke(app, ["search", "--db", str(out), "--video", str(sad), "--at", "1",
                                   "-k", "2"])
    assert run.exit_code == 0 and "sadgirl_clip1.mp4" in run.output
    assert json.loads((out / "emotrace_index.json").read_text())["window"] == 1.0
