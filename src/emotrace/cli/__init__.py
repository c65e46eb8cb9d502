"""The `emotrace` command line: the Typer app, its commands registered from one module per group.

Every command is registered below with the one error policy (cli/errors.py) around it. Command
modules import only typer and the model registry at the top; the heavy libraries (OpenCV, ONNX
Runtime, PyAV, pandas, matplotlib, PyTorch) load inside the command bodies, so `emotrace --help`
and `emotrace COMMAND --help` stay fast.
"""

from __future__ import annotations

from collections.abc import Callable

import typer

from emotrace.cli import analyse, apps, batch, evaluate, fragments, highlights, models, train
from emotrace.cli.errors import error_policy
from emotrace.errors import raise_on_sigterm

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Read human emotion from faces in images and videos.",
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts contain [extras] that Rich would read as markup
)
eval_app = typer.Typer(
    cls=evaluate.EvalGroup, no_args_is_help=True, rich_markup_mode=None,
    help="Evaluate a classifier (`eval classifier MODEL`; `eval MODEL` for short) or its "
         "embedding (`eval embedding MODEL`).")
train_app = typer.Typer(help="Train models (needs the train extra: pip install -e '.[train]').",
                        no_args_is_help=True, rich_markup_mode=None)


Commands = list[tuple[str, Callable[..., object]]]
COMMANDS: Commands = [
    ("models", models.models_cmd),
    ("images", analyse.images_cmd),
    ("video", analyse.video_cmd),
    ("highlights", highlights.highlights_cmd),
    ("batch", batch.batch_cmd),
    ("serve", apps.serve_cmd),
    ("webcam", apps.webcam_cmd),
    ("demo", apps.demo_cmd),
    ("probe", train.probe_cmd),
    ("index", fragments.index_cmd),
    ("search", fragments.search_cmd),
]
EVAL_COMMANDS: Commands = [("classifier", evaluate.classifier_cmd),
                           ("embedding", evaluate.embedding_cmd)]
TRAIN_COMMANDS: Commands = [("classifier", train.classifier_cmd),
                            ("embedding", train.embedding_cmd),
                            ("temporal", train.temporal_cmd),
                            ("clip", train.clip_cmd),
                            ("calibrate", train.calibrate_cmd)]

for _group, _commands in ((app, COMMANDS), (eval_app, EVAL_COMMANDS),
                          (train_app, TRAIN_COMMANDS)):
    for _name, _function in _commands:
        _group.command(_name)(error_policy(_function))
app.add_typer(eval_app, name="eval")
app.add_typer(train_app, name="train")


def main() -> None:
    """The `emotrace` entry point."""
    raise_on_sigterm()  # so that a SIGTERM cleans up on its way out, as Ctrl-C does
    app()


if __name__ == "__main__":
    main()
