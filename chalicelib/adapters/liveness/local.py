"""Local liveness check (活体检测, the embedded default): a head turn on request, judged from a burst.

The server picks a direction at random (left, right, up or down) and a capture nonce; the client shows
the prompt and sends 3–8 frames (JPEG or PNG, ~640 px, at most 1 MB each) captured from the camera while
the person turns their head from facing the camera to about 20–30° in that direction, with the nonce
and each frame's capture time in ms. The burst is live when all of these hold:

0. **One capture, of this session**: the nonce is the session's (``liveness.nonce``); the times are one
   per frame, increasing, 40 ms – 2 s apart and 0.3 – 10 s in all (``liveness.timestamps``); and
   consecutive frames are one continuous scene (``liveness.not_continuous``): the same frame size; the
   scene outside the face (the face box widened for hair, ears and neck, on 64-px-wide grey thumbnails,
   at the best of ±3 thumbnail pixels of camera shake, the change in mean brightness removed) differs
   by at most ``MAX_BACKGROUND_CHANGE`` grey levels; the mean brightness moves by at most
   ``MAX_LIGHT_STEP`` per frame and ``MAX_LIGHT_SPAN`` in all; the face centre moves by at most
   ``MAX_FACE_SHIFT`` of its width and its size by at most ``MAX_FACE_SCALE`` (all in ``continuity``).
   Measured on the shared photos: frames of one handheld capture (a still warped into a turn or a
   nod, shifted by a few pixels, its exposure drifting ±4 %) differ outside the face by 2–13 levels
   and in brightness by ≤ 3; two different photos of one person, even scaled so that the face sits in
   one place at one size, by 30–98 levels (the 36 ordered pairs of the shared photos of one person,
   each also with the second mirrored), but for one pair: ``obama_1`` and ``obama_video_1080p``, two
   photos of one scene, differ by 12–13, as frames of one capture would.
1. **One face per frame** (``liveness.no_face``, ``liveness.several_faces``); the other checks need it,
   so a burst failing it is not judged further.
2. **The same person throughout** (``liveness.not_same_person``): every frame's face scores at least
   ``same_person_threshold`` against the most frontal frame, on the face engine's own 0–100 scale.
   Engines with descriptors (``EmbeddingFaceEngine``) describe each frame once.
3. **Distinct frames** (``liveness.identical_frames``): at least ``min_frames`` (and 2) of the frames
   differ from one another in the face region. Two frames are compared over the union of their face
   boxes (as fractions of each frame, plus a margin) reduced to 48 × 48 grey levels, each normalised to
   zero mean and unit variance; they are near-identical when the mean absolute difference is below
   ``NEAR_IDENTICAL`` (0.08). Measured on the shared photos: a still re-encoded (PNG, JPEG 30–95),
   rescaled or brightened stays under 0.06; a synthetic 2° head turn gives about 0.1 or more, 10° 0.39–0.60,
   two different photos 0.8–1.2. Frames of a person holding still are near-identical too; they count
   once, so a few of them in a longer burst do no harm. A still that is shifted (cropped) between frames
   is not caught here but by the pose check.
4. **The requested turn** (``liveness.no_pose_change``, ``liveness.wrong_direction``), on the direction's
   axis (yaw for left/right, pitch for up/down, from the face engine's landmark pose). The start is the
   frame nearest straight ahead on that axis; the most turned frame must be at least
   ``min_turn_degrees`` from it in the requested direction, and no frame that far in the opposite one.
   The start is taken on the axis, not as the most frontal frame overall, so that a person who starts a
   little turned on the other axis is still measured from where they began. The order of the frames
   does not matter: a recording of the opposite turn, reversed, starts turned and ends straight ahead,
   and fails (``wrong_direction``).

The most frontal frame (smallest √(yaw² + pitch²)) is the identity reference and the verdict's
``reference_image``, re-encoded as a JPEG from the decoded frame: upright, at most 800 px, and without
the metadata (EXIF, GPS) the upload may carry.

What it stops: a printed photo or a screen held up to the camera, even moved or tilted (a flat picture
turned about its vertical axis changes the landmark yaw by at most ~5°, measured on the shared photos);
a single still sent again, re-encoded, rescaled or brightened; a pile of the person's own photos in the
right poses (different scenes); swapping people in mid-burst; frames of another session (the nonce); a
recording of some other head movement, since the direction is drawn per check.

What it does not stop: a video of the person turning the right way (recorded earlier, played on a
screen, or a live deepfake), one photo warped in software into a turn or a nod (the tests build their
bursts that way, and they pass), photos of one scene taken moments apart, a 3-D mask, or frames
injected by a virtual camera or a modified client (the nonce and the times are the client's word). It
sees no depth, skin texture or light reflection, and trusts the frames to come from a camera. That is
what Amazon Rekognition Face Liveness (``rekognition.RekognitionLivenessEngine``) is for in production;
deployed stages refuse this engine unless ``accept_local_liveness_risk`` is set
(``local_engine_refused``).

Angles are the face engine's (``faces.port``: the pitch grows as the head rises). The dlib engine's
landmark pose reads faces that look frontal at a pitch anywhere from about −13° to +6° on the shared
photos (a generic head model), and its yaw moves by up to ~5° between copies of one photo, so a
challenge needs a clear turn: the client should ask for 25–30°.

``confidence`` is 100 for a live burst and 0 otherwise: the checks are rules, not a model, and their
margins (turn in degrees, lowest same-person score, frame differences) are in ``details``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from chalicelib.adapters.faces.local import decode
from chalicelib.adapters.liveness.continuity import box_fractions, check_continuity, check_timing
from chalicelib.kernel.errors import DomainError, InvalidField
from chalicelib.verification.domain.faces import DetectedFace
from chalicelib.verification.domain.liveness import (
    LivenessCapture,
    LivenessChallenge,
    LivenessReason,
    LivenessVerdict,
    ProviderSession,
    check_frames,
    frame_unreadable,
    head_turn_challenge,
    head_turn_session,
)
from chalicelib.verification.ports import EmbeddingFaceEngine, FaceEngine, LivenessEngine

#: Frames are decoded at most this long on their long side (comparison and reference image).
DECODE_SIDE = 800
#: Side of the grey face region two frames are compared on.
COMPARE_PX = 48
#: Margin added around the union of two face boxes, as a share of its width and height on each side.
COMPARE_MARGIN = 0.15
#: Two frames whose normalised face regions differ by less than this (mean absolute difference, in
#: standard deviations) are near-identical.
NEAR_IDENTICAL = 0.08
#: Default turn, in degrees, from the start frame to the most turned frame.
DEFAULT_MIN_TURN = 12.0
#: Version of these rules, recorded with the face engine's in ``engine_version``.
RULES_VERSION = "head-turn-2"
#: JPEG quality of the reference image.
REFERENCE_QUALITY = 92

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class LivenessEngineRefused(DomainError):
    """The stage is configured with an engine it must not run (a configuration error, not a person's)."""

    status = 503


def local_engine_refused(stage: str) -> LivenessEngineRefused:
    """A deployed stage set up with the local engine without accepting its risk (see the module)."""
    return LivenessEngineRefused(
        "config.local_liveness_refused",
        "人脸核验服务配置有误，暂不可用",
        f"The {stage} stage is configured with the local liveness engine, which does not stop a video "
        "replay, a 3-D mask or injected frames: configure CHEKA_LIVENESS_ENGINE=rekognition, or set "
        "CHEKA_ACCEPT_LOCAL_LIVENESS_RISK=true to accept the risk",
        details={"stage": stage, "liveness_engine": "local"},
    )


@dataclass(frozen=True)
class _Frame:
    data: bytes
    #: The frame in RGB, EXIF-rotated, long side at most ``DECODE_SIDE``.
    rgb: Image.Image
    grey: Image.Image
    #: Size of the frame after EXIF rotation (width, height): face boxes are in these pixels.
    size: tuple[int, int]


def _decoded(index: int, data: bytes) -> _Frame:
    if not (data.startswith(_JPEG_MAGIC) or data.startswith(_PNG_MAGIC)):
        raise frame_unreadable(index)
    try:
        photo = decode(data, DECODE_SIDE)
    except InvalidField as exc:
        raise frame_unreadable(index) from exc
    rgb = Image.fromarray(photo.pixels)
    return _Frame(data=data, rgb=rgb, grey=rgb.convert("L"), size=photo.size)


def _levels(frame: _Frame, box: tuple[float, float, float, float]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """``box`` of the frame in ``COMPARE_PX`` square grey levels, normalised to zero mean, unit variance."""
    left, top, right, bottom = box
    width, height = frame.grey.size
    crop = frame.grey.resize(
        (COMPARE_PX, COMPARE_PX),
        Image.Resampling.BILINEAR,
        box=(left * width, top * height, right * width, bottom * height),
        reducing_gap=2.0,
    )
    levels: np.ndarray[Any, np.dtype[np.float64]] = np.asarray(crop, dtype=np.float64)
    return (levels - float(levels.mean())) / (float(levels.std()) + 1e-6)


def _difference(a: _Frame, face_a: DetectedFace, b: _Frame, face_b: DetectedFace) -> float:
    """How much the face region differs between two frames (0 = identical; see ``NEAR_IDENTICAL``)."""
    box_a, box_b = box_fractions(face_a, a.size), box_fractions(face_b, b.size)
    left, top = min(box_a[0], box_b[0]), min(box_a[1], box_b[1])
    right, bottom = max(box_a[2], box_b[2]), max(box_a[3], box_b[3])
    mx, my = (right - left) * COMPARE_MARGIN, (bottom - top) * COMPARE_MARGIN
    union = (max(0.0, left - mx), max(0.0, top - my), min(1.0, right + mx), min(1.0, bottom + my))
    return float(np.abs(_levels(a, union) - _levels(b, union)).mean())


def _jpeg(frame: _Frame) -> bytes:
    """The decoded frame as a JPEG: upright, and without the metadata (EXIF, GPS) the upload carried."""
    out = io.BytesIO()
    frame.rgb.save(out, "JPEG", quality=REFERENCE_QUALITY)
    return out.getvalue()


class LocalLivenessEngine(LivenessEngine):
    """Head-turn challenge judged with a face engine's detection, pose and scores (see the module)."""

    name: ClassVar[str] = "local-head-turn"

    def __init__(
        self,
        face_engine: FaceEngine,
        *,
        same_person_threshold: float,
        min_turn_degrees: float = DEFAULT_MIN_TURN,
    ) -> None:
        self._faces = face_engine
        self._threshold = same_person_threshold
        self._min_turn = min_turn_degrees

    @property
    def version(self) -> str:
        return f"{RULES_VERSION}/{self._faces.name}-{self._faces.version}"

    def new_challenge(self) -> LivenessChallenge:
        return head_turn_challenge()

    def start(self, challenge: LivenessChallenge) -> ProviderSession:
        return head_turn_session(challenge)

    def judge(
        self,
        provider_session_id: str | None,
        challenge: LivenessChallenge,
        frames: Sequence[bytes],
        capture: LivenessCapture | None = None,
    ) -> LivenessVerdict:
        direction = challenge.direction
        if direction is None:
            raise ValueError("the local liveness engine needs a challenge with a direction")
        check_frames(challenge, frames)
        decoded = [_decoded(index, data) for index, data in enumerate(frames)]
        found = [self._detect(index, data) for index, data in enumerate(frames)]
        details: dict[str, Any] = {
            "direction": direction.value,
            "axis": direction.axis,
            "min_turn_degrees": self._min_turn,
            "same_person_threshold": self._threshold,
            "per_frame": [{"faces": len(faces)} for faces in found],
        }
        reasons: list[str] = []
        if challenge.nonce is not None and (capture is None or capture.nonce != challenge.nonce):
            reasons.append(LivenessReason.NONCE)
        timing = check_timing(capture.timestamps_ms if capture else None, len(frames))
        details["timing"] = timing
        if not timing["ok"]:
            reasons.append(LivenessReason.TIMESTAMPS)
        if any(not faces for faces in found):
            reasons.append(LivenessReason.NO_FACE)
        if any(len(faces) > 1 for faces in found):
            reasons.append(LivenessReason.SEVERAL_FACES)
        if any(len(faces) != 1 for faces in found):
            return self._verdict(reasons, len(frames), details, None)

        faces = [fs[0] for fs in found]
        continuity = check_continuity(decoded, faces)
        details["continuity"] = continuity
        if not continuity["ok"]:
            reasons.append(LivenessReason.NOT_CONTINUOUS)
        frontal = min(range(len(faces)), key=lambda i: (math.hypot(faces[i].yaw, faces[i].pitch), i))
        scores = self._similarities(frames, frontal)
        for entry, face, score in zip(details["per_frame"], faces, scores, strict=True):
            entry.update(
                yaw=face.yaw, pitch=face.pitch, similarity=None if score is None else round(score, 2)
            )
        known = [s for s in scores if s is not None]
        if known and min(known) < self._threshold:
            reasons.append(LivenessReason.NOT_SAME_PERSON)

        distinct, least = self._distinct(decoded, faces)
        details.update(distinct_frames=distinct, least_frame_difference=round(least, 3))
        if distinct < max(2, challenge.min_frames):
            reasons.append(LivenessReason.IDENTICAL_FRAMES)

        angles = [float(getattr(face, direction.axis)) for face in faces]
        start = min(range(len(angles)), key=lambda i: (abs(angles[i]), i))
        moves = [direction.sign * (angle - angles[start]) for angle in angles]
        turned = max(range(len(moves)), key=lambda i: (moves[i], -i))
        toward, away = moves[turned], max(0.0, -min(moves))
        details.update(
            frontal_frame=frontal,
            start_frame=start,
            turned_frame=turned,
            turn_degrees=round(toward, 1) + 0.0,  # + 0.0: no "-0.0" in the record
            opposite_degrees=round(away, 1) + 0.0,
        )
        if away >= self._min_turn:
            reasons.append(LivenessReason.WRONG_DIRECTION)
        elif toward < self._min_turn:
            reasons.append(LivenessReason.NO_POSE_CHANGE)
        return self._verdict(reasons, len(frames), details, _jpeg(decoded[frontal]))

    def _detect(self, index: int, frame: bytes) -> list[DetectedFace]:
        try:
            return self._faces.detect(frame)
        except InvalidField as exc:
            if exc.code == "face.image_unreadable":
                raise frame_unreadable(index) from exc
            raise

    def _similarities(self, frames: Sequence[bytes], frontal: int) -> list[float | None]:
        """Each frame's score against the frontal frame (``None`` for the frontal frame itself)."""
        engine = self._faces
        if isinstance(engine, EmbeddingFaceEngine):
            embeddings = [engine.embed(frame) for frame in frames]
            return [
                None if i == frontal else engine.similarity(embeddings[frontal], embedding)
                for i, embedding in enumerate(embeddings)
            ]
        return [
            None if i == frontal else engine.compare(frames[frontal], frame).similarity
            for i, frame in enumerate(frames)
        ]

    @staticmethod
    def _distinct(frames: Sequence[_Frame], faces: Sequence[DetectedFace]) -> tuple[int, float]:
        """How many frames are not near-identical to an earlier distinct one; the least difference seen."""
        kept: list[int] = []
        least = math.inf
        for i, (frame, face) in enumerate(zip(frames, faces, strict=True)):
            differences = [_difference(frame, face, frames[k], faces[k]) for k in kept]
            least = min([least, *differences])
            if all(d >= NEAR_IDENTICAL for d in differences):
                kept.append(i)
        return len(kept), 0.0 if least == math.inf else least

    def _verdict(
        self, reasons: list[str], frames: int, details: dict[str, Any], reference: bytes | None
    ) -> LivenessVerdict:
        return LivenessVerdict(
            live=not reasons,
            confidence=0.0 if reasons else 100.0,
            engine=self.name,
            engine_version=self.version,
            reasons=[str(reason) for reason in reasons],
            frames=frames,
            details=details,
            reference_image=reference,
        )
