"""`emotrace models`: the registered models and whether each file is here."""

from __future__ import annotations

import typer

from emotrace import models

HEADER = ("name", "task", "present", "licence", "file")


def models_cmd() -> None:
    """List the registered models and whether each file is present here."""
    defaults = (models.DEFAULT_CLASSIFIER, models.DEFAULT_DETECTOR)
    rows = [(card.name + (" (default)" if card.name in defaults else ""), card.task,
             "yes" if models.is_present(card) else "no", card.licence, card.filename)
            for card in models.list_models()]
    widths = [max(len(row[i]) for row in [HEADER, *rows]) for i in range(len(HEADER))]
    for row in [HEADER, *rows]:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    dirs = models.model_dirs()
    typer.echo(f"\nsearched: {', '.join(map(str, dirs))}{', ' if dirs else ''}"
               f"{models.cache_dir()} (EMOTRACE_MODEL_DIR, cache)")
