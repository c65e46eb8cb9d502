"""The REST API (FastAPI), started with `emotrace serve`: a thin client of `Analyzer`.

    POST /v1/images          multipart `files` (one or many) -> faces per image, at once
    POST /v1/videos          multipart `file` (+ `fps`)      -> 202 and a job id
    GET  /v1/jobs/{id}       status, progress, and when done the tracks and the face rows
    GET  /v1/jobs/{id}/faces.csv | faces.parquet             the per-face table
    GET  /v1/models          the registry and which files are here
    GET  /docs, /openapi.json                                interactive docs (no key needed)

Errors are JSON `{"detail": "NAME: problem"}`: 400 unreadable input, 401 missing or wrong API
key (header `X-API-Key`, when the server has one), 404 unknown job, 413 upload too large, 415
not an image / not a video. For several images, each file has its own result or `error`; the
request fails only if every file did.

Video jobs run in a background thread with its own Analyzer, one after another from a queue, so
the server keeps answering while they run; images are analysed in FastAPI's thread pool, one
at a time under a lock (the face detector is not thread-safe) — each takes milliseconds.
"""

from __future__ import annotations

import io
import queue
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse, Response

if TYPE_CHECKING:
    import pandas as pd

from emotrace import __version__, models
from emotrace.apps.uploads import (
    CHUNK,
    UploadProblem,
    check_kind,
    decode_image,
    read_limited,
    save_upload,
    upload_errors,
)
from emotrace.errors import InputError
from emotrace.media.decode import probe
from emotrace.outputs.tables import track_summary
from emotrace.pipeline import Analyzer
from emotrace.results import FrameAnalysis

MAX_JOBS_KEPT = 1000


@dataclass
class Limits:
    """Upload limits: bytes per image, bytes per video, images per request."""

    image_bytes: int = 20 << 20
    video_bytes: int = 500 << 20
    images_per_request: int = 32


@dataclass
class Job:
    id: str
    filename: str
    path: Path
    fps: float | None
    status: str = "queued"  # queued -> running -> done | failed
    frames_done: int = 0
    frames_total: int = 0
    error: str = ""
    created: float = field(default_factory=time.time)
    finished: float | None = None
    table: pd.DataFrame | None = None  # once done
    labels: tuple[str, ...] = ()
    results: dict | None = None  # the JSON results once done

    def public(self, with_results: bool = True) -> dict:
        out = {"id": self.id, "filename": self.filename, "status": self.status,
               "progress": {"frames_done": self.frames_done, "frames_total": self.frames_total},
               "created": self.created, "finished": self.finished}
        if self.error:
            out["error"] = self.error
        if self.status == "done" and with_results:
            out["results"] = self.results
        return out

    def finish(self, table, labels: tuple[str, ...]) -> None:
        """Keep the table and build the JSON results once: a job is polled many times."""
        self.table, self.labels = table, labels
        faces = table[table["face"] >= 0]
        self.results = {
            "frames": int(table["frame"].nunique()), "faces": len(faces),
            "tracks": _records(track_summary(table, labels)),
            "faces_table": _records(faces),
            "download": {"csv": f"/v1/jobs/{self.id}/faces.csv",
                         "parquet": f"/v1/jobs/{self.id}/faces.parquet"},
        }
        self.status = "done"


def _records(df) -> list[dict]:
    """DataFrame rows as JSON-safe dicts (NaN -> null)."""
    clean = df.astype(object).where(df.notna(), None)
    return clean.to_dict("records")


def faces_json(frame: FrameAnalysis) -> list[dict]:
    det, emo = frame.detections, frame.emotions
    faces = []
    for i in range(len(frame)):
        probs = emo.probs[i]
        top = int(probs.argmax())
        face: dict[str, object] = {
            "box": [round(float(v), 1) for v in det.boxes[i]],
            "score": None if np.isnan(det.scores[i]) else round(float(det.scores[i]), 4),
            "emotion": emo.labels[top], "probability": round(float(probs[top]), 4),
            "probabilities": {k: round(float(p), 4)
                              for k, p in zip(emo.labels, probs, strict=True)},
        }
        if emo.valence is not None and emo.arousal is not None:
            face["valence"] = round(float(emo.valence[i]), 4)
            face["arousal"] = round(float(emo.arousal[i]), 4)
        if not np.isnan(det.landmarks[i]).any():
            face["landmarks"] = [[round(float(x), 1), round(float(y), 1)]
                                 for x, y in det.landmarks[i]]
        faces.append(face)
    return faces


class Service:
    """The analyzers, the job queue and its worker thread."""

    def __init__(self, model: str, limits: Limits, video_workers: int = 1) -> None:
        self.model = model
        self.limits = limits
        self.analyzer = Analyzer(classifier=model)
        self.lock = threading.Lock()
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.queue: queue.Queue[Job] = queue.Queue()
        self.tmp = Path(tempfile.mkdtemp(prefix="emotrace-api-"))
        self.workers = [threading.Thread(target=self._work, daemon=True, name=f"video-{i}")
                        for i in range(video_workers)]
        for w in self.workers:
            w.start()

    def _work(self) -> None:
        analyzer = Analyzer(classifier=self.model)  # its own: no lock needed for videos
        while True:
            job = self.queue.get()
            job.status = "running"
            try:
                with upload_errors(job.filename):
                    self._run(analyzer, job)
            except InputError as exc:
                job.status, job.error = "failed", str(exc)
            except Exception as exc:  # noqa: BLE001 -- a job's failure is reported, the worker lives on
                job.status, job.error = "failed", f"{job.filename}: {type(exc).__name__}: {exc}"
            finally:
                job.finished = time.time()
                job.path.unlink(missing_ok=True)
                self.queue.task_done()

    @staticmethod
    def _run(analyzer: Analyzer, job: Job) -> None:
        info = probe(job.path)
        job.frames_total = info.n_frames if job.fps is None else int(info.duration * job.fps) + 1

        def count(frame, analysis, job=job) -> None:
            job.frames_done += 1

        result = analyzer.analyze_video(job.path, fps=job.fps, progress=False, on_frame=count)
        job.frames_total = job.frames_done  # the estimate from the header, made exact
        job.finish(result.to_pandas().assign(source=job.filename), result.labels)

    def submit(self, filename: str, data: bytes, fps: float | None) -> Job:
        job_id = uuid.uuid4().hex
        path = save_upload(filename, data, self.tmp, stem=job_id)
        job = Job(job_id, filename, path, fps)
        self.jobs[job_id] = job
        while len(self.jobs) > MAX_JOBS_KEPT:  # forget the oldest finished jobs
            oldest = next(iter(self.jobs.values()))
            if oldest.status not in ("done", "failed"):
                break
            self.jobs.popitem(last=False)
        self.queue.put(job)
        return job

    def analyze_image(self, name: str, data: bytes) -> dict:
        try:
            image = decode_image(name, data)
        except InputError as exc:
            raise UploadProblem(400, str(exc)) from None
        with self.lock:
            result = self.analyzer.analyze_image(image, name=name)
        return {"filename": name, "width": result.width, "height": result.height,
                "faces": faces_json(result.frame)}


def _refuse_huge_bodies(app: FastAPI, limits: Limits) -> None:
    ceiling = max(limits.video_bytes, limits.image_bytes * limits.images_per_request) + CHUNK

    @app.middleware("http")
    async def refuse_huge_bodies(request: Request, call_next):
        # refuse before reading: the declared size already says the upload is too large
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > ceiling:
            return JSONResponse({"detail": f"request of {int(length) / (1 << 20):.0f} MB is "
                                 f"larger than the limit of {ceiling / (1 << 20):.0f} MB"}, 413)
        return await call_next(request)


def _read_upload(upload: UploadFile, kind: str, limit: int) -> tuple[str, bytes]:
    """The upload's name and bytes, once its type and size pass (`UploadProblem` otherwise)."""
    name = upload.filename or "upload"
    check_kind(name, (kind,), upload.content_type)
    return name, read_limited(upload.file, name, limit)


def _upload_routes(app: FastAPI, service: Service, keyed: list) -> None:
    limits = service.limits

    @app.post("/v1/images", dependencies=keyed)
    def post_images(files: Annotated[list[UploadFile], File(description="One or more images.")]):
        if len(files) > limits.images_per_request:
            raise HTTPException(413, f"{len(files)} images in one request; the limit is "
                                f"{limits.images_per_request}")
        results, statuses = [], []
        for upload in files:
            try:
                name, data = _read_upload(upload, "image", limits.image_bytes)
                results.append(service.analyze_image(name, data))
                statuses.append(200)
            except UploadProblem as exc:
                results.append({"filename": upload.filename or "upload", "error": exc.message})
                statuses.append(exc.status)
        if all(s != 200 for s in statuses):
            status = statuses[0] if len(set(statuses)) == 1 else 400
            detail = "; ".join(r["error"] for r in results)
            return JSONResponse({"detail": detail, "results": results}, status)
        return {"model": service.model, "results": results}

    @app.post("/v1/videos", status_code=202, dependencies=keyed)
    def post_video(file: Annotated[UploadFile, File(description="A video file.")],
                   fps: Annotated[float | None, Form(
                       gt=0, description="Frames per second to analyse (default: all).")] = None):
        try:
            name, data = _read_upload(file, "video", limits.video_bytes)
        except UploadProblem as exc:
            raise HTTPException(exc.status, exc.message) from None
        if not data:
            raise HTTPException(400, f"{name}: empty file")
        job = service.submit(file.filename or "upload.mp4", data, fps)  # saved by its suffix
        return {**job.public(), "url": f"/v1/jobs/{job.id}"}


def _job_routes(app: FastAPI, service: Service, keyed: list) -> None:
    def get_job(job_id: str) -> Job:
        job = service.jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id}")
        return job

    @app.get("/v1/jobs/{job_id}", dependencies=keyed)
    def job_status(job_id: str) -> dict:
        return get_job(job_id).public()

    @app.get("/v1/jobs/{job_id}/faces.{fmt}", dependencies=keyed)
    def job_table(job_id: str, fmt: str) -> Response:
        job = get_job(job_id)
        if job.status != "done" or job.table is None:
            raise HTTPException(409, f"job {job_id} is {job.status}, not done")
        if fmt == "csv":
            return Response(job.table.to_csv(index=False), media_type="text/csv")
        if fmt == "parquet":
            buf = io.BytesIO()
            job.table.to_parquet(buf, index=False)
            return Response(buf.getvalue(), media_type="application/vnd.apache.parquet")
        raise HTTPException(404, f"no format {fmt!r}; use csv or parquet")


def create_app(model: str = models.DEFAULT_CLASSIFIER, api_key: str | None = None,
               limits: Limits | None = None, video_workers: int = 1) -> FastAPI:
    """The FastAPI application; `api_key` (if given) is required in the `X-API-Key` header."""
    limits = limits or Limits()
    service = Service(model, limits, video_workers)
    app = FastAPI(title="emotrace", version=__version__,
                  description="Emotion of every face in images and videos.")
    app.state.service = service

    def check_key(request: Request) -> None:
        if api_key is not None and request.headers.get("x-api-key") != api_key:
            raise HTTPException(401, "missing or wrong API key (send it in the X-API-Key header)")

    keyed = [Depends(check_key)]
    _refuse_huge_bodies(app, limits)

    @app.get("/v1/models", dependencies=keyed)
    def list_models() -> dict:
        return {"default": models.DEFAULT_CLASSIFIER, "serving": service.model, "models": [
            {"name": c.name, "task": c.task, "labels": list(c.labels) if c.labels else None,
             "input_size": list(c.input_size) if c.input_size else None,
             "licence": c.licence, "present": models.is_present(c)} for c in models.list_models()]}

    _upload_routes(app, service, keyed)
    _job_routes(app, service, keyed)
    return app
