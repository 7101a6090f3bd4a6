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
   A verdict whose only reasons are ``CAPTURE_PROBLEMS`` (no face, several faces) judged no face: the
   use case tells it as a capture problem (``capture_failed``), not a face attempt.

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

from chalicelib.kernel.errors import Conflict, InvalidField, PayloadTooLarge

#: The form field frames are refused under.
FRAMES_FIELD = "frames"


#: Largest frame accepted, in bytes (a 640 × 480 JPEG is 30–80 kB).
MAX_FRAME_BYTES = 1024 * 1024


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
    """A burst that could not be judged as a face check: no face, or several, in some frame."""
    return (
        not verdict.live
        and bool(verdict.reasons)
        and all(reason in CAPTURE_PROBLEMS for reason in verdict.reasons)
    )


def capture_failed(reasons: Sequence[str], attempts_left: int) -> InvalidField:
    """The capture problem told as such: not a face attempt, the same session can be used again."""
    several = LivenessReason.SEVERAL_FACES in reasons
    zh = "画面中有多张人脸，请确保只有本人入镜" if several else "未检测到人脸，请正对镜头，保持光线充足"
    en = "Several faces were in the frames" if several else "No face was found in the frames"
    return InvalidField(
        "liveness.capture_problem",
        f"{zh}，然后重新采集（不计入核验次数）",
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
    """Refuse a burst with too few or too many frames, or a frame over ``max_bytes``."""
    if not challenge.min_frames <= len(frames) <= challenge.max_frames:
        raise frames_count(len(frames), challenge.min_frames, challenge.max_frames)
    for index, frame in enumerate(frames):
        if len(frame) > max_bytes:
            raise frame_too_large(index, len(frame), max_bytes)
