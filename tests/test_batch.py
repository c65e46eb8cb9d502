"""Batch processing: per-recording Parquet files, the manifest, resuming, Ray run locally."""

from __future__ import annotations

import os
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from emotrace.batch import read_manifest, run_batch

pytestmark = pytest.mark.slow  # every test analyses whole recordings

CLIPS = ["furious_talk2_clip1.mp4", "happyenglish_clip1.mp4", "sadgirl_clip1.mp4"]


@pytest.fixture()
def recordings(tmp_path, bad_videos, pyfeat_dir, styletalk_dir):
    """Four real recordings (one in a sub-folder), one whose second half is lost (partial) and
    a text file named .mp4 (failed)."""
    folder = tmp_path / "in"
    (folder / "day2").mkdir(parents=True)
    for name in CLIPS:
        shutil.copy(styletalk_dir / "style_clips" / name, folder / name)
    shutil.copy(pyfeat_dir / "single_face.mp4", folder / "day2" / "single_face.mp4")
    shutil.copy(bad_videos["truncated"], folder / "day2" / "broken.mp4")
    shutil.copy(bad_videos["text"], folder / "day2" / "notes.mp4")
    return folder


def _check_outputs(out, manifest: pd.DataFrame) -> None:
    assert len(manifest) == 6
    status = dict(zip(manifest["key"], manifest["status"], strict=True))
    assert status == {"furious_talk2_clip1.mp4": "done", "happyenglish_clip1.mp4": "done",
                      "sadgirl_clip1.mp4": "done", "day2/single_face.mp4": "done",
                      "day2/broken.mp4": "partial", "day2/notes.mp4": "failed"}
    broken = manifest[manifest["key"] == "day2/broken.mp4"].iloc[0]
    assert broken["reason"].startswith("decoded 228 of about 472 frames")
    assert (broken["frames_decoded"], broken["frames_expected"]) == (228, 472)
    notes = manifest[manifest["key"] == "day2/notes.mp4"].iloc[0]
    assert "not a readable video" in notes["reason"]
    assert not (out / "faces" / "day2" / "notes.mp4.parquet").exists()
    # every recording with a face in every frame: one face row per analysed frame
    for rec in manifest[manifest["status"] != "failed"].itertuples():
        df = pd.read_parquet(rec.output)
        assert len(df) == rec.frames == rec.faces > 0
    happy = pd.read_parquet(out / "faces" / "happyenglish_clip1.mp4.parquet")
    assert (happy["emotion"] == "happy").mean() > 0.8
    # nothing half-written is left behind
    assert not [p for p in out.rglob("*.part")]


def test_local_pool_writes_each_result_and_a_manifest(recordings, tmp_path):
    out = tmp_path / "out"
    summary = run_batch([recordings], out, engine="local", workers=2, fps=10, progress=False)
    assert (summary.total, summary.done, summary.failed, summary.skipped) == (6, 5, 1, 0)
    assert summary.partial == 1
    _check_outputs(out, read_manifest(out))


def test_rerun_skips_finished_and_redoes_changed(recordings, tmp_path):
    out = tmp_path / "out"
    run_batch([recordings], out, workers=1, fps=5, progress=False)
    again = run_batch([recordings], out, workers=1, fps=5, progress=False)
    assert (again.skipped, again.done, again.failed) == (5, 0, 1)  # the failed one is retried
    # a changed input is analysed again; so is one whose output went missing
    changed = recordings / "sadgirl_clip1.mp4"
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    (out / "faces" / "furious_talk2_clip1.mp4.parquet").unlink()
    third = run_batch([recordings], out, workers=1, fps=5, progress=False, retry_failed=False)
    assert (third.skipped, third.done, third.failed) == (4, 2, 0)
    _check_outputs(out, read_manifest(out))


def test_interrupted_run_resumes(recordings, tmp_path):
    out = tmp_path / "out"

    class Stop(Exception):
        pass

    def stop_after_two(record):
        if len(read_manifest(out)) == 2:
            raise Stop

    with pytest.raises(Stop):
        run_batch([recordings], out, workers=1, fps=5, progress=False, on_record=stop_after_two)
    first = read_manifest(out)
    assert len(first) == 2  # the manifest says exactly what was finished
    resumed = run_batch([recordings], out, workers=1, fps=5, progress=False)
    assert resumed.skipped == (first["status"] != "failed").sum()
    assert resumed.done + resumed.failed + resumed.skipped == 6
    _check_outputs(out, read_manifest(out))


def test_ray_engine_runs_locally(recordings, tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    summary = run_batch([recordings], out, engine="ray", workers=2, fps=10, progress=False)
    assert (summary.done, summary.failed) == (5, 1)
    manifest = read_manifest(out)
    _check_outputs(out, manifest)
    local = tmp_path / "local"
    run_batch([recordings], local, workers=1, fps=10, progress=False)
    a = pd.read_parquet(out / "faces" / "sadgirl_clip1.mp4.parquet")
    b = pd.read_parquet(local / "faces" / "sadgirl_clip1.mp4.parquet")
    assert (a["emotion"] == b["emotion"]).all()
    assert abs(a["happy"] - b["happy"]).max() < 1e-4


def test_cli_list_file_and_bad_settings(recordings, tmp_path):
    from emotrace.cli import app

    listing = tmp_path / "list.txt"
    listing.write_text(f"# two recordings\n{recordings / 'sadgirl_clip1.mp4'}\n"
                       "in/day2/broken.mp4\n")
    out = tmp_path / "out"
    run = CliRunner().invoke(app, ["batch", str(listing), "-o", str(out), "--fps", "5", "-q",
                                   "--workers", "1"])
    assert run.exit_code == 1
    assert f"partial: {recordings / 'day2' / 'broken.mp4'}: decoded" in run.output
    assert "2 analysed (1 partial), 0 failed" in run.output
    run = CliRunner().invoke(app, ["batch", str(listing), "-o", str(out), "--engine", "spark"])
    assert run.exit_code == 2 and "unknown engine 'spark'" in run.output
