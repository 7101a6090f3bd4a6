"""Local face engine: dlib's HOG detector, 68-point landmarks and ResNet face descriptors.

The embedded default (DESIGN "a local face engine"): the packages ``dlib-bin`` and
``face-recognition-models`` ship the code and the model files, so nothing is downloaded at run time.
Models are loaded on first use, once per process (about 1 s; the 68-point predictor is 100 MB).

Pipeline for each photo:

1. Decode with Pillow (JPEG decoded at a reduced scale when it is much larger than needed), apply the
   EXIF orientation, composite any alpha channel over white, convert to RGB.
2. Downscale so the long side is at most 800 px (phones take 12-megapixel photos; the detector needs
   far less, and time grows with pixels). Photos under 480 px on the long side are upsampled once by
   the detector instead, so faces down to about 40 px are still found.
3. HOG frontal-face detector, then the 68-point shape predictor on each face. Boxes are mapped back to
   pixels of the original (rotated) photo.
4. Pose from the landmarks: a scaled-orthographic (weak perspective) fit of six landmarks (nose tip,
   chin, outer eye corners, mouth corners) to a generic 3-D head model, solved by least squares; the
   fitted rotation gives yaw, pitch and roll. Accurate to a few degrees for turns under ~40°, which is
   what a frontal-pose check needs; mirroring a photo flips the yaw's sign.
5. The ResNet model turns the largest face (aligned by its landmarks) into a 128-d descriptor.

Calibration (distance → similarity). dlib's model is trained so that two photos of one person lie
within a Euclidean distance of 0.6 of each other (99.38 % on LFW at that threshold). The similarity is
the linear, monotone map::

    similarity = 100 × clamp(1 − d / 1.2, 0, 1)

so d = 0 ↦ 100, d = 0.6 ↦ 50, d ≥ 1.2 ↦ 0; one similarity point is 0.012 of distance. Linear keeps
the threshold readable as a distance (``similarity_to_distance``) when calibrating on an OEM's own
photos with ``cheka faces evaluate``.

Threshold. dlib's usual 0.6 (similarity 50) accepts about 0.5 % of impostor pairs on a public face set
the model has not seen; identity needs at most 0.1 %. ``DEFAULT_FACE_THRESHOLD`` is 55 (d = 0.54):
with the impostor scores' spread measured on the shared photos (standard deviation 6.6 points), a
normal tail that puts 0.5 % above 50 puts about 0.04 % above 55 (0.07 % above 54, where the second
look's shift can bring an impostor). The shared photos cannot measure 0.1 % themselves: 11,220
impostor pairs, but only 7 people (bench/README.md says what they show and what they cannot).

Second look. A score within ``SECOND_LOOK_BAND`` points of the threshold is scored again from
jittered descriptors (the mean descriptor of ``SECOND_LOOK_JITTERS`` slightly rotated, shifted, zoomed
and mirrored copies of the aligned face, as dlib's ``num_jitters`` does, but drawn from a fixed seed so
that the same photos always get the same score), which replaces the first score. On the
shared photos it lifts the weakest same-person pairs by 2.0 points on average and the strongest
impostor pairs by 0.7-1.0, so a stricter threshold loses fewer genuine people; it costs about 0.5 s per
face and concerns about 4 % of same-person pairs, so the average cost of a pair stays near the single
look's. The aligned faces of the last ``chips`` photos described are kept for it.
"""

from __future__ import annotations

import importlib.util
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image, ImageOps

from chalicelib.kernel.images import MAX_PIXELS, ImageRefused, open_image
from chalicelib.verification.domain.faces import (
    DEFAULT_FACE_THRESHOLD,
    DetectedFace,
    FaceBox,
    FaceComparison,
    FaceEmbedding,
    image_unreadable,
    no_face,
)
from chalicelib.verification.ports import EmbeddingFaceEngine

#: Long side, in pixels, photos are scaled down to before detection.
MAX_SIDE = 800
#: Photos shorter than this on their long side are upsampled once by the detector.
UPSAMPLE_BELOW = 480
#: Scores this close to the threshold get the second, jittered look.
SECOND_LOOK_BAND = 4.0
#: Jittered copies averaged by the second look.
SECOND_LOOK_JITTERS = 5
#: Side and padding of the aligned face chip dlib's ResNet describes (its ``compute_face_descriptor``).
_CHIP_SIZE, _CHIP_PADDING = 150, 0.25
#: The distance that maps to similarity 0 (twice dlib's 0.6 threshold: 0.6 ↦ 50).
ZERO_SIMILARITY_DISTANCE = 1.2

# Generic 3-D head (x right, y up, z toward the camera; arbitrary units) at dlib's 68-point indices:
# nose tip, chin, outer corners of the eyes, mouth corners.
_HEAD_MODEL: dict[int, tuple[float, float, float]] = {
    30: (0.0, 0.0, 0.0),
    8: (0.0, -330.0, -65.0),
    36: (-225.0, 170.0, -135.0),
    45: (225.0, 170.0, -135.0),
    48: (-150.0, -150.0, -125.0),
    54: (150.0, -150.0, -125.0),
}
_POSE_POINTS = list(_HEAD_MODEL)
_MODEL_CENTRED = np.array([_HEAD_MODEL[i] for i in _POSE_POINTS]) - np.array(
    [_HEAD_MODEL[i] for i in _POSE_POINTS]
).mean(axis=0)


def distance_to_similarity(distance: float) -> float:
    """The documented calibration: 100 × clamp(1 − d / 1.2)."""
    return 100.0 * min(1.0, max(0.0, 1.0 - distance / ZERO_SIMILARITY_DISTANCE))


def similarity_to_distance(similarity: float) -> float:
    """The descriptor distance a similarity threshold stands for (inverse of the calibration)."""
    return (1.0 - similarity / 100.0) * ZERO_SIMILARITY_DISTANCE


def estimate_pose(points: list[tuple[float, float]]) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from 68 landmarks (image coordinates, y down).

    Least-squares weak-perspective fit: centred model points X (n×3) and image points x (n×2, y up)
    satisfy x ≈ X·M; M's columns, orthonormalised, are the first two rows of the head's rotation.
    """
    image = np.array([points[i] for i in _POSE_POINTS], dtype=float)
    image[:, 1] *= -1.0
    image -= image.mean(axis=0)
    fit, *_ = np.linalg.lstsq(_MODEL_CENTRED, image, rcond=None)
    r1 = fit[:, 0] / np.linalg.norm(fit[:, 0])
    r2 = fit[:, 1] - r1 * float(r1 @ fit[:, 1])
    r2 /= np.linalg.norm(r2)
    r3 = np.cross(r1, r2)
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, float(-r3[0])))))
    pitch = math.degrees(math.atan2(-float(r3[1]), float(r3[2])))
    roll = math.degrees(math.atan2(float(r2[0]), float(r1[0])))
    return yaw, pitch, roll


@dataclass(frozen=True)
class _Models:
    detector: Any
    predictor: Any
    recogniser: Any
    version: str


_models_lock = threading.Lock()
_loaded: _Models | None = None


def _models_dir() -> Path:
    # Located without importing the package: its __init__ needs pkg_resources (setuptools).
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise RuntimeError("face-recognition-models is not installed (pip install face-recognition-models)")
    return Path(spec.origin).parent / "models"


def _models() -> _Models:
    """dlib and its three models, loaded once per process on first use."""
    global _loaded
    if _loaded is None:
        with _models_lock:
            if _loaded is None:
                import dlib

                folder = _models_dir()
                _loaded = _Models(
                    detector=dlib.get_frontal_face_detector(),
                    predictor=dlib.shape_predictor(str(folder / "shape_predictor_68_face_landmarks.dat")),
                    recogniser=dlib.face_recognition_model_v1(
                        str(folder / "dlib_face_recognition_resnet_model_v1.dat")
                    ),
                    version=str(dlib.__version__),
                )
    return _loaded


@dataclass(frozen=True)
class _Photo:
    pixels: np.ndarray[Any, np.dtype[np.uint8]]
    #: Size of the original photo after EXIF rotation (width, height).
    size: tuple[int, int]
    #: Original pixels per analysed pixel.
    scale: float


def decode(image: bytes, max_side: int = MAX_SIDE, *, label: str | None = None) -> _Photo:
    """RGB pixels, EXIF-rotated, alpha composited over white, long side at most ``max_side``; refused
    (``face.image_unreadable``) from the header alone when it has more than ``MAX_PIXELS``."""
    try:
        with open_image(image, max_pixels=MAX_PIXELS) as opened:
            width, height = opened.size
            if opened.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # rotated a quarter turn
                width, height = height, width
            ratio = max_side / max(width, height)
            if ratio < 1 and opened.format == "JPEG":
                # Let the JPEG decoder skip detail we would throw away (1/2, 1/4, 1/8 scale).
                opened.draft("RGB", (math.ceil(opened.width * ratio), math.ceil(opened.height * ratio)))
            im = ImageOps.exif_transpose(opened)
            if "A" in im.getbands() or "transparency" in im.info:
                rgba = im.convert("RGBA")
                im = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
            im = im.convert("RGB")
            if max(im.size) > max_side:
                ratio = max_side / max(im.size)
                im = im.resize(
                    (max(1, round(im.width * ratio)), max(1, round(im.height * ratio))),
                    Image.Resampling.BILINEAR,
                    reducing_gap=2.0,
                )
            pixels = np.asarray(im, dtype=np.uint8)
    except ImageRefused as exc:
        raise image_unreadable(image=label) from exc
    return _Photo(pixels=pixels, size=(width, height), scale=width / pixels.shape[1])


def jittered_chips(
    chip: np.ndarray[Any, np.dtype[np.uint8]], count: int, seed: int = 6011
) -> list[np.ndarray[Any, np.dtype[np.uint8]]]:
    """``count`` copies of an aligned face chip, each rotated up to 3°, shifted up to 2 %, zoomed ±5 %
    and every second one mirrored (dlib's ``jitter_image``), from a fixed seed."""
    rng = np.random.default_rng(seed)
    image = Image.fromarray(chip)
    side = image.width
    copies = []
    for k in range(count):
        angle, zoom = rng.uniform(-3.0, 3.0), rng.uniform(0.95, 1.05)
        dx, dy = rng.uniform(-0.02, 0.02, size=2) * side
        turned = image.rotate(angle, resample=Image.Resampling.BILINEAR, translate=(dx, dy))
        shift = side / 2 * (1 - 1 / zoom)  # zoom about the centre: input = output / zoom + shift
        copy = turned.transform(
            (side, side),
            Image.Transform.AFFINE,
            (1 / zoom, 0, shift, 0, 1 / zoom, shift),
            resample=Image.Resampling.BILINEAR,
        )
        copies.append(np.asarray(ImageOps.mirror(copy) if k % 2 else copy, dtype=np.uint8))
    return copies


class LocalFaceEngine(EmbeddingFaceEngine):
    """dlib ResNet face engine, running in-process (see the module docstring for the calibration)."""

    name: ClassVar[str] = "dlib-resnet"
    recommended_threshold: ClassVar[float] = DEFAULT_FACE_THRESHOLD

    def __init__(
        self,
        *,
        max_side: int = MAX_SIDE,
        threshold: float | None = None,
        band: float = SECOND_LOOK_BAND,
        jitters: int = SECOND_LOOK_JITTERS,
        chips: int = 64,
    ) -> None:
        """``threshold``: the one in force, which the second look's ``band`` lies around (default: the
        engine's); ``jitters`` 0 turns the second look off; ``chips``: aligned faces kept for it."""
        self._max_side = max_side
        self._threshold = self.recommended_threshold if threshold is None else threshold
        self._band = band
        self._jitters = jitters
        self._capacity = chips
        self._chips: OrderedDict[tuple[float, ...], np.ndarray[Any, np.dtype[np.uint8]]] = OrderedDict()
        self._jittered: dict[tuple[float, ...], np.ndarray[Any, np.dtype[np.float64]]] = {}
        #: Second looks taken (for measurements).
        self.second_looks = 0
        # The ResNet keeps per-call state: one inference at a time per process.
        self._lock = threading.Lock()

    def remember(self, chips: int) -> None:
        """Keep the aligned faces of at least ``chips`` photos (an evaluation describes each photo once)."""
        self._capacity = max(self._capacity, chips)

    @property
    def version(self) -> str:
        return _models().version

    def warm_up(self) -> None:
        """Load the models now (otherwise the first photo pays for it)."""
        _models()

    def _analyse(
        self, image: bytes, label: str | None = None
    ) -> tuple[_Photo, list[tuple[DetectedFace, Any]]]:
        models = _models()
        photo = decode(image, self._max_side, label=label)
        upsample = 1 if max(photo.pixels.shape[:2]) < UPSAMPLE_BELOW else 0
        with self._lock:
            rects, scores, _ = models.detector.run(photo.pixels, upsample, 0.0)
            found = []
            for rect, score in zip(rects, scores, strict=True):
                shape = models.predictor(photo.pixels, rect)
                points = [(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)]
                found.append((self._face(photo, rect, points, float(score)), shape))
        found.sort(key=lambda item: item[0].box.area, reverse=True)
        return photo, found

    @staticmethod
    def _face(photo: _Photo, rect: Any, points: list[tuple[float, float]], score: float) -> DetectedFace:
        s = photo.scale
        box = FaceBox(
            left=round(rect.left() * s),
            top=round(rect.top() * s),
            width=round(rect.width() * s),
            height=round(rect.height() * s),
        )
        size = min(box.width, box.height)
        yaw, pitch, roll = estimate_pose(points)
        return DetectedFace(
            box=box,
            size_px=size,
            relative_size=size / min(photo.size),
            yaw=round(yaw, 1),
            pitch=round(pitch, 1),
            roll=round(roll, 1),
            confidence=round(score, 3),
        )

    def detect(self, image: bytes) -> list[DetectedFace]:
        _, found = self._analyse(image)
        return [face for face, _ in found]

    def embed(self, image: bytes) -> FaceEmbedding:
        return self._embed(image)

    def _embed(self, image: bytes, label: str | None = None) -> FaceEmbedding:
        photo, found = self._analyse(image, label)
        if not found:
            raise no_face(image=label)
        face, shape = found[0]
        import dlib

        with self._lock:
            chip = np.asarray(
                dlib.get_face_chip(photo.pixels, shape, size=_CHIP_SIZE, padding=_CHIP_PADDING), np.uint8
            )
            descriptor = _models().recogniser.compute_face_descriptor(chip)
            vector = tuple(float(v) for v in descriptor)
            if self._jitters:
                self._chips[vector] = chip
                self._chips.move_to_end(vector)
                while len(self._chips) > self._capacity:
                    dropped, _ = self._chips.popitem(last=False)
                    self._jittered.pop(dropped, None)
        return FaceEmbedding(face=face, vector=vector)

    def similarity(self, a: FaceEmbedding, b: FaceEmbedding) -> float:
        """The descriptors' similarity; near the threshold, that of their jittered descriptors."""
        first = distance_to_similarity(float(np.linalg.norm(np.asarray(a.vector) - np.asarray(b.vector))))
        if not self._jitters or abs(first - self._threshold) > self._band:
            return first
        jittered_a, jittered_b = self._jittered_descriptor(a.vector), self._jittered_descriptor(b.vector)
        if jittered_a is None or jittered_b is None:
            return first
        self.second_looks += 1
        return distance_to_similarity(float(np.linalg.norm(jittered_a - jittered_b)))

    def _jittered_descriptor(self, vector: tuple[float, ...]) -> np.ndarray[Any, np.dtype[np.float64]] | None:
        with self._lock:
            if vector in self._jittered:
                return self._jittered[vector]
            chip = self._chips.get(vector)
            if chip is None:
                return None
            described = _models().recogniser.compute_face_descriptor(jittered_chips(chip, self._jitters))
            mean: np.ndarray[Any, np.dtype[np.float64]] = np.asarray(
                np.mean([np.asarray(d) for d in described], axis=0), dtype=np.float64
            )
            self._jittered[vector] = mean
            return mean

    def compare(self, a: bytes, b: bytes) -> FaceComparison:
        first, second = self._embed(a, "a"), self._embed(b, "b")
        return FaceComparison(
            similarity=round(self.similarity(first, second), 2),
            engine=self.name,
            engine_version=self.version,
        )
