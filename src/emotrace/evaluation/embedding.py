"""`emotrace eval embedding`: how emotion-aware a face embedding is.

On a labelled face set (FER+ test by default), with L2-normalised embeddings:

- the criterion: mean cosine similarity of same-emotion pairs against that of *opposite*
  pairs, opposite meaning opposite sign of valence: happiness against sadness, anger, disgust
  and fear (the emotions whose valence in `labels.VA_POINTS` is clearly positive or negative;
  neutral, surprise and contempt are left out of the opposite pairs);
- same-vs-different ROC-AUC: how well the cosine separates same-emotion pairs from all pairs of
  different emotions;
- kNN (k = 10, cosine) and linear-probe (logistic regression) accuracy, fitted on a sample of
  FER+ train and scored on the set; the train labels are first put in the set's label order by
  name (FER2013 and class folders order their classes otherwise), and train faces of classes
  the set lacks (FER+'s contempt for FER2013) are left out, as `eval` leaves the classifier's
  extra classes out;
- alignment (mean squared distance of same-emotion pairs) and uniformity (log of the mean of
  exp(-2 d^2) over all pairs; Wang & Isola, 2020): lower is better for both;
- with `videos`: the label-flip rate between adjacent frames of a face track (label changes per
  second), each frame labelled by the kNN-10 vote of its embedding among the FER+ train sample,
  next to the model's own classifier labels, and the share of frames agreeing with a clip's weak
  label from its file name (the `index.csv` of ../shared/data/video), per video set. A track is
  one face of one video (`VideoAnalysis.tracks`).

Pairs are sampled (up to `max_pairs` of each kind) with a fixed seed, so the numbers repeat.
The report and figure are named by `output_stem(model)`: two models never share a file name
(runs/a/model.onnx and runs/b/model.onnx get `a_model_<hash>` and `b_model_<hash>`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from emotrace.evaluation.classifier import face_batches
from emotrace.evaluation.datasets import FaceSet, ferplus, load_named
from emotrace.faces.embed import FaceEmbedder
from emotrace.labels import canonical
from emotrace.models import output_stem
from emotrace.outputs.files import atomic_write, write_json
from emotrace.results import VideoAnalysis

POSITIVE = frozenset({"happy"})
NEGATIVE = frozenset({"sad", "anger", "disgust", "fear"})


def face_embeddings(embedder: FaceEmbedder, faces: FaceSet, batch_size: int = 64) -> np.ndarray:
    """Unit-length embeddings (N, D) of already cropped faces (resized to the model input)."""
    out = [embedder(bgr, batch_size) for bgr in face_batches(faces, embedder.size, batch_size)]
    return np.concatenate(out).astype(np.float32)


def _sample_pairs(mask_a: np.ndarray, mask_b: np.ndarray | None, n: int,
                  rng) -> tuple[np.ndarray, np.ndarray]:
    a = np.flatnonzero(mask_a)
    b = a if mask_b is None else np.flatnonzero(mask_b)
    i, j = rng.choice(a, n), rng.choice(b, n)
    keep = i != j
    return i[keep], j[keep]


def pair_similarities(emb: np.ndarray, labels: np.ndarray, names: tuple[str, ...],
                      max_pairs: int = 200_000, seed: int = 0) -> dict[str, np.ndarray]:
    """Cosines of sampled same-emotion, different-emotion and opposite-emotion pairs."""
    rng = np.random.default_rng(seed)
    canon = np.array([canonical(n) for n in names], dtype=object)
    lab = labels[labels >= 0]
    emb = emb[labels >= 0]
    same_i, same_j, diff_i, diff_j = [], [], [], []
    per_class = max_pairs // max(1, len(np.unique(lab)))
    for c in np.unique(lab):
        i, j = _sample_pairs(lab == c, None, per_class, rng)
        same_i.append(i)
        same_j.append(j)
    i, j = rng.integers(0, len(lab), max_pairs), rng.integers(0, len(lab), max_pairs)
    keep = lab[i] != lab[j]
    diff_i, diff_j = i[keep], j[keep]
    pos = np.isin(canon[lab], list(POSITIVE))
    neg = np.isin(canon[lab], list(NEGATIVE))
    opp_i, opp_j = _sample_pairs(pos, neg, max_pairs, rng) if pos.any() and neg.any() else ([], [])
    si, sj = np.concatenate(same_i), np.concatenate(same_j)

    def cos(a, b):
        return np.einsum("nd,nd->n", emb[a], emb[b]) if len(a) else np.zeros(0, np.float32)

    return {"same": cos(si, sj), "different": cos(diff_i, diff_j),
            "opposite": cos(np.asarray(opp_i, int), np.asarray(opp_j, int)),
            "same_sqdist": 2 - 2 * cos(si, sj)}


def roc_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(score of a positive pair > score of a negative pair) (Mann-Whitney U / (n1 n2))."""
    u = mannwhitneyu(positive, negative, alternative="greater").statistic
    return float(u / (len(positive) * len(negative)))


def uniformity(emb: np.ndarray, n: int = 5000, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    x = emb[rng.choice(len(emb), min(n, len(emb)), replace=False)]
    sq = np.clip(2 - 2 * x @ x.T, 0, None)
    off = ~np.eye(len(x), dtype=bool)
    return float(np.log(np.mean(np.exp(-2 * sq[off]))))


def knn_accuracy(train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray,
                 k: int = 10) -> float:
    """Accuracy of the majority vote of the k most cosine-similar training embeddings."""
    return float((knn_labels(train, y_train, test, k) == y_test).mean())


def linear_probe(train: np.ndarray, y_train: np.ndarray, test: np.ndarray,
                 y_test: np.ndarray) -> float | None:
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        return None  # scikit-learn comes with the train extra
    clf = LogisticRegression(max_iter=2000, C=1.0)
    clf.fit(train, y_train)
    return float((clf.predict(test) == y_test).mean())


def knn_labels(train: np.ndarray, y_train: np.ndarray, emb: np.ndarray, k: int = 10) -> np.ndarray:
    """Majority vote of the k most cosine-similar training embeddings, for each row of `emb`."""
    out = np.zeros(len(emb), np.int64)
    n_classes = int(y_train.max()) + 1
    for start in range(0, len(emb), 512):
        sims = emb[start:start + 512] @ train.T
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        votes = np.zeros((len(top), n_classes))
        np.add.at(votes, (np.arange(len(top))[:, None], y_train[top]), 1)
        out[start:start + 512] = votes.argmax(axis=1)
    return out


def to_label_order(labels: np.ndarray, names: tuple[str, ...],
                   target: tuple[str, ...]) -> np.ndarray:
    """Label ids in `names` order -> ids of the same emotions in `target` order (matched by
    `labels.canonical` name); -1 where `target` lacks the emotion or the label was -1."""
    canon = [canonical(n) for n in target]
    lookup = np.array([canon.index(canonical(n)) if canonical(n) in canon else -1
                       for n in names] + [-1], np.int64)
    return lookup[np.where(labels >= 0, labels, len(names))]


def video_flip_rates(embedder: FaceEmbedder, folder: str | Path, train_emb: np.ndarray,
                     y_train: np.ndarray, names: tuple[str, ...]) -> dict:
    """Flip rate and weak-label agreement on every video under `folder` (see module doc);
    `y_train` holds ids in `names` order."""
    from emotrace.media.decode import VIDEO_SUFFIXES
    from emotrace.pipeline import Analyzer
    from emotrace.smooth import flip_rate

    folder = Path(folder)
    weak: dict[str, str] = {}
    if (folder / "index.csv").is_file():
        index = pd.read_csv(folder / "index.csv")
        weak = {r.file: r.weak_label_from_filename for r in index.itertuples()
                if isinstance(r.weak_label_from_filename, str)}
    analyzer = Analyzer(classifier=embedder.backbone_name, embeddings=True)
    rows = []
    for video in sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES):
        df = _track_labels(analyzer.analyze_video(video, progress=False), embedder, train_emb,
                           y_train, names)
        if df is None:
            continue  # no face: nothing flips
        rel = video.relative_to(folder).as_posix()
        label = canonical(weak[rel]) if rel in weak else None
        rows.append({
            "set": rel.split("/")[0] if "/" in rel else "", "file": rel,
            "flips_per_s_knn": flip_rate(df, "knn"), "flips_per_s_classifier": flip_rate(df),
            "agreement_knn": float((df["knn"].map(canonical) == label).mean()) if label else None,
            "agreement_classifier": (float((df["emotion"].map(canonical) == label).mean())
                                     if label else None)})
    if not rows:
        raise ValueError(f"{folder}: no video with a face track")
    table = pd.DataFrame(rows)
    sets = table.groupby("set").mean(numeric_only=True)
    by_set = {s: {k: (None if pd.isna(v) else float(v)) for k, v in r.items()}
              for s, r in sets.to_dict("index").items()}
    return {"videos": rows, "by_set": by_set}


def _track_labels(result: VideoAnalysis, embedder: FaceEmbedder, train_emb: np.ndarray,
                  y_train: np.ndarray, names: tuple[str, ...]) -> pd.DataFrame | None:
    """Every tracked face of a video: source, track_id, timestamp, the classifier's `emotion`
    and the `knn` label of its embedding (`names` = the order of `y_train`); None without
    a track."""
    tracks = [t for t in result.tracks() if t.embeddings is not None]
    if not tracks:
        return None
    emb = embedder.from_backbone(np.concatenate([t.embeddings for t in tracks
                                                 if t.embeddings is not None]))
    return pd.DataFrame({
        "source": np.repeat([t.source for t in tracks], [len(t) for t in tracks]),
        "track_id": np.repeat([t.track_id for t in tracks], [len(t) for t in tracks]),
        "timestamp": np.concatenate([t.timestamps for t in tracks]),
        "emotion": [label for t in tracks for label in t.top],
        "knn": np.asarray(names, dtype=object)[knn_labels(train_emb, y_train, emb)],
    })


def plot_distributions(sims: dict[str, np.ndarray], path: Path, title: str) -> Path:
    from emotrace.outputs.plots import new_figure

    fig = new_figure(figsize=(7, 3.6))
    ax = fig.subplots()
    bins = np.linspace(-1, 1, 81).tolist()
    for key, color in (("same", "tab:green"), ("different", "0.6"), ("opposite", "tab:red")):
        if len(sims[key]):
            ax.hist(sims[key], bins=bins, density=True, alpha=0.45, color=color,
                    label=f"{key} (mean {sims[key].mean():.2f})")
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("density")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=110, format="png"))
    return path


def labelled_sample(data: str, limit: int | None, rng: np.random.Generator) -> FaceSet:
    """The faces `evaluate_embedding` scores: `limit` drawn from `data` with `rng` (all when
    None), of which those with an emotion label."""
    faces = load_named(data, "ferplus8")
    if limit and limit < len(faces):
        faces = faces.take(np.sort(rng.choice(len(faces), limit, replace=False)))
    return faces.take(np.flatnonzero(faces.labels >= 0))


def evaluate_embedding(model: str, data: str = "ferplus-test", outdir: str | Path | None = None,
                       limit: int | None = None, train_sample: int = 6000, seed: int = 0,
                       videos: str | Path | None = None) -> dict:
    """All the measures above for `model`'s embedding on `data` (see module doc); `model`:
    a registry model with an embedding output or a head from `emotrace train embedding`."""
    clf = FaceEmbedder(model)
    rng = np.random.default_rng(seed)
    faces = labelled_sample(data, limit, rng)
    emb = face_embeddings(clf, faces)
    sims = pair_similarities(emb, faces.labels, faces.names, seed=seed)
    train = ferplus("train")
    y_train = to_label_order(train.labels, train.names, faces.names)  # the set's label order
    train = train.take(np.flatnonzero(y_train >= 0))
    y_train = y_train[y_train >= 0]
    pick = np.sort(rng.choice(len(train), min(train_sample, len(train)), replace=False))
    train, y_train = train.take(pick), y_train[pick]
    train_emb = face_embeddings(clf, train)
    report = {
        "model": model, "data": data, "n": len(faces),
        "opposite_definition": "happy vs sad/anger/disgust/fear (sign of valence)",
        "same_mean_cosine": float(sims["same"].mean()),
        "opposite_mean_cosine": float(sims["opposite"].mean()) if len(sims["opposite"]) else None,
        "different_mean_cosine": float(sims["different"].mean()),
        "same_vs_different_roc_auc": roc_auc(sims["same"], sims["different"]),
        "alignment": float(sims["same_sqdist"].mean()),
        "uniformity": uniformity(emb, seed=seed),
        "knn10_accuracy": knn_accuracy(train_emb, y_train, emb, faces.labels),
        "linear_probe_accuracy": linear_probe(train_emb, y_train, emb, faces.labels),
        "train_sample": len(train),
    }
    if videos is not None:
        report["video_flips"] = video_flip_rates(clf, videos, train_emb, y_train, faces.names)
    same, opposite = report["same_mean_cosine"], report["opposite_mean_cosine"]
    if isinstance(same, float) and isinstance(opposite, float):
        report["same_minus_opposite"] = same - opposite
    if outdir is not None:
        outdir = Path(outdir)
        stem = f"{output_stem(model)}_{Path(data).name}_embedding"
        write_json(report, outdir / f"{stem}.json")
        plot_distributions(sims, outdir / f"{stem}.png",
                           f"{model} on {data}: same vs opposite emotion")
    return report


def format_embedding_report(r: dict) -> str:
    opp = r["opposite_mean_cosine"]
    lines = [f"{r['model']} embedding on {r['data']} ({r['n']} faces; "
             f"opposite = {r['opposite_definition']})",
             f"mean cosine   same {r['same_mean_cosine']:.3f}   opposite "
             + (f"{opp:.3f}" if opp is not None else "n/a")
             + f"   different {r['different_mean_cosine']:.3f}",
             f"same-vs-different ROC-AUC  {r['same_vs_different_roc_auc']:.3f}",
             f"kNN-10 accuracy            {r['knn10_accuracy']:.3f}",
             "linear probe accuracy      " + (f"{r['linear_probe_accuracy']:.3f}"
                                             if r["linear_probe_accuracy"] is not None else
                                             "n/a (needs scikit-learn: pip install -e '.[train]')"),
             f"alignment {r['alignment']:.3f}   uniformity {r['uniformity']:.3f}"]
    for name, v in r.get("video_flips", {}).get("by_set", {}).items():
        agree = ("" if v["agreement_knn"] is None else
                 f"; agreement with clip labels {v['agreement_knn']:.3f} (classifier "
                 f"{v['agreement_classifier']:.3f})")
        lines.append(f"videos {name or '.'}: label flips/s {v['flips_per_s_knn']:.2f} by kNN "
                     f"on the embedding (classifier {v['flips_per_s_classifier']:.2f}){agree}")
    return "\n".join(lines)
