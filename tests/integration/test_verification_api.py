"""The verification API end to end on the embedded AWS with the real local engines.

A synthetic ID card carries a real face from ``../shared/faces``; OCR reads it, the liveness burst is
built from another photo of the same person turning their head, and the live capture is matched with
the card's portrait. Bad input is refused with its own code and leaves nothing behind.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.adapters.faces.local import LocalFaceEngine
from chalicelib.verification.domain.documents import DocumentKind
from tests.face_photos import FACES
from tests.synthetic_documents import (
    PERSON_ADDRESS,
    PERSON_ID_NUMBER,
    PERSON_NAME,
    id_front,
    require_cjk_font,
)

pytestmark = pytest.mark.skipif(not FACES.is_dir(), reason=f"face photos not found at {FACES}")

OWNER = "owner-13800138000"


@pytest.fixture
def person(token: Callable[..., str]) -> Callable[[str], dict[str, str]]:
    def headers(subject: str = OWNER) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token('owner', subject=subject)}",
            "Content-Type": "application/json",
        }

    return headers


def call(api: Any, method: str, path: str, headers: dict[str, str], body: Any = None) -> tuple[int, Any]:
    kwargs: dict[str, Any] = {"headers": headers}
    if body is not None:
        kwargs["body"] = json.dumps(body)
    response = getattr(api.http, method)(path, **kwargs)
    return response.status_code, json.loads(response.body) if response.body else None


def s3() -> Any:
    from chalicelib.core.aws import client

    return client("s3")


def bucket() -> str:
    from chalicelib.core.settings import get_settings

    return get_settings().documents_bucket


def stored_keys(flow_id: str) -> list[str]:
    listed = s3().list_objects_v2(Bucket=bucket(), Prefix=f"documents/{flow_id}/")
    return sorted(item["Key"] for item in listed.get("Contents", []))


def upload(
    api: Any, headers: dict[str, str], flow_id: str, kind: DocumentKind, data: bytes
) -> tuple[int, Any]:
    """Presign, put the photo where the presigned POST would, then complete. An ID front comes after the
    biometric consent (its portrait is face processing), as the client gives them."""
    if kind is DocumentKind.ID_FRONT:
        consent_to_face_check(api, headers, flow_id)
    status, post = call(
        api,
        "post",
        f"/v1/flows/{flow_id}/uploads",
        headers,
        {"kind": kind.value, "content_type": "image/jpeg"},
    )
    assert status == 201, post
    s3().put_object(Bucket=bucket(), Key=post["key"], Body=data, ContentType="image/jpeg")
    return call(
        api, "post", f"/v1/flows/{flow_id}/documents", headers, {"kind": kind.value, "key": post["key"]}
    )


def open_flow(api: Any, headers: dict[str, str], id_number: str = PERSON_ID_NUMBER) -> str:
    status, flow = call(api, "post", "/v1/flows", headers, {"purpose": "registration"})
    assert status == 201, flow
    identity = {
        "id_type": "resident_id",
        "id_number": id_number,
        "name": PERSON_NAME,
        "address": PERSON_ADDRESS,
    }
    status, body = call(api, "put", f"/v1/flows/{flow['flow_id']}/identity", headers, identity)
    assert status == 200, body
    return str(flow["flow_id"])


#: The card's portrait and the live person: two different photos of the same man.
CARD_PORTRAIT = "obama_video_1080p.jpg"
LIVE_PERSON = "obama_1.jpg"


def consent_to_face_check(api: Any, headers: dict[str, str], flow_id: str) -> None:
    """The separate biometric consent, as the client gives it: the served text's version and hash."""
    _, texts = call(api, "get", "/v1/consents", headers)
    doc = next(d for d in texts["documents"] if d["kind"] == "biometric_consent")
    body = {"version": doc["version"], "sha256": doc["sha256"], "client": {"ua": "test"}}
    status, flow = call(api, "post", f"/v1/flows/{flow_id}/biometric-consent", headers, body)
    assert status == 200, flow


def start_sideways(api: Any, headers: dict[str, str], flow_id: str) -> dict[str, Any]:
    """A liveness session after the biometric consent. Its direction is random and cannot be re-drawn
    (starting again hands out the same session); ``burst`` has frames for each of the four."""
    consent_to_face_check(api, headers, flow_id)
    status, session = call(api, "post", f"/v1/flows/{flow_id}/liveness-sessions", headers)
    assert status == 201, session
    return dict(session)


def burst(direction: str, name: str = LIVE_PERSON) -> list[str]:
    """Base64 JPEG frames of ``name``'s face turning toward ``direction`` (a cylinder warp for left and
    right, a head-model nod for up and down), as a handheld camera captures them."""
    from chalicelib.adapters.faces.local import LocalFaceEngine
    from chalicelib.verification.domain.liveness import LivenessDirection
    from tests.liveness_frames import handheld, nodding_burst, turning_frames

    engine, turn = LocalFaceEngine(), LivenessDirection(direction)
    make = nodding_burst if turn.axis == "pitch" else turning_frames
    images = make(engine, name, turn.sign)
    return [base64.b64encode(frame).decode() for frame in handheld(images)]


def send_burst(
    api: Any,
    headers: dict[str, str],
    flow_id: str,
    session: dict[str, Any],
    frames: list[str],
    **capture: Any,
) -> tuple[int, Any]:
    """The liveness session's result: the burst of frames sent for its challenge, with the session's
    capture nonce and the frames' capture times (``capture`` overrides either)."""
    from tests.liveness_frames import capture_times

    body = {
        "frames": frames,
        "nonce": session["challenge"].get("nonce"),
        "timestamps_ms": capture_times(len(frames)),
        **capture,
    }
    path = f"/v1/flows/{flow_id}/liveness-sessions/{session['session_id']}/result"
    return call(api, "post", path, headers, body)


def card_read(api: Any, headers: dict[str, str]) -> str:
    """A flow whose typed identity matches the ID card front uploaded with a real portrait, and read."""
    require_cjk_font()
    flow_id = open_flow(api, headers)
    assert (
        upload(api, headers, flow_id, DocumentKind.ID_FRONT, id_front(portrait=FACES / CARD_PORTRAIT))[0]
        == 201
    )
    assert call(api, "post", f"/v1/flows/{flow_id}/ocr/id_front", headers)[0] == 200
    return flow_id


def test_a_person_proves_who_they_are_and_every_check_is_in_the_evidence(
    api: Any, person: Callable[..., dict[str, str]], auth: Callable[..., dict[str, str]]
) -> None:
    require_cjk_font()
    me = person()
    flow_id = open_flow(api, me)

    status, doc = upload(api, me, flow_id, DocumentKind.ID_FRONT, id_front(portrait=FACES / CARD_PORTRAIT))
    assert status == 201, doc

    status, reading = call(api, "post", f"/v1/flows/{flow_id}/ocr/id_front", me)
    assert status == 200, reading
    assert reading["agreed"] is True
    assert reading["reading"]["id_number"] != PERSON_ID_NUMBER  # masked for the person
    assert reading["reading"]["id_number"].startswith(PERSON_ID_NUMBER[:4])

    session = start_sideways(api, me, flow_id)
    assert session["attempts_left"] == 3
    frames = burst(session["challenge"]["direction"])
    status, outcome = send_burst(api, me, flow_id, session, frames)
    assert status == 200, outcome
    assert outcome["live"] is True
    assert outcome["matched"] is True
    assert outcome["passed"] is True
    assert "similarity" not in outcome
    assert "threshold" not in outcome
    assert outcome["attempts_left"] == 2

    status, flow = call(api, "get", f"/v1/flows/{flow_id}", me)
    assert flow["checks"] == {
        "ocr_id_front": "passed",
        "authority": "passed",
        "biometric_consent": "passed",
        "face": "passed",
    }
    assert flow["documents"] == ["id_front", "live_capture"]  # the live capture is kept (现场拍摄留存)
    assert flow["identity"]["id_number"] != PERSON_ID_NUMBER

    status, evidence = call(api, "get", f"/v1/flows/{flow_id}/evidence", auth("auditor"))
    assert status == 200
    assert evidence["chain"]["ok"] is True
    kinds = [entry["kind"] for entry in evidence["entries"]]
    assert kinds == [
        "consent_given",  # before the ID front: its portrait is face processing
        "upload_accepted",
        "ocr_read",
        "ocr_cross_checked",
        "authority_checked",  # the identity, with the identity authority
        # the gates run before the attempt is counted (a service that cannot answer costs nothing),
        # so their entries come before the liveness and the portrait match are recorded
        "authority_checked",  # the live face against the authoritative portrait
        "face_deduplicated",
        "liveness_checked",
        "face_compared",
        "face_bound",
    ]
    compared = next(e["public"] for e in evidence["entries"] if e["kind"] == "face_compared")
    identity, portrait = (e["public"] for e in evidence["entries"] if e["kind"] == "authority_checked")
    assert (identity["check"], identity["result"], identity["provider"]) == ("identity", "match", "sandbox")
    assert (portrait["check"], portrait["result"]) == ("portrait", "match")
    assert identity["reference"]
    assert portrait["reference"]
    assert compared["verdict"] == "match"
    assert compared["similarity"] >= compared["threshold"]
    assert compared["engine"] == LocalFaceEngine.name
    assert compared["engine_version"]
    assert evidence["entries"][2]["personal"] == ["address", "birth_date", "id_number", "name"]  # names only

    # The portrait the face was compared with can no longer change, and no one uploads a live capture.
    for kind, expected in (
        ("id_front", (409, "flow.documents_locked")),
        ("live_capture", (422, "document.server_only")),
    ):
        status, error = call(
            api, "post", f"/v1/flows/{flow_id}/uploads", me, {"kind": kind, "content_type": "image/jpeg"}
        )
        assert (status, error["code"]) == expected

    # The session was single use.
    status, again = send_burst(api, me, flow_id, session, frames)
    assert (status, again["code"]) == (409, "liveness.session_used")


def test_a_different_person_fails_the_match_and_uses_an_attempt(
    api: Any, person: Callable[..., dict[str, str]]
) -> None:
    me = person()
    flow_id = card_read(api, me)
    session = start_sideways(api, me, flow_id)
    frames = burst(session["challenge"]["direction"], "alex_lacamoire_3.jpg")
    status, outcome = send_burst(api, me, flow_id, session, frames)
    assert status == 200, outcome
    assert outcome["live"] is True
    assert outcome["matched"] is False
    assert outcome["passed"] is False
    assert outcome["reasons"] == ["face.no_match"]
    assert outcome["attempts_left"] == 2
    assert call(api, "get", f"/v1/flows/{flow_id}", me)[1]["checks"]["face"] == "failed"


def test_an_id_card_whose_number_differs_from_the_typed_one_is_refused_and_not_kept(
    api: Any, person: Callable[..., dict[str, str]]
) -> None:
    require_cjk_font()
    me = person()
    typed = "11010519491231002X"  # valid, but not the number printed on the card
    flow_id = open_flow(api, me, id_number=typed)
    assert upload(api, me, flow_id, DocumentKind.ID_FRONT, id_front(portrait=FACES / CARD_PORTRAIT))[0] == 201

    status, error = call(api, "post", f"/v1/flows/{flow_id}/ocr/id_front", me)
    assert status == 422
    assert error["code"] == "ocr.mismatch"
    assert error["field"] == "id_number"
    assert error["message_zh"]
    assert error["message_en"]
    _, flow = call(api, "get", f"/v1/flows/{flow_id}", me)
    assert "ocr_id_front" not in flow["checks"]
    # Without a passed reading, the face check cannot start.
    status, error = call(api, "post", f"/v1/flows/{flow_id}/liveness-sessions", me)
    assert (status, error["code"]) == (409, "flow.step_out_of_order")
    assert "ocr_id_front" in error["details"]["missing"]


def test_an_id_card_without_a_portrait_is_refused_with_its_own_code(
    api: Any, person: Callable[..., dict[str, str]]
) -> None:
    require_cjk_font()
    me = person()
    flow_id = open_flow(api, me)
    status, error = upload(api, me, flow_id, DocumentKind.ID_FRONT, id_front(portrait=None))
    assert status == 422
    assert error["code"] == "id_card.no_portrait"
    assert stored_keys(flow_id) == []
    assert call(api, "get", f"/v1/flows/{flow_id}", me)[1]["documents"] == []


def test_another_persons_flow_is_forbidden_and_reveals_nothing(
    api: Any, person: Callable[..., dict[str, str]]
) -> None:
    flow_id = open_flow(api, person())
    other = person("owner-13900139000")
    for method, path in (
        ("get", f"/v1/flows/{flow_id}"),
        ("post", f"/v1/flows/{flow_id}/liveness-sessions"),
        ("post", f"/v1/flows/{flow_id}/ocr/id_front"),
    ):
        status, error = call(api, method, path, other)
        assert (status, error["code"]) == (403, "flow.not_yours")
        assert flow_id not in json.dumps(error)
        assert PERSON_NAME not in json.dumps(error)
    status, error = call(api, "get", "/v1/flows/fnot-a-flow", other)
    assert (status, error["code"]) == (404, "flow.not_found")


def test_bad_identity_is_refused_field_by_field_and_changes_nothing(
    api: Any, person: Callable[..., dict[str, str]]
) -> None:
    me = person()
    _, flow = call(api, "post", "/v1/flows", me, {"purpose": "registration"})
    flow_id = flow["flow_id"]
    status, error = call(
        api,
        "put",
        f"/v1/flows/{flow_id}/identity",
        me,
        {"id_type": "resident_id", "id_number": "110105194912310021", "name": PERSON_NAME},
    )
    assert status == 422
    assert error["field"] == "id_number"
    assert error["code"].startswith("resident_id.")
    assert call(api, "get", f"/v1/flows/{flow_id}", me)[1]["identity"] is None


def test_no_face_is_processed_before_the_separate_biometric_consent(
    api: Any, person: Callable[..., dict[str, str]], auth: Callable[..., dict[str, str]]
) -> None:
    require_cjk_font()
    me = person()
    flow_id = open_flow(api, me)
    card = id_front(portrait=FACES / CARD_PORTRAIT)
    # Without the consent no ID front is taken: its portrait would be looked for (face processing)
    status, error = call(
        api, "post", f"/v1/flows/{flow_id}/uploads", me, {"kind": "id_front", "content_type": "image/jpeg"}
    )
    assert (status, error["code"]) == (409, "consent.biometric_required")
    assert error["details"]["kind"] == "biometric_consent"
    assert error["message_zh"].startswith("请先阅读并单独同意《人脸信息处理单独同意书》")
    # not even one put in the bucket past the presign: it is neither looked at nor kept
    raw_key = f"raw/{flow_id}/id_front/{'a' * 32}"
    s3().put_object(Bucket=bucket(), Key=raw_key, Body=card, ContentType="image/jpeg")
    complete = {"kind": "id_front", "key": raw_key}
    status, error = call(api, "post", f"/v1/flows/{flow_id}/documents", me, complete)
    assert (status, error["code"]) == (409, "consent.biometric_required")
    assert stored_keys(flow_id) == []
    # An altered or outdated text is refused and records nothing
    status, error = call(
        api, "post", f"/v1/flows/{flow_id}/biometric-consent", me, {"version": "v1", "sha256": "0" * 64}
    )
    assert (status, error["code"]) == (422, "consent.outdated")
    assert "biometric_consent" not in call(api, "get", f"/v1/flows/{flow_id}", me)[1]["checks"]
    # The consent as served is kept in the evidence (version, hash, time, client), once
    consent_to_face_check(api, me, flow_id)
    consent_to_face_check(api, me, flow_id)
    _, flow = call(api, "get", f"/v1/flows/{flow_id}", me)
    assert flow["checks"]["biometric_consent"] == "passed"
    _, evidence = call(api, "get", f"/v1/flows/{flow_id}/evidence", auth("auditor"))
    given = [e for e in evidence["entries"] if e["kind"] == "consent_given"]
    assert len(given) == 1
    assert given[0]["public"]["consents"][0]["kind"] == "biometric_consent"
    assert not [e for e in evidence["entries"] if e["kind"].startswith("upload_")]
    # Then the same upload is completed, its portrait found, and the face check can start
    status, doc = call(api, "post", f"/v1/flows/{flow_id}/documents", me, complete)
    assert status == 201, doc
    assert call(api, "post", f"/v1/flows/{flow_id}/ocr/id_front", me)[0] == 200
    assert call(api, "post", f"/v1/flows/{flow_id}/liveness-sessions", me)[0] == 201


def test_the_challenge_is_not_drawn_again_and_the_running_check_locks_the_identity(
    api: Any, person: Callable[..., dict[str, str]]
) -> None:
    me = person()
    flow_id = card_read(api, me)
    first = start_sideways(api, me, flow_id)
    assert first["challenge"]["nonce"]
    # Asking again hands out the same session and challenge
    status, again = call(api, "post", f"/v1/flows/{flow_id}/liveness-sessions", me)
    assert status == 201, again
    assert (again["session_id"], again["challenge"]) == (first["session_id"], first["challenge"])
    # The face check has started: the identity and the ID front can no longer change
    assert call(api, "get", f"/v1/flows/{flow_id}", me)[1]["checks"]["face"] == "started"
    other = {"id_type": "resident_id", "id_number": "11010519491231002X", "name": "李四", "address": "北京"}
    status, error = call(api, "put", f"/v1/flows/{flow_id}/identity", me, other)
    assert (status, error["code"]) == (409, "flow.identity_locked")
    status, error = call(
        api, "post", f"/v1/flows/{flow_id}/uploads", me, {"kind": "id_front", "content_type": "image/jpeg"}
    )
    assert (status, error["code"]) == (409, "flow.documents_locked")


def test_frames_without_a_face_are_a_capture_problem_and_the_same_session_then_passes(
    api: Any, person: Callable[..., dict[str, str]]
) -> None:
    from tests.liveness_frames import blank

    me = person()
    flow_id = card_read(api, me)
    session = start_sideways(api, me, flow_id)
    walls = [base64.b64encode(blank()).decode()] * 4
    status, error = send_burst(api, me, flow_id, session, walls)
    assert (status, error["code"], error["field"]) == (422, "liveness.capture_problem", "frames")
    assert error["details"] == {"reasons": ["liveness.no_face"], "attempts_left": 3}
    assert "不计入" in error["message_zh"]
    status, outcome = send_burst(api, me, flow_id, session, burst(session["challenge"]["direction"]))
    assert status == 200, outcome
    assert (outcome["passed"], outcome["attempts_left"]) == (True, 2)


def test_a_pile_of_photos_or_another_sessions_nonce_fails_and_costs_an_attempt(
    api: Any, person: Callable[..., dict[str, str]]
) -> None:
    from chalicelib.verification.domain.liveness import LivenessDirection
    from tests.liveness_frames import photo_burst

    me = person()
    flow_id = card_read(api, me)
    session = start_sideways(api, me, flow_id)
    direction = session["challenge"]["direction"]
    stills = [base64.b64encode(f).decode() for f in photo_burst(LivenessDirection(direction))]
    status, outcome = send_burst(api, me, flow_id, session, stills)
    assert status == 200, outcome
    assert outcome["passed"] is False
    assert "liveness.not_continuous" in outcome["reasons"]
    assert outcome["attempts_left"] == 2
    # A real burst with a nonce that is not the session's
    again = call(api, "post", f"/v1/flows/{flow_id}/liveness-sessions", me)[1]
    assert again["session_id"] != session["session_id"]
    frames = burst(again["challenge"]["direction"])
    status, outcome = send_burst(api, me, flow_id, again, frames, nonce=session["challenge"]["nonce"])
    assert status == 200, outcome
    assert (outcome["passed"], outcome["reasons"], outcome["attempts_left"]) == (False, ["liveness.nonce"], 1)
