"""emotrace demo: a Streamlit app over the Python API (`emotrace.Analyzer`); no PyTorch.

Start it with `emotrace demo` (or `streamlit run src/emotrace/apps/demo/app.py`). Pages:
  Analyse     an uploaded image or video, or a camera snapshot: annotated faces, per-track
              timeline and summary, the per-face table, CSV / Parquet downloads.
  Embeddings  cosine similarity of two faces (images or short clips); same- vs opposite-emotion
              similarity on FER+ test; nearest indexed fragments (once an index exists).
The logic lives in `emotrace.apps.demo.helpers` (Analyse) and `emotrace.apps.demo.embeddings`
(Embeddings), upload checks in `emotrace.apps.uploads`; this file is the page layout.
"""

import os

import streamlit as st

from emotrace import models
from emotrace.apps.demo import embeddings as e
from emotrace.apps.demo import helpers as h
from emotrace.apps.uploads import UploadProblem, accepted_suffixes, check_kind, check_size
from emotrace.errors import EmotraceError, InputError
from emotrace.faces.embed import FaceEmbedder
from emotrace.pipeline import Analyzer

TITLE = "emotrace — emotions in faces"
VIDEO_RATES = {"every frame": None, "10 per second": 10.0, "5 per second": 5.0,
               "2 per second": 2.0, "1 per second": 1.0}


@st.cache_data(show_spinner="Checking which model files are here…")
def available_models() -> list[str]:
    return h.expression_models()


@st.cache_resource(show_spinner="Loading the model…")
def get_analyzer(model: str) -> Analyzer:
    return Analyzer(classifier=model, embeddings=True)


@st.cache_resource(show_spinner="Loading the embedder…")
def get_embedder(spec: str) -> e.Embedder:
    faces = FaceEmbedder(spec)
    return e.Embedder(faces, get_analyzer(faces.backbone_name))


@st.cache_data(show_spinner=f"Embedding {e.REFERENCE_FACES} FER+ test faces…")
def reference_pairs(model: str) -> e.PairCosines:
    return e.ferplus_pair_cosines(get_embedder(model).faces, n=e.REFERENCE_FACES, seed=0)


def remembered(slot: str, key: tuple, compute):
    """`compute()` once per key; the result (or the InputError/ValueError it raised) is kept in
    the session so reruns (a slider moved, a download clicked) do not analyse again."""
    held = st.session_state.get(slot)
    if held is None or held[0] != key:
        try:
            value = compute()
        except (InputError, ValueError) as exc:
            value = exc
        st.session_state[slot] = held = (key, value)
    return held[1]


def show_error(exc: Exception) -> None:
    if isinstance(exc, InputError):
        st.error(f"Could not analyse **{exc.path}**: {exc.problem}")
    else:
        st.error(str(exc))


def refused(upload, name: str, limit_mb: int) -> bool:
    """Whether the upload is too large or of no accepted type (then the page says why)."""
    try:
        check_size(name, upload.size, limit_mb << 20)
        check_kind(name)
    except UploadProblem as exc:
        st.error(exc.message)
        return True
    return False


def altair(chart, height: int) -> None:
    """An Altair chart `height` px tall in all (the element's height, legend and axes included,
    in Streamlit versions with that argument; the spec's height in older ones)."""
    try:
        st.altair_chart(chart, height=height)
    except TypeError:  # Streamlit without altair_chart(height=)
        st.altair_chart(chart.properties(height=height - 80), use_container_width=True)


def download_buttons(table, stem: str, summary=None) -> None:
    cols = st.columns(3)
    cols[0].download_button("Download CSV", h.csv_bytes(table), f"{stem}.faces.csv", "text/csv")
    cols[1].download_button("Download Parquet", h.parquet_bytes(table), f"{stem}.faces.parquet",
                            "application/vnd.apache.parquet")
    if summary is not None:
        cols[2].download_button("Download track summary (CSV)", h.csv_bytes(summary),
                                f"{stem}.tracks.csv", "text/csv")


# -- Analyse page ---------------------------------------------------------------------------
def show_image_result(res: h.ImageResult) -> None:
    left, right = st.columns([3, 2])
    left.image(res.annotated, caption=f"{res.name}: {res.n_faces} face(s)")
    with right:
        st.metric("Faces detected", res.n_faces)
        main = res.main_face
        if main is None:
            st.warning(f"No face found in {res.name}. Faces smaller than about 10 px at 640 px "
                       "(the longer side) are missed.")
        else:
            emotions = res.frame.emotions
            st.metric("Top emotion (largest face)", emotions.top[main],
                      help=f"probability {emotions.probs[main].max():.0%}")
            for i, top in enumerate(emotions.top):
                va = ""
                if emotions.valence is not None and emotions.arousal is not None:
                    va = (f" · valence {emotions.valence[i]:+.2f}, arousal "
                          f"{emotions.arousal[i]:+.2f} (proxy)")
                st.markdown(f"- face {i}: **{top}** {emotions.probs[i].max():.0%}{va}")
    st.markdown("#### Per-face table")
    st.dataframe(res.table, hide_index=True)
    download_buttons(res.table, os.path.splitext(res.name)[0])


def show_video_result(res: h.VideoResult, key: str) -> None:
    cols = st.columns(5)
    cols[0].metric("Duration (s)", f"{res.info.duration:.1f}")
    cols[1].metric("Frames analysed", res.n_analysed)
    cols[2].metric("Faces", res.n_faces)
    cols[3].metric("Tracks", res.n_tracks)
    cols[4].metric("Frames/s analysed", f"{res.n_analysed / max(res.elapsed, 1e-6):.0f}")
    tracks = h.longest_tracks(res.table)
    st.markdown("#### Timeline")
    if not tracks:
        st.info(f"No face found in any analysed frame of {res.name}.")
    else:
        chosen = st.multiselect("Tracks (longest first)", tracks, default=tracks[:4],
                                key=f"tracks-{key}")
        st.caption("Drag to pan, scroll to zoom the time axis; click an emotion in the legend "
                   "to highlight it.")
        for track in chosen:
            altair(h.timeline_chart(res.table, res.labels, track), 300)
    if res.frames:
        st.markdown("#### Annotated frames")
        i = 0
        if len(res.frames) > 1:
            i = st.select_slider("Time", list(range(len(res.frames))), key=f"frame-{key}",
                                 format_func=lambda k: f"{res.frames[k][0]:.1f} s",
                                 help=f"{len(res.frames)} frames spread over the video")
        st.columns([3, 1])[0].image(res.frames[i][1],
                                    caption=f"{res.name} at {res.frames[i][0]:.2f} s")
    st.markdown("#### Per-track summary")
    st.dataframe(res.summary, hide_index=True)
    st.markdown("#### Per-face table")
    shown = res.table if len(res.table) <= 10_000 else res.table.head(10_000)
    if shown is not res.table:
        st.caption(f"First 10,000 of {len(res.table):,} rows; the downloads have them all.")
    st.dataframe(shown, hide_index=True)
    download_buttons(res.table, os.path.splitext(res.name)[0], res.summary)


def analyse_video(analyzer: Analyzer, name: str, data: bytes, fps: float | None) -> h.VideoResult:
    bar = st.progress(0.0, text=f"Analysing {name}…")

    def on_progress(done: int, total: int) -> None:
        if total and (done % max(1, total // 100) == 0 or done == total):
            bar.progress(min(done / total, 1.0), text=f"{name}: frame {done} of {total}")
        elif not total and done % 25 == 0:
            bar.progress(0.0, text=f"{name}: {done} frames")

    try:
        return h.analyze_video_bytes(analyzer, name, data, fps, on_progress)
    finally:
        bar.empty()


def analyse_page(analyzer: Analyzer, model: str, limit_mb: int) -> None:
    st.subheader("Analyse an image or a video")
    source = st.radio("Source", ["Upload a file", "Camera snapshot"], horizontal=True,
                      key="source")
    rate = None
    if source == "Upload a file":
        upload = st.file_uploader(f"An image or a video, up to {limit_mb} MB", key="upload",
                                  help=f"Accepted: {accepted_suffixes()}.")
        rate = VIDEO_RATES[st.selectbox("Video frames analysed", list(VIDEO_RATES), index=1,
                                        key="rate")]
        name = upload.name if upload is not None else ""
    else:
        upload = st.camera_input("Take a snapshot", key="camera")
        name = "snapshot.jpg"
    if upload is None:
        st.info(f"Upload an image or a video (at most {limit_mb} MB), or take a camera snapshot.")
        return
    if refused(upload, name, limit_mb):
        return
    kind = check_kind(name)
    key = (kind, upload.file_id, model, rate if kind == "video" else None)
    if kind == "image":
        res = remembered("analysis", key,
                         lambda: h.analyze_image_bytes(analyzer, name, upload.getvalue()))
    else:
        res = remembered("analysis", key,
                         lambda: analyse_video(analyzer, name, upload.getvalue(), rate))
    if isinstance(res, Exception):
        show_error(res)
    elif kind == "image":
        show_image_result(res)
    else:
        show_video_result(res, upload.file_id)


# -- Embeddings page ------------------------------------------------------------------------
def face_uploads(embedder: e.Embedder, model: str, limit_mb: int) -> tuple[dict, dict]:
    """Faces A and B: the uploads and their embeddings, by tag."""
    uploads, found = {}, {}
    for col, tag in zip(st.columns(2), "AB", strict=True):
        with col:
            upload = st.file_uploader(f"Face {tag}: an image or a short clip (≤ {limit_mb} MB)",
                                      key=f"emb-{tag}", help=f"Accepted: {accepted_suffixes()}.")
            if upload is None or refused(upload, upload.name, limit_mb):
                continue
            with st.spinner(f"Embedding {upload.name}…"):
                emb = remembered(f"embedding-{tag}", (upload.file_id, model),
                                 lambda up=upload: e.upload_embedding(embedder, up.name,
                                                                      up.getvalue()))
            if isinstance(emb, Exception):
                show_error(emb)
                continue
            st.image(emb.preview, caption=f"{emb.name}: {emb.note}")
            uploads[tag], found[tag] = upload, emb
    return uploads, found


def reference_section(model: str, similarity: float | None) -> None:
    st.markdown("#### Same vs opposite emotion on FER+ test")
    st.markdown(
        f"{e.REFERENCE_FACES} faces drawn at random (fixed seed) from FER+ test, those with a "
        "majority emotion kept and embedded with this model (each 48x48 crop resized to the "
        "model's input), exactly as `emotrace eval embedding --limit "
        f"{e.REFERENCE_FACES}` samples them. **Same emotion**: sampled pairs of faces with the "
        "same FER+ majority label (any of the 8). **Opposite emotion**: pairs across the sign "
        "of valence: happiness (positive) with sadness, anger, disgust or fear (negative); "
        "neutral, surprise and contempt are in no opposite pair.")
    try:
        pairs = reference_pairs(model)
    except (OSError, ValueError, InputError) as exc:
        st.warning(f"FER+ reference not available ({exc}); set EMOTRACE_SHARED to the folder "
                   "holding data/ferplus.")
        return
    altair(e.histogram_chart(pairs, similarity), 340)
    st.caption(f"{len(pairs.same):,} same-emotion and {len(pairs.opposite):,} opposite-emotion "
               f"pairs of {pairs.n_faces} faces; faces per emotion: "
               + ", ".join(f"{k} {v}" for k, v in pairs.counts.items())
               + (". The dashed line is your pair." if similarity is not None else "."))
    cols = st.columns(3)
    cols[0].metric("Mean cosine, same emotion", f"{pairs.same.mean():.3f}",
                   help=f"{len(pairs.same):,} pairs")
    cols[1].metric("Mean cosine, opposite emotion", f"{pairs.opposite.mean():.3f}",
                   help=f"{len(pairs.opposite):,} pairs")
    cols[2].metric("P(same > opposite)", f"{pairs.separation:.0%}",
                   help="Share of (same pair, opposite pair) comparisons where the "
                        "same-emotion pair has the higher cosine (0.5 = no separation).")


def nearest_section(uploads: dict) -> None:
    st.markdown("#### Nearest fragments")
    folder = st.text_input("Index folder", "emotrace-index", key="index-dir")
    try:
        settings = e.index_settings(folder)
    except (InputError, OSError, ValueError, RuntimeError) as exc:
        st.warning(str(exc))
        return
    if settings is None:
        st.info(f"No fragment index in `{folder}`. Build one with `emotrace index VIDEOS "
                "--db DIR`: it cuts each video into per-track 1 s fragments and stores each "
                "fragment's mean face embedding; this section then lists the fragments "
                "nearest to face A.")
        return
    built = f"{settings['fragments']:,} fragments indexed with {settings['embedder']}"
    if "A" not in uploads:
        st.caption(f"{built}; upload face A to search them.")
        return
    st.caption(f"{built}: face A is embedded with it, as `emotrace search` does.")
    upload = uploads["A"]
    try:
        embedder = get_embedder(settings["embedder"])
    except EmotraceError as exc:
        st.warning(f"Could not load the index's embedder: {exc}")
        return
    key = (upload.file_id, os.path.abspath(folder), settings["embedder"], settings["fragments"])
    hits = remembered("nearest", key, lambda: e.nearest_fragments(
        folder, embedder, upload.name, upload.getvalue()))
    if isinstance(hits, Exception):
        show_error(hits)
    else:
        st.dataframe(hits, hide_index=True)


def embeddings_page(analyzer: Analyzer, model: str, limit_mb: int) -> None:
    st.subheader("Face embeddings")
    st.markdown(
        "Each face is mapped to the model's 512-d embedding, L2-normalised. For an image the "
        "largest face is used; for a clip, the mean of the normalised embeddings of its most "
        "persistent face over its frames (5 per second). Similarity is the cosine of the two.")
    if not analyzer.classifier.has_embeddings:
        st.warning(f"Model {model} has no embedding output: pick emotrace-ferplus8 or "
                   "mobilefacenet-rafdb in the sidebar.")
        return
    uploads, found = face_uploads(get_embedder(model), model, limit_mb)
    similarity = None
    if len(found) == 2:
        similarity = e.similarity(found["A"], found["B"])
        st.metric("Cosine similarity of A and B", f"{similarity:.3f}")
    else:
        st.info("Upload two faces to compare them.")
    reference_section(model, similarity)
    nearest_section(uploads)


# -- the app --------------------------------------------------------------------------------
def main() -> None:
    st.set_page_config(page_title="emotrace demo", layout="wide")
    limit_mb = int(st.get_option("server.maxUploadSize"))
    with st.sidebar:
        st.header("emotrace")
        page = st.radio("Page", ["Analyse", "Embeddings"], key="page")
        names = available_models()
        if not names:
            st.error("No expression model file is here: set EMOTRACE_MODEL_DIR to a folder "
                     "holding one (see `emotrace models`).")
            st.stop()
        model = st.selectbox("Expression model", names, key="model",
                             help="Registered expression models whose file is present.")
        st.caption(models.get_card(model).description)
        st.caption(f"Uploads: one image or video, at most {limit_mb} MB.")
    st.title(TITLE)
    try:
        analyzer = get_analyzer(model)
    except EmotraceError as exc:
        st.error(f"Could not load model {model}: {exc}")
        st.stop()
    if page == "Analyse":
        analyse_page(analyzer, model, limit_mb)
    else:
        embeddings_page(analyzer, model, limit_mb)


main()
