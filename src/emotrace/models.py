"""Model registry and resolver: every model is a card; `load` turns a name or a file into one.

A *registered* model has a card (``cards/*.json`` in the package, or one added at run time with
`register_card`); its file is looked for in an explicit path, each folder in
``EMOTRACE_MODEL_DIR`` (``os.pathsep``-separated), the user cache (``EMOTRACE_CACHE`` or
``~/.cache/emotrace/models``), then downloaded from the card's upstream URL into the cache. Every
file is checked against the card's SHA256 before use, on every load.

A *file* written by `emotrace train` (classifier, fine-tuned embedding model, embedding head,
clip pooler) carries its card in its ONNX metadata (see train/export.py, train/embedding.py,
train/clip.py): `load` opens one ONNX Runtime session, reads the card from it and hands the same
session on, so the metadata is read once and the file opened once.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import urllib.request
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emotrace.errors import ModelError

if TYPE_CHECKING:
    import onnxruntime as ort

TASKS = ("face-detection", "expression", "embedding-head", "clip-pooler")
# How a file is run: an ONNX Runtime session, OpenCV's YuNet wrapper (it opens the file itself),
# or not at all (a source format kept for training, e.g. Keras weights).
RUNTIMES = ("onnxruntime", "cv2-yunet", "none")


@dataclass(frozen=True)
class ModelCard:
    """What emotrace knows about one model file: where it comes from and how to feed it."""

    name: str
    task: str  # one of TASKS: the card's kind
    filename: str
    sha256: str
    url: str | None  # a public URL that serves exactly this file, or None (see `source`)
    source: str  # upstream project and path; how a derived file was made
    licence: str
    runtime: str = "onnxruntime"  # one of RUNTIMES
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
    output_va: str | None = None  # (N, 2) valence, arousal
    # Calibration, applied at inference: probabilities = softmax(scores / temperature + bias),
    # the scores being the logits (or the log of the probabilities the graph outputs).
    temperature: float = 1.0
    class_bias: tuple[float, ...] = ()  # one per label; () = none
    batchable: bool = True  # False: the graph's batch dimension is fixed at 1
    bundled: bool = False  # trained by emotrace; the file ships inside the package
    backbone: str | None = None  # embedding head / clip pooler: the model whose embedding feeds it
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # task-specific defaults (see the cards)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ModelError(f"model {self.name!r}: temperature must be > 0, got "
                             f"{self.temperature}")
        if self.class_bias and len(self.class_bias) != len(self.labels):
            raise ModelError(f"model {self.name!r}: {len(self.class_bias)} class biases for "
                             f"{len(self.labels)} labels")

    @property
    def runnable(self) -> bool:
        return self.runtime != "none"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        """A card from its JSON form (lists for the tuples); an unknown key is an error."""
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ModelError(f"model card {data.get('name')!r}: unknown keys {sorted(unknown)}")
        values = dict(data)
        for key in ("input_size", "labels", "class_bias"):
            if key in values:
                values[key] = tuple(values[key])
        try:
            return cls(**values)
        except TypeError as exc:  # a required key is missing
            raise ModelError(f"model card {data.get('name')!r}: {exc}") from None


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to run: its card, its checked file and the one session that runs it
    (None where the runtime opens the file itself, as OpenCV's YuNet does)."""

    card: ModelCard
    path: Path
    session: ort.InferenceSession | None


CARDS_DIR = Path(__file__).resolve().parent / "cards"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
REGISTRY: dict[str, ModelCard] = {}
DEFAULT_DETECTOR = "yunet"
DEFAULT_CLASSIFIER = "emotrace-ferplus8-distill"


def _check_card(card: ModelCard) -> None:
    if card.task not in TASKS:
        raise ModelError(f"model card {card.name!r}: task {card.task!r} is not one of {TASKS}")
    if card.runtime not in RUNTIMES:
        raise ModelError(f"model card {card.name!r}: runtime {card.runtime!r} is not one of "
                         f"{RUNTIMES}")
    if len(card.sha256) != 64 or set(card.sha256) - set("0123456789abcdef"):
        raise ModelError(f"model card {card.name!r}: sha256 must be 64 lower-case hex digits")


def register_card(card: ModelCard) -> ModelCard:
    """Add a model to the registry (e.g. a user's own file with its SHA256); afterwards its name
    works wherever a model name does. A name already registered is an error."""
    _check_card(card)
    if card.name in REGISTRY:
        raise ModelError(f"model {card.name!r} is already registered")
    REGISTRY[card.name] = card
    return card


def _register_packaged_cards() -> None:
    """The package's cards, detectors first (the order `emotrace models` lists them in)."""
    cards = [ModelCard.from_dict(json.loads(p.read_text())) for p in CARDS_DIR.glob("*.json")]
    for card in sorted(cards, key=lambda c: (TASKS.index(c.task), c.name)):
        register_card(card)


def list_models(task: str | None = None, present: bool | None = None) -> list[ModelCard]:
    """Registered cards, optionally only those of one task and/or whose file is (not) here."""
    cards = [c for c in REGISTRY.values() if task is None or c.task == task]
    return cards if present is None else [c for c in cards if is_present(c) == present]


def get_card(name: str) -> ModelCard:
    """The card of a registered model; an unknown name gets an error listing the valid ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise _unknown(name) from None


def _unknown(name: str) -> ModelError:
    return ModelError(f"unknown model {name!r}; valid names: {', '.join(sorted(REGISTRY))} "
                      "(or the path of an .onnx file written by `emotrace train`)")


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


def find_local(card: ModelCard) -> Path | None:
    """The first existing file for `card` in the package (bundled), EMOTRACE_MODEL_DIR or the
    cache (not verified)."""
    folders = [WEIGHTS_DIR] if card.bundled else []
    for folder in [*folders, *model_dirs(), cache_dir()]:
        candidate = folder / card.filename
        if candidate.is_file():
            return candidate
    return None


def is_present(card: ModelCard) -> bool:
    local = find_local(card)
    return local is not None and sha256_of(local) == card.sha256


def _download(card: ModelCard, target: Path) -> None:
    if card.url is None:
        raise ModelError(f"model {card.name!r} has no download URL")
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


def _locate(card: ModelCard, path: str | Path | None, download: bool) -> Path:
    """The verified file of a registered model (see the module docstring for the order)."""
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


def resolve(name: str, path: str | Path | None = None, download: bool = True) -> Path:
    """Path to the verified file of the registered model `name` (no session is opened)."""
    return _locate(get_card(name), path, download)


def onnx_session(path: Path, threads: int = 0) -> ort.InferenceSession:
    """A CPU ONNX Runtime session with warnings silenced (threads 0 = ORT's default)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 -- any load failure: one line naming the file
        raise ModelError(f"{path}: not a loadable ONNX model ({exc})") from None


def card_from_metadata(path: Path, meta: dict[str, str]) -> ModelCard:
    """The card of a file written by `emotrace train`, from its ONNX metadata `meta`."""
    base = ModelCard(name=path.stem, task="expression", filename=path.name,
                     sha256=sha256_of(path), url=None, source=f"local file {path}",
                     licence="see the model's card")
    kind = meta.get("emotrace_kind", "expression" if "emotrace_labels" in meta else None)
    try:
        if kind == "expression":
            size = int(meta["emotrace_input_size"])
            return replace(
                base, input_size=(size, size), color=meta["emotrace_color"],
                mean=float(meta["emotrace_mean"]), std=float(meta["emotrace_std"]),
                crop=meta["emotrace_crop"], labels=tuple(meta["emotrace_labels"].split(",")),
                input_name="data", output_scores="probs", scores_are_logits=False,
                output_embedding="embedding",
                output_va="va" if meta.get("emotrace_has_va") == "True" else None,
                temperature=float(meta.get("emotrace_temperature", "1")),
                class_bias=tuple(float(b) for b in meta["emotrace_class_bias"].split(","))
                if meta.get("emotrace_class_bias") else ())
        if kind == "embedding-head":
            return replace(base, task=kind, backbone=meta["emotrace_backbone"])
        if kind == "clip-pooler":
            window = {"window_frames": int(meta["emotrace_window_frames"]),
                      "fps": float(meta["emotrace_fps"]),
                      "pooling": meta.get("emotrace_pooling", "")}
            return replace(base, task=kind, backbone=meta["emotrace_backbone"],
                           input_name="frames", extra=window)
    except (KeyError, ValueError) as exc:
        raise ModelError(f"{path}: incomplete emotrace metadata ({exc!r})") from None
    if kind is not None:
        raise ModelError(f"{path}: unknown emotrace_kind {kind!r} in its metadata")
    raise ModelError(f"{path}: has no emotrace metadata; use a registered model name "
                     "or a file written by `emotrace train`")


def check_task(card: ModelCard, kind: str | None) -> None:
    """A ModelError unless `card` is of task `kind` (None: any) and can be run."""
    if kind is not None and card.task != kind:
        raise ModelError(f"model {card.name!r} is for {card.task}, not {kind}")
    if not card.runnable:
        raise ModelError(f"model {card.name!r} is kept for training only and cannot be run")


def load(spec: str | Path, path: str | Path | None = None, kind: str | None = None,
         threads: int = 0, download: bool = True) -> LoadedModel:
    """The one way to a runnable model: a registered name or a file written by `emotrace train`.

    spec: a registered name, or the path of an .onnx file with emotrace metadata.
    path: an explicit file for a registered name (checked against its card's SHA256).
    kind: the task the caller needs (one of TASKS); another kind is a ModelError.
    threads: ONNX Runtime intra-op threads of the session (0 = ORT's default).
    """
    if str(spec) in REGISTRY:
        card = REGISTRY[str(spec)]
        check_task(card, kind)
        file = _locate(card, path, download)
        session = onnx_session(file, threads) if card.runtime == "onnxruntime" else None
        return LoadedModel(card, file, session)
    file = Path(spec).expanduser()
    if not file.is_file():
        if file.suffix or os.sep in str(spec):
            raise ModelError(f"{file}: no such model file")
        raise _unknown(str(spec))
    if path is not None:
        raise ModelError(f"{file}: a model file takes no separate path ({path})")
    session = onnx_session(file, threads)
    card = card_from_metadata(file, dict(session.get_modelmeta().custom_metadata_map))
    check_task(card, kind)
    return LoadedModel(card, file, session)



def output_stem(model: str | Path) -> str:
    """A file-name stem for `model`'s outputs that no other model shares: a registered name
    as it is; a file as <its folder's name>_<its stem>_<8 hex digits of its resolved path>."""
    if str(model) in REGISTRY:
        return str(model)
    path = Path(model).expanduser().resolve()
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:8]
    name = f"{path.parent.name}_{path.stem}" if path.parent.name else path.stem
    return f"{name}_{digest}"


_register_packaged_cards()
