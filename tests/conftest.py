"""Shared fixtures: the real models and data in ../shared (CI has it beside the repo too)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EMOTRACE_SHARED", ROOT.parent / "shared")).resolve()
MODELS = SHARED / "models"
DATA = SHARED / "data"
PYFEAT = DATA / "video" / "pyfeat"
STYLETALK = DATA / "video" / "styletalk"

if not MODELS.is_dir():
    raise RuntimeError(f"the tests need ../shared beside the repo (looked in {SHARED})")
os.environ.setdefault("EMOTRACE_MODEL_DIR", str(MODELS))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return SHARED


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return MODELS


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def pyfeat_dir() -> Path:
    return PYFEAT


@pytest.fixture(scope="session")
def styletalk_dir() -> Path:
    return STYLETALK


@pytest.fixture(scope="session")
def analyzer():
    from emotrace import Analyzer

    return Analyzer()


@pytest.fixture(scope="session")
def bad_videos(tmp_path_factory) -> dict[str, Path]:
    """Truncated MP4s (the first half of real ones) and a text file named .mp4.

    WolfgangLanger_Pexels.mp4 has its index (moov) first, so half of it still opens and the
    stream ends early; single_face.mp4 has it last, so half of it does not open at all.
    """
    folder = tmp_path_factory.mktemp("bad")
    out = {}
    for kind, source in (("truncated", "WolfgangLanger_Pexels.mp4"),
                         ("truncated_index", "single_face.mp4")):
        data = (PYFEAT / source).read_bytes()
        out[kind] = folder / f"{kind}.mp4"
        out[kind].write_bytes(data[: len(data) // 2])
    out["text"] = folder / "notes.mp4"
    out["text"].write_text("this is a text file, not a video\n")
    return out
