"""Liveness port (活体检测): is the face in front of the camera a live person, now?

A check has three steps, whatever the engine:

1. ``new_challenge``: what the person will be asked to do. The local engine picks a head turn at
   random (left, right, up or down) so that a burst recorded for another check does not fit, and a
   capture nonce the client sends back with the frames (``LivenessCapture``, with each frame's capture
   time); Amazon Rekognition Face Liveness runs its own challenge (``direction`` is ``None``).
2. ``start``: what the client needs to run the check (``ProviderSession.client``) and the engine's own
   session id, if it has one, which the server keeps with the flow.
3. ``judge``: the verdict, from the frames the client captured (local) or from the engine's session
   (Rekognition, no frames). A judged check that is not live is a verdict with ``live=False`` and stable
   reason codes (``LivenessReason``); input the engine cannot judge is refused with a domain error.
   A verdict whose only reasons are ``CAPTURE_PROBLEMS`` (no face, several faces) judged no face, and
   one whose only reasons are ``NO_TURN`` (the person held still) saw no head turn: the use case tells
   either as a capture problem (``capture_failed``), not a face attempt, and the session stays open for
   another capture. Any other reason (another person, frames of another capture or session, the wrong
   turn) is a judged verdict and spends an attempt.

Directions use the pose convention of ``faces.port``, in the coordinates of the frames as uploaded:
``RIGHT`` means the yaw grows (the face turns toward the image's right), ``LEFT`` that it falls, ``UP``
that the pitch grows, ``DOWN`` that it falls. A client that uploads mirrored frames (as a selfie preview
shows them) can prompt "turn to your left" for ``LEFT``; one that uploads the camera's unmirrored frames
must swap the left/right prompts.

The verdict's ``reference_image`` is the face to match with the ID portrait (人证一致): the most frontal
frame (local) or Rekognition's reference image. It is never serialised (``exclude=True``) so a verdict
can go into the evidence log as it is; ``details`` hold only non-personal facts (angles, scores, counts).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from chalicelib.kernel.errors import Conflict, InvalidField, PayloadTooLarge, TooManyRequests
from chalicelib.kernel.images import MAX_PIXELS, ImageRefused, open_image

#: The form field frames are refused under.
FRAMES_FIELD = "frames"


#: Largest frame accepted, in bytes (a 640 × 480 JPEG is 30–80 kB).
MAX_FRAME_BYTES = 1024 * 1024
#: A frame's pixels, read from its header before it is decoded: the uploads' cap (a few KB of PNG can
#: claim 20,000 × 20,000 pixels, 1.2 GB once decoded).
MAX_FRAME_PIXELS = MAX_PIXELS


class LivenessDirection(StrEnum):
    """The head turn a local challenge asks for (see the module docstring for the sign convention)."""

    LEFT = "left"
    RIGHT = "right"
    UP = "up"
    DOWN = "down"

    @property
    def axis(self) -> Literal["yaw", "pitch"]:
        """The pose angle the turn changes."""
        return "yaw" if self in (LivenessDirection.LEFT, LivenessDirection.RIGHT) else "pitch"

    @property
    def sign(self) -> int:
        """+1 when the angle grows with the turn, −1 when it falls."""
        return 1 if self in (LivenessDirection.RIGHT, LivenessDirection.UP) else -1


class LivenessReason(StrEnum):
    """Why a judged check is not live (stable codes for the evidence and the client)."""

    NO_FACE = "liveness.no_face"
    SEVERAL_FACES = "liveness.several_faces"
    NOT_SAME_PERSON = "liveness.not_same_person"
    IDENTICAL_FRAMES = "liveness.identical_frames"
    NO_POSE_CHANGE = "liveness.no_pose_change"
    WRONG_DIRECTION = "liveness.wrong_direction"
    #: The frames are not one continuous capture (background, lighting or face position jump between
    #: frames, or their sizes differ).
    NOT_CONTINUOUS = "liveness.not_continuous"
    #: The capture nonce sent with the frames is not the one the session issued.
    NONCE = "liveness.nonce"
    #: The capture timestamps are missing, out of order, or span too short or too long a time.
    TIMESTAMPS = "liveness.timestamps"
    LOW_CONFIDENCE = "liveness.low_confidence"
    FAILED = "liveness.failed"


#: Reasons that mean the burst could not be judged as a face check (a capture problem, not an attempt).
CAPTURE_PROBLEMS = frozenset({LivenessReason.NO_FACE, LivenessReason.SEVERAL_FACES})
#: Reasons that mean the person did not turn (held still): asked again, not an attempt. A burst that
#: saw no turn is never matched with the ID portrait, so a free retry tells nothing about the match;
#: with any other reason (``NOT_SAME_PERSON``, ``NOT_CONTINUOUS``, ``NONCE``, ``TIMESTAMPS``,
#: ``WRONG_DIRECTION``) the verdict counts.
NO_TURN = frozenset({LivenessReason.NO_POSE_CHANGE, LivenessReason.IDENTICAL_FRAMES})


class LivenessChallenge(BaseModel):
    """What the person is asked to do, and how many frames the client must send back."""

    model_config = ConfigDict(frozen=True)

    #: ``None`` for engines that run their own challenge (Rekognition).
    direction: LivenessDirection | None
    #: The capture nonce the client sends back with the frames (engines that take frames).
    nonce: str | None = None
    min_frames: int = Field(default=3, ge=0)
    max_frames: int = Field(default=8, ge=0)

    @model_validator(mode="after")
    def _frames_range(self) -> Self:
        if self.min_frames > self.max_frames:
            raise ValueError("min_frames must not exceed max_frames")
        return self


def head_turn_challenge() -> LivenessChallenge:
    """A fresh challenge of the frame-burst check: a random head turn and a capture nonce."""
    return LivenessChallenge(
        direction=secrets.choice(list(LivenessDirection)), nonce=secrets.token_urlsafe(16)
    )


def head_turn_session(challenge: LivenessChallenge) -> ProviderSession:
    """The frame-burst check started: no engine session, the client told the turn, frames and nonce."""
    if challenge.direction is None:
        raise ValueError("the head-turn liveness check needs a challenge with a direction")
    return ProviderSession(
        provider_session_id=None,
        client={
            "direction": challenge.direction.value,
            "min_frames": str(challenge.min_frames),
            "max_frames": str(challenge.max_frames),
            "nonce": challenge.nonce or "",
        },
    )


class LivenessCapture(BaseModel):
    """What the client says about its capture: the session's nonce and each frame's time (ms)."""

    model_config = ConfigDict(frozen=True)

    nonce: str | None = Field(default=None, max_length=128)
    #: Capture time of each frame, in milliseconds on the client's clock, in the order of the frames.
    timestamps_ms: list[int] | None = Field(default=None, max_length=64)


class ProviderSession(BaseModel):
    """A started check: the engine's session id (kept by the server) and what the client needs."""

    model_config = ConfigDict(frozen=True)

    #: The engine's own session id (Rekognition ``SessionId``); ``None`` for the local engine.
    provider_session_id: str | None
    #: Parameters for the client: ``{"direction": "left", ...}`` or ``{"session_id": ..., "region": ...}``.
    client: dict[str, str]


class LivenessVerdict(BaseModel):
    """The outcome of a judged check, with what produced it (all but the image go into the evidence)."""

    model_config = ConfigDict(frozen=True)

    live: bool
    #: 0–100, in the engine's own terms (see each engine).
    confidence: float = Field(ge=0, le=100)
    engine: str
    engine_version: str
    #: ``LivenessReason`` codes, in a stable order; empty when live.
    reasons: list[str]
    #: Frames judged (0 for engines that see no frames).
    frames: int = Field(ge=0)
    #: Non-personal facts for the evidence log (per-frame angles, same-person scores, thresholds...).
    details: dict[str, Any]
    #: The face to match with the ID portrait (JPEG); kept out of dumps and reprs.
    reference_image: bytes | None = Field(default=None, repr=False, exclude=True)


def capture_problem(verdict: LivenessVerdict) -> bool:
    """A burst that could not be judged as a face check: no face, or several, in some frame; or one
    in which the person held still (only ``NO_TURN`` reasons)."""
    if verdict.live or not verdict.reasons:
        return False
    return all(reason in CAPTURE_PROBLEMS for reason in verdict.reasons) or all(
        reason in NO_TURN for reason in verdict.reasons
    )


def capture_failed(reasons: Sequence[str], attempts_left: int) -> InvalidField:
    """The capture problem told as such: not a face attempt, the same session can be used again."""
    if LivenessReason.SEVERAL_FACES in reasons:
        zh, en = "画面中有多张人脸，请确保只有本人入镜", "Several faces were in the frames"
    elif LivenessReason.NO_FACE in reasons:
        zh, en = "未检测到人脸，请正对镜头，保持光线充足", "No face was found in the frames"
    else:
        zh, en = "没有看到按提示转动头部，请慢慢做", "No head turn was seen in the frames"
    return InvalidField(
        "liveness.capture_problem",
        f"{zh}，再试一次（不计入核验次数）",
        f"{en}; capture again (this does not count as a face attempt)",
        field=FRAMES_FIELD,
        details={"reasons": list(reasons), "attempts_left": attempts_left},
    )


def frames_count(count: int, min_frames: int, max_frames: int) -> InvalidField:
    if max_frames == 0:
        return InvalidField(
            "liveness.frames_count",
            f"该活体检测方式不接收图片帧（收到 {count} 帧）",
            f"This liveness check takes no frames ({count} were sent)",
            field=FRAMES_FIELD,
            details={"frames": count, "min_frames": min_frames, "max_frames": max_frames},
        )
    return InvalidField(
        "liveness.frames_count",
        f"活体检测需要 {min_frames}–{max_frames} 帧图片，收到 {count} 帧，请重新检测",
        f"The liveness check needs {min_frames}–{max_frames} frames; {count} were sent, try again",
        field=FRAMES_FIELD,
        details={"frames": count, "min_frames": min_frames, "max_frames": max_frames},
    )


def frame_too_large(index: int, size: int, max_bytes: int = MAX_FRAME_BYTES) -> PayloadTooLarge:
    return PayloadTooLarge(
        "liveness.frame_too_large",
        f"第 {index + 1} 帧图片过大（{size} 字节），每帧不能超过 {max_bytes // 1024} KB",
        f"Frame {index + 1} is too large ({size} bytes); each frame must be at most {max_bytes // 1024} KB",
        field=FRAMES_FIELD,
        details={"frame": index, "bytes": size, "max_bytes": max_bytes},
    )


def frame_too_many_pixels(index: int, width: int | None, height: int | None) -> InvalidField:
    return InvalidField(
        "liveness.frame_too_many_pixels",
        f"第 {index + 1} 帧图片尺寸过大（超过 {MAX_FRAME_PIXELS // 1_000_000} 百万像素），请重新检测",
        f"Frame {index + 1} has too many pixels; the limit is {MAX_FRAME_PIXELS // 1_000_000} megapixels",
        field=FRAMES_FIELD,
        details={"frame": index, "width": width, "height": height, "max_pixels": MAX_FRAME_PIXELS},
    )


def frame_unreadable(index: int) -> InvalidField:
    return InvalidField(
        "liveness.frame_unreadable",
        f"无法读取第 {index + 1} 帧图片，请以 JPEG 或 PNG 格式上传",
        f"Frame {index + 1} cannot be read; send JPEG or PNG frames",
        field=FRAMES_FIELD,
        details={"frame": index},
    )


def not_finished(status: str) -> Conflict:
    return Conflict(
        "liveness.not_finished",
        "活体检测尚未完成，请完成检测后再提交",
        "The liveness check has not finished yet; complete it before submitting",
        details={"status": status},
    )


def expired() -> InvalidField:
    return InvalidField(
        "liveness.expired",
        "活体检测已过期，请重新检测",
        "The liveness check has expired; start a new one",
        field="liveness",
    )


def check_frames(
    challenge: LivenessChallenge, frames: Sequence[bytes], max_bytes: int = MAX_FRAME_BYTES
) -> None:
    """Refuse a burst with too few or too many frames, a frame over ``max_bytes``, or one that is not a
    JPEG or PNG of at most ``MAX_FRAME_PIXELS`` pixels: read from its header, nothing is decoded here."""
    if not challenge.min_frames <= len(frames) <= challenge.max_frames:
        raise frames_count(len(frames), challenge.min_frames, challenge.max_frames)
    for index, frame in enumerate(frames):
        if len(frame) > max_bytes:
            raise frame_too_large(index, len(frame), max_bytes)
        try:
            with open_image(frame, max_pixels=MAX_FRAME_PIXELS, formats=("JPEG", "PNG")):
                pass
        except ImageRefused as exc:
            if exc.reason == "too_many_pixels":
                raise frame_too_many_pixels(index, exc.width, exc.height) from exc
            raise frame_unreadable(index) from exc


# --- live guidance (预览): where the face is, before and while the burst is captured ----------------

#: A preview frame is small: at most this many bytes and this many pixels on its long side.
PREVIEW_MAX_BYTES = 64 * 1024
PREVIEW_MAX_SIDE = 320
#: Previews one liveness session may ask for (about three a second for its few minutes).
PREVIEWS_PER_SESSION = 600
#: The face's shorter side over the frame's shorter side: nearer than this is too far, past it too close.
PREVIEW_MIN_SIZE = 0.22
PREVIEW_MAX_SIZE = 0.7
#: How far the face's centre may sit from the frame's centre, as a share of its width and height.
PREVIEW_MAX_OFFSET_X = 0.18
PREVIEW_MAX_OFFSET_Y = 0.22
#: Mean grey level (0–255) of the face below which it is too dark to judge, above which too bright.
PREVIEW_MIN_LIGHT = 55
PREVIEW_MAX_LIGHT = 230

PreviewGuidance = Literal[
    "no_face", "several_faces", "too_far", "too_close", "not_centred", "too_dark", "too_bright", "ok"
]

#: What the person reads for each guidance code (short, on the oval).
PREVIEW_MESSAGES: dict[str, str] = {
    "no_face": "请把脸移入框内",
    "several_faces": "请确保只有本人入镜",
    "too_far": "请靠近一点",
    "too_close": "请离远一点",
    "not_centred": "请把脸移到框的中间",
    "too_dark": "光线太暗，请到明亮处",
    "too_bright": "光线太强，请避开强光",
    "ok": "很好，请保持不动",
}


class FacePreview(BaseModel):
    """Where the face is in one small frame, and what the person should do (spends no attempt).

    ``box`` is ``[left, top, right, bottom]`` as fractions of the frame as uploaded (unmirrored);
    ``yaw`` and ``pitch`` follow the pose convention of ``faces.port``, the directions' convention.
    """

    model_config = ConfigDict(frozen=True)

    faces: int = Field(ge=0)
    box: list[float] | None = None
    #: The face's shorter side over the frame's shorter side.
    size: float | None = None
    #: Mean grey level (0–255) of the face, or of the whole frame when there is no face.
    brightness: int = Field(ge=0, le=255)
    yaw: float | None = None
    pitch: float | None = None
    guidance: PreviewGuidance
    message_zh: str
    #: Previews this session may still ask for.
    previews_left: int = Field(ge=0)


def preview_guidance(
    faces: int,
    box: Sequence[float] | None,
    size: float | None,
    brightness: int,
) -> PreviewGuidance:
    """The first thing the person should fix, in the order they can fix it."""
    if faces == 0:
        return "too_dark" if brightness < PREVIEW_MIN_LIGHT else "no_face"
    if faces > 1:
        return "several_faces"
    assert box is not None
    assert size is not None
    if size < PREVIEW_MIN_SIZE:
        return "too_far"
    if size > PREVIEW_MAX_SIZE:
        return "too_close"
    centre_x, centre_y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    if abs(centre_x - 0.5) > PREVIEW_MAX_OFFSET_X or abs(centre_y - 0.5) > PREVIEW_MAX_OFFSET_Y:
        return "not_centred"
    if brightness < PREVIEW_MIN_LIGHT:
        return "too_dark"
    if brightness > PREVIEW_MAX_LIGHT:
        return "too_bright"
    return "ok"


def preview_too_large(size: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        "liveness.preview_too_large",
        f"预览画面过大，不能超过 {PREVIEW_MAX_BYTES // 1024} KB",
        f"The preview frame is too large ({size} bytes; at most {PREVIEW_MAX_BYTES})",
        field="frame",
        details={"bytes": size, "max_bytes": PREVIEW_MAX_BYTES},
    )


def preview_unreadable() -> InvalidField:
    return InvalidField(
        "liveness.preview_unreadable",
        f"无法读取预览画面，请以不超过 {PREVIEW_MAX_SIDE} 像素的 JPEG 发送",
        f"The preview frame cannot be read; send a JPEG of at most {PREVIEW_MAX_SIDE} px",
        field="frame",
    )


def preview_too_wide(width: int, height: int) -> InvalidField:
    return InvalidField(
        "liveness.preview_too_wide",
        f"预览画面不能超过 {PREVIEW_MAX_SIDE} 像素（收到 {width}×{height}）",
        f"The preview frame must be at most {PREVIEW_MAX_SIDE} px on its long side ({width}×{height})",
        field="frame",
        details={"width": width, "height": height, "max_side": PREVIEW_MAX_SIDE},
    )


def previews_exhausted() -> TooManyRequests:
    return TooManyRequests(
        "liveness.previews_exhausted",
        "检测时间过长，请稍后重新开始人脸检测",
        f"This liveness session has had its {PREVIEWS_PER_SESSION} previews; start a new one",
        details={"limit": PREVIEWS_PER_SESSION},
    )
