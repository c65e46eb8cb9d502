"""Shared fixtures: the real models and data in ../shared (CI has it beside the repo too).

A test that needs ../shared says so by asking for one of SHARED_FIXTURES (directly or through
another fixture) or by the `needs_shared` marker; without ../shared those tests are skipped and
the rest, which build their inputs themselves, still run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EMOTRACE_SHARED", ROOT.parent / "shared")).resolve()
MODELS = SHARED / "models"
HAVE_SHARED = MODELS.is_dir()
# Fixtures that read ../shared; a test using any of them is marked `needs_shared`.
SHARED_FIXTURES = {"shared_dir", "models_dir", "data_dir", "pyfeat_dir", "styletalk_dir",
                   "analyzer", "analyzer_ferplus8", "bad_videos"}

if HAVE_SHARED:
    os.environ.setdefault("EMOTRACE_MODEL_DIR", str(MODELS))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason=f"needs ../shared beside the repo (looked in {SHARED}; "
                                   "set EMOTRACE_SHARED)")
    for item in items:
        if SHARED_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.needs_shared)
        if not HAVE_SHARED and item.get_closest_marker("needs_shared"):
            item.add_marker(skip)


def _shared(path: Path) -> Path:
    if not HAVE_SHARED:  # a fixture reached without the marker (e.g. getfixturevalue)
        pytest.skip(f"needs ../shared beside the repo (looked in {SHARED})")
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _shared(SHARED)


@pytest.fixture(scope="session")
def models_dir(shared_dir: Path) -> Path:
    return shared_dir / "models"


@pytest.fixture(scope="session")
def data_dir(shared_dir: Path) -> Path:
    return shared_dir / "data"


@pytest.fixture(scope="session")
def pyfeat_dir(data_dir: Path) -> Path:
    return data_dir / "video" / "pyfeat"


@pytest.fixture(scope="session")
def styletalk_dir(data_dir: Path) -> Path:
    return data_dir / "video" / "styletalk"


@pytest.fixture(scope="session")
def analyzer(models_dir: Path):
    from emotrace import Analyzer

    return Analyzer()


@pytest.fixture(scope="session")
def analyzer_ferplus8(models_dir: Path):
    """The Analyzer with emotrace-ferplus8, the model the smoothing and highlights settings
    (switch cost, reaction threshold) and their documented numbers were measured with; the
    calibrated default is sharper, and those settings are yet to be re-measured for it."""
    from emotrace import Analyzer

    return Analyzer("emotrace-ferplus8")


@pytest.fixture(scope="session")
def bad_videos(tmp_path_factory, pyfeat_dir: Path) -> dict[str, Path]:
    """Truncated MP4s (the first half of real ones) and a text file named .mp4.

    WolfgangLanger_Pexels.mp4 has its index (moov) first, so half of it still opens and the
    stream ends early; single_face.mp4 has it last, so half of it does not open at all.
    """
    folder = tmp_path_factory.mktemp("bad")
    out = {}
    for kind, source in (("truncated", "WolfgangLanger_Pexels.mp4"),
                         ("truncated_index", "single_face.mp4")):
        data = (pyfeat_dir / source).read_bytes()
        out[kind] = folder / f"{kind}.mp4"
        out[kind].write_bytes(data[: len(data) // 2])
    out["text"] = folder / "notes.mp4"
    out["text"].write_text("this is a text file, not a video\n")
    return out
