"""The two-column submission form: `image_path,emotion`, one row per image, 9-class names."""

from __future__ import annotations

import pandas as pd

from emotrace.labels import SUBMISSION9, remap_probs
from emotrace.results import ImageAnalysis


def submission_rows(results: list[ImageAnalysis], analyzer) -> pd.DataFrame:
    """One row per image: the emotion of its most confident face (highest detection score).

    Where no face is found the whole image is classified as a cropped face, so every image
    gets a label. Labels are the 9-class submission names; a model without some of those
    classes (e.g. contempt) simply never predicts them.
    """
    rows = []
    for result in results:
        frame = result.frame
        if len(frame) == 0:
            frame = analyzer.analyze_image(result.path, cropped=True).frame
        best = int(frame.detections.scores.argmax()) if len(frame) > 1 else 0
        probs = remap_probs(frame.emotions.probs[best : best + 1], frame.emotions.labels,
                            SUBMISSION9)
        rows.append((result.path, SUBMISSION9[int(probs.argmax())]))
    return pd.DataFrame(rows, columns=["image_path", "emotion"])
