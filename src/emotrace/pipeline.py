"""The Analyzer: images and videos in, typed per-face emotion results out.

    >>> from emotrace import Analyzer
    >>> analyzer = Analyzer()
    >>> result = analyzer.analyze_video("clip.mp4")
    >>> result.to_pandas()            # one row per face per frame
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from emotrace import models
from emotrace.errors import InputError
from emotrace.faces.classify import ExpressionClassifier
from emotrace.faces.detect import YuNetDetector
from emotrace.faces.pose import FACING_PITCH, FACING_YAW, HeadPose
from emotrace.faces.quality import face_quality
from emotrace.faces.track import IoUTracker
from emotrace.media.decode import Frame, FrameReader
from emotrace.media.images import MAX_PIXELS, as_bgr, read_image
from emotrace.results import (
    Detections,
    Emotions,
    FaceMeasures,
    FrameAnalysis,
    ImageAnalysis,
    VideoAnalysis,
)

# Detection defaults, shared by every driver that builds an Analyzer (the webcam too).
SCORE_THRESHOLD = 0.6
IMAGE_DETECT_SIZE = 640
VIDEO_DETECT_SIZE = 320
FrameCallback = Callable[[Frame, FrameAnalysis], None]
_RELEASED = np.empty((0, 0, 3), np.uint8)  # a frame's image once only its crops are kept


def whole_image_detection(image: np.ndarray) -> Detections:
    """A 'detection' covering the whole image, for already cropped faces (no landmarks)."""
    h, w = image.shape[:2]
    return Detections(
        np.array([[0, 0, w, h]], np.float32),
        np.full(1, np.nan, np.float32),
        np.full((1, 5, 2), np.nan, np.float32),
    )


class Analyzer:
    """Detect, align, classify and track faces in images and videos.

    Args:
        classifier: registry name of the expression model.
        classifier_path / detector_path: explicit model files (checked by SHA256).
        score_threshold, nms_threshold, min_face_size: face detection settings.
        image_detect_size / video_detect_size: longer side (pixels) at which faces are detected
            in still images / video frames (detection at a reduced size is much faster; faces
            smaller than about 10 px at that size are lost). None = full resolution.
        max_image_pixels: image files larger than this (read from the header) are refused
            before decoding (`InputError`); None = no cap.
        embeddings: also return each face's embedding where the model has one.
        facing_yaw / facing_pitch: a face is `facing` (the camera, the screen) when its |yaw|
            and |pitch| are at most these many degrees (`faces.pose`).
        batch_size: faces per classifier call.
        threads: ONNX Runtime threads (0 = all cores).
    """

    def __init__(
        self,
        classifier: str = models.DEFAULT_CLASSIFIER,
        classifier_path: str | Path | None = None,
        detector_path: str | Path | None = None,
        score_threshold: float = SCORE_THRESHOLD,
        nms_threshold: float = 0.3,
        min_face_size: int = 0,
        image_detect_size: int | None = IMAGE_DETECT_SIZE,
        video_detect_size: int | None = VIDEO_DETECT_SIZE,
        max_image_pixels: int | None = MAX_PIXELS,
        embeddings: bool = False,
        batch_size: int = 32,
        threads: int = 0,
        facing_yaw: float = FACING_YAW,
        facing_pitch: float = FACING_PITCH,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if video_detect_size is not None and video_detect_size < 32:
            raise ValueError(f"video_detect_size must be >= 32 or None, got {video_detect_size}")
        if max_image_pixels is not None and max_image_pixels < 1:
            raise ValueError(f"max_image_pixels must be >= 1 or None, got {max_image_pixels}")
        self.pose = HeadPose(facing_yaw, facing_pitch)
        self.classifier = ExpressionClassifier(classifier, classifier_path, embeddings, threads)
        self.detector = YuNetDetector(
            detector_path, score_threshold, nms_threshold, min_face_size, image_detect_size
        )
        self.image_detect_size = image_detect_size
        self.video_detect_size = video_detect_size
        self.max_image_pixels = max_image_pixels
        self.batch_size = batch_size

    @property
    def labels(self) -> tuple[str, ...]:
        return self.classifier.labels

    def settings(self, fps: float | None = None) -> dict:
        """What decides a video's table: the model, detection settings and the frame rate
        analysed (None: every frame). Kept with every table (`VideoAnalysis.settings`)."""
        card = self.classifier.card
        return {"model": card.name if card else str(self.classifier.path), "fps": fps,
                "score_threshold": self.detector.score_threshold,
                "min_face_size": self.detector.min_face_size,
                "detect_size": self.video_detect_size}

    # -- one frame: the step every driver uses --------------------------------------------
    def locate(self, image: np.ndarray, timestamp: float = 0.0, tracker: IoUTracker | None = None,
               still: bool = False) -> Detections:
        """The faces of one BGR frame, with the tracker's ids when a tracker is given.

        Faces are detected at the video size (`still`: the still-image size), so every driver
        (video, webcam, fragment queries, API, demo) detects the same way.
        """
        det = self.detector(image, self.image_detect_size if still else self.video_detect_size)
        if tracker is not None:
            det = det.with_track_ids(tracker.update(det.boxes, timestamp))
        return det

    def crops(self, image: np.ndarray, detections: Detections) -> np.ndarray:
        """Each face cut out as the classifier wants it (its card's crop policy)."""
        return self.classifier.crops(image, detections)

    def classify(self, crops: np.ndarray) -> Emotions:
        """Emotions of (N, S, S, 3) uint8 BGR crops, `batch_size` faces per model call."""
        return self.classifier(crops, self.batch_size)

    def measure(self, image: np.ndarray, detections: Detections,
                whole: bool = False) -> FaceMeasures:
        """Head pose (`faces.pose`) and image quality (`faces.quality`) of each face, on the
        frame as decoded (full size); `whole`: the boxes are whole faces (not extended beyond
        the frame's edges)."""
        h, w = image.shape[:2]
        pose = self.pose(detections.landmarks, w, h)
        return FaceMeasures(pose, self.pose.facing(pose),
                            face_quality(image, detections.boxes, extend=not whole))

    def analyze_frame(self, image: np.ndarray, timestamp: float = 0.0,
                      tracker: IoUTracker | None = None, index: int = 0,
                      still: bool = False) -> FrameAnalysis:
        """Detect, track (with `tracker`), measure, crop and classify the faces of one BGR
        frame."""
        det = self.locate(image, timestamp, tracker, still)
        emotions = (self.classify(self.crops(image, det)) if len(det)
                    else Emotions.empty(self.labels))
        return FrameAnalysis(index, timestamp, det, emotions, self.measure(image, det))

    # -- images ---------------------------------------------------------------------------
    def analyze_image(
        self, image: str | Path | np.ndarray, cropped: bool = False, name: str | None = None
    ) -> ImageAnalysis:
        """Every face in one image (path or BGR array); `cropped`: the image is one face."""
        path = name or (str(image) if not isinstance(image, np.ndarray) else "<array>")
        array = as_bgr(read_image(image, self.max_image_pixels)
                       if not isinstance(image, np.ndarray) else image)
        if cropped:
            det = whole_image_detection(array)
            faces = cv2.resize(array, (self.classifier.size,) * 2, interpolation=cv2.INTER_LINEAR)
            frame = FrameAnalysis(0, 0.0, det, self.classify(faces[None]),
                                  self.measure(array, det, whole=True))
        else:
            frame = self.analyze_frame(array, still=True)
        return ImageAnalysis(path, array.shape[1], array.shape[0], frame)

    def analyze_images(
        self, paths: Iterable[str | Path], cropped: bool = False, progress: bool = True
    ) -> Iterator[ImageAnalysis | InputError]:
        """Analyse many images; a bad file yields its `InputError` and the rest go on."""
        paths = list(paths)
        for path in tqdm(paths, desc="images", unit="img", disable=not progress):
            try:
                yield self.analyze_image(path, cropped=cropped)
            except InputError as exc:
                yield exc

    # -- video ----------------------------------------------------------------------------
    def analyze_video(
        self,
        path: str | Path,
        fps: float | None = None,
        progress: bool = True,
        on_frame: FrameCallback | None = None,
        tracker: IoUTracker | None = None,
    ) -> VideoAnalysis:
        """Analyse every frame of a video (or `fps` frames per second), streaming.

        Faces of several frames are classified in one batch; `on_frame(frame, analysis)` is
        called for each analysed frame in order (to draw or write it) once its faces are
        classified. A video whose stream ends early or breaks part way gives the frames
        that decoded, with `partial` saying so; `InputError` naming the file for missing or
        non-video input, or one where no frame decodes.
        """
        reader = FrameReader(path, fps)
        tracker = tracker or IoUTracker()
        result = VideoAnalysis(reader.info, self.labels, settings=self.settings(fps))
        total = reader.info.n_frames if fps is None else int(reader.info.duration * fps) + 1
        bar = tqdm(total=total or None, desc=Path(path).name, unit="frame",
                   disable=not progress, dynamic_ncols=True)
        pending: list[tuple[Frame, Detections, FaceMeasures]] = []
        crops: list[np.ndarray] = []
        n_crops = 0

        def flush() -> None:
            nonlocal n_crops
            batch = np.concatenate(crops) if crops else None
            emotions = self.classify(batch) if batch is not None else None
            start = 0
            for frame, det, measures in pending:
                n = len(det)
                emo = (emotions.slice(start, start + n) if n and emotions is not None
                       else Emotions.empty(self.labels))
                start += n
                analysis = FrameAnalysis(frame.index, frame.timestamp, det, emo, measures)
                result.frames.append(analysis)
                if on_frame is not None:
                    on_frame(frame, analysis)
            bar.update(len(pending))
            pending.clear()
            crops.clear()
            n_crops = 0

        started = time.perf_counter()
        try:
            for frame in reader:
                det = self.locate(frame.image, frame.timestamp, tracker)
                measures = self.measure(frame.image, det)  # while the pixels are here
                if len(det):
                    crops.append(self.crops(frame.image, det))
                    n_crops += len(det)
                if on_frame is None:
                    frame.image = _RELEASED  # the crops are all we keep: free the pixels now
                pending.append((frame, det, measures))
                if n_crops >= self.batch_size or len(pending) >= 4 * self.batch_size:
                    flush()
            flush()
        finally:
            bar.close()
        result.frames_decoded = reader.frames_decoded
        result.partial = reader.partial
        result.elapsed = time.perf_counter() - started
        return result
