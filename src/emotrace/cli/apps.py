"""`emotrace serve`, `webcam` and `demo`: the REST API, live camera emotions, the Streamlit app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emotrace.cli.errors import fail
from emotrace.cli.options import (
    ANY_PORT,
    AT_LEAST_ONE,
    NON_NEGATIVE,
    OUTPUT_FILE,
    PORT,
    POSITIVE,
    ModelOpt,
)
from emotrace.models import DEFAULT_CLASSIFIER


def serve_cmd(
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0: all).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0: any free one; the start line says)."),
                    ANY_PORT] = 8000,
    api_key: Annotated[str | None, typer.Option(
        envvar="EMOTRACE_API_KEY",
        help="Require this key in the X-API-Key header (or set EMOTRACE_API_KEY).")] = None,
    max_image_mb: Annotated[float, typer.Option(help="Largest image upload (MB)."),
                            POSITIVE] = 20,
    max_video_mb: Annotated[float, typer.Option(help="Largest video upload (MB)."),
                            POSITIVE] = 500,
    video_workers: Annotated[int, typer.Option(help="Video jobs analysed at the same time."),
                             AT_LEAST_ONE] = 1,
    max_queued_jobs: Annotated[int, typer.Option(
        help="Video jobs waiting at most; beyond, uploads get 429."), AT_LEAST_ONE] = 100,
    keep_results_hours: Annotated[float, typer.Option(
        help="Hours a finished job's results are kept (on disk, in the server's folder)."),
        POSITIVE] = 24,
    concurrent_images: Annotated[int, typer.Option(
        help="Images decoded at the same time (each takes its pixels' memory)."),
        AT_LEAST_ONE] = 2,
    model: ModelOpt = DEFAULT_CLASSIFIER,
) -> None:
    """The REST API (FastAPI + uvicorn): /v1/images, /v1/videos, /v1/jobs/{id}, /v1/models,
    /docs. Uploads and results live in a folder of its own, removed when it stops."""
    try:
        from emotrace.apps.api import Limits, create_app
        from emotrace.apps.serve import serve
    except ImportError as exc:
        fail(f"the API needs FastAPI and uvicorn: pip install 'emotrace[api]' ({exc})")
    limits = Limits(int(max_image_mb * (1 << 20)), int(max_video_mb * (1 << 20)),
                    queued_jobs=max_queued_jobs, keep_results_s=keep_results_hours * 3600,
                    concurrent_images=concurrent_images)
    application = create_app(model, api_key, limits, video_workers)
    serve(application, host, port, api_key is not None)


def webcam_cmd(
    source: Annotated[str, typer.Option(
        help="Camera index (0, 1, ...), a video file or a stream URL.")] = "0",
    headless: Annotated[bool, typer.Option(
        help="No window: write the annotated video to --output.")] = False,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o",
        help="Annotated MP4 (with --headless; in a window, where `r` records)."),
        OUTPUT_FILE] = None,
    max_frames: Annotated[int | None, typer.Option(help="Stop after this many frames."),
                          AT_LEAST_ONE] = None,
    smoothing: Annotated[float, typer.Option(
        help="Half-life (s) of each face's moving average of the probabilities; 0 = raw."),
        NON_NEGATIVE] = 0.5,
    snapshots: Annotated[Path, typer.Option(help="Folder for snapshots (key s).")]
    = Path("snapshots"),
    model: ModelOpt = DEFAULT_CLASSIFIER,
) -> None:
    """Live emotions from a webcam (window: q quits, s snapshot, r record) or, headless, to a
    file."""
    from emotrace.apps.webcam import EmotionRecognizer, run_live

    if headless and output is None:
        fail("--headless needs --output FILE.mp4 to write the annotated video to")
    recognizer = EmotionRecognizer(model, smoothing=smoothing)
    stats = run_live(recognizer, source, headless, output, snapshots, max_frames)
    typer.echo(stats.summary() + (f" -> {output}" if output and headless else ""), err=True)


def demo_cmd(
    port: Annotated[int, typer.Option(help="Port the app listens on."), PORT] = 8501,
    host: Annotated[str, typer.Option(
        help="Address the app listens on (0.0.0.0: every interface).")] = "127.0.0.1",
) -> None:
    """Start the Streamlit demo app: analyse uploads, compare face embeddings (needs
    emotrace[demo])."""
    import importlib.util
    import signal
    import subprocess
    import sys

    if importlib.util.find_spec("streamlit") is None:
        fail("the demo needs Streamlit, which is not installed: pip install 'emotrace[demo]'")
    from emotrace.apps.demo.helpers import MAX_UPLOAD_MB

    app_file = Path(__file__).parents[1] / "apps" / "demo" / "app.py"
    command = [sys.executable, "-m", "streamlit", "run", str(app_file),
               "--server.headless", "true", "--server.port", str(port), "--server.address", host,
               "--server.maxUploadSize", str(MAX_UPLOAD_MB), "--server.fileWatcherType", "none",
               "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal"]
    typer.echo(f"emotrace demo: http://{host}:{port} (uploads up to {MAX_UPLOAD_MB} MB; "
               "Ctrl-C stops it)", err=True)
    process = subprocess.Popen(command)
    signal.signal(signal.SIGTERM, lambda *_: process.terminate())  # stop the app with us
    try:
        code = process.wait()
    except KeyboardInterrupt:  # Ctrl-C reaches Streamlit too: let it shut down
        code = 0 if process.wait() in (0, -signal.SIGINT) else 1
    raise typer.Exit(code)
