"""The local liveness engine (head-turn burst) with the dlib face engine, on bursts built from real photos.

Bursts come from ``tests.liveness_frames``: a photo warped to turn or nod and captured as a handheld
camera would (``turning_frames`` / ``nodding_burst`` + ``handheld``: one continuous capture), or one
person's different photos in different poses (``photo_burst``, ``aligned_photo_burst``: the attack a
pile of photos makes). The figures each test relies on are in its comments.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image

from chalicelib.kernel.errors import InvalidField, PayloadTooLarge
from chalicelib.verification.domain.faces import DEFAULT_FACE_THRESHOLD, DetectedFace, FaceComparison
from chalicelib.verification.domain.liveness import (
    MAX_FRAME_BYTES,
    LivenessCapture,
    LivenessChallenge,
    LivenessDirection,
    LivenessVerdict,
)
from chalicelib.verification.ports import FaceEngine
from tests.face_photos import local_face_engine_missing
from tests.liveness_frames import (
    aligned_photo_burst,
    blank,
    capture_times,
    handheld,
    jpeg,
    mirrored,
    nodding_burst,
    photo,
    photo_burst,
    png,
    tilted_print,
    turning_burst,
    turning_frames,
)

if missing := local_face_engine_missing("pairs.csv"):
    pytest.skip(missing, allow_module_level=True)

from chalicelib.adapters.faces.local import LocalFaceEngine
from chalicelib.adapters.liveness.local import LocalLivenessEngine

LEFT, RIGHT, UP, DOWN = (
    LivenessDirection.LEFT,
    LivenessDirection.RIGHT,
    LivenessDirection.UP,
    LivenessDirection.DOWN,
)
OPPOSITE = {LEFT: RIGHT, RIGHT: LEFT, UP: DOWN, DOWN: UP}


@pytest.fixture(scope="module")
def faces() -> LocalFaceEngine:
    engine = LocalFaceEngine()
    engine.warm_up()
    return engine


@pytest.fixture(scope="module")
def liveness(faces: LocalFaceEngine) -> LocalLivenessEngine:
    return LocalLivenessEngine(faces, same_person_threshold=DEFAULT_FACE_THRESHOLD)


Burst = Callable[[str], list[bytes]]


@pytest.fixture(scope="module")
def burst(faces: LocalFaceEngine) -> Burst:
    """Bursts by name ("warp obama_1.jpg right", "photos up", "aligned up"), built once per module."""
    cache: dict[str, list[bytes]] = {}

    def make(key: str) -> list[bytes]:
        if key not in cache:
            kind, *rest = key.split()
            if kind == "warp":
                name, value = rest
                direction = LivenessDirection(value)
                frames = nodding_burst if direction.axis == "pitch" else turning_frames
                cache[key] = handheld(frames(faces, name, direction.sign))
            elif kind == "aligned":
                cache[key] = aligned_photo_burst(faces, LivenessDirection(rest[0]))
            else:
                cache[key] = photo_burst(LivenessDirection(rest[0]))
        return cache[key]

    return make


NONCE = "n0nce-of-the-session"


def judge(
    engine: LocalLivenessEngine,
    direction: LivenessDirection,
    frames: list[bytes],
    capture: LivenessCapture | None = None,
) -> LivenessVerdict:
    """The burst judged for a session whose nonce is ``NONCE``; by default sent with that nonce and a
    frame every 450 ms."""
    sent = capture or LivenessCapture(nonce=NONCE, timestamps_ms=capture_times(len(frames)))
    return engine.judge(None, LivenessChallenge(direction=direction, nonce=NONCE), frames, sent)


def closest_frame(image: bytes | None, frames: list[bytes]) -> int:
    """The frame an image is a copy of (least mean pixel difference)."""
    assert image is not None
    with Image.open(io.BytesIO(image)) as opened:
        pixels = np.asarray(opened.convert("RGB"), dtype=np.float64)
    differences = []
    for frame in frames:
        with Image.open(io.BytesIO(frame)) as opened:
            other = np.asarray(opened.convert("RGB"), dtype=np.float64)
        differences.append(float(np.abs(pixels - other).mean()) if other.shape == pixels.shape else np.inf)
    return int(np.argmin(differences))


GENUINE = [
    (f"warp {name} {direction.value}", direction)
    for name in ("obama_1.jpg", "alex_lacamoire_3.jpg")
    for direction in (RIGHT, LEFT, UP, DOWN)
]


@pytest.mark.parametrize(("key", "direction"), GENUINE)
def test_a_turn_in_the_requested_direction_is_live(
    liveness: LocalLivenessEngine, burst: Burst, key: str, direction: LivenessDirection
) -> None:
    # Given four frames of one continuous capture of a face turning the requested way (measured: 16–26°
    # of yaw, 14–38° of pitch)
    frames = burst(key)
    # When they are judged against that direction
    verdict = judge(liveness, direction, frames)
    # Then the burst is live, and the reference image is the most frontal frame
    assert (verdict.live, verdict.reasons, verdict.confidence, verdict.frames) == (True, [], 100.0, 4)
    details = verdict.details
    assert details["turn_degrees"] >= 13
    # (the start is the frame nearest 0° on the axis: a face at rest reads a pitch of −7° on obama_1,
    # so a raised burst may start one frame in and see its first frame ~7° the other way)
    assert details["opposite_degrees"] < 8
    assert details["distinct_frames"] == 4
    assert details["continuity"]["ok"]
    assert details["timing"]["ok"]
    assert closest_frame(verdict.reference_image, frames) == details["frontal_frame"]
    similarities = [f["similarity"] for f in details["per_frame"] if f["similarity"] is not None]
    assert len(similarities) == 3
    assert min(similarities) >= DEFAULT_FACE_THRESHOLD
    # and the angles the verdict rests on point the requested way
    angles = [f[direction.axis] for f in details["per_frame"]]
    turned, start = angles[details["turned_frame"]], angles[details["start_frame"]]
    assert direction.sign * (turned - start) == pytest.approx(details["turn_degrees"], abs=0.05)


@pytest.mark.parametrize(("key", "direction"), GENUINE)
def test_the_same_burst_against_the_opposite_direction_fails(
    liveness: LocalLivenessEngine, burst: Burst, key: str, direction: LivenessDirection
) -> None:
    verdict = judge(liveness, OPPOSITE[direction], burst(key))
    assert (verdict.live, verdict.reasons, verdict.confidence) == (False, ["liveness.wrong_direction"], 0.0)
    assert verdict.details["opposite_degrees"] >= 13


@pytest.mark.parametrize("direction", [UP, DOWN])
def test_a_sideways_turn_does_not_answer_an_up_or_down_challenge(
    liveness: LocalLivenessEngine, burst: Burst, direction: LivenessDirection
) -> None:
    # The warped turn keeps the pitch within a few degrees
    verdict = judge(liveness, direction, burst("warp obama_1.jpg right"))
    assert verdict.reasons == ["liveness.no_pose_change"]
    assert verdict.details["turn_degrees"] < 8


def test_one_still_sent_again_and_again_fails(liveness: LocalLivenessEngine) -> None:
    # Given one photo as PNG and as JPEG at qualities 95, 80 and 60 (the landmark yaw of these copies
    # still wanders by up to ~5°)
    im = photo("obama_1.jpg")
    frames = [png(im), jpeg(im, 95), jpeg(im, 80), jpeg(im, 60)]
    verdict = judge(liveness, RIGHT, frames)
    # Then the frames are one frame, and the head did not turn
    assert verdict.reasons == ["liveness.identical_frames", "liveness.no_pose_change"]
    assert verdict.details["distinct_frames"] == 1
    assert verdict.details["least_frame_difference"] < 0.03


def test_a_still_rescaled_and_brightened_is_still_one_frame(liveness: LocalLivenessEngine) -> None:
    im = photo("alex_lacamoire_3.jpg")
    brighter = Image.eval(im, lambda v: min(255, round(v * 1.15 + 10)))
    frames = [jpeg(im), jpeg(im.resize((im.width * 5 // 4, im.height * 5 // 4))), jpeg(brighter)]
    verdict = judge(liveness, LEFT, frames)
    assert "liveness.identical_frames" in verdict.reasons
    assert verdict.details["distinct_frames"] == 1


@pytest.mark.parametrize(("direction", "amounts"), [(RIGHT, (0.15, 0.3)), (LEFT, (-0.15, -0.3))])
def test_a_printed_photo_turned_in_front_of_the_camera_fails(
    liveness: LocalLivenessEngine, direction: LivenessDirection, amounts: tuple[float, float]
) -> None:
    # Given a flat print turned about its vertical axis (one edge 15 %, then 30 % shorter): the frames
    # differ, but a flat face does not turn (the whole frame is the print, so the scene jumps too)
    im = photo("obama_1.jpg")
    frames = [jpeg(im), *(jpeg(tilted_print(im, amount)) for amount in amounts)]
    verdict = judge(liveness, direction, frames)
    assert not verdict.live
    assert "liveness.no_pose_change" in verdict.reasons
    assert verdict.details["distinct_frames"] == 3
    assert verdict.details["turn_degrees"] < 5


def test_another_person_in_mid_burst_fails(
    liveness: LocalLivenessEngine, faces: LocalFaceEngine, burst: Burst
) -> None:
    # Given Obama turning right, whose last two frames are Biden turning right
    obama, biden = burst("warp obama_1.jpg right"), turning_burst(faces, "biden_2.jpg", 1)
    verdict = judge(liveness, RIGHT, [*obama[:2], *biden[2:]])
    assert not verdict.live
    assert "liveness.not_same_person" in verdict.reasons
    scores = [f["similarity"] for f in verdict.details["per_frame"]]
    assert scores[0] is None  # the most frontal frame is the reference
    assert scores[1] >= 80
    assert max(scores[2:]) < 35


def test_a_frame_without_a_face_or_with_several_fails(liveness: LocalLivenessEngine, burst: Burst) -> None:
    frames = burst("warp obama_1.jpg right")
    group = jpeg(photo("group_two_people.jpg"))
    no_face = judge(liveness, RIGHT, [frames[0], blank(), *frames[2:]])
    several = judge(liveness, RIGHT, [*frames[:3], group])
    both = judge(liveness, RIGHT, [blank(), frames[1], group])
    assert no_face.reasons == ["liveness.no_face"]
    assert several.reasons == ["liveness.several_faces"]
    assert both.reasons == ["liveness.no_face", "liveness.several_faces"]
    assert [f["faces"] for f in both.details["per_frame"]] == [0, 1, 2]
    # a burst that cannot be judged further has no reference image
    assert both.reference_image is None


def test_the_reference_image_is_a_clean_jpeg_of_the_most_frontal_frame(
    liveness: LocalLivenessEngine, faces: LocalFaceEngine, burst: Burst
) -> None:
    # Given the frames as PNG, most frontal last, and a JPEG frame carrying EXIF metadata
    frames = [png(Image.open(io.BytesIO(frame))) for frame in reversed(burst("warp obama_1.jpg left"))]
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    with Image.open(io.BytesIO(frames[3])) as frontal:
        frames[3] = jpeg(frontal.copy(), exif=exif.tobytes())
    verdict = judge(liveness, LEFT, frames)
    assert verdict.live
    assert verdict.details["frontal_frame"] == 3
    # Then the reference image is that frame, as a JPEG without the metadata
    assert verdict.reference_image is not None
    assert verdict.reference_image[:3] == b"\xff\xd8\xff"
    assert closest_frame(verdict.reference_image, frames) == 3
    with Image.open(io.BytesIO(verdict.reference_image)) as reference:
        assert reference.size == photo("obama_1.jpg").size
        assert dict(reference.getexif()) == {}
    # and it matches another photo of the person, as the ID portrait will
    other = jpeg(photo("obama_video_1080p.jpg"))
    assert faces.compare(verdict.reference_image, other).similarity >= DEFAULT_FACE_THRESHOLD


def test_the_verdict_is_a_json_evidence_record_without_the_image(
    liveness: LocalLivenessEngine, faces: LocalFaceEngine, burst: Burst
) -> None:
    verdict = judge(liveness, RIGHT, burst("photos right"))
    record = json.loads(json.dumps(verdict.model_dump()))
    assert "reference_image" not in record
    assert (record["engine"], record["engine_version"]) == (
        "local-head-turn",
        f"head-turn-2/dlib-resnet-{faces.version}",
    )
    assert record["details"]["direction"] == "right"
    assert record["details"]["same_person_threshold"] == DEFAULT_FACE_THRESHOLD
    assert {"faces", "yaw", "pitch", "similarity"} == record["details"]["per_frame"][0].keys()


class ScoresOnly(FaceEngine):
    """A face engine without descriptors (like Rekognition): scores come from ``compare``."""

    name: ClassVar[str] = "scores-only"
    recommended_threshold: ClassVar[float] = DEFAULT_FACE_THRESHOLD

    def __init__(self, inner: LocalFaceEngine) -> None:
        self.inner = inner
        self.compared = 0

    @property
    def version(self) -> str:
        return self.inner.version

    def detect(self, image: bytes) -> list[DetectedFace]:
        return self.inner.detect(image)

    def compare(self, a: bytes, b: bytes) -> FaceComparison:
        self.compared += 1
        return self.inner.compare(a, b)


def test_an_engine_without_descriptors_compares_each_frame_with_the_frontal_one(
    faces: LocalFaceEngine, burst: Burst
) -> None:
    engine = ScoresOnly(faces)
    liveness = LocalLivenessEngine(engine, same_person_threshold=DEFAULT_FACE_THRESHOLD)
    verdict = judge(liveness, RIGHT, burst("warp alex_lacamoire_3.jpg right"))
    assert verdict.live
    assert engine.compared == 3


# --- refusals: nothing is judged ------------------------------------------------------------------


def refusal(liveness: LocalLivenessEngine, frames: list[bytes]) -> InvalidField | PayloadTooLarge:
    with pytest.raises((InvalidField, PayloadTooLarge)) as caught:
        judge(liveness, RIGHT, frames)
    assert isinstance(caught.value, InvalidField | PayloadTooLarge)
    return caught.value


@pytest.mark.parametrize("count", [0, 2, 9])
def test_too_few_or_too_many_frames_are_refused(liveness: LocalLivenessEngine, count: int) -> None:
    error = refusal(liveness, [blank()] * count)
    assert (error.code, error.status, error.field) == ("liveness.frames_count", 422, "frames")
    assert error.details == {"frames": count, "min_frames": 3, "max_frames": 8}
    assert "3–8" in error.message_zh


def test_an_oversize_frame_is_refused(liveness: LocalLivenessEngine) -> None:
    noise = Image.frombytes("RGB", (800, 800), random.Random(7).randbytes(800 * 800 * 3))
    big = png(noise)
    assert len(big) > MAX_FRAME_BYTES
    error = refusal(liveness, [blank(), blank(), big])
    assert (error.code, error.status) == ("liveness.frame_too_large", 413)
    assert error.details == {"frame": 2, "bytes": len(big), "max_bytes": MAX_FRAME_BYTES}


@pytest.mark.parametrize(
    "bad",
    [
        b"not an image at all",
        b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",
        jpeg(Image.new("RGB", (640, 480), "grey"))[:200],  # a JPEG cut short
    ],
    ids=["text", "gif", "truncated-jpeg"],
)
def test_a_frame_that_is_not_a_jpeg_or_png_is_refused(liveness: LocalLivenessEngine, bad: bytes) -> None:
    error = refusal(liveness, [blank(), bad, blank()])
    assert (error.code, error.status, error.details) == ("liveness.frame_unreadable", 422, {"frame": 1})


# --- challenge and start ----------------------------------------------------------------------------


def test_challenges_draw_every_direction_and_start_tells_the_client(liveness: LocalLivenessEngine) -> None:
    drawn = {liveness.new_challenge().direction for _ in range(200)}
    assert drawn == set(LivenessDirection)
    challenge = LivenessChallenge(direction=UP)
    session = liveness.start(challenge)
    assert session.provider_session_id is None
    assert session.client == {"direction": "up", "min_frames": "3", "max_frames": "8", "nonce": ""}
    drawn_nonces = {liveness.new_challenge().nonce for _ in range(50)}
    assert len(drawn_nonces) == 50
    assert all(nonce and len(nonce) >= 20 for nonce in drawn_nonces)
    with_nonce = LivenessChallenge(direction=UP, nonce="abc")
    assert liveness.start(with_nonce).client["nonce"] == "abc"
    with pytest.raises(ValueError, match="direction"):
        liveness.start(LivenessChallenge(direction=None))
    with pytest.raises(ValueError, match="direction"):
        liveness.judge(None, LivenessChallenge(direction=None), [blank()] * 3)


def test_mirroring_a_burst_swaps_left_and_right(liveness: LocalLivenessEngine, burst: Burst) -> None:
    # A client that uploads unmirrored camera frames must swap its prompts: the same turn, mirrored,
    # answers the other direction
    frames = [jpeg(mirrored(Image.open(io.BytesIO(frame)))) for frame in burst("warp obama_1.jpg right")]
    assert judge(liveness, LEFT, frames).live
    assert judge(liveness, RIGHT, frames).reasons == ["liveness.wrong_direction"]


# --- one continuous capture --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["photos", "aligned"])
@pytest.mark.parametrize("direction", list(LivenessDirection))
def test_a_pile_of_one_persons_photos_is_not_one_capture(
    liveness: LocalLivenessEngine, burst: Burst, kind: str, direction: LivenessDirection
) -> None:
    # Given four different stills of one person (some mirrored) whose poses move the requested way,
    # sent as they are ("photos") or scaled to one frame size with the face in one place ("aligned"),
    # with the right nonce and plausible times
    verdict = judge(liveness, direction, burst(f"{kind} {direction.value}"))
    # Then they are not one capture: their scenes differ (measured outside the face: 30–98 grey levels
    # between stills of different scenes; at most 13 between frames of one handheld capture)
    assert not verdict.live
    assert "liveness.not_continuous" in verdict.reasons
    problems = verdict.details["continuity"]["problems"]
    assert problems == ["sizes"] if kind == "photos" else "background" in problems
    assert "liveness.not_same_person" not in verdict.reasons


def test_the_aligned_stills_would_have_answered_the_challenge_by_their_poses_alone(
    liveness: LocalLivenessEngine, burst: Burst
) -> None:
    # The continuity check is what stops them: the head-turn rules alone are satisfied
    for direction in LivenessDirection:
        verdict = judge(liveness, direction, burst(f"aligned {direction.value}"))
        assert verdict.reasons == ["liveness.not_continuous"], direction
        assert verdict.details["turn_degrees"] >= 12


def scene_swapped(frame: bytes, other: str, faces: LocalFaceEngine) -> bytes:
    """``frame`` with everything but the face region taken from another photo (same size)."""
    with Image.open(io.BytesIO(frame)) as opened:
        im = opened.convert("RGB")
    (face,) = faces.detect(frame)
    backdrop = photo(other).resize(im.size)
    box = face.box
    margin = box.width // 2
    region = (
        box.left - margin,
        box.top - margin,
        box.left + box.width + margin,
        box.top + box.height + margin,
    )
    backdrop.paste(im.crop(region), region[:2])
    return jpeg(backdrop)


def test_a_frame_from_another_scene_breaks_the_capture(
    liveness: LocalLivenessEngine, faces: LocalFaceEngine, burst: Burst
) -> None:
    frames = list(burst("warp alex_lacamoire_3.jpg right"))
    frames[2] = scene_swapped(frames[2], "kit_harington_1.jpg", faces)
    verdict = judge(liveness, RIGHT, frames)
    assert verdict.reasons == ["liveness.not_continuous"]
    assert "background" in verdict.details["continuity"]["problems"]
    assert max(verdict.details["continuity"]["background_change"]) > 20


def test_a_jump_in_lighting_or_in_the_face_position_breaks_the_capture(
    liveness: LocalLivenessEngine, burst: Burst
) -> None:
    frames = list(burst("warp alex_lacamoire_3.jpg left"))
    with Image.open(io.BytesIO(frames[2])) as opened:
        im = opened.convert("RGB")
    darker = jpeg(Image.eval(im, lambda v: v // 2))
    moved = jpeg(
        im.transform(im.size, Image.Transform.AFFINE, (1, 0, -120, 0, 1, 0), fillcolor=(128, 128, 128))
    )
    light = judge(liveness, LEFT, [*frames[:2], darker, frames[3]])
    motion = judge(liveness, LEFT, [*frames[:2], moved, frames[3]])
    assert light.reasons == ["liveness.not_continuous"]
    assert "lighting" in light.details["continuity"]["problems"]
    assert max(light.details["continuity"]["light_steps"]) > 15
    assert motion.reasons == ["liveness.not_continuous"]
    assert "motion" in motion.details["continuity"]["problems"]
    assert max(motion.details["continuity"]["face_shifts"]) > 0.35


def test_a_burst_without_the_sessions_nonce_fails(liveness: LocalLivenessEngine, burst: Burst) -> None:
    frames = burst("warp obama_1.jpg right")
    times = capture_times(len(frames))
    wrong = judge(liveness, RIGHT, frames, LivenessCapture(nonce="another-sessions", timestamps_ms=times))
    missing = judge(liveness, RIGHT, frames, LivenessCapture(timestamps_ms=times))
    assert (wrong.live, wrong.reasons) == (False, ["liveness.nonce"])
    assert (missing.live, missing.reasons) == (False, ["liveness.nonce"])
    # without any capture facts, both the nonce and the times are missing
    bare = liveness.judge(None, LivenessChallenge(direction=RIGHT, nonce=NONCE), frames)
    assert bare.reasons == ["liveness.nonce", "liveness.timestamps"]


@pytest.mark.parametrize(
    ("times", "problem"),
    [
        (None, "missing"),
        ([0, 450, 900], "count"),
        ([0, 450, 400, 900], "order"),
        ([0, 450, 450, 900], "order"),
        ([0, 450, 3_450, 3_900], "step"),
        ([0, 60, 120, 180], "span"),
    ],
    ids=["missing", "count", "backwards", "repeated", "gap", "too-quick"],
)
def test_frame_times_that_are_not_one_capture_fail(
    liveness: LocalLivenessEngine, burst: Burst, times: list[int] | None, problem: str
) -> None:
    frames = burst("warp obama_1.jpg left")
    verdict = judge(liveness, LEFT, frames, LivenessCapture(nonce=NONCE, timestamps_ms=times))
    assert (verdict.live, verdict.reasons) == (False, ["liveness.timestamps"])
    assert verdict.details["timing"]["problem"] == problem


# --- the pitch direction -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["obama_1.jpg", "alex_lacamoire_3.jpg", "kit_harington_1.jpg"])
def test_a_raised_head_answers_up_and_a_lowered_head_answers_down(
    liveness: LocalLivenessEngine, faces: LocalFaceEngine, name: str, tmp_path: Path
) -> None:
    # Given a photo raised (and lowered) 0–30° by a head-model nod: raised, the chin comes forward and
    # the forehead recedes; lowered, the reverse. The frames are written out to be looked at.
    raised, lowered = nodding_burst(faces, name, +1), nodding_burst(faces, name, -1)
    for label, frames in (("up", raised), ("down", lowered)):
        for i, frame in enumerate(frames):
            frame.save(tmp_path / f"{Path(name).stem}-{label}-{i}.jpg")
    up, down = handheld(raised), handheld(lowered)
    # Then the raised head answers UP, not DOWN, and the lowered one DOWN, not UP
    assert judge(liveness, UP, up).live, f"frames in {tmp_path}"
    assert judge(liveness, DOWN, up).reasons == ["liveness.wrong_direction"]
    assert judge(liveness, DOWN, down).live
    assert judge(liveness, UP, down).reasons == ["liveness.wrong_direction"]
    # and the pitch the face engine reads grows as the head rises
    pitches = [faces.detect(frame)[0].pitch for frame in up]
    assert pitches[-1] - pitches[0] >= 12
    assert len(list(tmp_path.glob(f"{Path(name).stem}-*.jpg"))) == 8


def test_the_pose_of_a_head_model_raised_by_a_known_angle_reads_as_that_pitch() -> None:
    # The pose fit on the landmarks of the generic head itself, raised 20° (nose pointing up) and
    # lowered 20°, projected on an image whose y runs down
    from chalicelib.adapters.faces.local import _HEAD_MODEL, estimate_pose

    def landmarks(degrees: float) -> list[tuple[float, float]]:
        theta = np.radians(degrees)
        rotation = np.array(
            [[1, 0, 0], [0, np.cos(theta), np.sin(theta)], [0, -np.sin(theta), np.cos(theta)]]
        )
        points = [(0.0, 0.0)] * 68
        for index, model in _HEAD_MODEL.items():
            x, y, _ = rotation @ np.array(model)
            points[index] = (320 + 0.3 * x, 240 - 0.3 * y)
        return points

    assert estimate_pose(landmarks(20))[1] == pytest.approx(20.0, abs=0.01)
    assert estimate_pose(landmarks(-20))[1] == pytest.approx(-20.0, abs=0.01)


# --- deployed stages ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_a_deployed_stage_refuses_the_local_engine_unless_the_risk_is_accepted(
    monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    from chalicelib.core import deps
    from chalicelib.kernel.errors import DomainError

    monkeypatch.setenv("CHEKA_STAGE", stage)
    monkeypatch.setenv("CHEKA_LIVENESS_ENGINE", "local")
    deps.reset()
    try:
        with pytest.raises(DomainError) as refused:
            deps.liveness_engine()
        assert (refused.value.code, refused.value.status) == ("config.local_liveness_refused", 503)
        assert "CHEKA_ACCEPT_LOCAL_LIVENESS_RISK" in refused.value.message_en
        monkeypatch.setenv("CHEKA_ACCEPT_LOCAL_LIVENESS_RISK", "true")
        deps.reset()
        assert isinstance(deps.liveness_engine(), LocalLivenessEngine)
    finally:
        monkeypatch.undo()
        deps.reset()
