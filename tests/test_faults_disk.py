"""A full disk, or an output larger than a file may be (issue 15).

The size limit is a file size limit (`ulimit -f`, RLIMIT_FSIZE) on the child process, with
SIGXFSZ ignored so that a write past it fails with EFBIG, "File too large", as a write to a
full disk fails with ENOSPC; each limit is set between the sizes of the outputs an earlier
run wrote, so that the write that fails is known. Where this process may mount a small
tmpfs (root, with CAP_SYS_ADMIN), a real ENOSPC is tried too. Every case: one line naming the
file, exit 1, no temporary file left, and an earlier run's files as they were.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from faults import emotrace, error_lines, snapshot, temporaries

CLIP = "WolfgangLanger_Pexels.mp4"  # 472 frames: faces.parquet ~87 KB, faces.csv ~124 KB
STEM = Path(CLIP).stem
PHOTOS = ["0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg",
          "multi_face.jpg", "single_face.jpg"]


def _failed_writing(done: subprocess.CompletedProcess, path: Path,
                    problem: str = "File too large") -> None:
    assert done.returncode == 1, done.stderr
    assert error_lines(done.stderr) == [f"error: {path}: {problem}"], done.stderr
    assert "Traceback" not in done.stderr


# -- images ----------------------------------------------------------------------------------
@pytest.fixture()
def photos(tmp_path, pyfeat_dir) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in PHOTOS:
        shutil.copy(pyfeat_dir / name, folder / name)
    return folder


@pytest.mark.needs_shared
@pytest.mark.parametrize("name", ["predictions.csv", "predictions.parquet"])
def test_images_output_too_big_leaves_the_previous_one(photos, tmp_path, name):
    out = tmp_path / "out"
    output = out / name
    assert emotrace(["images", photos, "-o", output, "-q"]).returncode == 0
    before = snapshot(out)
    done = emotrace(["images", photos, "-o", output, "-q"],
                    max_file_bytes=output.stat().st_size // 2)
    _failed_writing(done, output)
    assert snapshot(out) == before  # the previous predictions, as they were; no temporary


# -- video -----------------------------------------------------------------------------------
@pytest.fixture()
def earlier_video_run(tmp_path, pyfeat_dir) -> tuple[Path, Path]:
    """A clip and an output folder holding an earlier run's outputs (annotated video too)."""
    clip = tmp_path / CLIP
    shutil.copy(pyfeat_dir / CLIP, clip)
    out = tmp_path / "out"
    done = emotrace(["video", clip, "-o", out, "--annotate", "-q"])
    assert done.returncode == 0, done.stderr
    return clip, out


@pytest.mark.slow
def test_video_table_too_big_leaves_the_earlier_outputs(earlier_video_run):
    clip, out = earlier_video_run
    parquet, csv = out / f"{STEM}.faces.parquet", out / f"{STEM}.faces.csv"
    assert parquet.stat().st_size < csv.stat().st_size
    before = snapshot(out)
    # the Parquet table fits, the CSV table does not
    limit = (parquet.stat().st_size + csv.stat().st_size) // 2
    _failed_writing(emotrace(["video", clip, "-o", out, "-q"], max_file_bytes=limit), csv)
    assert snapshot(out) == before  # the new Parquet table, written, waited for the CSV


@pytest.mark.slow
def test_video_annotated_video_too_big_leaves_the_earlier_outputs(earlier_video_run):
    clip, out = earlier_video_run
    video = out / f"{STEM}.annotated.mp4"
    tables = max(p.stat().st_size for p in out.iterdir() if p != video)
    before = snapshot(out)
    limit = (tables + video.stat().st_size) // 2  # every table fits, the video does not
    done = emotrace(["video", clip, "-o", out, "--annotate", "-q"], max_file_bytes=limit)
    _failed_writing(done, video)  # named as the user knows it, not its temporary file
    assert snapshot(out) == before


@pytest.mark.slow
@pytest.mark.needs_shared
def test_video_on_a_full_tmpfs_says_no_space_and_leaves_nothing(tmp_path, pyfeat_dir):
    small = tmp_path / "small"
    small.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(small)],
                           capture_output=True, text=True, check=False)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        out = small / "out"
        done = emotrace(["video", pyfeat_dir / CLIP, "-o", out, "-q"])
        assert done.returncode == 1, done.stderr
        # the Parquet table (~87 KB) fits in 160 KB, the CSV table (~124 KB) beside it does not
        assert error_lines(done.stderr) == [
            f"error: {out}/{STEM}.faces.csv: No space left on device"], done.stderr
        assert "Traceback" not in done.stderr
        assert snapshot(out) == {}
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)


# -- batch -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_batch_output_too_big_stops_and_leaves_the_earlier_results(tmp_path, styletalk_dir):
    recordings = tmp_path / "in"
    recordings.mkdir()
    for name in ("furious_talk2_clip1.mp4", "furious_talk2_clip2.mp4"):  # 2 s each
        shutil.copy(styletalk_dir / "style_clips" / name, recordings / name)
    out = tmp_path / "out"
    assert emotrace(["batch", recordings, "-o", out, "--workers", "1", "-q"]).returncode == 0
    earlier = (out / "manifest.csv").read_text().splitlines()  # a header and two records
    before = snapshot(out / "faces")
    for name in ("nice_clip1.mp4", "trump_clip1.mp4"):  # 8.5 s, 8 s: tables twice as large
        shutil.copy(styletalk_dir / "style_clips" / name, recordings / name)
    limit = max(size for size, _, _ in before.values()) * 3 // 2
    done = emotrace(["batch", recordings, "-o", out, "--workers", "1", "-q"],
                    max_file_bytes=limit)
    _failed_writing(done, out / "faces" / "nice_clip1.mp4.parquet")
    assert snapshot(out / "faces") == before and temporaries(out) == []
    assert (out / "manifest.csv").read_text().splitlines()[:3] == earlier  # as they were
    manifest = pd.read_csv(out / "manifest.csv")
    failed = manifest.iloc[2]  # the batch stopped there: trump_clip1 was not started
    assert len(manifest) == 3 and failed["key"] == "nice_clip1.mp4"
    assert (failed["status"], failed["reason"]) == ("failed", "cannot write its output: "
                                                              "File too large")
    done = emotrace(["batch", recordings, "-o", out, "--workers", "1", "-q"])  # room again
    assert done.returncode == 0 and "4 recordings: 2 already done, 2 analysed" in done.stderr
