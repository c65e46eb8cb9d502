"""`emotrace train classifier|embedding|temporal|clip` and `emotrace probe` (the train extra).

Each trainer reads its config as its own DEFAULTS (the classifier's when it has none) <- the
YAML file <- key.sub=value overrides; a config that cannot be read is a setting error (exit 2).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer

from emotrace.cli.errors import fail, os_error_line
from emotrace.cli.options import (
    AT_LEAST_ONE,
    OUTPUT_FILE,
    OUTPUT_FOLDER,
    POSITIVE,
    ConfigOpt,
    OverridesArg,
    QuietOpt,
)

TRAIN_EXTRA = "pip install -e '.[train]'"


def _trainer(module: str, config: Path | None,
             overrides: list[str] | None) -> tuple[ModuleType, dict[str, Any]]:
    """`emotrace.train.<module>` and its config; one line when PyTorch is missing or the config
    is bad."""
    try:
        from emotrace.train.config import load_config

        trainer = importlib.import_module(f"emotrace.train.{module}")
    except ImportError as exc:
        fail(f"training needs PyTorch and friends: {TRAIN_EXTRA} ({exc})")
    try:
        return trainer, load_config(config, overrides or [], trainer.DEFAULTS)
    except OSError as exc:
        fail(os_error_line(exc))
    except (KeyError, TypeError, ValueError) as exc:
        problem = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        fail(f"{config or 'config'}: {problem}")


def classifier_cmd(
    config: ConfigOpt = None,
    overrides: OverridesArg = None,
    resume: Annotated[bool, typer.Option(
        help="Continue the run from its last checkpoint.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Fine-tune the expression classifier (augmentation, soft labels, VA heads; MLflow)."""
    trainer, cfg = _trainer("classifier", config, overrides)
    results = trainer.train_classifier(cfg, resume=resume, progress=not quiet)
    test = results.get("test", {})
    typer.echo(f"{cfg['name']}: test accuracy {test.get('accuracy', float('nan')):.4f}, "
               f"macro-F1 {test.get('macro_f1', float('nan')):.4f} -> "
               f"{Path(cfg['output_dir']) / cfg['name']}")


def embedding_cmd(config: ConfigOpt = None, overrides: OverridesArg = None,
                  quiet: QuietOpt = False) -> None:
    """Train an emotion-aware embedding head (SupCon, NT-Xent, triplet or VICReg; MLflow)."""
    trainer, cfg = _trainer("embedding", config, overrides)
    test = trainer.train_embedding(cfg, progress=not quiet)["test"]
    typer.echo(f"{cfg['name']}: FER+ test same-vs-different ROC-AUC "
               f"{test['same_vs_different_roc_auc']:.4f}, same-opposite "
               f"{test.get('same_minus_opposite', float('nan')):.3f} -> "
               f"{Path(cfg['output_dir']) / cfg['name']}")


def temporal_cmd(config: ConfigOpt = None, overrides: OverridesArg = None,
                 quiet: QuietOpt = False) -> None:
    """Train a TCN or GRU over per-frame embeddings: of face tracks (pseudo-labels +
    consistency), or of ABAW / AFEW-VA annotated sequences (data.format=abaw|afew-va
    data.root=DIR data.task=expr|va|au)."""
    trainer, cfg = _trainer("temporal", config, overrides)
    results = trainer.train_temporal(cfg, progress=not quiet)
    if "validation" in results:  # human labels: the challenge metrics on the validation set
        scores = ", ".join(f"{k} {v:.4f}" for k, v in results["validation"].items()
                           if k != "score")
        typer.echo(f"{results['format']} {results['task']}: validation {scores} "
                   f"({results['train_sequences']} train / "
                   f"{results['validation_sequences']} validation sequences)")
        return
    for split in ("all", "heldout"):
        raw, model = results["raw"][split], results["model"][split]
        typer.echo(f"{split:8} flips/s raw {raw['flips_per_s']:.3f} -> "
                   f"{model['flips_per_s']:.3f}; agreement with clip labels "
                   f"{raw['agreement']:.3f} -> {model['agreement']:.3f} "
                   f"({model['labelled_tracks']} labelled tracks)")


def clip_cmd(config: ConfigOpt = None, overrides: OverridesArg = None,
             quiet: QuietOpt = False) -> None:
    """Train a clip embedder: frame embeddings of a window pooled by mean, attention, GRU or TCN."""
    trainer, cfg = _trainer("clip", config, overrides)
    r = trainer.train_clip(cfg, progress=not quiet)
    typer.echo(f"{cfg['name']} ({r['kind']}): held-out window same-vs-different ROC-AUC "
               f"{r['heldout_auc']:.4f} (mean-pooled frame embeddings "
               f"{r['mean_pooled_frames_auc']:.4f})")


def probe_cmd(
    embeddings: Annotated[Path | None, typer.Argument(
        help="Table of embeddings and labels (.parquet, .csv or .npz; see docs).",
        show_default=False)] = None,
    backbone: Annotated[str | None, typer.Option(
        help="Instead of a table: embed FER+ train/valid/test with this model (registry name "
             "or embedding head .onnx).")] = None,
    limit: Annotated[int | None, typer.Option(
        help="With --backbone: at most this many faces per split."), AT_LEAST_ONE] = None,
    videomae: Annotated[Path | None, typer.Option(
        help="Instead of a table: a local VideoMAE checkpoint folder; embeds windows of the "
             "labelled videos in --videos.")] = None,
    videos: Annotated[Path | None, typer.Option(
        help="With --videomae: a folder of videos with index.csv (file, "
             "weak_label_from_filename).")] = None,
    window: Annotated[float, typer.Option(help="With --videomae: clip window (s)."),
                      POSITIVE] = 2.0,
    outdir: Annotated[Path, typer.Option(
        "--output", "-o", help="Folder for probe.json and probe_curves.png."), OUTPUT_FOLDER]
    = Path("probe"),
    epochs: Annotated[int, typer.Option(
        help="Most MLP epochs (early stopping on valid macro-F1)."), AT_LEAST_ONE] = 60,
    device: Annotated[str, typer.Option(
        help="auto (CUDA, then MPS, else CPU) | cpu | cuda | mps: where the MLP (and "
             "VideoMAE) run.")] = "auto",
) -> None:
    """MLP (3 layers, PyTorch) vs SVM (scikit-learn) on the same embeddings and splits."""
    try:
        from emotrace.train.probe import embeddings_from_faces, run_probe
    except ImportError as exc:
        fail(f"probes need PyTorch and scikit-learn: {TRAIN_EXTRA} ({exc})")
    if sum(x is not None for x in (embeddings, backbone, videomae)) != 1:
        fail("give one of: a table of embeddings, --backbone MODEL, --videomae DIR --videos "
             "FOLDER")
    if videomae is not None:
        from emotrace.train.videomae import clip_table

        if videos is None:
            fail("--videomae needs --videos FOLDER")
        embeddings = clip_table(videomae, videos, outdir / "videomae_clips.npz", window, device)
    elif backbone is not None:
        embeddings = embeddings_from_faces(backbone, outdir / f"{Path(backbone).stem}_ferplus.npz",
                                           limit)
    assert embeddings is not None  # exactly one source was given, checked above
    report = run_probe(embeddings, outdir, epochs, device=device)
    for name in ("mlp", "svm"):
        r = report[name]
        typer.echo(f"{name.upper():4} test accuracy {r['accuracy']:.4f}  "
                   f"macro-F1 {r['macro_f1']:.4f}")
    typer.echo(f"-> {outdir}/probe.json, {outdir}/probe_curves.png", err=True)


def calibrate_cmd(
    model: Annotated[Path, typer.Argument(help="An expression model file written by emotrace "
                                          "train (.onnx).", show_default=False)],
    data: Annotated[str, typer.Option(help="Labelled faces to fit on (not the test set).")
                    ] = "ferplus-valid",
    prior: Annotated[bool, typer.Option(
        help="Also fit a class bias (logit adjustment against the training prior, its "
             "strength chosen on the set's macro-F1).")] = False,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write a calibrated copy here (default: the file itself)."),
        OUTPUT_FILE] = None,
) -> None:
    """Fit a model's temperature (and class bias) and write them into its metadata."""
    try:
        from emotrace.train.calibrate import fit, write
    except ImportError as exc:
        fail(f"calibration writes ONNX metadata with the onnx package: {TRAIN_EXTRA} ({exc})")
    if not model.is_file():
        fail(f"{model}: no such model file")
    result = fit(model, data, "temperature+prior" if prior else "temperature")
    path = write(model, result, output)
    raw, cal = result["valid_raw"], result["valid_calibrated"]
    typer.echo(f"{path}: temperature {result['temperature']:.4f}"
               + (f", class bias tau {result['tau']}" if prior else "")
               + f"; {data} accuracy {raw['accuracy']:.4f} -> {cal['accuracy']:.4f}, "
                 f"ECE {raw['ece']:.4f} -> {cal['ece']:.4f}")
