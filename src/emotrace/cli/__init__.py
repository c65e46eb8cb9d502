"""The `emotrace` command line: images, video, models."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from emotrace import models
from emotrace.errors import EmotraceError, InputError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Read human emotion from faces in images and videos.",
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts contain [extras] that Rich would read as markup
)

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Expression model (see `emotrace models`).")]
ThresholdOpt = Annotated[float, typer.Option("--threshold", help="Minimum face detection score.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)


def _analyzer(model: str, **kwargs):
    from emotrace.pipeline import Analyzer

    try:
        return Analyzer(classifier=model, **kwargs)
    except (EmotraceError, ValueError) as exc:  # unknown model, missing file, bad setting
        _fail(str(exc))
        raise typer.Exit(2) from None


def _collect(inputs: list[Path], suffixes: set[str]) -> list[Path]:
    """Files as given, and matching files under any folder given (sorted, recursive)."""
    out: list[Path] = []
    for item in inputs:
        if item.is_dir():
            out.extend(sorted(p for p in item.rglob("*") if p.suffix.lower() in suffixes))
        else:
            out.append(item)
    return out


@app.command("models")
def models_cmd() -> None:
    """List the registered models and whether each file is present here."""
    rows = []
    for card in models.list_models():
        present = "yes" if models.is_present(card) else "no"
        default = " (default)" if card.name in (models.DEFAULT_CLASSIFIER, models.DEFAULT_DETECTOR) else ""
        rows.append((card.name + default, card.task, present, card.licence, card.filename))
    widths = [max(len(r[i]) for r in rows + [("name", "task", "present", "licence", "file")])
              for i in range(5)]
    for row in [("name", "task", "present", "licence", "file"), *rows]:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    typer.echo(f"\nsearched: {', '.join(map(str, models.model_dirs()))}"
               f"{', ' if models.model_dirs() else ''}{models.cache_dir()} (EMOTRACE_MODEL_DIR, cache)")


@app.command("images")
def images_cmd(
    inputs: Annotated[list[Path], typer.Argument(help="Image files and/or folders.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV or .parquet to write.")] = Path("predictions.csv"),
    submission: Annotated[bool, typer.Option(help="Write `image_path,emotion`, one row per image (most confident face; 9-class names).")] = False,
    cropped: Annotated[bool, typer.Option(help="Each image is already a cropped face: skip detection.")] = False,
    model: ModelOpt = models.DEFAULT_CLASSIFIER,
    min_face_size: Annotated[int, typer.Option(help="Ignore faces smaller than this (pixels).")] = 0,
    threshold: ThresholdOpt = 0.6,
    quiet: QuietOpt = False,
) -> None:
    """Emotions of every face in images: one row per face (per image with --submission)."""
    import pandas as pd

    from emotrace.pipeline import IMAGE_SUFFIXES
    from emotrace.outputs.submission import submission_rows
    from emotrace.outputs.files import write_csv, write_parquet

    paths = _collect(inputs, IMAGE_SUFFIXES)
    if not paths:
        _fail(f"no images found in {', '.join(map(str, inputs))}")
        raise typer.Exit(1)
    analyzer = _analyzer(model, min_face_size=min_face_size, score_threshold=threshold)
    tables, results, failed = [], [], 0
    for item in analyzer.analyze_images(paths, cropped=cropped, progress=not quiet):
        if isinstance(item, InputError):
            failed += 1
            _fail(str(item))
            continue
        results.append(item)
        tables.append(item.to_pandas())
    if submission:
        df = submission_rows(results, analyzer)
    else:
        df = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    writer = write_parquet if output.suffix.lower() == ".parquet" else write_csv
    writer(df, output)
    faces = sum(len(r.frame) for r in results)
    typer.echo(f"{len(results)} images, {faces} faces -> {output}"
               + (f"; {failed} failed" if failed else ""), err=True)
    if failed:
        raise typer.Exit(1)


@app.command("video")
def video_cmd(
    inputs: Annotated[list[Path], typer.Argument(help="Video files and/or folders.")],
    outdir: Annotated[Path, typer.Option("--output", "-o", help="Folder for the results.")] = Path("emotrace-out"),
    fps: Annotated[float | None, typer.Option(help="Analyse this many frames per second (default: every frame).")] = None,
    annotate: Annotated[bool, typer.Option(help="Also write an annotated MP4.")] = False,
    plot: Annotated[bool, typer.Option(help="Also write a timeline PNG.")] = False,
    smooth: Annotated[str, typer.Option(help="Smooth each track over time: none, ema, gaussian or viterbi.")] = "none",
    smooth_param: Annotated[float | None, typer.Option(help="Half-life (ema, s), sigma (gaussian, s) or switch cost (viterbi, nats); default 0.5, 0.5, 4.")] = None,
    model: ModelOpt = models.DEFAULT_CLASSIFIER,
    detect_size: Annotated[int, typer.Option(help="Longer side (px) at which faces are detected; 0 = full size.")] = 320,
    min_face_size: Annotated[int, typer.Option(help="Ignore faces smaller than this (pixels).")] = 0,
    threshold: ThresholdOpt = 0.6,
    quiet: QuietOpt = False,
) -> None:
    """Per-frame, per-face emotion timeline of each video: CSV + Parquet, track summary, plots."""
    from emotrace.pipeline import Analyzer
    from emotrace.outputs.video_outputs import analyze_video_to_dir
    from emotrace.smooth import METHODS
    from emotrace.media.decode import VIDEO_SUFFIXES

    if smooth not in METHODS:
        _fail(f"unknown --smooth {smooth!r}; valid: {', '.join(METHODS)}")
        raise typer.Exit(2)

    paths = _collect(inputs, VIDEO_SUFFIXES)
    if not paths:
        _fail(f"no videos found in {', '.join(map(str, inputs))}")
        raise typer.Exit(1)
    analyzer: Analyzer = _analyzer(model, min_face_size=min_face_size, score_threshold=threshold,
                                   video_detect_size=detect_size or None)
    failed = 0
    stems: set[str] = set()
    for path in paths:
        stem = path.stem
        while stem in stems:  # two inputs with one name: keep both
            stem += "_"
        stems.add(stem)
        try:
            summary = analyze_video_to_dir(analyzer, path, outdir, stem, fps=fps,
                                           annotate=annotate, plot=plot, progress=not quiet,
                                           smooth=smooth, smooth_param=smooth_param)
        except InputError as exc:
            failed += 1
            _fail(str(exc))
            continue
        typer.echo(summary, err=True)
    if failed:
        typer.echo(f"{failed} of {len(paths)} videos failed", err=True)
        raise typer.Exit(1)


@app.command("highlights")
def highlights_cmd(
    reactions: Annotated[list[Path], typer.Argument(help="Viewer reaction recordings (one video per viewer).", show_default=False)],
    _reactions_flag: Annotated[bool, typer.Option("--reactions", help="Optional marker before the recordings: `--reactions v1.mp4 v2.mp4`.")] = False,
    outdir: Annotated[Path, typer.Option("--output", "-o", help="Folder for moments, report and trailer.")] = Path("highlights"),
    offsets: Annotated[str | None, typer.Option(help="Episode time (s) at which each recording starts, comma-separated, e.g. 0,1.5,-2.")] = None,
    content: Annotated[Path | None, typer.Option(help="The episode video: enables trailer.mp4 and episode stills.")] = None,
    top: Annotated[int, typer.Option(help="Most moments to keep.")] = 10,
    min_gap: Annotated[float, typer.Option(help="Least distance between two moments' peaks (s).")] = 5.0,
    pad: Annotated[float, typer.Option(help="Seconds added before and after each moment.")] = 1.0,
    fps: Annotated[float, typer.Option(help="Frames per second analysed in each recording.")] = 10.0,
    model: ModelOpt = models.DEFAULT_CLASSIFIER,
    quiet: QuietOpt = False,
) -> None:
    """Moments where viewers reacted most: moments.csv/.json, report.html, trailer.mp4."""
    from emotrace.highlights import find_highlights, parse_offsets, write_highlights
    from emotrace.highlights.moments import MomentSettings
    from emotrace.media.decode import probe

    try:
        offset_values = parse_offsets(offsets, len(reactions))
        settings = MomentSettings(top=top, min_gap_s=min_gap, pad_s=pad)
        duration = probe(content).duration or None if content is not None else None
    except (InputError, ValueError) as exc:
        _fail(str(exc))
        raise typer.Exit(2) from None
    analyzer = _analyzer(model)
    result = find_highlights(reactions, offset_values, analyzer, fps=fps,
                             moment_settings=settings, duration=duration, progress=not quiet)
    for path, problem in result.failures:
        _fail(f"{path}: {problem}")
    if not result.viewers:
        _fail("no recording could be used; nothing written")
        raise typer.Exit(1)
    try:
        written = write_highlights(result, outdir, content)
    except (InputError, ValueError) as exc:
        _fail(str(exc))
        raise typer.Exit(1) from None
    typer.echo(result.moments_table().to_string(index=False, float_format=lambda x: f"{x:.2f}")
               if result.moments else "no moment stood out above the viewers' baselines")
    typer.echo(f"{len(result.viewers)} viewers, {len(result.moments)} moments -> "
               f"{', '.join(str(p) for p in written)}", err=True)
    if result.failures:
        typer.echo(f"{len(result.failures)} of {len(reactions)} recordings failed", err=True)
        raise typer.Exit(1)


@app.command("batch")
def batch_cmd(
    inputs: Annotated[list[Path], typer.Argument(help="Folders of recordings, text files listing one path per line, or video files.")],
    outdir: Annotated[Path, typer.Option("--output", "-o", help="Folder for faces/*.parquet and manifest.csv.")] = Path("batch-out"),
    engine: Annotated[str, typer.Option(help="local (a process pool) or ray.")] = "local",
    ray_address: Annotated[str | None, typer.Option(help="Address of an existing Ray cluster (default: start Ray here).")] = None,
    workers: Annotated[int | None, typer.Option(help="Parallel tasks (default: the cores here; all the cluster offers with Ray).")] = None,
    fps: Annotated[float | None, typer.Option(help="Analyse this many frames per second (default: every frame).")] = None,
    retry_failed: Annotated[bool, typer.Option(help="Retry recordings that failed in an earlier run.")] = True,
    model: ModelOpt = models.DEFAULT_CLASSIFIER,
    quiet: QuietOpt = False,
) -> None:
    """Analyse many recordings, one task each, resumably: on this machine or a Ray cluster."""
    from emotrace.batch import run_batch

    def report(record: dict) -> None:
        if record["status"] == "failed":
            _fail(f"{record['path']}: {record['reason']}")

    try:
        summary = run_batch(inputs, outdir, engine, workers, ray_address, fps, model,
                            retry_failed, progress=not quiet, on_record=report)
    except (OSError, RuntimeError, ValueError) as exc:
        _fail(str(exc))
        raise typer.Exit(2) from None
    typer.echo(summary.line(), err=True)
    if summary.failed:
        raise typer.Exit(1)


@app.command("serve")
def serve_cmd(
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0: all).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    api_key: Annotated[str | None, typer.Option(envvar="EMOTRACE_API_KEY", help="Require this key in the X-API-Key header (or set EMOTRACE_API_KEY).")] = None,
    max_image_mb: Annotated[float, typer.Option(help="Largest image upload (MB).")] = 20,
    max_video_mb: Annotated[float, typer.Option(help="Largest video upload (MB).")] = 500,
    video_workers: Annotated[int, typer.Option(help="Video jobs analysed at the same time.")] = 1,
    model: ModelOpt = models.DEFAULT_CLASSIFIER,
) -> None:
    """The REST API (FastAPI + uvicorn): /v1/images, /v1/videos, /v1/jobs/{id}, /v1/models, /docs."""
    try:
        import uvicorn

        from emotrace.apps.api import Limits, create_app
    except ImportError as exc:
        _fail(f"the API needs FastAPI and uvicorn: pip install 'emotrace[api]' ({exc})")
        raise typer.Exit(2) from None
    limits = Limits(int(max_image_mb * (1 << 20)), int(max_video_mb * (1 << 20)))
    try:
        application = create_app(model, api_key, limits, video_workers)
    except (EmotraceError, ValueError) as exc:
        _fail(str(exc))
        raise typer.Exit(2) from None
    uvicorn.run(application, host=host, port=port, log_level="warning")


@app.command("webcam")
def webcam_cmd(
    source: Annotated[str, typer.Option(help="Camera index (0, 1, ...), a video file or a stream URL.")] = "0",
    headless: Annotated[bool, typer.Option(help="No window: write the annotated video to --output.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Annotated MP4 (with --headless; in a window, where `r` records).")] = None,
    max_frames: Annotated[int | None, typer.Option(help="Stop after this many frames.")] = None,
    smoothing: Annotated[float, typer.Option(help="Per-face moving average of the probabilities, 0 (raw) to <1.")] = 0.5,
    snapshots: Annotated[Path, typer.Option(help="Folder for snapshots (key s).")] = Path("snapshots"),
    model: ModelOpt = models.DEFAULT_CLASSIFIER,
) -> None:
    """Live emotions from a webcam (window: q quits, s snapshot, r record) or, headless, to a file."""
    from emotrace.apps.webcam import EmotionRecognizer, run_live

    try:
        recognizer = EmotionRecognizer(model, smoothing=smoothing)
        stats = run_live(recognizer, source, headless, output, snapshots, max_frames)
    except (EmotraceError, RuntimeError, ValueError) as exc:
        _fail(str(exc))
        raise typer.Exit(2) from None
    typer.echo(stats.summary() + (f" -> {output}" if output and headless else ""), err=True)


@app.command("demo")
def demo_cmd(
    port: Annotated[int, typer.Option(help="Port the app listens on.")] = 8501,
    host: Annotated[str, typer.Option(help="Address the app listens on (0.0.0.0: every interface).")] = "127.0.0.1",
) -> None:
    """Start the Streamlit demo app: analyse uploads, compare face embeddings (needs emotrace[demo])."""
    import importlib.util
    import signal
    import subprocess

    if importlib.util.find_spec("streamlit") is None:
        _fail("the demo needs Streamlit, which is not installed: pip install 'emotrace[demo]'")
        raise typer.Exit(2)
    from emotrace.apps.demo.helpers import MAX_UPLOAD_MB

    command = [sys.executable, "-m", "streamlit", "run", str(Path(__file__).parents[1] / "apps" / "demo" / "app.py"),
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


@app.command("probe")
def probe_cmd(
    embeddings: Annotated[Path | None, typer.Argument(help="Table of embeddings and labels (.parquet, .csv or .npz; see docs).", show_default=False)] = None,
    backbone: Annotated[str | None, typer.Option(help="Instead of a table: embed FER+ train/valid/test with this model (registry name or embedding head .onnx).")] = None,
    limit: Annotated[int | None, typer.Option(help="With --backbone: at most this many faces per split.")] = None,
    videomae: Annotated[Path | None, typer.Option(help="Instead of a table: a local VideoMAE checkpoint folder; embeds windows of the labelled videos in --videos.")] = None,
    videos: Annotated[Path | None, typer.Option(help="With --videomae: a folder of videos with index.csv (file, weak_label_from_filename).")] = None,
    window: Annotated[float, typer.Option(help="With --videomae: clip window (s).")] = 2.0,
    outdir: Annotated[Path, typer.Option("--output", "-o", help="Folder for probe.json and probe_curves.png.")] = Path("probe"),
    epochs: Annotated[int, typer.Option(help="Most MLP epochs (early stopping on valid macro-F1).")] = 60,
) -> None:
    """MLP (3 layers, PyTorch) vs SVM (scikit-learn) on the same embeddings and splits."""
    try:
        from emotrace.train.probe import embeddings_from_faces, run_probe
    except ImportError as exc:
        _fail(f"probes need PyTorch and scikit-learn: pip install -e '.[train]' ({exc})")
        raise typer.Exit(2) from None
    if sum(x is not None for x in (embeddings, backbone, videomae)) != 1:
        _fail("give one of: a table of embeddings, --backbone MODEL, --videomae DIR --videos FOLDER")
        raise typer.Exit(2)
    try:
        if videomae is not None:
            from emotrace.train.videomae import clip_table

            if videos is None:
                _fail("--videomae needs --videos FOLDER")
                raise typer.Exit(2)
            embeddings = clip_table(videomae, videos, outdir / "videomae_clips.npz", window)
        elif backbone is not None:
            embeddings = embeddings_from_faces(backbone, outdir / f"{Path(backbone).stem}_ferplus.npz", limit)
        report = run_probe(embeddings, outdir, epochs)
    except (EmotraceError, RuntimeError, ValueError) as exc:
        _fail(str(exc))
        raise typer.Exit(2) from None
    for name in ("mlp", "svm"):
        r = report[name]
        typer.echo(f"{name.upper():4} test accuracy {r['accuracy']:.4f}  macro-F1 {r['macro_f1']:.4f}")
    typer.echo(f"-> {outdir}/probe.json, {outdir}/probe_curves.png", err=True)


@app.command("index")
def index_cmd(
    videos: Annotated[list[Path], typer.Argument(help="Video files and/or folders.")],
    db: Annotated[Path, typer.Option(help="Index folder (created if missing).")],
    window: Annotated[float | None, typer.Option(help="Fragment length (s); default 1, or a clip pooler's own window.", show_default=False)] = None,
    embedder: Annotated[str, typer.Option(help="Registry model with an embedding output, a model or head .onnx from `emotrace train embedding`, or a clip pooler clip.onnx from `emotrace train clip`.")] = "emotrace-ferplus8",
    fps: Annotated[float, typer.Option(help="Frames per second analysed.")] = 10.0,
    quiet: QuietOpt = False,
) -> None:
    """Store window embeddings of every face track (video, track, time) in a vector database."""
    from emotrace.fragments import index_videos
    from emotrace.media.decode import VIDEO_SUFFIXES

    paths = _collect(videos, VIDEO_SUFFIXES)
    try:
        added, failures = index_videos(paths, db, embedder, window, fps, progress=not quiet)
    except (EmotraceError, RuntimeError, ValueError) as exc:
        _fail(str(exc))
        raise typer.Exit(2) from None
    for exc in failures:
        _fail(str(exc))
    typer.echo(f"{len(paths) - len(failures)} videos, {added} fragments -> {db}", err=True)
    if failures:
        raise typer.Exit(1)


@app.command("search")
def search_cmd(
    db: Annotated[Path, typer.Option(help="Index folder made by `emotrace index`.")],
    video: Annotated[Path | None, typer.Option(help="Query: a moment of this video (with --at).")] = None,
    at: Annotated[float | None, typer.Option(help="Query moment in --video (s).")] = None,
    image: Annotated[Path | None, typer.Option(help="Query: the largest face in this image.")] = None,
    k: Annotated[int, typer.Option("-k", help="How many fragments.")] = 10,
) -> None:
    """The indexed fragments nearest to a video moment or a face image, with their times."""
    from emotrace.fragments import search

    try:
        hits = search(db, video, at, image, k)
    except (EmotraceError, RuntimeError, ValueError) as exc:
        _fail(str(exc))
        raise typer.Exit(2) from None
    typer.echo(hits.to_string(index=False, float_format=lambda x: f"{x:.3f}"))


@app.command("eval")
def eval_cmd(
    model: Annotated[str, typer.Argument(help="Registry name or an ONNX file from `emotrace train`; or the word `embedding` followed by the model, to evaluate its embedding.")],
    embedding_model: Annotated[str | None, typer.Argument(help="With `eval embedding`: a registry model with an embedding output, or a head .onnx from `emotrace train embedding`.", show_default=False)] = None,
    data: Annotated[str, typer.Option(help="ferplus-test | ferplus-valid | fer2013-private | a class folder | a CSV.")] = "ferplus-test",
    outdir: Annotated[Path, typer.Option("--output", "-o", help="Folder for the JSON report and confusion PNG.")] = Path("eval"),
    limit: Annotated[int | None, typer.Option(help="Evaluate a fixed random subset of this size.")] = None,
    videos: Annotated[Path | None, typer.Option(help="With `eval embedding`: also the label-flip rate between adjacent frames on the videos in this folder.", show_default=False)] = None,
    against: Annotated[str | None, typer.Option(help="A second classifier to compare on the same faces: accuracy difference with a bootstrap 95% interval and an exact McNemar test.", show_default=False)] = None,
) -> None:
    """Accuracy, macro-F1, per-class recall, confusion matrix and ECE of a classifier;
    `eval embedding MODEL`: same- vs opposite-emotion cosine, ROC-AUC, kNN and probe accuracy."""
    from emotrace.evaluation.classifier import evaluate, format_report

    if model == "embedding":
        from emotrace.evaluation.embedding import evaluate_embedding, format_embedding_report

        if embedding_model is None:
            _fail("eval embedding needs a model: emotrace eval embedding MODEL")
            raise typer.Exit(2)
        try:
            report = evaluate_embedding(embedding_model, data, outdir, limit, videos=videos)
        except (EmotraceError, ValueError) as exc:
            _fail(str(exc))
            raise typer.Exit(2) from None
        typer.echo(format_embedding_report(report))
        typer.echo(f"-> {outdir}/", err=True)
        return

    try:
        report = evaluate(model, data, outdir, limit, against=against)
    except (EmotraceError, ValueError) as exc:
        _fail(str(exc))
        raise typer.Exit(2) from None
    typer.echo(format_report(report))
    typer.echo(f"-> {outdir}/", err=True)


train_app = typer.Typer(help="Train models (needs the train extra: pip install -e '.[train]').",
                        no_args_is_help=True, rich_markup_mode=None)
app.add_typer(train_app, name="train")


@train_app.command("classifier")
def train_classifier_cmd(
    config: Annotated[Path | None, typer.Option(help="YAML config (see configs/).")] = None,
    overrides: Annotated[list[str] | None, typer.Argument(help="key.sub=value overrides.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run from its last checkpoint.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Fine-tune the expression classifier (augmentation, soft labels, VA heads; MLflow)."""
    module, cfg = _training_config("classifier", config, overrides)
    results = module.train_classifier(cfg, resume=resume, progress=not quiet)
    test = results.get("test", {})
    typer.echo(f"{cfg['name']}: test accuracy {test.get('accuracy', float('nan')):.4f}, "
               f"macro-F1 {test.get('macro_f1', float('nan')):.4f} -> "
               f"{Path(cfg['output_dir']) / cfg['name']}")


def _training_config(module: str, config: Path | None, overrides: list[str] | None):
    """Import `emotrace.train.<module>` (the train extra) and load its config: its own
    DEFAULTS (the classifier's when it has none) <- the YAML file <- the overrides. Exits with
    one line when PyTorch is missing or the config is bad."""
    import importlib

    try:
        from emotrace.train.config import load_config

        mod = importlib.import_module(f"emotrace.train.{module}")
    except ImportError as exc:
        _fail(f"training needs PyTorch and friends: pip install -e '.[train]' ({exc})")
        raise typer.Exit(2) from None
    try:
        return mod, load_config(config, overrides or [], getattr(mod, "DEFAULTS", None))
    except (OSError, KeyError, TypeError, ValueError) as exc:
        _fail(f"{config or 'config'}: {exc}")
        raise typer.Exit(2) from None


def _train(module: str, function: str, config: Path | None, overrides: list[str] | None,
           quiet: bool) -> tuple[dict, dict]:
    """(config, results) of `emotrace.train.<module>.<function>(cfg)`; a bad setting found
    while training exits with one line."""
    mod, cfg = _training_config(module, config, overrides)
    try:
        return cfg, getattr(mod, function)(cfg, progress=not quiet)
    except (OSError, KeyError, TypeError, ValueError, EmotraceError) as exc:
        _fail(f"{config or 'config'}: {exc}")
        raise typer.Exit(2) from None


ConfigOpt = Annotated[Path | None, typer.Option(help="YAML config (see configs/).")]
OverridesArg = Annotated[list[str] | None, typer.Argument(help="key.sub=value overrides.")]


@train_app.command("embedding")
def train_embedding_cmd(config: ConfigOpt = None, overrides: OverridesArg = None,
                        quiet: QuietOpt = False) -> None:
    """Train an emotion-aware embedding head (SupCon, NT-Xent, triplet or VICReg; MLflow)."""
    cfg, results = _train("embedding", "train_embedding", config, overrides, quiet)
    test = results["test"]
    typer.echo(f"{cfg['name']}: FER+ test same-vs-different ROC-AUC {test['same_vs_different_roc_auc']:.4f}, "
               f"same-opposite {test.get('same_minus_opposite', float('nan')):.3f} -> "
               f"{Path(cfg['output_dir']) / cfg['name']}")


@train_app.command("temporal")
def train_temporal_cmd(config: ConfigOpt = None, overrides: OverridesArg = None,
                       quiet: QuietOpt = False) -> None:
    """Train a TCN or GRU over per-frame embeddings: of face tracks (pseudo-labels + consistency),
    or of ABAW / AFEW-VA annotated sequences (data.format=abaw|afew-va data.root=DIR data.task=expr|va|au)."""
    _, results = _train("temporal", "train_temporal", config, overrides, quiet)
    if "validation" in results:  # human labels: the challenge metrics on the validation set
        typer.echo(f"{results['format']} {results['task']}: validation "
                   + ", ".join(f"{k} {v:.4f}" for k, v in results["validation"].items() if k != "score")
                   + f" ({results['train_sequences']} train / {results['validation_sequences']} validation sequences)")
        return
    for split in ("all", "heldout"):
        raw, model = results["raw"][split], results["model"][split]
        typer.echo(f"{split:8} flips/s raw {raw['flips_per_s']:.3f} -> {model['flips_per_s']:.3f}; "
                   f"agreement with clip labels {raw['agreement']:.3f} -> {model['agreement']:.3f} "
                   f"({model['labelled_tracks']} labelled tracks)")


@train_app.command("clip")
def train_clip_cmd(config: ConfigOpt = None, overrides: OverridesArg = None,
                   quiet: QuietOpt = False) -> None:
    """Train a clip embedder: frame embeddings of a window pooled by mean, attention, GRU or TCN."""
    cfg, r = _train("clip", "train_clip", config, overrides, quiet)
    typer.echo(f"{cfg['name']} ({r['kind']}): held-out window same-vs-different ROC-AUC "
               f"{r['heldout_auc']:.4f} (mean-pooled frame embeddings {r['mean_pooled_frames_auc']:.4f})")


def main() -> None:
    try:
        app()
    except EmotraceError as exc:  # anything not handled per file: one line, no traceback
        _fail(str(exc))
        sys.exit(1)


if __name__ == "__main__":
    main()
