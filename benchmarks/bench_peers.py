"""emotrace against the `fer` package from PyPI, on the same videos in one run.

Needs a separate environment with `fer` (TensorFlow, facenet-pytorch) and emotrace in it; the
project's .venv has no TensorFlow. How /work/fer-venv was made: docs/benchmarks.md,
"emotrace vs fer (PyPI)". From the repository root:

    /work/fer-venv/bin/python benchmarks/bench_peers.py [--repeats 3] [--fer-repeats 1] \
        [--json bench_peers.json] [--no-still]

Systems, all on CPU, every frame of every video:
  emotrace    Analyzer().analyze_video(path, progress=False): PyAV decode (threaded), YuNet at
              320 px, tracking, one expression model in batches of 32; one system per
              --emotrace-model (default: emotrace-ferplus8, the default 8 FER+ classes, and
              emotrace-fer2013, FER2013's 7 classes and labels like fer's model), named
              emotrace/MODEL.
  fer-haar    FER(mtcnn=False): OpenCV Haar cascade, fer's mini-Xception (quantised TFLite, 7
              FER2013 classes); frames decoded with cv2.VideoCapture, detect_emotions(frame).
  fer-mtcnn   FER(mtcnn=True): facenet-pytorch MTCNN, same classifier and decoding.

Speed: frames/s end to end (decode + detect + classify; model loading and one warm-up call on
single_face.jpg excluded), median over the repeats, on WolfgangLanger_Pexels.mp4 and on the
labelled StyleTalk clips together. Repeats are interleaved (repeat 1 of every system, then
repeat 2, ...) so that load from other users of the machine spreads over all systems.

Accuracy: the StyleTalk style clips whose file names carry a weak label (index.csv column
weak_label_from_filename: furious = anger, happy, sad, surprise). Per frame, the top emotion of
the largest face; frame accuracy = share of frames with a face whose top emotion is the clip's
label (pooled over all clips); clip accuracy = share of clips whose majority top emotion (over
frames with a face) is the label. Agreement on WolfgangLanger: share of the frames where both
systems found a face whose top emotions (names mapped to emotrace's) are the same. With
--still (default) also FER2013 PrivateTest, 7 classes: fer's classifier on the 48x48 faces
(resized to 64x64 as fer does) and `emotrace eval MODEL --data fer2013-private`.

Significance, each emotrace system against each fer system: on FER2013 PrivateTest an exact
McNemar test over the faces and a bootstrap 95% interval of the accuracy difference; on the
clips a bootstrap that resamples whole clips (frames of one clip are not independent) for the
frame accuracies, and an exact McNemar (sign) test over the clips for the clip accuracy.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import csv
import json
import statistics
import subprocess
import time
import warnings
from collections import Counter
from importlib import metadata
from pathlib import Path

# facenet_pytorch (torch, torchvision) must be loaded before TensorFlow: the other order aborts
# the process ("LLVM ERROR: inconsistency in registered CommandLine options") with tensorflow
# 2.21 and torchvision 0.29.
import facenet_pytorch  # noqa: F401

warnings.filterwarnings("ignore", message=".*pkg_resources is deprecated.*")
warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")

import cv2  # noqa: E402 (after the facenet/TensorFlow order above)
import fer  # noqa: E402 (after the facenet/TensorFlow order above)
import numpy as np  # noqa: E402 (after the facenet/TensorFlow order above)
from common import SHARED, WOLFGANG, machine  # noqa: E402 (after the facenet/TensorFlow order above)
from fer.fer import FER  # noqa: E402 (fer 25.10.3's __init__ no longer exports FER)

from emotrace import Analyzer  # noqa: E402 (after the facenet/TensorFlow order above)
from emotrace.evaluation.metrics import bootstrap_accuracy_difference, mcnemar  # noqa: E402 (after the facenet/TensorFlow order above)
from emotrace.labels import canonical  # noqa: E402 (after the facenet/TensorFlow order above)

CLIPS = SHARED / "data" / "video" / "styletalk" / "style_clips"
INDEX = SHARED / "data" / "video" / "index.csv"
STILL = WOLFGANG.with_name("single_face.jpg")
SYSTEMS = ("emotrace", "fer-haar", "fer-mtcnn")


def weak_labels(index: Path, folder: Path) -> dict[Path, str]:
    """Videos of `folder` that index.csv gives a weak label, with the label in emotrace's names."""
    base = index.parent
    out = {}
    with index.open() as f:
        for row in csv.DictReader(f):
            path = (base / row["file"]).resolve()
            if row["weak_label_from_filename"] and path.parent == folder.resolve():
                out[path] = canonical(row["weak_label_from_filename"])
    return dict(sorted(out.items()))


def haar_cascade() -> str:
    """OpenCV's frontal-face cascade: cv2.data's copy, else the copy inside the fer wheel
    (opencv-python 5.0 wheels no longer ship the cascades in cv2/data)."""
    path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
    if not path.is_file():
        path = Path(fer.fer.__file__).parent / "data" / "haarcascade_frontalface_default.xml"
    return str(path)


# -- the systems: each returns the top emotion (emotrace's name) of the largest face per frame,
#    or None for a frame without a face; only the decoding and analysis are timed.

def run_emotrace(analyzer: Analyzer, path: Path) -> tuple[float, list[str | None]]:
    start = time.perf_counter()
    result = analyzer.analyze_video(path, progress=False)
    elapsed = time.perf_counter() - start
    tops = []
    for f in result.frames:
        if len(f):
            b = f.detections.boxes
            largest = int(np.argmax((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])))
            tops.append(f.emotions.top[largest])
        else:
            tops.append(None)
    return elapsed, tops


def run_fer(detector: FER, path: Path) -> tuple[float, list[str | None]]:
    start = time.perf_counter()
    cap = cv2.VideoCapture(str(path))
    raw = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        raw.append(detector.detect_emotions(frame))
    cap.release()
    elapsed = time.perf_counter() - start
    tops = []
    for faces in raw:
        if faces:
            face = max(faces, key=lambda d: int(d["box"][2]) * int(d["box"][3]))
            # fer rounds scores to 2 decimals; a tie goes to the first class in fer's order
            tops.append(canonical(max(face["emotions"], key=face["emotions"].get)))
        else:
            tops.append(None)
    return elapsed, tops


def majority(tops: list[str | None]) -> str | None:
    seen = Counter(t for t in tops if t is not None)
    return seen.most_common(1)[0][0] if seen else None


def agreement(a: list[str | None], b: list[str | None]) -> tuple[float, int]:
    both = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    return (sum(x == y for x, y in both) / len(both) if both else float("nan")), len(both)


def still_accuracy(detector: FER, models: list[str]) -> dict:
    """FER2013 PrivateTest (7 classes; 3,573 faces with pixels here): fer's classifier and each
    emotrace model, with each system's per-face correctness (for the paired tests)."""
    from emotrace.evaluation.classifier import face_probs
    from emotrace.evaluation.datasets import fer2013
    from emotrace.faces.classify import ExpressionClassifier
    from emotrace.labels import remap_probs

    faces = fer2013("PrivateTest")
    names = [canonical(n) for n in FER._get_labels().values()]
    assert tuple(names) == faces.names, (names, faces.names)
    x = np.stack([cv2.resize(f, (64, 64)) for f in faces.images]).astype(np.float32)
    x = (x / 255.0 - 0.5) * 2.0  # fer's preprocessing in detect_emotions
    start = time.perf_counter()
    probs = np.concatenate([detector._classify_emotions(x[i : i + 256])
                            for i in range(0, len(x), 256)])
    ms = 1000 * (time.perf_counter() - start) / len(x)
    keras = FER(use_tflite=False, cascade_file=haar_cascade())
    probs_fp32 = np.concatenate([np.asarray(keras._classify_emotions(x[i : i + 256, ..., None]))
                                 for i in range(0, len(x), 256)])
    right = {"fer_tflite": probs.argmax(1) == faces.labels}
    for model in models:  # the same faces and resizing as `emotrace eval MODEL --data ...`
        clf = ExpressionClassifier(model)
        p = remap_probs(face_probs(clf, faces), clf.labels, faces.names)
        right[model] = p.argmax(1) == faces.labels
    return {
        "n": len(x),
        "fer_tflite": float(right["fer_tflite"].mean()),
        "fer_tflite_ms_per_face": ms,
        "fer_keras_fp32": float((probs_fp32.argmax(1) == faces.labels).mean()),
        "emotrace": {m: float(right[m].mean()) for m in models},
        "right": right,
    }


def significance(summary: dict, still: dict | None, ours: list[str], theirs: list[str]) -> list:
    """Each emotrace system (A) against each fer system (B): rows of measure, A, B, A - B with a
    bootstrap 95% interval, items only A / only B got right, exact McNemar p."""
    rows = []
    for a in ours:
        for b in theirs:
            ca, cb = summary[a]["per_clip"], summary[b]["per_clip"]
            clips = list(ca)

            def col(c: dict, key: str, clips: list = clips) -> np.ndarray:
                return np.array([c[v][key] for v in clips], np.float64)

            for measure, na, nb in (
                ("clip frame accuracy", col(ca, "with_face"), col(cb, "with_face")),
                ("clip frame accuracy, no face = wrong", col(ca, "frames"), col(cb, "frames")),
            ):
                boot = bootstrap_accuracy_difference(col(ca, "correct"), na, col(cb, "correct"), nb)
                rows.append((a, b, measure, col(ca, "correct").sum() / na.sum(),
                             col(cb, "correct").sum() / nb.sum(), boot, None))
            ok_a = np.array([ca[v]["majority"] == ca[v]["label"] for v in clips])
            ok_b = np.array([cb[v]["majority"] == cb[v]["label"] for v in clips])
            ones = np.ones(len(clips))
            rows.append((a, b, f"clip accuracy ({len(clips)} clips)", ok_a.mean(), ok_b.mean(),
                         bootstrap_accuracy_difference(ok_a, ones, ok_b, ones),
                         mcnemar(ok_a, ok_b)))
            model = a.split("/", 1)[1]
            if still and b == "fer-haar":  # fer's classifier alone, whatever its detector
                ra, rb = still["right"][model], still["right"]["fer_tflite"]
                ones = np.ones(len(ra))
                rows.append((a, "fer (its classifier)", f"FER2013 PrivateTest ({len(ra)} faces)",
                             ra.mean(), rb.mean(),
                             bootstrap_accuracy_difference(ra, ones, rb, ones),
                             mcnemar(ra, rb)))
    return rows


def versions() -> dict[str, str]:
    import tensorflow as tf

    out = {"fer": fer.__version__, "tensorflow": tf.__version__, "opencv": cv2.__version__}
    for dist in ("torch", "torchvision", "facenet-pytorch", "keras", "onnxruntime", "av",
                 "numpy", "emotrace", "opencv-contrib-python", "opencv-python-headless"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def uptime() -> str:
    try:
        out = subprocess.run(["uptime"], check=False, capture_output=True, text=True)
        return out.stdout.strip()
    except OSError:
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def pct(x: float) -> str:
    return "n/a" if np.isnan(x) else f"{100 * x:.1f}%"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--video", default=str(WOLFGANG),
                    help="unlabelled video for speed and agreement")
    ap.add_argument("--clips", default=str(CLIPS),
                    help="folder of weakly labelled clips (labels from index.csv)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of emotrace")
    ap.add_argument("--fer-repeats", type=int, default=1, help="timed runs of each fer variant")
    ap.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    ap.add_argument("--emotrace-model", nargs="+",
                    default=["emotrace-ferplus8", "emotrace-fer2013"],
                    help="emotrace's expression models, one system each")
    ap.add_argument("--no-still", dest="still", action="store_false",
                    help="skip the FER2013 PrivateTest comparison")
    ap.add_argument("--json", type=Path, default=None, help="write the raw numbers here")
    args = ap.parse_args()

    main_video = Path(args.video).resolve()
    labels = weak_labels(INDEX, Path(args.clips))
    videos = [main_video, *labels]
    load_before = uptime()
    print(f"# {machine()}; {uptime()}")

    runners = {}
    ours = [f"emotrace/{m}" for m in args.emotrace_model] if "emotrace" in args.systems else []
    for name, model in zip(ours, args.emotrace_model):
        analyzer = Analyzer(classifier=model)
        analyzer.analyze_image(STILL)  # warm-up, as bench_video.py
        runners[name] = (lambda p, a=analyzer: run_emotrace(a, p), args.repeats)
    haar = FER(mtcnn=False, cascade_file=haar_cascade())
    for name, mtcnn in (("fer-haar", False), ("fer-mtcnn", True)):
        if name in args.systems:
            det = haar if not mtcnn else FER(mtcnn=True)
            det.detect_emotions(cv2.imread(str(STILL)))  # warm-up
            runners[name] = (lambda p, d=det: run_fer(d, p), args.fer_repeats)

    times = {s: {str(v): [] for v in videos} for s in runners}
    tops: dict[str, dict[str, list]] = {s: {} for s in runners}
    for rep in range(max(n for _, n in runners.values())):
        for name, (run, n) in runners.items():
            if rep >= n:
                continue
            started = time.perf_counter()
            for v in videos:
                elapsed, t = run(v)
                times[name][str(v)].append(elapsed)
                if rep == 0:
                    tops[name][str(v)] = t
                elif t != tops[name][str(v)]:
                    print(f"warning: {name} gave other labels on repeat {rep + 1} of {v.name}")
            print(f"# {name} repeat {rep + 1}: {time.perf_counter() - started:.1f} s; {uptime()}",
                  flush=True)
    load_after = uptime()

    n_frames = {str(v): len(tops[next(iter(runners))][str(v)]) for v in videos}
    for name in runners:
        for v in videos:
            if len(tops[name][str(v)]) != n_frames[str(v)]:
                print(f"warning: {name} decoded {len(tops[name][str(v)])} frames of {v.name}, "
                      f"{next(iter(runners))} {n_frames[str(v)]}")

    def fps(name: str, vids: list[Path]) -> float:
        frames = sum(len(tops[name][str(v)]) for v in vids)
        reps = len(times[name][str(vids[0])])
        per_rep = [sum(times[name][str(v)][r] for v in vids) for r in range(reps)]
        return frames / statistics.median(per_rep)

    summary = {}
    for name in runners:
        face_frames = correct = 0
        clip_ok = 0
        per_clip = {}
        for v, label in labels.items():
            t = tops[name][str(v)]
            found = [x for x in t if x is not None]
            hits = sum(x == label for x in found)
            face_frames += len(found)
            correct += hits
            maj = majority(t)
            clip_ok += maj == label
            per_clip[v.name] = {"label": label, "frames": len(t), "with_face": len(found),
                                "correct": hits, "majority": maj}
        clip_frames = sum(len(tops[name][str(v)]) for v in labels)
        main_tops = tops[name][str(main_video)]
        summary[name] = {
            "fps_main": fps(name, [main_video]),
            "fps_clips": fps(name, list(labels)),
            "repeats": len(times[name][str(main_video)]),
            "face_share_main": sum(x is not None for x in main_tops) / len(main_tops),
            "face_share_clips": face_frames / clip_frames,
            "frame_accuracy": correct / face_frames if face_frames else float("nan"),
            "frame_accuracy_all_frames": correct / clip_frames,
            "clip_accuracy": clip_ok / len(labels),
            "clips_correct": clip_ok,
            "main_distribution": dict(Counter(x for x in main_tops if x is not None).most_common()),
            "per_clip": per_clip,
        }

    names = list(runners)
    pairs = {f"{a} vs {b}": agreement(tops[a][str(main_video)], tops[b][str(main_video)])
             for i, a in enumerate(names) for b in names[i + 1:]}
    still = still_accuracy(haar, args.emotrace_model if ours else []) if args.still else None
    theirs = [n for n in names if n.startswith("fer-")]
    tests = significance(summary, still, ours, theirs)

    n_clip_frames = sum(n_frames[str(v)] for v in labels)
    print(f"\n## emotrace vs fer {fer.__version__}: {main_video.name} ({n_frames[str(main_video)]} "
          f"frames) + {len(labels)} labelled StyleTalk clips ({n_clip_frames} frames)\n")
    print(f"| system | frames/s {main_video.name} | frames/s clips | repeats | face found "
          f"{main_video.name} | face found clips | frame accuracy | frame accuracy, no face = "
          "wrong | clip accuracy |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, s in summary.items():
        print(f"| {name} | {s['fps_main']:.1f} | {s['fps_clips']:.1f} | {s['repeats']} | "
              f"{pct(s['face_share_main'])} | {pct(s['face_share_clips'])} | "
              f"{pct(s['frame_accuracy'])} | {pct(s['frame_accuracy_all_frames'])} | "
              f"{s['clips_correct']}/{len(labels)} ({pct(s['clip_accuracy'])}) |")
    print("\nPer clip: frames with a face correct / frames with a face, majority label\n")
    print("| clip | label | frames | " + " | ".join(names) + " |")
    print("|---|---|---|" + "---|" * len(names))
    for v, label in labels.items():
        cells = []
        for name in names:
            c = summary[name]["per_clip"][v.name]
            mark = "" if c["majority"] == label else " (x)"
            cells.append(f"{c['correct']}/{c['with_face']} {c['majority']}{mark}")
        print(f"| {v.name} | {label} | {n_frames[str(v)]} | " + " | ".join(cells) + " |")
    print(f"\nAgreement on {main_video.name} (frames where both found a face):\n")
    print("| pair | same top emotion | frames |")
    print("|---|---|---|")
    for pair, (share, n) in pairs.items():
        print(f"| {pair} | {pct(share)} | {n} |")
    print(f"\nTop emotion on {main_video.name}: " + "; ".join(
        f"{n}: " + ", ".join(f"{k} {v}" for k, v in summary[n]["main_distribution"].items())
        for n in names))
    if still:
        print(f"\nFER2013 PrivateTest, 7 classes, {still['n']} faces: fer TFLite (default) "
              f"{pct(still['fer_tflite'])} ({still['fer_tflite_ms_per_face']:.2f} ms/face), fer "
              f"Keras fp32 (use_tflite=False) {pct(still['fer_keras_fp32'])}, " + ", ".join(
                  f"{m} {pct(acc)}" for m, acc in still["emotrace"].items()))
    if tests:
        print("\nSignificance (A - B with a bootstrap 95% interval; on the clips whole clips are "
              "resampled; McNemar: items only A / only B got right, exact two-sided p):\n")
        print("| A | B | measure | A | B | A - B (95% interval) | only A / only B | p |")
        print("|---|---|---|---|---|---|---|---|")
        for a, b, measure, acc_a, acc_b, boot, test in tests:
            diff = (f"{100 * boot['difference']:+.1f} ({100 * boot['low']:+.1f} to "
                    f"{100 * boot['high']:+.1f})")
            mc = (f"{test['a_only']} / {test['b_only']} | {test['p_value']:.2g}" if test
                  else "  | ")
            print(f"| {a} | {b} | {measure} | {pct(acc_a)} | {pct(acc_b)} | {diff} | {mc} |")
    vers = versions()
    print("\nversions: " + ", ".join(f"{k} {v}" for k, v in vers.items()))
    print(f"load before: {load_before}\nload after:  {load_after}")

    if args.json:
        raw = {"machine": machine(), "versions": vers, "load_before": load_before,
               "load_after": load_after, "main_video": str(main_video),
               "labels": {str(k): v for k, v in labels.items()}, "frames": n_frames,
               "times_s": times, "summary": summary,
               "agreement": {k: {"share": s, "frames": n} for k, (s, n) in pairs.items()},
               "still": None if still is None else {k: v for k, v in still.items() if k != "right"},
               "significance": [{"a": a, "b": b, "measure": m, "accuracy_a": float(x),
                                 "accuracy_b": float(y), "bootstrap": boot, "mcnemar": t}
                                for a, b, m, x, y, boot, t in tests],
               "top_emotion_per_frame": tops}
        args.json.write_text(json.dumps(raw, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
