"""Paths and small helpers shared by the benchmarks."""

from __future__ import annotations

import os
import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EMOTRACE_SHARED", ROOT.parent / "shared")).resolve()
os.environ.setdefault("EMOTRACE_MODEL_DIR", str(SHARED / "models"))
WOLFGANG = SHARED / "data" / "video" / "pyfeat" / "WolfgangLanger_Pexels.mp4"


def machine() -> str:
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}")
