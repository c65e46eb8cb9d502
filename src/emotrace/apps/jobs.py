"""The REST API's video jobs: a bounded queue, its worker threads, finished results on disk.

A job is an uploaded video in the server folder's `uploads/` (removed when the job ends, done or
failed) and, once done, `results/<id>/`: the per-face table as `faces.parquet` (row groups of
`PAGE_ROWS`, so a page reads one or two of them) and `faces.csv`, and the track summary as
`tracks.json`. Nothing of a table stays in memory: a poll answers status and progress, a page
reads its rows from the Parquet file, a download sends the file. A recording whose tail is
lost, or whose decoding breaks part way, is analysed as far as it decodes and its job is done,
marked partial: its results say `partial`, `partial_reason`, `frames_decoded` and
`frames_expected` (so does faces.parquet's metadata), as `emotrace video` and `batch` do.

The queue holds at most `max_queued` jobs waiting (`QueueFull` beyond: the API's 429). Finished
jobs are forgotten, their results removed, `keep_s` seconds after they finished, or when more
than `max_kept` are finished (oldest first); the workers check every `PRUNE_EVERY_S`.
"""

from __future__ import annotations

import json
import queue
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from emotrace.apps.uploads import upload_errors
from emotrace.errors import InputError
from emotrace.media.decode import probe
from emotrace.outputs.files import atomic_write, write_csv, write_json
from emotrace.outputs.tables import track_summary
from emotrace.pipeline import Analyzer

PAGE_ROWS = 5000
PRUNE_EVERY_S = 30.0


class QueueFull(Exception):
    """No room in the job queue."""


class _Stopped(Exception):
    """The server is stopping: the running job ends here."""


@dataclass
class Job:
    id: str
    filename: str
    path: Path  # the upload, until the job ends
    fps: float | None
    status: str = "queued"  # queued -> running -> done | failed
    frames_done: int = 0
    frames_total: int = 0
    error: str = ""
    created: float = field(default_factory=time.time)
    finished: float | None = None
    # once done: frames, faces, rows, tracks, and partial, partial_reason, frames_decoded,
    # frames_expected (a recording whose tail is lost is analysed as far as it decodes)
    counts: dict = field(default_factory=dict)
    results: Path | None = None  # the folder of its files once done

    def public(self) -> dict:
        """What a poll answers: status and progress; once done the counts and the links."""
        out = {"id": self.id, "filename": self.filename, "status": self.status,
               "progress": {"frames_done": self.frames_done, "frames_total": self.frames_total},
               "created": self.created, "finished": self.finished}
        if self.error:
            out["error"] = self.error
        if self.status == "done":
            base = f"/v1/jobs/{self.id}"
            out["results"] = {**self.counts,
                              "links": {"faces": f"{base}/faces", "tracks": f"{base}/tracks",
                                        "csv": f"{base}/faces.csv",
                                        "parquet": f"{base}/faces.parquet"}}
        return out


class Jobs:
    """The job queue, its worker threads (each with its own Analyzer) and the kept results."""

    def __init__(self, model: str, folder: Path, workers: int = 1, max_queued: int = 100,
                 keep_s: float = 24 * 3600.0, max_kept: int = 1000) -> None:
        if workers < 1 or max_queued < 1 or max_kept < 1 or not keep_s > 0:
            raise ValueError(f"workers ({workers}), max_queued ({max_queued}), max_kept "
                             f"({max_kept}) and keep_s ({keep_s}) must be positive")
        self.model, self.folder = model, folder
        self.max_queued, self.keep_s, self.max_kept = max_queued, keep_s, max_kept
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.queue: queue.Queue[Job] = queue.Queue(max_queued)
        self.lock = threading.Lock()
        self._reserved = 0
        self.stopping = threading.Event()
        self.workers = [threading.Thread(target=self._work, daemon=True, name=f"video-{i}")
                        for i in range(workers)]
        for w in self.workers:
            w.start()

    # --- submitting and finding --------------------------------------------------------------

    def full(self) -> bool:
        return self.queue.qsize() + self._reserved >= self.max_queued

    def submit(self, filename: str, save, fps: float | None) -> Job:
        """Queue a job for the upload that `save(folder, stem)` writes (and returns the path
        of); `QueueFull` when the queue has no room (nothing is written then)."""
        self.prune()
        with self.lock:
            if self.full():
                raise QueueFull(f"{self.max_queued} video jobs are waiting already; retry later")
            self._reserved += 1  # a place in the queue while the upload is written
        try:
            job_id = uuid.uuid4().hex
            job = Job(job_id, filename, save(self.folder / "uploads", job_id), fps)
            with self.lock:
                self.jobs[job_id] = job
                self.queue.put_nowait(job)
        finally:
            with self.lock:
                self._reserved -= 1
        return job

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def queued(self) -> int:
        return self.queue.qsize()

    # --- the workers -------------------------------------------------------------------------

    def _work(self) -> None:
        analyzer = Analyzer(classifier=self.model)  # its own: no lock needed for videos
        pruned = time.monotonic()
        while not self.stopping.is_set():
            if time.monotonic() - pruned > PRUNE_EVERY_S:
                self.prune()
                pruned = time.monotonic()
            try:
                job = self.queue.get(timeout=0.5)
            except queue.Empty:
                continue
            self._run_job(analyzer, job)

    def _run_job(self, analyzer: Analyzer, job: Job) -> None:
        job.status = "running"
        try:
            with upload_errors(job.filename):
                self._analyse(analyzer, job)
        except InputError as exc:
            job.status, job.error = "failed", str(exc)
        except _Stopped:
            job.status, job.error = "failed", "the server stopped before the job ended"
        except Exception as exc:  # noqa: BLE001 -- a job's failure is reported, the worker lives on
            job.status, job.error = "failed", f"{job.filename}: {type(exc).__name__}: {exc}"
        finally:
            job.finished = time.time()
            job.path.unlink(missing_ok=True)  # the viewer's video goes as soon as it is analysed
            self.queue.task_done()

    def _analyse(self, analyzer: Analyzer, job: Job) -> None:
        info = probe(job.path)
        job.frames_total = info.n_frames if job.fps is None else int(info.duration * job.fps) + 1

        def count(frame, analysis, job=job) -> None:
            if self.stopping.is_set():
                raise _Stopped
            job.frames_done += 1

        result = analyzer.analyze_video(job.path, fps=job.fps, progress=False, on_frame=count)
        job.frames_total = job.frames_done  # the estimate from the header, made exact
        table = result.to_pandas().assign(source=job.filename)
        table.attrs.update(result.completeness())  # kept in faces.parquet, as `video` does
        out = self.folder / "results" / job.id
        atomic_write(out / "faces.parquet",
                     lambda p: table.to_parquet(p, index=False, row_group_size=PAGE_ROWS))
        write_csv(table, out / "faces.csv")
        tracks = track_summary(table, result.labels)
        write_json(json.loads(tracks.to_json(orient="records")), out / "tracks.json")
        job.counts = {"frames": int(table["frame"].nunique()),
                      "faces": int((table["face"] >= 0).sum()), "rows": len(table),
                      "tracks": len(tracks), **result.completeness()}
        job.results, job.status = out, "done"

    # --- results -----------------------------------------------------------------------------

    def page(self, job: Job, offset: int, limit: int) -> list[dict]:
        """Rows `offset` to `offset + limit` of a done job's table (only their row groups read)."""
        import pyarrow.parquet as pq

        assert job.results is not None  # a done job has its results folder
        file = pq.ParquetFile(job.results / "faces.parquet")
        groups, first, start = [], None, 0
        for i in range(file.metadata.num_row_groups):
            n = file.metadata.row_group(i).num_rows
            if start + n > offset and start < offset + limit:
                groups.append(i)
                first = start if first is None else first
            start += n
        if not groups or first is None:
            return []
        rows = file.read_row_groups(groups).slice(offset - first, limit).to_pandas()
        return json.loads(rows.to_json(orient="records"))

    @staticmethod
    def tracks(job: Job) -> list[dict]:
        assert job.results is not None  # a done job has its results folder
        return json.loads((job.results / "tracks.json").read_text())

    # --- forgetting ----------------------------------------------------------------------------

    def prune(self) -> None:
        """Forget finished jobs past `keep_s`, and the oldest beyond `max_kept`; remove their
        files."""
        now = time.time()
        with self.lock:
            finished = [j for j in self.jobs.values() if j.finished is not None]
            old = [j for j in finished if now - (j.finished or now) > self.keep_s]
            old += [j for j in finished[:max(0, len(finished) - self.max_kept)] if j not in old]
            for job in old:
                del self.jobs[job.id]
        for job in old:
            shutil.rmtree(self.folder / "results" / job.id, ignore_errors=True)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the workers: the running jobs end at their next frame, the queued never start."""
        self.stopping.set()
        deadline = time.monotonic() + timeout
        for w in self.workers:
            w.join(max(0.0, deadline - time.monotonic()))
