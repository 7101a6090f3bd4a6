"""人工审核 that is not a dead end: the owner's case carries a case number (审核编号) and the expected time,
and the reviewer's decision reaches the owner by SMS on the registration's phone, saying what to do next."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.core import deps
from chalicelib.core.settings import get_settings
from chalicelib.verification.domain.documents import DocumentKind
from tests.face_photos import FACES
from tests.integration import test_registration_flow as registration_flow
from tests.integration.test_identity_documents import (
    PASSPORT_NAME,
    PASSPORT_NUMBER,
    passport_page,
    read,
    type_identity,
    up_to_identity,
)
from tests.integration.test_registration_flow import PHONE, REG, Headers
from tests.integration.test_verification_api import call
from tests.synthetic_documents import require_cjk_font

person = registration_flow.person
vins = registration_flow.vins

pytestmark = pytest.mark.skipif(not FACES.is_dir(), reason=f"face photos not found at {FACES}")

CASE_NUMBER = re.compile(r"^SH\d{8}-[0-9A-HJKMNP-TV-Z]{8}$")
MASKED_PHONE = PHONE[:3] + "****" + PHONE[-4:]
CARD_PORTRAIT = "obama_video_1080p.jpg"


def passport_in_review(api: Any, me: dict[str, str], vin: str) -> tuple[dict[str, Any], str]:
    """A registration whose passport went to a reviewer: (the registration, the case id)."""
    require_cjk_font()
    reg = up_to_identity(api, me, vin)
    type_identity(api, me, reg["flow_id"], id_type="passport", id_number=PASSPORT_NUMBER, name=PASSPORT_NAME)
    status, outcome = read(
        api, me, reg["flow_id"], DocumentKind.ID_FRONT, passport_page(FACES / CARD_PORTRAIT)
    )
    assert status == 200, outcome
    assert outcome["review_case_id"], outcome
    return reg, str(outcome["review_case_id"])


def texts_to(phone_masked: str) -> list[str]:
    return [m.text for m in deps.sms_drop().recent(50) if m.phone == phone_masked]


def test_the_owner_reads_their_review_case_number_status_and_expected_time_and_no_one_else_does(
    api: Any, person: Headers, vins: list[str], auth: Callable[..., dict[str, str]]
) -> None:
    me = person()
    reg, case_id = passport_in_review(api, me, vins[0])
    flow_id = reg["flow_id"]
    # When the owner asks for their flow's review
    status, mine = call(api, "get", f"/v1/flows/{flow_id}/review", me)
    # Then they read a case number, the case open, why, and the time a reviewer takes
    assert status == 200, mine
    assert CASE_NUMBER.match(mine["case_number"]), mine["case_number"]
    assert mine["status"] == "open"
    assert mine["reason"] == "document_not_machine_readable"
    assert "护照" in mine["reason_zh"]
    assert mine["expected_zh"] == "1 个工作日内"
    assert mine["decided_at"] is None
    assert mine["poll_seconds"] >= 2
    # And the reviewer's case carries the same number, stored with it
    status, case = call(api, "get", f"/v1/review-cases/{case_id}", auth("reviewer"))
    assert status == 200, case
    assert case["case"]["case_number"] == mine["case_number"]
    # And someone else cannot read it
    status, err = call(api, "get", f"/v1/flows/{flow_id}/review", person("someone-else"))
    assert status in (403, 404), err
    assert "case_number" not in err


def test_the_expected_review_time_is_a_setting(
    api: Any, person: Headers, vins: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    me = person()
    reg, _ = passport_in_review(api, me, vins[1])
    # Given the stage tells owners reviewers take two working days
    monkeypatch.setenv("CHEKA_REVIEW_EXPECTED_ZH", "2 个工作日内")
    get_settings.cache_clear()
    # (read here: a request of the test client runs under the environment of .chalice/config.json)
    assert get_settings().review_expected_zh == "2 个工作日内"
    try:
        # Then the owner's review says so
        status, mine = call(api, "get", f"/v1/flows/{reg['flow_id']}/review", me)
    finally:
        monkeypatch.delenv("CHEKA_REVIEW_EXPECTED_ZH")
        get_settings.cache_clear()
        get_settings()
    assert (status, mine["expected_zh"]) == (200, "2 个工作日内"), mine


def test_a_flow_never_sent_to_a_reviewer_has_no_review_case(
    api: Any, person: Headers, vins: list[str]
) -> None:
    me = person()
    reg = up_to_identity(api, me, vins[2])
    status, err = call(api, "get", f"/v1/flows/{reg['flow_id']}/review", me)
    assert (status, err["code"]) == (404, "review.not_found"), err


def test_an_approval_reaches_the_owner_by_sms_with_the_case_number_and_the_face_check_next(
    api: Any, person: Headers, vins: list[str], auth: Callable[..., dict[str, str]]
) -> None:
    me = person()
    reg, case_id = passport_in_review(api, me, vins[0])
    number = call(api, "get", f"/v1/flows/{reg['flow_id']}/review", me)[1]["case_number"]
    before = texts_to(MASKED_PHONE)
    # When the reviewer approves the passport
    status, decided = call(
        api, "post", f"/v1/review-cases/{case_id}/decision", auth("reviewer"), {"decision": "approve"}
    )
    assert (status, decided["status"]) == (200, "approved"), decided
    # Then the registration's phone gets one SMS saying so, with the case number and what comes next
    sent = texts_to(MASKED_PHONE)
    assert len(sent) == len(before) + 1, sent
    text = sent[0]
    assert "已通过人工审核" in text
    assert number in text
    assert "人脸检测" in text
    assert vins[0][-6:] in text
    assert PASSPORT_NUMBER not in text
    assert PASSPORT_NAME not in text
    # And the owner's review reads decided, and the registration goes on to the face check
    status, mine = call(api, "get", f"/v1/flows/{reg['flow_id']}/review", me)
    assert (mine["status"], mine["decided_at"] is not None) == ("approved", True), mine
    assert call(api, "get", f"{REG}/{reg['registration_id']}", me)[1]["step"] == "face"
    # And deciding again sends nothing more
    status, _ = call(
        api, "post", f"/v1/review-cases/{case_id}/decision", auth("reviewer"), {"decision": "reject"}
    )
    assert status == 409
    assert len(texts_to(MASKED_PHONE)) == len(before) + 1


def test_a_rejection_reaches_the_owner_by_sms_saying_what_to_do_instead(
    api: Any, person: Headers, vins: list[str], auth: Callable[..., dict[str, str]]
) -> None:
    me = person()
    reg, case_id = passport_in_review(api, me, vins[3])
    number = call(api, "get", f"/v1/flows/{reg['flow_id']}/review", me)[1]["case_number"]
    body = {"decision": "reject", "note": "portrait and data page do not belong together"}
    status, decided = call(api, "post", f"/v1/review-cases/{case_id}/decision", auth("reviewer"), body)
    assert (status, decided["status"]) == (200, "rejected"), decided
    text = texts_to(MASKED_PHONE)[0]
    assert "未通过人工审核" in text
    assert number in text
    assert "重新办理" in text
    assert "经销商" in text
    # The reviewer's note is theirs: it is not texted
    assert "portrait" not in text
    assert call(api, "get", f"{REG}/{reg['registration_id']}", me)[1]["step"] == "rejected"
