"""The REST API (FastAPI), started with `emotrace serve`: a thin client of `Analyzer`.

    POST /v1/images          multipart `files` (one or many) -> faces per image, at once
    POST /v1/videos          multipart `file` (+ `fps`)      -> 202 and a job id (429: queue full)
    GET  /v1/jobs/{id}       status and progress; once done the counts (`partial` and its
                             reason for a recording analysed as far as it decoded), the links
    GET  /v1/jobs/{id}/faces?offset=&limit=                  the per-face table, a page of rows
    GET  /v1/jobs/{id}/tracks                                the track summary
    GET  /v1/jobs/{id}/faces.csv | faces.parquet             the per-face table, as a file
    GET  /v1/models          the registry and which files are here
    GET  /docs, /openapi.json                                interactive docs (no key needed)

Errors are JSON `{"detail": "NAME: problem"}`: 400 unreadable input, 401 missing or wrong API
key (header `X-API-Key`, when the server has one), 404 unknown job, 409 job not done, 413 upload
too large (cut as soon as the bytes pass the limit, whatever Content-Length says), 415 not an
image / not a video / unknown suffix, 429 job queue full, 500 a fault (logged; still JSON, the
connection stays usable). `guard.Guard` does the checks that come before the body. For several
images, each file has its own result or `error`; the request fails only if every file did.

Video jobs (`jobs.Jobs`) run in background threads with their own Analyzer, from a bounded
queue, so the server keeps answering while they run; their uploads and results live in the
server's folder (`workdir`), removed when it stops. Images are decoded under a semaphore (at most
`Limits.concurrent_images` decoded at once) and analysed one at a time under a lock (the face
detector is not thread-safe) — each takes milliseconds.
"""

from __future__ import annotations

import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, Query, UploadFile
from fastapi.responses import FileResponse, JSONResponse

from emotrace import __version__, models
from emotrace.apps.guard import Guard, Rules
from emotrace.apps.jobs import PAGE_ROWS, Job, Jobs, QueueFull
from emotrace.apps.uploads import (
    UploadProblem,
    check_kind,
    copy_limited,
    decode_image,
    read_limited,
    stored_suffix,
)
from emotrace.apps.workdir import make_workdir, remove_workdir
from emotrace.errors import InputError
from emotrace.pipeline import Analyzer
from emotrace.results import POSE_COLUMNS, QUALITY_COLUMNS, FaceMeasures, FrameAnalysis

#: Bytes a request may carry beyond its files (multipart headers, the form fields).
OVERHEAD = 64 << 10


@dataclass
class Limits:
    """What the server takes: bytes per image, bytes per video, images per request, video jobs
    waiting in the queue, seconds a finished job's results are kept, images decoded at once."""

    image_bytes: int = 20 << 20
    video_bytes: int = 500 << 20
    images_per_request: int = 32
    queued_jobs: int = 100
    keep_results_s: float = 24 * 3600.0
    concurrent_images: int = 2

    def __post_init__(self) -> None:
        bad = [f"{k}={v}" for k, v in vars(self).items() if not v > 0]
        if bad:
            raise ValueError(f"limits must be positive: {', '.join(bad)}")

    def body_limit(self, path: str) -> int:
        """The largest request body `path` takes, in bytes."""
        if path == "/v1/videos":
            return self.video_bytes + OVERHEAD
        if path == "/v1/images":
            return (self.image_bytes + OVERHEAD) * self.images_per_request
        return OVERHEAD


def _number(value: float, digits: int) -> float | None:
    """A rounded float for JSON; None for NaN (JSON has no NaN)."""
    return None if not np.isfinite(value) else round(float(value), digits)


def faces_json(frame: FrameAnalysis) -> list[dict]:
    """Each face of an image: box, score, emotion and probabilities, valence/arousal where the
    model has them, landmarks, head pose (`yaw`, `pitch`, `roll` degrees, null where unknown),
    `facing`, and the quality measures under their table names (`face_brightness`, ...)."""
    det, emo = frame.detections, frame.emotions
    measures = frame.measures or FaceMeasures.unknown(len(frame))
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
        face.update({k: _number(v, 1) for k, v in zip(POSE_COLUMNS, measures.pose[i])})
        face["facing"] = bool(measures.facing[i])
        face.update({k: _number(v, 3) for k, v in zip(QUALITY_COLUMNS, measures.quality[i])})
        faces.append(face)
    return faces


class Service:
    """The image analyzer, the video jobs and the server's folder."""

    def __init__(self, model: str, limits: Limits, video_workers: int = 1) -> None:
        self.model = model
        self.limits = limits
        self.analyzer = Analyzer(classifier=model)
        self.lock = threading.Lock()
        self.decoding = threading.BoundedSemaphore(limits.concurrent_images)
        self.folder = make_workdir()
        try:
            self.jobs = Jobs(model, self.folder, video_workers, limits.queued_jobs,
                             limits.keep_results_s)
        except BaseException:
            remove_workdir(self.folder)
            raise
        self._closed = False

    def analyze_image(self, name: str, data: bytes) -> dict:
        with self.decoding:  # decoded pixels of at most `concurrent_images` images at once
            try:
                image = decode_image(name, data)
            except InputError as exc:
                raise UploadProblem(400, str(exc)) from None
            with self.lock:
                result = self.analyzer.analyze_image(image, name=name)
            del image
        return {"filename": name, "width": result.width, "height": result.height,
                "faces": faces_json(result.frame)}

    def submit(self, upload: UploadFile, fps: float | None) -> Job:
        """Queue the uploaded video (`UploadProblem` 413/415/400/429 when it cannot be)."""
        name = upload.filename or "upload"
        check_kind(name, ("video",), upload.content_type)
        suffix = stored_suffix(name, "video", upload.content_type)

        def save(folder: Path, stem: str) -> Path:
            path = folder / f"{stem}{suffix}"
            if not copy_limited(upload.file, name, self.limits.video_bytes, path):
                path.unlink()
                raise UploadProblem(400, f"{name}: empty file")
            return path

        try:
            return self.jobs.submit(name, save, fps)
        except QueueFull as exc:
            raise UploadProblem(429, str(exc)) from None

    def close(self) -> None:
        """Stop the workers and remove the folder with every upload and result in it."""
        if not self._closed:
            self._closed = True
            self.jobs.close()
            remove_workdir(self.folder)


def _read_upload(upload: UploadFile, kind: str, limit: int) -> tuple[str, bytes]:
    """The upload's name and bytes, once its type and size pass (`UploadProblem` otherwise)."""
    name = upload.filename or "upload"
    check_kind(name, (kind,), upload.content_type)
    return name, read_limited(upload.file, name, limit)


def _upload_routes(app: FastAPI, service: Service) -> None:
    limits = service.limits

    @app.post("/v1/images")
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

    @app.post("/v1/videos", status_code=202)
    def post_video(file: Annotated[UploadFile, File(description="A video file.")],
                   fps: Annotated[float | None, Form(
                       gt=0, le=1000,
                       description="Frames per second to analyse (default: all).")] = None):
        try:
            job = service.submit(file, fps)
        except UploadProblem as exc:
            headers = {"Retry-After": "30"} if exc.status == 429 else None
            raise HTTPException(exc.status, exc.message, headers) from None
        return {**job.public(), "url": f"/v1/jobs/{job.id}"}


def _job_routes(app: FastAPI, service: Service) -> None:
    jobs = service.jobs
    hours = f"{service.limits.keep_results_s / 3600:g} h"

    def get_job(job_id: str, done: bool = False) -> Job:
        job = jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id} (finished jobs are kept {hours})")
        if done and (job.status != "done" or job.results is None):
            raise HTTPException(409, f"job {job_id} is {job.status}, not done")
        return job

    @app.get("/v1/jobs/{job_id}")
    def job_status(job_id: str) -> dict:
        return get_job(job_id).public()

    @app.get("/v1/jobs/{job_id}/faces")
    def job_faces(job_id: str, offset: Annotated[int, Query(ge=0)] = 0,
                  limit: Annotated[int, Query(ge=1, le=PAGE_ROWS)] = 1000) -> dict:
        job = get_job(job_id, done=True)
        total = job.counts["rows"]
        nxt = (f"/v1/jobs/{job_id}/faces?offset={offset + limit}&limit={limit}"
               if offset + limit < total else None)
        return {"id": job_id, "total": total, "offset": offset, "limit": limit,
                "rows": _gone_is_404(job, lambda: jobs.page(job, offset, limit)), "next": nxt}

    @app.get("/v1/jobs/{job_id}/tracks")
    def job_tracks(job_id: str) -> dict:
        job = get_job(job_id, done=True)
        return {"id": job_id, "tracks": _gone_is_404(job, lambda: jobs.tracks(job))}

    @app.get("/v1/jobs/{job_id}/faces.{fmt}")
    def job_table(job_id: str, fmt: str) -> FileResponse:
        if fmt not in ("csv", "parquet"):
            raise HTTPException(404, f"no format {fmt!r}; use csv or parquet")
        job = get_job(job_id, done=True)
        assert job.results is not None  # a done job has its results folder
        path = job.results / f"faces.{fmt}"
        if not path.is_file():
            raise HTTPException(404, f"the results of job {job_id} were removed")
        media = "text/csv" if fmt == "csv" else "application/vnd.apache.parquet"
        return FileResponse(path, media_type=media, filename=f"{job_id}-faces.{fmt}")


def _gone_is_404(job: Job, read):
    try:
        return read()
    except FileNotFoundError:  # forgotten between the lookup and the read
        raise HTTPException(404, f"the results of job {job.id} were removed") from None


def create_app(model: str = models.DEFAULT_CLASSIFIER, api_key: str | None = None,
               limits: Limits | None = None, video_workers: int = 1) -> FastAPI:
    """The FastAPI application; `api_key` (if given) is required in the `X-API-Key` header.
    Its service's folder is removed at the app's shutdown (`app.state.service.close()`)."""
    limits = limits or Limits()
    service = Service(model, limits, video_workers)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        service.close()  # SIGTERM / SIGINT: uvicorn's graceful shutdown ends here

    app = FastAPI(title="emotrace", version=__version__, lifespan=lifespan,
                  description="Emotion of every face in images and videos.")
    app.state.service = service

    def refuse(method: str, path: str) -> tuple[int, str] | None:
        if method == "POST" and path == "/v1/videos" and service.jobs.full():
            return 429, f"{limits.queued_jobs} video jobs are waiting already; retry later"
        return None

    app.add_middleware(Guard, rules=Rules(limits.body_limit, api_key, refuse=refuse))

    @app.get("/v1/models")
    def list_models() -> dict:
        return {"default": models.DEFAULT_CLASSIFIER, "serving": service.model, "models": [
            {"name": c.name, "task": c.task, "labels": list(c.labels) if c.labels else None,
             "input_size": list(c.input_size) if c.input_size else None,
             "licence": c.licence, "present": models.is_present(c)} for c in models.list_models()]}

    _upload_routes(app, service)
    _job_routes(app, service)
    return app
