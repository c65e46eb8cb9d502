"""SIGTERM and SIGKILL in the middle of `emotrace video`, `batch` and `highlights` (issue 15).

Each command runs as a child process on real clips copied into tmp_path and is stopped while
its work is under way: frames advancing on its progress bar, a task finished and others
running, the trailer's temporary file being written. After SIGTERM the command ends within
seconds with one line and exit 143, and leaves no temporary file; after SIGKILL nothing can
run, and no file under a final name is anything but whole. Either way a second run gives what
an uninterrupted run gives.
"""

from __future__ import annotations

import importlib.util
import shutil
import signal
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from faults import Run, alive, assert_same_faces, children, emotrace, temporaries

pytestmark = [pytest.mark.slow, pytest.mark.needs_shared,  # whole videos, several runs each
              pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")]

CLIP = "WolfgangLanger_Pexels.mp4"  # 472 frames, 640x360, one face throughout
STEM = Path(CLIP).stem
INTERRUPTED = "interrupted by SIGTERM: finished outputs are kept, unfinished ones removed"
BATCH_CLIPS = ["furious_talk2_clip1.mp4", "nice_clip1.mp4", "sad_emotion_clip1.mp4",
               "sadfather_clip1.mp4", "trump_clip1.mp4"]  # 2 to 8.5 s each


def _last_line(run: Run) -> str:
    return run.stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def clip(tmp_path_factory, pyfeat_dir) -> Path:
    path = tmp_path_factory.mktemp("in") / CLIP
    shutil.copy(pyfeat_dir / CLIP, path)
    return path


@pytest.fixture(scope="module")
def video_reference(tmp_path_factory, clip) -> Path:
    """The uninterrupted run's output folder."""
    out = tmp_path_factory.mktemp("video_ref")
    done = emotrace(["video", clip, "-o", out, "--annotate", "-q"])
    assert done.returncode == 0, done.stderr
    return out


def _rerun_matches(clip: Path, out: Path, reference: Path) -> None:
    done = emotrace(["video", clip, "-o", out, "--annotate", "-q"])
    assert done.returncode == 0, done.stderr
    assert_same_faces(out / f"{STEM}.faces.parquet", reference / f"{STEM}.faces.parquet")
    for name in (f"{STEM}.faces.csv", f"{STEM}.tracks.csv"):
        assert len(pd.read_csv(out / name)) == len(pd.read_csv(reference / name))
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in reference.iterdir())


def test_sigterm_mid_video_removes_the_unfinished_video_and_says_so(clip, video_reference,
                                                                     tmp_path):
    out = tmp_path / "out"
    run = Run(["video", clip, "-o", out, "--annotate"])
    run.wait_until(lambda: run.frames() >= 100)  # of 472: frames are being analysed and drawn
    assert (out / f".{STEM}.annotated.mp4.part.mp4").is_file()
    code, seconds = run.stop(signal.SIGTERM)
    assert code == 143 and seconds < 10, run.stderr[-2000:]
    assert _last_line(run) == INTERRUPTED and "Traceback" not in run.stderr
    assert list(out.iterdir()) == []  # the annotated video's temporary file too
    _rerun_matches(clip, out, video_reference)


def test_sigkill_mid_video_leaves_only_a_temporary_file(clip, video_reference, tmp_path):
    out = tmp_path / "out"
    run = Run(["video", clip, "-o", out, "--annotate"])
    run.wait_until(lambda: run.frames() >= 100)
    code, _ = run.stop(signal.SIGKILL)
    assert code == -signal.SIGKILL
    # nothing under a final name; the video's temporary file, hidden, is what a rerun reuses
    assert [p.name for p in out.iterdir()] == [f".{STEM}.annotated.mp4.part.mp4"]
    _rerun_matches(clip, out, video_reference)
    assert temporaries(out) == []


# -- batch -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def recordings(tmp_path_factory, styletalk_dir) -> Path:
    folder = tmp_path_factory.mktemp("recordings")
    for name in BATCH_CLIPS:
        shutil.copy(styletalk_dir / "style_clips" / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def batch_reference(tmp_path_factory, recordings) -> Path:
    out = tmp_path_factory.mktemp("batch_ref")
    done = emotrace(["batch", recordings, "-o", out, "--workers", "2", "--fps", "10", "-q"])
    assert done.returncode == 0, done.stderr
    return out


def _stopped_batch(recordings: Path, out: Path, sig: int) -> tuple[Run, int, float]:
    """A two-worker batch stopped by `sig` once one recording is finished (and two running);
    its workers and their resource tracker are checked to have ended."""
    run = Run(["batch", recordings, "-o", out, "--workers", "2", "--fps", "10"])
    run.wait_until(lambda: (out / "manifest.csv").is_file())
    workers = children(run.proc.pid)
    assert len(workers) >= 2, workers  # two workers (and multiprocessing's resource tracker)
    code, seconds = run.stop(sig)
    deadline = time.monotonic() + 15
    while alive(workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(workers), {pid: workers[pid] for pid in alive(workers)}
    return run, code, seconds


def _check_batch_left(out: Path, recordings: Path, reference: Path) -> None:
    """Every Parquet file whole, the manifest accurate, and a rerun finishing the rest."""
    assert temporaries(out) == []
    manifest = pd.read_csv(out / "manifest.csv")
    assert 1 <= len(manifest) < len(BATCH_CLIPS) and set(manifest["status"]) == {"done"}
    for path in (out / "faces").glob("*.parquet"):  # whole: each reads, one row per frame
        assert len(pd.read_parquet(path)) > 0
    listed = {Path(p).name for p in manifest["output"]}
    assert listed <= {p.name for p in (out / "faces").glob("*.parquet")}
    done = emotrace(["batch", recordings, "-o", out, "--workers", "2", "--fps", "10", "-q"])
    assert done.returncode == 0, done.stderr
    assert f"{len(BATCH_CLIPS)} recordings: {len(manifest)} already done" in done.stderr
    for name in BATCH_CLIPS:
        assert_same_faces(out / "faces" / f"{name}.parquet",
                          reference / "faces" / f"{name}.parquet")
    cols = ["key", "status", "frames", "faces", "frames_decoded", "frames_expected"]
    pd.testing.assert_frame_equal(pd.read_csv(out / "manifest.csv")[cols],
                                  pd.read_csv(reference / "manifest.csv")[cols])


def test_sigterm_mid_batch_stops_its_workers_and_a_rerun_finishes(recordings, batch_reference,
                                                                 tmp_path):
    out = tmp_path / "out"
    run, code, seconds = _stopped_batch(recordings, out, signal.SIGTERM)
    assert code == 143 and seconds < 10, run.stderr[-2000:]  # the running tasks are not awaited
    assert _last_line(run) == INTERRUPTED and "Traceback" not in run.stderr
    assert "leaked" not in run.stderr  # no warning of multiprocessing's resource tracker
    _check_batch_left(out, recordings, batch_reference)


def test_sigkill_mid_batch_ends_its_workers_too(recordings, batch_reference, tmp_path):
    out = tmp_path / "out"
    _, code, _ = _stopped_batch(recordings, out, signal.SIGKILL)  # the workers: via PDEATHSIG
    assert code == -signal.SIGKILL
    _check_batch_left(out, recordings, batch_reference)


# -- highlights ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def viewers(tmp_path_factory, styletalk_dir, pyfeat_dir) -> list[str]:
    """Two viewer recordings (calm, then reacting during seconds 6-11 and 14-16.5 of the
    episode) and the options for them: offsets, the episode (--content), 5 frames/s."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "make_reactions.py"
    spec = importlib.util.spec_from_file_location("make_reactions", script)
    make = importlib.util.module_from_spec(spec)
    sys.modules["make_reactions"] = make  # dataclasses look their module up there
    spec.loader.exec_module(make)
    folder = tmp_path_factory.mktemp("viewers")
    chosen = make.VIEWERS[:2]
    paths = [str(make.build(v, folder / f"{v.name}.mp4")) for v in chosen]
    return [*paths, "--offsets", ",".join(str(v.offset) for v in chosen),
            "--content", str(pyfeat_dir / CLIP), "--fps", "5"]


def test_sigterm_while_the_trailer_is_cut_leaves_nothing_and_a_rerun_matches(viewers,
                                                                             tmp_path):
    reference = tmp_path / "reference"
    done = emotrace(["highlights", *viewers, "-o", reference, "-q"])
    assert done.returncode == 0, done.stderr
    assert (reference / "trailer.mp4").is_file()
    out = tmp_path / "out"
    run = Run(["highlights", *viewers, "-o", out, "-q"])
    run.wait_until(lambda: out.is_dir() and temporaries(out)
                   and "ffmpeg" in "".join(children(run.proc.pid).values()))
    ffmpeg = children(run.proc.pid)
    code, seconds = run.stop(signal.SIGTERM)
    assert code == 143 and seconds < 10, run.stderr[-2000:]
    assert _last_line(run) == INTERRUPTED and "Traceback" not in run.stderr
    assert not alive(ffmpeg)  # the trailer's ffmpeg was stopped with it
    # the viewers' face tables, finished before the trailer, are kept (a rerun reads them);
    # none of the highlights files (moments.csv, written first, waited for the others)
    assert sorted(p.name for p in out.iterdir()) == ["faces", "manifest.csv"]
    assert temporaries(out) == []
    done = emotrace(["highlights", *viewers, "-o", out, "-q"])
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in reference.iterdir())
    pd.testing.assert_frame_equal(pd.read_csv(out / "moments.csv"),
                                  pd.read_csv(reference / "moments.csv"))
