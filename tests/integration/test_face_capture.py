"""The face capture through the API: live guidance from small preview frames, and which bursts spend
a face attempt (the server decides, with the session and its capture nonce).

A burst in which the person held still, or in which no face was found, is asked again and spends
nothing; the same session then passes. A burst that turned the wrong way spends one. A preview frame
answers where the face is, how large, how lit and how turned, spends nothing, is checked for its size
before it is decoded, and is limited per session.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.verification.domain.liveness import LivenessDirection
from tests.integration.test_verification_api import (
    LIVE_PERSON,
    burst,
    call,
    card_read,
    person,
    send_burst,
    start_sideways,
)

__all__ = ["person"]  # the fixture, shared with the verification API tests

OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}


def attempts_left(api: Any, me: dict[str, str], flow_id: str) -> int:
    status, flow = call(api, "get", f"/v1/flows/{flow_id}", me)
    assert status == 200, flow
    return int(flow["attempts_left"])


def held_still(count: int = 5) -> list[str]:
    """The person facing the camera without turning, as a handheld camera captures them."""
    from tests.liveness_frames import handheld, photo

    return [base64.b64encode(f).decode() for f in handheld([photo(LIVE_PERSON)] * count)]


def small(data_or_image: Any, side: int = 320, quality: int = 70) -> str:
    """A preview frame as the client sends it: a JPEG of at most ``side`` px, base64."""
    from PIL import Image

    im = data_or_image if isinstance(data_or_image, Image.Image) else Image.open(io.BytesIO(data_or_image))
    im = im.convert("RGB")
    im.thumbnail((side, side))
    out = io.BytesIO()
    im.save(out, "JPEG", quality=quality)
    return base64.b64encode(out.getvalue()).decode()


def preview(
    api: Any, me: dict[str, str], flow_id: str, session: dict[str, Any], frame: str
) -> tuple[int, Any]:
    path = f"/v1/flows/{flow_id}/liveness-sessions/{session['session_id']}/preview"
    return call(api, "post", path, me, {"frame": frame})


def test_a_burst_in_which_the_person_held_still_is_asked_again_and_spends_no_attempt(
    api: Any, person: Callable[..., dict[str, str]]
) -> None:
    me = person()
    flow_id = card_read(api, me)
    session = start_sideways(api, me, flow_id)
    assert attempts_left(api, me, flow_id) == 3
    # When the person faces the camera but does not turn
    status, error = send_burst(api, me, flow_id, session, held_still())
    # Then the server asks again: a capture problem, no attempt spent, the session still open
    assert (status, error["code"], error["field"]) == (422, "liveness.capture_problem", "frames")
    assert "liveness.no_pose_change" in error["details"]["reasons"]
    assert error["details"]["attempts_left"] == 3
    assert error["message_zh"] == "没有看到按提示转动头部，请慢慢做，再试一次（不计入核验次数）"
    assert attempts_left(api, me, flow_id) == 3
    # And the same session, with its nonce, then passes with a turn: the first attempt spent
    status, outcome = send_burst(api, me, flow_id, session, burst(session["challenge"]["direction"]))
    assert status == 200, outcome
    assert (outcome["passed"], outcome["attempts_left"]) == (True, 2)
    assert attempts_left(api, me, flow_id) == 2


def test_a_burst_without_a_face_spends_nothing_and_a_wrong_turn_spends_one(
    api: Any, person: Callable[..., dict[str, str]]
) -> None:
    from tests.liveness_frames import blank

    me = person()
    flow_id = card_read(api, me)
    session = start_sideways(api, me, flow_id)
    status, error = send_burst(api, me, flow_id, session, [base64.b64encode(blank()).decode()] * 4)
    assert (status, error["code"]) == (422, "liveness.capture_problem")
    assert error["message_zh"] == "未检测到人脸，请正对镜头，保持光线充足，再试一次（不计入核验次数）"
    assert attempts_left(api, me, flow_id) == 3
    # A turn the other way is a judged verdict (a recording made for another challenge): one attempt
    wrong = burst(OPPOSITE[session["challenge"]["direction"]])
    status, outcome = send_burst(api, me, flow_id, session, wrong)
    assert status == 200, outcome
    assert (outcome["passed"], outcome["reasons"], outcome["attempts_left"]) == (
        False,
        ["liveness.wrong_direction"],
        2,
    )
    assert attempts_left(api, me, flow_id) == 2
    # The session is used up: a new one is handed out for the next attempt
    status, error = send_burst(api, me, flow_id, session, burst(session["challenge"]["direction"]))
    assert (status, error["code"]) == (409, "liveness.session_used")


def test_a_preview_tells_where_the_face_is_and_what_to_do_and_spends_nothing(
    api: Any, person: Callable[..., dict[str, str]]
) -> None:
    from PIL import Image

    from chalicelib.adapters.faces.local import LocalFaceEngine
    from tests.liveness_frames import blank, centred, jpeg, photo

    me = person()
    flow_id = card_read(api, me)
    session = start_sideways(api, me, flow_id)
    lined_up = centred(photo(LIVE_PERSON), LocalFaceEngine())

    # A wall: no face, and the person is asked to bring it into the oval
    status, seen = preview(api, me, flow_id, session, small(blank()))
    assert status == 200, seen
    assert (seen["faces"], seen["box"], seen["guidance"], seen["message_zh"]) == (
        0,
        None,
        "no_face",
        "请把脸移入框内",
    )
    # The person in the middle of the frame: where the face is, its size, light and pose
    status, seen = preview(api, me, flow_id, session, small(lined_up))
    assert status == 200, seen
    assert (seen["faces"], seen["guidance"], seen["message_zh"]) == (1, "ok", "很好，请保持不动")
    left, top, right, bottom = seen["box"]
    assert 0.3 < (left + right) / 2 < 0.7
    assert 0.3 < (top + bottom) / 2 < 0.7
    assert 0.3 < seen["size"] < 0.6
    assert abs(seen["yaw"]) < 10
    assert 60 < seen["brightness"] < 230
    # The whole photo, the face high up in it: move it to the middle
    assert preview(api, me, flow_id, session, small(photo(LIVE_PERSON)))[1]["guidance"] == "not_centred"
    # Far from the camera: the face small in a wide frame
    far = Image.new("RGB", (lined_up.width * 3, lined_up.height * 3), (128, 128, 128))
    far.paste(lined_up, (lined_up.width, lined_up.height))
    assert preview(api, me, flow_id, session, small(far))[1]["guidance"] == "too_far"
    # In a dark room
    dark = lined_up.point(lambda level: level // 6)
    assert preview(api, me, flow_id, session, small(dark))[1]["guidance"] == "too_dark"
    # Turned as the challenge asks: the pose follows (the client judges the turn as it happens)
    turned_way = LivenessDirection(session["challenge"]["direction"])
    frames = burst(turned_way.value)
    first = preview(api, me, flow_id, session, small(base64.b64decode(frames[0])))[1]
    last = preview(api, me, flow_id, session, small(base64.b64decode(frames[-1])))[1]
    moved = turned_way.sign * (last[turned_way.axis] - first[turned_way.axis])
    assert moved >= 12, (first, last)

    # Nothing was spent, and each preview counted against the session's allowance
    assert attempts_left(api, me, flow_id) == 3
    assert last["previews_left"] < first["previews_left"]

    # Frames too large are refused before they are decoded; only JPEG is read
    status, error = preview(api, me, flow_id, session, small(lined_up, side=640))
    assert (status, error["code"], error["field"]) == (422, "liveness.preview_too_wide", "frame")
    noisy = Image.effect_noise((320, 240), 120).convert("RGB")
    big = base64.b64encode(jpeg(noisy, quality=95)).decode()
    assert len(base64.b64decode(big)) > 64 * 1024
    status, error = preview(api, me, flow_id, session, big)
    assert (status, error["code"]) == (413, "liveness.preview_too_large")
    png = io.BytesIO()
    lined_up.resize((160, 120)).save(png, "PNG")
    status, error = preview(api, me, flow_id, session, base64.b64encode(png.getvalue()).decode())
    assert (status, error["code"]) == (422, "liveness.preview_unreadable")
    status, error = preview(api, me, flow_id, session, "not base64!")
    assert (status, error["code"]) == (422, "liveness.frame_encoding")

    # Another person's session, and a used one, are not previewed
    other = person("owner-13900139000")
    assert preview(api, other, flow_id, session, small(lined_up))[0] == 403
    assert send_burst(api, me, flow_id, session, burst(turned_way.value))[1]["passed"] is True
    status, error = preview(api, me, flow_id, session, small(lined_up))
    assert (status, error["code"]) == (409, "liveness.session_used")


def test_previews_are_limited_per_session(
    api: Any, person: Callable[..., dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.liveness_frames import blank

    monkeypatch.setattr("chalicelib.verification.face.PREVIEWS_PER_SESSION", 2)
    me = person()
    flow_id = card_read(api, me)
    session = start_sideways(api, me, flow_id)
    wall = small(blank())
    assert [preview(api, me, flow_id, session, wall)[1]["previews_left"] for _ in range(2)] == [1, 0]
    status, error = preview(api, me, flow_id, session, wall)
    assert (status, error["code"]) == (429, "liveness.previews_exhausted")
    assert error["message_zh"] == "检测时间过长，请稍后重新开始人脸检测"
    # The burst itself is not limited by the previews
    status, outcome = send_burst(api, me, flow_id, session, burst(session["challenge"]["direction"]))
    assert (status, outcome["passed"]) == (200, True)
