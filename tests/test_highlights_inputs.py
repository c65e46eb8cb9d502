"""Highlights from recordings or from their tables, viewers.csv, several viewers in one camera
(issue 16, items 1, 6 and 8), on recordings built from real clips by scripts/make_reactions.py.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner
from videos import write_video

from emotrace.errors import InputError
from emotrace.highlights import find_highlights, read_viewers_csv
from emotrace.highlights.faces import BatchEngine
from emotrace.highlights.inputs import read_face_table, viewer_name

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_reactions.py"
spec = importlib.util.spec_from_file_location("make_reactions", SCRIPT)
make_reactions = importlib.util.module_from_spec(spec)
sys.modules["make_reactions"] = make_reactions
spec.loader.exec_module(make_reactions)
MODEL = ["--model", "emotrace-ferplus8", "--fps", "5", "--pad", "0", "-q"]


@pytest.fixture(scope="module")
def two(tmp_path_factory, styletalk_dir):
    folder = tmp_path_factory.mktemp("two")
    viewers = make_reactions.VIEWERS[:2]
    return [make_reactions.build(v, folder / f"{v.name}.mp4") for v in viewers], \
        ",".join(f"{v.offset:g}" for v in viewers)


@pytest.fixture(scope="module")
def from_videos(two, tmp_path_factory):
    from emotrace.cli import app

    paths, offsets = two
    out = tmp_path_factory.mktemp("from_videos")
    run = CliRunner().invoke(app, ["highlights", *map(str, paths), "--offsets", offsets,
                                   "-o", str(out), *MODEL])
    assert run.exit_code == 0, run.output
    return out


def _bounds(out: Path) -> list[tuple[float, float]]:
    doc = json.loads((out / "moments.json").read_text())
    return [(m["start"], m["end"]) for m in doc["moments"]]


@pytest.mark.slow
def test_moments_from_tables_equal_moments_from_videos(from_videos, two, tmp_path):
    from emotrace.cli import app

    manifest = pd.read_csv(from_videos / "manifest.csv")
    assert list(manifest["status"]) == ["done", "done"] and set(manifest["fps"]) == {5}
    tables = sorted((from_videos / "faces").glob("*.parquet"))
    assert [viewer_name(t) for t in tables] == ["viewer1", "viewer2"]
    run = CliRunner().invoke(app, ["highlights", *map(str, tables), "--offsets", two[1],
                                   "-o", str(tmp_path), *MODEL])
    assert run.exit_code == 0, run.output
    assert "settings differ" not in run.output
    videos, from_tables = _bounds(from_videos), _bounds(tmp_path)
    assert len(videos) == 2 and np.allclose(videos, from_tables, atol=0.05)
    assert not (tmp_path / "manifest.csv").exists()  # nothing was analysed


@pytest.mark.slow
def test_a_second_run_reads_the_tables_instead_of_analysing_again(from_videos, two):
    from emotrace.cli import app

    paths, offsets = two
    before = pd.read_csv(from_videos / "manifest.csv")
    run = CliRunner().invoke(app, ["highlights", *map(str, paths), "--offsets", offsets,
                                   "-o", str(from_videos), *MODEL, "--top", "1"])
    assert run.exit_code == 0, run.output
    after = pd.read_csv(from_videos / "manifest.csv")
    assert list(after["finished"]) == list(before["finished"])  # not analysed again
    assert len(_bounds(from_videos)) == 1


@pytest.mark.slow
def test_a_table_analysed_otherwise_is_used_and_the_difference_said(from_videos, tmp_path):
    from emotrace.cli import app

    table = sorted((from_videos / "faces").glob("*.parquet"))[0]
    run = CliRunner().invoke(app, ["highlights", str(table), "-o", str(tmp_path), "-q",
                                   "--fps", "10"])
    assert run.exit_code == 0, run.output
    assert "settings differ" in run.output and "fps 5 (this run: 10)" in run.output
    assert "model emotrace-ferplus8 (this run: emotrace-ferplus8-distill)" in run.output
    doc = json.loads((tmp_path / "moments.json").read_text())
    assert "fps 5" in doc["settings_differ"][0]["problem"]


@pytest.mark.slow
def test_viewers_csv_names_offsets_and_groups(from_videos, tmp_path):
    tables = sorted((from_videos / "faces").glob("*.parquet"))
    csv = tmp_path / "viewers.csv"
    pd.DataFrame({"recording": [str(t.relative_to(from_videos)) for t in tables],
                  "viewer": ["anna", "ben"], "offset": ["0", "1.5"],
                  "age": ["18-34", "35-54"]}).to_csv(csv, index=False)
    (tmp_path / "faces").symlink_to(from_videos / "faces")  # paths are relative to the CSV
    viewers = read_viewers_csv(csv)
    assert [(v.name, v.offset, dict(v.groups)) for v in viewers] == [
        ("anna", 0.0, {"age": "18-34"}), ("ben", 1.5, {"age": "35-54"})]
    result = find_highlights(viewers, fps=5, model="emotrace-ferplus8", progress=False)
    assert [(v.name, v.offset, v.groups) for v in result.viewers] == [
        ("anna", 0.0, {"age": "18-34"}), ("ben", 1.5, {"age": "35-54"})]
    from emotrace.cli import app

    run = CliRunner().invoke(app, ["highlights", "--viewers", str(csv), "-o",
                                   str(tmp_path / "out"), *MODEL])
    assert run.exit_code == 0, run.output
    doc = json.loads((tmp_path / "out" / "moments.json").read_text())
    assert [v["name"] for v in doc["viewers"]] == ["anna", "ben"]
    assert {(g["column"], g["value"]) for g in doc["groups"]} == {("age", "18-34"),
                                                                   ("age", "35-54")}
    # one viewer per group: shown, but never called different
    assert doc["group_differences"] and not any(d["differ"] for d in doc["group_differences"])
    curves = pd.read_csv(tmp_path / "out" / "groups.csv")
    assert set(curves["value"]) == {"18-34", "35-54"} and curves["score"].notna().any()


def test_viewers_csv_problems_are_one_line(tmp_path):
    csv = tmp_path / "v.csv"
    for text, problem in [("file,name\na.mp4,x\n", "needs a 'recording' column"),
                          ("recording\n", "lists no viewer"),
                          ("recording,viewer\na.mp4,x\nb.mp4,x\n", "repeated: x"),
                          ("recording,offset\na.mp4,soon\n", "row 2: offset must be seconds")]:
        csv.write_text(text)
        with pytest.raises(InputError, match=problem):
            read_viewers_csv(csv)


def test_highlights_needs_recordings_or_viewers_not_both(tmp_path):
    from emotrace.cli import app

    run = CliRunner().invoke(app, ["highlights", "-o", str(tmp_path / "o")])
    assert run.exit_code == 2 and "no recording given" in run.output
    csv = tmp_path / "v.csv"
    csv.write_text("recording\na.mp4\n")
    run = CliRunner().invoke(app, ["highlights", "a.mp4", "--viewers", str(csv)])
    assert run.exit_code == 2 and "not both" in run.output


def test_a_file_that_is_not_a_face_table_is_named(tmp_path):
    bad = tmp_path / "x.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(bad)
    with pytest.raises(InputError, match="not an emotrace face table"):
        read_face_table(bad)
    (tmp_path / "y.parquet").write_text("text")
    with pytest.raises(InputError, match="not a readable Parquet"):
        read_face_table(tmp_path / "y.parquet")


def test_batch_analyses_again_when_the_frame_rate_or_model_changes(two, tmp_path):
    from emotrace.batch import run_batch

    path = two[0][0]
    first = run_batch([path], tmp_path, fps=2, model="emotrace-ferplus8", progress=False)
    again = run_batch([path], tmp_path, fps=2, model="emotrace-ferplus8", progress=False)
    other = run_batch([path], tmp_path, fps=3, model="emotrace-ferplus8", progress=False)
    assert (first.done, again.skipped, other.done) == (1, 1, 1)
    table = read_face_table(next((tmp_path / "faces").glob("*.parquet")))
    assert table.settings["fps"] == 3 and table.settings["model"] == "emotrace-ferplus8"


def _side_by_side(left: Path, right: Path, out: Path, seconds: float = 6.0) -> Path:
    """Two real talking-head clips side by side in one 512x256 video: two viewers, one camera."""
    with av.open(str(left)) as a, av.open(str(right)) as b:
        pairs = zip(a.decode(video=0), b.decode(video=0), strict=False)
        return write_video(out, (np.hstack([fa.to_ndarray(format="bgr24"),
                                            fb.to_ndarray(format="bgr24")])
                                 for _, (fa, fb) in zip(range(int(seconds * 30)), pairs)))


def test_all_faces_makes_each_person_in_one_camera_a_viewer(styletalk_dir, tmp_path):
    video = _side_by_side(styletalk_dir / "source_video" / "Obama_clip1.mp4",
                          styletalk_dir / "source_video" / "KristiNoem.mp4",
                          tmp_path / "couch.mp4")
    engine = BatchEngine(tmp_path / "out", workers=1)
    one = find_highlights([video], fps=5, progress=False, engine=engine)
    both = find_highlights([video], fps=5, progress=False, engine=engine, all_faces=True)
    assert [v.name for v in one.viewers] == ["couch"]
    assert sorted(v.name for v in both.viewers) == ["couch#1", "couch#2"]
    places = [float(v.table["presence"].mean()) for v in both.viewers]
    assert min(places) > 0.9  # both faces in view the whole time
