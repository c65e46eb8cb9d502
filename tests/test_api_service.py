"""The API's service without a server: at most `concurrent_images` images decoded at once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("fastapi")
from emotrace.apps import api  # noqa: E402


@pytest.mark.parametrize("slots", [1, 2])
def test_image_decoding_is_bounded(slots, models_dir, pyfeat_dir, monkeypatch):
    """Three huge images at once must not all hold their pixels: decode under a semaphore."""
    data = (pyfeat_dir / "0-f15-hao-ph.jpg").read_bytes()
    active, peak, lock = 0, 0, threading.Lock()
    real_decode = api.decode_image

    def decode(name, data):
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.3)  # as long as a 30000 x 30000 PNG takes
        image = real_decode(name, data)
        with lock:
            active -= 1
        return image

    monkeypatch.setattr(api, "decode_image", decode)
    service = api.Service("emotrace-ferplus8", api.Limits(concurrent_images=slots))
    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda i: service.analyze_image(f"{i}.jpg", data), range(4)))
    finally:
        service.close()
    assert peak == slots
    assert [r["faces"][0]["emotion"] for r in results] == ["happy"] * 4
    assert not service.folder.exists()
