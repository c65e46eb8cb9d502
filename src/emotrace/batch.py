"""Many recordings: one task per recording, resumable, on a process pool or a Ray cluster.

    emotrace batch RECORDINGS_DIR -o OUT --workers 2              # this machine
    emotrace batch list.txt -o OUT --engine ray                   # Ray, started locally
    emotrace batch list.txt -o OUT --engine ray --ray-address HOST:6379   # an existing cluster

Each recording's per-face table is written to `OUT/faces/<key>.parquet` atomically (a temporary
name renamed into place), so a file under its final name is always whole. The key is the
recording's path below the inputs' common folder, suffix included (`day2/a.mp4` ->
`faces/day2/a.mp4.parquet`), so `a.mp4` and `a.mov` in one folder get files of their own.
`OUT/manifest.csv` lists every recording with its status (`done`; `partial`, with the reason,
when the recording ended early or broke part way: the frames that decoded are analysed and
written, their count in `frames_decoded` against the header's `frames_expected`; or `failed`
with the reason), frames, faces, seconds and the worker that did it; it is rewritten
(atomically) after every finished task, so an interrupted run leaves an accurate manifest. A
rerun skips recordings that are done or partial, whose Parquet file exists and whose input has
not changed (size and modification time), and retries the rest. A manifest written before
keys kept the suffix (key `day2/a`) is taken over: each of its records goes to the recording
with the same path and the new key, and a finished one's Parquet file is renamed to match;
where two recordings shared an old key (and so one output file) both are analysed again.

A Parquet file that cannot be written (a full disk) ends the batch: its recording is recorded
as failed (`cannot write its output: ...`) and `run_batch` raises the OSError naming the file,
as every later task would fail the same way. Interrupted (Ctrl-C, or SIGTERM where the
`emotrace` command makes it raise), or stopped by any exception, the local pool ends its
running tasks at once rather than waiting for them; each removes its temporary file. On Linux a
pool worker also ends when the batch process dies, even by SIGKILL (`emotrace.pool`).

On a cluster, the inputs and OUT must be on storage every node can read and write (a shared
file system or mounted bucket): the workers read the videos and write the Parquet files
themselves, and only the small per-task records travel back to the driver. A task whose worker
dies (killed, out of memory, its node lost) is run once more, from the start; if that dies too
the recording is `failed` with a one-line reason and a rerun tries it again. Tasks are named
`emotrace:<key>`, which is also the worker's process title (`ray::emotrace:<key>`) while it runs.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from emotrace import models
from emotrace.errors import InputError, path_text
from emotrace.outputs.files import write_csv, write_parquet
from emotrace.pool import run_in_pool

ENGINES = ("local", "ray")
MANIFEST_COLUMNS = ["key", "path", "status", "reason", "output", "frames", "faces", "seconds",
                    "elapsed", "size", "mtime_ns", "worker", "finished", "frames_decoded",
                    "frames_expected", "fps", "model"]
KEPT = ("done", "partial")  # statuses whose Parquet file holds the recording's result
# A Ray task whose worker dies (killed, out of memory, its node lost) is run once more; one
# that dies again is recorded as failed, and a rerun tries it again.
RAY_RETRIES = 1


@dataclass(frozen=True)
class Job:
    """One recording to analyse: where it is, its output key, and analysis settings."""

    key: str  # the path below the inputs' common folder, suffix kept; OUT/faces/<key>.parquet
    path: str
    output: str
    size: int
    mtime_ns: int
    fps: float | None = None
    model: str = models.DEFAULT_CLASSIFIER
    threads: int = 1


def collect_inputs(inputs: Iterable[str | Path], suffixes: set[str]) -> list[Path]:
    """Video files from folders (recursive), text files listing paths (one per line, `#`
    comments), or files given directly; in a stable order, duplicates removed."""
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found.extend(sorted(p for p in item.rglob("*") if p.suffix.lower() in suffixes))
        elif item.suffix.lower() in {".txt", ".lst", ".list"}:
            for line in item.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    path = Path(line)
                    found.append(path if path.is_absolute() else item.parent / path)
        else:
            found.append(item)
    seen, out = set(), []
    for p in found:
        resolved = _resolved(p)
        if resolved not in seen:
            seen.add(resolved)
            out.append(resolved)
    return out


def _resolved(path: Path) -> Path:
    """`path` with its symbolic links resolved; one that loops, as given (made absolute): its
    task then fails with a line saying so, instead of the whole batch with RuntimeError."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):  # a loop: RuntimeError before Python 3.13, OSError after
        return Path(os.path.abspath(path))


def make_jobs(paths: list[Path], outdir: Path, fps: float | None, model: str,
              threads: int) -> list[Job]:
    """One job per path; keys are the paths below their common folder, suffix kept."""
    root = Path(os.path.commonpath([str(p.parent) for p in paths])) if paths else Path()
    jobs = []
    for p in paths:
        key = path_text(p.relative_to(root).as_posix())  # a name Arrow and CSV can hold
        try:
            st = p.stat()
            size, mtime_ns = st.st_size, st.st_mtime_ns
        except OSError:
            size, mtime_ns = -1, 0
        jobs.append(Job(key, str(p), str(outdir / "faces" / f"{key}.parquet"), size, mtime_ns,
                        fps, model, threads))
    return jobs


# -- the task (runs in a worker process: a pool process or a Ray worker) -------------------
_ANALYZERS: dict[tuple[str, int], object] = {}


def _analyzer(model: str, threads: int):
    """One Analyzer per worker process and model, loaded on first use and kept."""
    from emotrace.pipeline import Analyzer

    key = (model, threads)
    if key not in _ANALYZERS:
        _ANALYZERS[key] = Analyzer(classifier=model, threads=threads)
    return _ANALYZERS[key]


class _OutputFailed(OSError):
    """A recording's Parquet file could not be written (a full disk, a file size limit)."""


def run_job(job: Job) -> dict:
    """Analyse one recording and write its Parquet file; never raises for bad input."""
    started = time.perf_counter()
    record = {"key": job.key, "path": path_text(job.path), "output": job.output,
              "size": job.size, "mtime_ns": job.mtime_ns,
              "worker": f"{socket.gethostname()}:{os.getpid()}", "fps": job.fps,
              "model": job.model}
    try:
        analysis = _analyzer(job.model, job.threads).analyze_video(job.path, fps=job.fps,
                                                                   progress=False)
        df = analysis.to_pandas()
        df.attrs.update(analysis.completeness())
        try:
            write_parquet(df, job.output)
        except OSError as exc:
            raise _OutputFailed(exc.errno, exc.strerror) from exc
        record.update(status="partial" if analysis.partial else "done",
                      reason=analysis.partial_problem(), frames=len(analysis.frames),
                      faces=int((df["face"] >= 0).sum()), seconds=analysis.info.duration,
                      frames_decoded=analysis.frames_decoded,
                      frames_expected=analysis.frames_expected)
    except InputError as exc:
        record.update(status="failed", reason=exc.problem)
    except _OutputFailed as exc:  # not the recording's fault: run_batch stops the batch
        record.update(status="failed", reason=f"cannot write its output: {exc.strerror}",
                      write_error=(exc.errno, exc.strerror))
    except Exception as exc:  # noqa: BLE001 -- one recording's failure must not end the batch
        record.update(status="failed", reason=f"{type(exc).__name__}: {exc}")
    record["elapsed"] = round(time.perf_counter() - started, 3)
    record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    return record


# -- engines ---------------------------------------------------------------------------------
def _run_local(jobs: list[Job], workers: int) -> Generator[dict, None, None]:
    if workers == 1:  # no pool: simpler to debug, same results
        for job in jobs:
            yield run_job(job)
        return
    for job, future in run_in_pool(run_job, jobs, workers):
        try:
            yield future.result()
        except Exception as exc:  # noqa: BLE001 -- a worker died (e.g. out of memory)
            yield {**_failed(job), "reason": f"worker died: {type(exc).__name__}: {exc}"}


def _run_ray(jobs: list[Job], workers: int | None,
             address: str | None) -> Generator[dict, None, None]:
    try:
        import ray
    except ImportError:
        raise RuntimeError("--engine ray needs Ray: pip install 'emotrace[ray]'") from None
    env = {k: v for k, v in os.environ.items() if k.startswith("EMOTRACE_")}
    started_here = not ray.is_initialized()
    if started_here:
        kwargs: dict[str, Any] = {"address": address, "runtime_env": {"env_vars": env},
                  "log_to_driver": False, "include_dashboard": False}
        if address is None and workers:
            kwargs["num_cpus"] = workers  # a local Ray: one task per worker at a time
        ray.init(**{k: v for k, v in kwargs.items() if v is not None})
    try:
        task = ray.remote(num_cpus=1, max_retries=RAY_RETRIES)(run_job)
        # named after the recording: `ray::emotrace:<key>` is the worker's process title while it
        # runs, and the name in `ray list tasks`, so one can see (or stop) who analyses what
        pending = {task.options(name=f"emotrace:{job.key}").remote(job): job for job in jobs}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                job = pending.pop(ref)
                try:
                    yield ray.get(ref)
                except Exception as exc:  # noqa: BLE001 -- a worker or node died
                    yield {**_failed(job), "reason": ray_failure(exc)}
    finally:
        if started_here:
            ray.shutdown()


def ray_failure(exc: BaseException) -> str:
    """One line for a task Ray could not finish (run_job itself never raises): what died, and
    that Ray already tried again; Ray's own messages point to log files and span lines."""
    from ray import exceptions as rex

    tried = f"{RAY_RETRIES + 1} attempts; a rerun tries it again"
    if isinstance(exc, rex.OutOfMemoryError):
        return f"Ray stopped the worker analysing it: the node ran out of memory ({tried})"
    if isinstance(exc, rex.WorkerCrashedError):
        return f"the Ray worker analysing it died: killed, crashed or out of memory ({tried})"
    if isinstance(exc, (rex.NodeDiedError, rex.LocalRayletDiedError)):
        return f"the Ray node analysing it died or was lost ({tried})"
    if isinstance(exc, rex.RayTaskError) and exc.cause is not None:
        exc = exc.cause  # e.g. a worker that cannot import emotrace: its ModuleNotFoundError
    lines = str(exc).strip().splitlines()
    return f"Ray could not run it: {type(exc).__name__}" + (f": {lines[0]}" if lines else "")


def _failed(job: Job) -> dict:
    return {"key": job.key, "path": path_text(job.path), "output": job.output, "size": job.size,
            "mtime_ns": job.mtime_ns, "status": "failed", "worker": "", "elapsed": 0.0,
            "fps": job.fps, "model": job.model,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}


# -- the run ---------------------------------------------------------------------------------
def read_manifest(outdir: Path) -> pd.DataFrame:
    path = outdir / "manifest.csv"
    if not path.is_file():
        return pd.DataFrame(columns=MANIFEST_COLUMNS)
    # keys read as text ("001" stays "001"); an all-empty reason column is text too
    df = pd.read_csv(path, dtype={"key": str, "path": str, "output": str, "reason": str,
                                  "model": str})
    df["reason"] = df["reason"].fillna("")
    return df


def is_done(job: Job, previous: dict[str, dict]) -> bool:
    """Finished (whole or partial) in an earlier run, its file still there, the input
    unchanged (a partial recording that has since grown is analysed again) and analysed with
    the same model and frame rate (a record without them, from an older version, is not)."""
    rec = previous.get(job.key)
    return bool(rec and rec["status"] in KEPT and Path(job.output).is_file()
                and int(rec["size"]) == job.size and int(rec["mtime_ns"]) == job.mtime_ns
                and rec.get("model") == job.model and _same_fps(rec.get("fps"), job.fps))


def _same_fps(recorded: object, fps: float | None) -> bool:
    """A manifest's fps cell (NaN or empty: every frame) against a job's."""
    if recorded is None or (isinstance(recorded, float) and math.isnan(recorded)):
        return fps is None
    return fps is not None and math.isclose(float(recorded), fps)  # type: ignore[arg-type]


def legacy_key(key: str) -> str:
    """The key that versions before the suffix was kept gave a recording (`day2/a`)."""
    return PurePosixPath(key).with_suffix("").as_posix()


def adopt_legacy_records(previous: dict[str, dict], jobs: list[Job]) -> dict[str, dict]:
    """The previous records, those under an old key (no suffix) moved to the new key.

    An old record stands for the job with the same input path, unless another job of this run
    has the same old key: those shared one Parquet file, which may hold either one, so they
    are left to be analysed again. A finished record's file is renamed to the new name.
    """
    old_keys = Counter(legacy_key(job.key) for job in jobs)
    out = dict(previous)
    for job in jobs:
        old = legacy_key(job.key)
        rec = previous.get(old)
        if (old == job.key or job.key in previous or rec is None or old_keys[old] > 1
                or str(rec["path"]) != path_text(job.path)):
            continue
        del out[old]
        if rec["status"] in KEPT and Path(str(rec["output"])).is_file():
            Path(job.output).parent.mkdir(parents=True, exist_ok=True)
            os.replace(str(rec["output"]), job.output)
        out[job.key] = {**rec, "key": job.key, "output": job.output}
    return out


@dataclass
class BatchSummary:
    total: int
    skipped: int
    done: int
    failed: int
    elapsed: float
    manifest: Path
    partial: int = 0  # of `done`: analysed as far as they decoded

    def line(self) -> str:
        partial = f" ({self.partial} partial)" if self.partial else ""
        return (f"{self.total} recordings: {self.skipped} already done, {self.done} analysed"
                f"{partial}, {self.failed} failed in {self.elapsed:.1f} s -> {self.manifest}")


def run_batch(
    inputs: Iterable[str | Path], outdir: str | Path, engine: str = "local",
    workers: int | None = None, ray_address: str | None = None, fps: float | None = None,
    model: str = models.DEFAULT_CLASSIFIER, retry_failed: bool = True, progress: bool = True,
    on_record: Callable[[dict], None] | None = None,
) -> BatchSummary:
    """Analyse every recording (see module doc); returns counts and the manifest's path."""
    from emotrace.media.decode import VIDEO_SUFFIXES

    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be > 0, got {fps}")
    # A bad name or file fails here, once, before any worker starts (a ModelError that says why).
    models.load(model, kind="expression", threads=1)
    outdir = Path(outdir)
    paths = collect_inputs(inputs, VIDEO_SUFFIXES)
    jobs = make_jobs(paths, outdir, fps, model, threads=1)

    manifest = read_manifest(outdir)
    previous = {str(r["key"]): r for r in manifest.to_dict("records")}
    previous = adopt_legacy_records(previous, jobs)
    todo = [j for j in jobs if not is_done(j, previous)
            and (retry_failed or previous.get(j.key, {}).get("status") != "failed")]
    cores = os.cpu_count() or 1
    n_workers = workers or (cores if engine == "local" else None)
    if engine == "local":  # no more processes than recordings; the cores shared among them
        n_workers = max(1, min(n_workers or 1, len(todo)))
        todo = [replace(j, threads=max(1, cores // n_workers)) for j in todo]
    keys = {j.key for j in jobs}
    records = {k: r for k, r in previous.items() if k in keys}  # drop what is no longer asked
    manifest_path = outdir / "manifest.csv"

    def save() -> None:
        df = pd.DataFrame(list(records.values()), columns=MANIFEST_COLUMNS).sort_values("key")
        write_csv(df, manifest_path)

    started = time.perf_counter()
    done = failed = partial = 0
    if todo:
        runner = (_run_local(todo, n_workers or 1) if engine == "local"
                  else _run_ray(todo, n_workers, ray_address))
        bar = tqdm(total=len(todo), desc="recordings", unit="rec", disable=not progress,
                   dynamic_ncols=True)
        try:
            for record in runner:
                records[record["key"]] = record
                done += record["status"] in KEPT
                partial += record["status"] == "partial"
                failed += record["status"] == "failed"
                save()
                if "write_error" in record:  # a full disk: every task after it would fail too
                    errno, problem = record["write_error"]
                    raise OSError(errno, problem, record["output"])
                bar.update(1)
                bar.set_postfix(done=done, failed=failed)
                if on_record is not None:
                    on_record(record)
        finally:
            runner.close()  # on an exception, the engine stops its running tasks now
            bar.close()
    save()
    return BatchSummary(len(jobs), len(jobs) - len(todo), done, failed,
                        time.perf_counter() - started, manifest_path, partial)

