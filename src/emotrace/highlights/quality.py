"""Is a viewer's recording good enough to count? Per-viewer quality from the face table alone.

Measured on the viewer's own face rows (`reactions.persons`), so a table is enough:

- `face_share`: share of the recording's steps (seconds) in which the viewer's face is seen;
- `face_size`: median face size in pixels (the table's `face_size`, else the box height);
- `brightness`, `contrast`: median luma mean and spread of the face box (0-255);
- `sharpness`: median variance of the Laplacian of the face (`face_sharpness`);
- `clipped`: median share of the face box outside the frame (a face half out of view);
- `frame_rate`: analysed frames per second, and `gaps`: pauses of more than `max_gap_s`
  between analysed frames (a camera that stalls, a recording with holes);
- `attention`: share of the seconds with the face in which the viewer faced the screen.

Each measure has a threshold (`QualitySettings`); a viewer whose measures all pass is `good`,
one that fails one is `fair`, two or more `poor`, and every failure is given as a reason.
A measure the table cannot give (an older table without the face measures) is left out,
never guessed. `emotrace highlights --min-quality fair` leaves `poor` recordings out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

GRADES = ("poor", "fair", "good")  # worst to best


@dataclass(frozen=True)
class QualitySettings:
    """Thresholds of the quality checks (see module doc); luma values 0-255."""

    min_face_share: float = 0.5
    min_face_size: float = 48.0
    min_brightness: float = 40.0
    max_brightness: float = 220.0
    min_contrast: float = 12.0
    # variance of the Laplacian on the face resized to 64x64: real clips here measure 211
    # (styletalk reagan_clip1, old soft footage) to 1260 (pyfeat), photos 515-1760, the same
    # photos blurred with a Gaussian of sigma 4 px 33-226: the ranges overlap, so the threshold
    # flags clearly blurred faces only, not soft real recordings
    min_sharpness: float = 120.0
    max_clipped: float = 0.25
    max_gap_s: float = 2.0
    max_gaps: int = 3
    min_attention: float = 0.6

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value}")
        if self.min_brightness >= self.max_brightness:
            raise ValueError("min_brightness must be below max_brightness")


@dataclass(frozen=True)
class Quality:
    """One viewer's measures, grade and the reasons for it."""

    measures: dict[str, float]
    grade: str
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"grade": self.grade, "reasons": self.reasons, **self.measures}

    def at_least(self, grade: str) -> bool:
        return GRADES.index(self.grade) >= GRADES.index(grade)


def _median(rows: pd.DataFrame, column: str) -> float:
    return float(rows[column].median()) if column in rows and rows[column].notna().any() \
        else float("nan")


def measure(rows: pd.DataFrame, steps: pd.DataFrame, analysed: pd.Series,
            max_gap_s: float) -> dict[str, float]:
    """The measures (module doc) of a viewer's face `rows`, their per-step `steps` table
    (columns `missing`, optional `attention`) and the timestamps of every analysed frame."""
    times = np.sort(analysed.unique())
    span = float(times[-1] - times[0]) if len(times) > 1 else 0.0
    gaps = np.diff(times)
    size = (rows["face_size"] if "face_size" in rows
            else rows["y2"] - rows["y1"])
    out = {
        "face_share": float((~steps["missing"]).mean()) if len(steps) else 0.0,
        "face_size": float(size.median()) if len(rows) else float("nan"),
        "brightness": _median(rows, "face_brightness"),
        "contrast": _median(rows, "face_contrast"),
        "sharpness": _median(rows, "face_sharpness"),
        "clipped": _median(rows, "face_clipped"),
        "frame_rate": (len(times) - 1) / span if span > 0 else float("nan"),
        "gaps": float((gaps > max_gap_s).sum()),
        "attention": float(steps.loc[~steps["missing"], "attention"].mean())
        if "attention" in steps and steps["attention"].notna().any() else float("nan"),
    }
    return out


def grade(measures: dict[str, float], settings: QualitySettings | None = None) -> Quality:
    """The grade and reasons for a viewer's measures; NaN measures are not judged."""
    s = settings or QualitySettings()
    m = measures
    checks = [
        ("face_share", m["face_share"] < s.min_face_share,
         f"face seen in {m['face_share']:.0%} of the seconds (< {s.min_face_share:.0%})"),
        ("face_size", m["face_size"] < s.min_face_size,
         f"face small: {m['face_size']:.0f} px (< {s.min_face_size:g})"),
        ("brightness", m["brightness"] < s.min_brightness,
         f"too dark: face brightness {m['brightness']:.0f} (< {s.min_brightness:g})"),
        ("brightness", m["brightness"] > s.max_brightness,
         f"too bright: face brightness {m['brightness']:.0f} (> {s.max_brightness:g})"),
        ("contrast", m["contrast"] < s.min_contrast,
         f"flat: face contrast {m['contrast']:.1f} (< {s.min_contrast:g})"),
        ("sharpness", m["sharpness"] < s.min_sharpness,
         f"blurred: sharpness {m['sharpness']:.0f} (< {s.min_sharpness:g})"),
        ("clipped", m["clipped"] > s.max_clipped,
         f"face out of frame: {m['clipped']:.0%} of it (> {s.max_clipped:.0%})"),
        ("gaps", m["gaps"] > s.max_gaps,
         f"{m['gaps']:.0f} pauses of more than {s.max_gap_s:g} s (> {s.max_gaps})"),
        ("attention", m["attention"] < s.min_attention,
         f"faced the screen {m['attention']:.0%} of the time (< {s.min_attention:.0%})"),
    ]
    reasons = [text for key, failed, text in checks if np.isfinite(m[key]) and failed]
    return Quality({k: round(v, 4) for k, v in m.items()},
                   GRADES[max(0, 2 - len(reasons))], reasons)
