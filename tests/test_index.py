"""Similar fragments: index real clips in LanceDB, search by a video moment and by an image."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from conftest import PYFEAT, STYLETALK
from typer.testing import CliRunner

from emotrace.errors import InputError
from emotrace.fragments import index_videos, read_index, search

pytest.importorskip("lancedb")
HAPPY = STYLETALK / "style_clips" / "happyenglish_clip1.mp4"  # 4.5 s, broadly happy
SAD = STYLETALK / "style_clips" / "sadgirl_clip1.mp4"  # 3 s, sad
ANGRY = STYLETALK / "style_clips" / "furious_talk2_clip1.mp4"  # 2 s, angry


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    folder = tmp_path_factory.mktemp("index")
    added, failures = index_videos([HAPPY, SAD, ANGRY], folder, progress=False)
    assert added == 5 + 3 + 2 and not failures  # one 1-s fragment per second of each track
    return folder


def test_index_holds_fragments_with_times(db):
    table, meta = read_index(db)
    assert meta == {"embedder": "emotrace-ferplus8", "window": 1.0, "fps": 10.0}
    happy = table[table["source"] == str(HAPPY)].sort_values("start")
    assert happy["start"].tolist() == [0, 1, 2, 3, 4] and (happy["dominant"] == "happy").all()
    assert (table[table["source"] == str(SAD)]["dominant"] == "sad").all()
    # re-indexing a video replaces its fragments
    index_videos([SAD], db, progress=False)
    assert len(read_index(db)[0]) == 10


def test_search_by_video_moment(db):
    hits = search(db, video=HAPPY, at=2.0, k=4)
    assert hits.loc[0, "source"] == str(HAPPY) and hits.loc[0, "start"] == 2.0
    assert hits.loc[0, "similarity"] > 0.99  # the moment itself
    assert (hits["dominant"] == "happy").all()  # the nearest fragments are the happy ones


def test_search_by_image(db):
    hits = search(db, image=PYFEAT / "0-f15-hao-ph.jpg", k=3)  # a broad smile
    assert hits.loc[0, "dominant"] == "happy" and str(HAPPY) in set(hits["source"])


def test_errors(db, tmp_path, bad_videos):
    with pytest.raises(InputError, match="not a fragment index"):
        search(tmp_path, image=PYFEAT / "single_face.jpg")
    with pytest.raises(ValueError, match="--video FILE --at SECONDS, or --image FILE"):
        search(db, video=HAPPY)
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 128, np.uint8))
    with pytest.raises(InputError, match="blank.png: no face found"):
        search(db, image=blank)
    with pytest.raises(InputError, match="not a readable image"):
        search(db, image=PYFEAT / "no_face.mp4")
    with pytest.raises(ValueError, match="built with embedder"):
        index_videos([SAD], db, embedder="mobilefacenet-rafdb", progress=False)
    from emotrace.cli import app

    out = tmp_path / "idx"
    run = CliRunner().invoke(app, ["index", str(SAD), str(bad_videos["text"]), "--db", str(out),
                                   "-q"])
    assert run.exit_code == 1 and "notes.mp4" in run.output
    assert "1 videos, 3 fragments" in run.output
    run = CliRunner().invoke(app, ["search", "--db", str(out), "--video", str(SAD), "--at", "1",
                                   "-k", "2"])
    assert run.exit_code == 0 and "sadgirl_clip1.mp4" in run.output
    assert json.loads((out / "emotrace_index.json").read_text())["window"] == 1.0
