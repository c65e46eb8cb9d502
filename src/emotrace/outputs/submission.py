"""The two-column submission form: `image_path,emotion`, one row per image, 9-class names.

Every image given gets its row, in the order given: the emotion of its most confident face, or
`no_face` when no face was found in it, or `failed` when it could not be read. The two markers
are not emotions, so a grader cannot take them for one, and no image is left out silently.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import pandas as pd

from emotrace.errors import InputError, path_text
from emotrace.labels import SUBMISSION9, remap_probs
from emotrace.results import ImageAnalysis

NO_FACE = "no_face"
FAILED = "failed"


def submission_rows(results: Iterable[ImageAnalysis | InputError]) -> pd.DataFrame:
    """One row per image: the 9-class emotion of its most confident face (highest detection
    score), `no_face` where none was found, `failed` for an image that could not be read."""
    rows = []
    for result in results:
        if isinstance(result, InputError):
            rows.append((result.path, FAILED))
            continue
        frame = result.frame
        if len(frame) == 0:
            rows.append((path_text(result.path), NO_FACE))
            continue
        best = int(frame.detections.scores.argmax()) if len(frame) > 1 else 0
        probs = remap_probs(frame.emotions.probs[best : best + 1], frame.emotions.labels,
                            SUBMISSION9)
        rows.append((path_text(result.path), SUBMISSION9[int(probs.argmax())]))
    return pd.DataFrame(rows, columns=["image_path", "emotion"])


def unlabelled_note(df: pd.DataFrame) -> str:
    """`N of M images have no emotion: K no_face, F failed`, or "" when every row has one."""
    counts = Counter(df["emotion"])
    parts = [f"{counts[mark]} {mark}" for mark in (NO_FACE, FAILED) if counts[mark]]
    if not parts:
        return ""
    missing = counts[NO_FACE] + counts[FAILED]
    return f"{missing} of {len(df)} images have no emotion: {', '.join(parts)}"
