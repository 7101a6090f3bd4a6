"""One face, one identity (一脸多证) through the API, with real faces and the local engines.

A face that passed the face check is bound to its identity (the ID number's keyed hash); the same face
under a second ID number is sent to review; the same person again, or another person, passes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chalicelib.local.sandbox_authority import Citizen
from chalicelib.verification.domain.documents import DocumentKind
from tests.face_photos import FACES
from tests.integration.test_verification_api import (
    CARD_PORTRAIT,
    burst,
    call,
    open_flow,
    send_burst,
    start_sideways,
    upload,
)
from tests.synthetic_documents import PERSON_ID_NUMBER, PERSON_NAME, id_front, require_cjk_font

pytestmark = pytest.mark.skipif(not FACES.is_dir(), reason=f"face photos not found at {FACES}")

OWNER = "owner-13800138000"
#: Two more synthetic citizens the authority knows: another number for the same face, another person.
SECOND_NUMBER = "11010119900307117X"
OTHER_PERSON_NUMBER = "110101198506150019"
OTHER_PERSON_CARD, OTHER_PERSON_LIVE = "alex_lacamoire_2.jpg", "alex_lacamoire_3.jpg"


@pytest.fixture
def citizens(identity_authority: Any) -> Iterator[None]:
    identity_authority.register(
        Citizen(name=PERSON_NAME, id_number=SECOND_NUMBER, portrait=(FACES / CARD_PORTRAIT).read_bytes())
    )
    identity_authority.register(
        Citizen(
            name=PERSON_NAME,
            id_number=OTHER_PERSON_NUMBER,
            portrait=(FACES / OTHER_PERSON_CARD).read_bytes(),
        )
    )
    yield
    identity_authority.forget(SECOND_NUMBER)
    identity_authority.forget(OTHER_PERSON_NUMBER)


@pytest.fixture
def me(token: Callable[..., str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token('owner', subject=OWNER)}", "Content-Type": "application/json"}


def face_check(api: Any, headers: dict[str, str], id_number: str, card: str, live: str) -> tuple[str, Any]:
    """A flow of ``id_number`` whose ID card carries ``card``'s face, read, then the face check of
    ``live``'s face: the flow id and the outcome."""
    require_cjk_font()
    flow_id = open_flow(api, headers, id_number)
    front = id_front(portrait=FACES / card, id_number=id_number)
    status, doc = upload(api, headers, flow_id, DocumentKind.ID_FRONT, front)
    assert status == 201, doc
    status, reading = call(api, "post", f"/v1/flows/{flow_id}/ocr/id_front", headers)
    assert status == 200, reading
    session = start_sideways(api, headers, flow_id)
    status, outcome = send_burst(
        api, headers, flow_id, session, burst(session["challenge"]["direction"], live)
    )
    assert status == 200, outcome
    return flow_id, outcome


def evidence_of(api: Any, auth: Callable[..., dict[str, str]], flow_id: str) -> list[dict[str, Any]]:
    status, evidence = call(api, "get", f"/v1/flows/{flow_id}/evidence", auth("auditor"))
    assert status == 200, evidence
    return list(evidence["entries"])


def test_one_face_under_a_second_id_number_goes_to_review(
    api: Any, me: dict[str, str], auth: Callable[..., dict[str, str]], citizens: None
) -> None:
    # Given a face that passed under one ID number
    first, outcome = face_check(api, me, PERSON_ID_NUMBER, CARD_PORTRAIT, "obama_1.jpg")
    assert outcome["passed"] is True, outcome
    # (the gates run before the attempt is counted: the search is recorded before the liveness entries)
    assert [e["kind"] for e in evidence_of(api, auth, first)][-4:] == [
        "face_deduplicated",
        "liveness_checked",
        "face_compared",
        "face_bound",
    ]
    # When the same face, on a card of another ID number, takes the face check
    second, outcome = face_check(api, me, SECOND_NUMBER, CARD_PORTRAIT, "obama_1.jpg")
    # Then it matches its card but does not pass: the flow is in review as a duplicate face
    assert (outcome["live"], outcome["matched"], outcome["passed"]) == (True, True, False)
    assert outcome["reasons"] == ["face.duplicate"]
    assert outcome["review_case_id"]
    flow = call(api, "get", f"/v1/flows/{second}", me)[1]
    assert flow["status"] == "in_review"
    status, case = call(api, "get", f"/v1/review-cases/{outcome['review_case_id']}", auth("reviewer"))
    assert status == 200, case
    assert case["case"]["reason"] == "face_duplicate"
    # and the evidence says how close, never whose
    found = next(e for e in evidence_of(api, auth, second) if e["kind"] == "face_deduplicated")
    assert found["public"]["outcome"] == "review"
    assert (found["public"]["matches"], found["public"]["identities"]) == (1, 1)
    assert found["public"]["best_score"] >= found["public"]["threshold"]
    assert found["personal"] == []


def test_the_same_person_again_under_the_same_identity_passes(
    api: Any, me: dict[str, str], citizens: None
) -> None:
    _first, outcome = face_check(api, me, PERSON_ID_NUMBER, CARD_PORTRAIT, "obama_1.jpg")
    assert outcome["passed"] is True, outcome
    _second, outcome = face_check(api, me, PERSON_ID_NUMBER, CARD_PORTRAIT, "obama_1.jpg")
    assert (outcome["passed"], outcome["reasons"]) == (True, [])


def test_a_different_person_under_another_identity_passes(
    api: Any, me: dict[str, str], citizens: None
) -> None:
    _first, outcome = face_check(api, me, PERSON_ID_NUMBER, CARD_PORTRAIT, "obama_1.jpg")
    assert outcome["passed"] is True, outcome
    _second, outcome = face_check(api, me, OTHER_PERSON_NUMBER, OTHER_PERSON_CARD, OTHER_PERSON_LIVE)
    assert (outcome["passed"], outcome["reasons"]) == (True, [])
