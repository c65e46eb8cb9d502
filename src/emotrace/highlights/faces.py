"""Every viewer's face table: read from the tables given, or analysed from the recordings.

Recordings are analysed one of two ways:

- in this process, with an `Analyzer` (the Python API's default: nothing is written);
- through the batch engine (`emotrace.batch`: a process pool or a Ray cluster), which writes
  each recording's table to `TABLES/faces/<key>.parquet` with a manifest, so that a second run
  with other moment settings reads the tables instead of analysing again, and an interrupted
  run goes on where it stopped. `emotrace highlights` does this, with TABLES its output folder.

Either way the face rows are those `emotrace video` would write, and the highlights are
computed from the table alone (`reactions.viewer_signals`), so moments from tables equal
moments from the recordings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from emotrace import batch
from emotrace.errors import InputError, path_text
from emotrace.highlights.inputs import FaceTable, Viewer, read_face_table, table_of
from emotrace.pipeline import Analyzer


@dataclass(frozen=True)
class BatchEngine:
    """Analyse recordings through `emotrace.batch` into `tables` (see module doc)."""

    tables: Path
    engine: str = "local"
    workers: int | None = None
    ray_address: str | None = None

    def __post_init__(self) -> None:
        if self.engine not in batch.ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}; valid: {', '.join(batch.ENGINES)}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")


def face_tables(viewers: Sequence[Viewer], fps: float | None, model: str,
                analyzer: Analyzer | None = None, engine: BatchEngine | None = None,
                progress: bool = True) -> list[FaceTable | str]:
    """Each viewer's `FaceTable`, or the problem (one line) that kept it from being read or
    analysed. Tables are read as they are; recordings are analysed at `fps` with `model`, by
    `engine` when one is given, else in this process by `analyzer`."""
    out: dict[int, FaceTable | str] = {}
    recordings = []
    for i, viewer in enumerate(viewers):
        if viewer.is_table:
            try:
                out[i] = read_face_table(viewer.path)
            except InputError as exc:
                out[i] = exc.problem
        else:
            recordings.append(i)
    if engine is not None:
        analysed = _through_batch([viewers[i].path for i in recordings], fps, model, engine,
                                  progress)
        out.update(zip(recordings, analysed, strict=True))
    else:
        analyzer = analyzer or Analyzer(classifier=model)
        for i in recordings:
            try:
                out[i] = table_of(analyzer.analyze_video(viewers[i].path, fps=fps,
                                                         progress=progress))
            except InputError as exc:
                out[i] = exc.problem
    return [out[i] for i in range(len(viewers))]


def _through_batch(paths: list[Path], fps: float | None, model: str, engine: BatchEngine,
                   progress: bool) -> list[FaceTable | str]:
    if not paths:
        return []
    missing = {p: "no such file" for p in paths if not p.exists()}
    present = [p for p in paths if p not in missing]
    if present:
        batch.run_batch(present, engine.tables, engine.engine, engine.workers,
                        engine.ray_address, fps, model, progress=progress)
    records = {str(r["path"]): r for r in
               batch.read_manifest(engine.tables).to_dict("records")}
    out: list[FaceTable | str] = []
    for path in paths:
        if path in missing:
            out.append(missing[path])
            continue
        record = records.get(path_text(path.resolve()))
        if record is None or record["status"] not in batch.KEPT:
            out.append(str(record["reason"]) if record else "not analysed")
            continue
        try:
            out.append(read_face_table(record["output"]))
        except InputError as exc:
            out.append(exc.problem)
    return out
