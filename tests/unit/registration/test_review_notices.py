"""审核编号 and the SMS a reviewer's decision sends: what the owner reads."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from chalicelib.registration.domain.registrations import RegistrationKind
from chalicelib.registration.review_notices import review_decided_message
from chalicelib.verification.domain.flows import (
    FlowPurpose,
    ReviewCase,
    ReviewReason,
    ReviewStatus,
    case_id_for,
    case_number_for,
)

VIN = "LSVAU2180N2183294"
OPENED = datetime(2026, 11, 29, 20, 30, tzinfo=UTC)  # 04:30 on 30 November, China time


def case(reason: ReviewReason, status: ReviewStatus, *, number: str | None = None) -> ReviewCase:
    return ReviewCase(
        case_id=case_id_for("f1", reason),
        flow_id="f1",
        owner="o1",
        purpose=FlowPurpose.REGISTRATION,
        reason=reason,
        status=status,
        created_at=OPENED,
        case_number=number,
    )


def test_a_case_number_is_the_china_date_and_eight_characters_that_cannot_be_misread() -> None:
    number = case_number_for("rc-f1-face_attempts_exhausted", OPENED)
    assert re.fullmatch(r"SH20261130-[0-9A-HJKMNP-TV-Z]{8}", number), number
    # the same case gives the same number, another case another
    assert case_number_for("rc-f1-face_attempts_exhausted", OPENED) == number
    assert case_number_for("rc-f2-face_attempts_exhausted", OPENED) != number


def test_a_case_stored_before_numbers_existed_reads_the_number_it_would_have_had() -> None:
    old = case(ReviewReason.FACE_ATTEMPTS_EXHAUSTED, ReviewStatus.OPEN)
    assert old.number == case_number_for(old.case_id, OPENED)
    assert case(ReviewReason.FACE_ATTEMPTS_EXHAUSTED, ReviewStatus.OPEN, number="SH1-X").number == "SH1-X"


def test_an_approved_passport_is_told_to_come_back_for_the_face_check() -> None:
    decided = case(ReviewReason.DOCUMENT_NOT_MACHINE_READABLE, ReviewStatus.APPROVED)
    text = review_decided_message(decided, VIN, RegistrationKind.REGISTRATION)
    assert text.startswith("【车联网卡实名登记】")
    assert "VIN 尾号 183294" in text
    assert "实名登记资料已通过人工审核" in text
    assert decided.number in text
    assert "完成人脸检测" in text


def test_an_approved_face_review_is_told_to_come_back_and_go_on() -> None:
    decided = case(ReviewReason.FACE_ATTEMPTS_EXHAUSTED, ReviewStatus.APPROVED)
    text = review_decided_message(decided, VIN, RegistrationKind.DEREGISTRATION)
    assert "实名注销资料已通过人工审核" in text
    assert "继续办理" in text
    assert "人脸检测" not in text


def test_a_rejection_says_what_to_do_instead_and_how_to_ask() -> None:
    decided = case(ReviewReason.FACE_ATTEMPTS_EXHAUSTED, ReviewStatus.REJECTED)
    text = review_decided_message(decided, VIN, RegistrationKind.REGISTRATION)
    assert "未通过人工审核" in text
    assert "重新办理" in text
    assert "经销商" in text
    assert "审核编号" in text
    assert text.count(decided.number) == 1
