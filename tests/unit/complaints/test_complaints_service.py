"""Filing complaints (投诉举报) against an in-memory store: the number, the normalised description, the
refusals by field (nothing kept), the daily limit counted in China days, and the listings."""

from __future__ import annotations

import random

import pytest

from chalicelib.complaints.domain import ComplaintCategory, ComplaintStatus
from chalicelib.complaints.service import Complaints
from chalicelib.kernel.errors import InvalidField, TooManyRequests, ValidationErrors
from chalicelib.local.synthetic import make_vin
from tests.fakes.clock import FakeClock
from tests.fakes.complaints import FakeComplaintStore

PHONE = "13912345678"


def service(per_day: int = 3) -> tuple[Complaints, FakeComplaintStore, FakeClock]:
    store, clock = FakeComplaintStore(), FakeClock()
    return Complaints(store, per_day=per_day, clock=clock), store, clock


def test_a_complaint_gets_a_number_of_its_china_day_and_a_clean_description() -> None:
    complaints, store, _ = service()
    vin = make_vin(random.Random(7))
    filed = complaints.file(
        "p1", ComplaintCategory.REGISTRATION, "  车机\u0000收不到验证码\n请处理  ", PHONE, vin.lower()
    )
    assert filed.complaint_id.startswith("TS20260302")  # 10:00 in China
    assert len(filed.complaint_id) == 16
    assert filed.description == "车机收不到验证码\n请处理"
    assert (filed.vin, filed.contact_phone, filed.status) == (vin, PHONE, ComplaintStatus.RECEIVED)
    assert store.items == {filed.complaint_id: filed}


def test_bad_fields_are_refused_together_and_nothing_is_kept() -> None:
    complaints, store, _ = service()
    with pytest.raises(ValidationErrors) as refused:
        complaints.file("p1", ComplaintCategory.OTHER, "\n \t", "12345", "NOT-A-VIN")
    assert [e.field for e in refused.value.errors] == ["description", "contact_phone", "vin"]
    with pytest.raises(InvalidField) as too_long:
        complaints.file("p1", ComplaintCategory.OTHER, "投" * 501, PHONE)
    assert too_long.value.code == "complaint.description_too_long"
    assert too_long.value.details == {"max": 500, "length": 501}
    assert store.items == {}


def test_a_person_files_at_most_the_daily_number_in_a_china_day() -> None:
    complaints, _, clock = service(per_day=2)
    for _ in range(2):
        complaints.file("p1", ComplaintCategory.SERVICE, "客服电话占线", PHONE)
    complaints.file("p2", ComplaintCategory.SERVICE, "客服电话占线", PHONE)  # another person's own count
    with pytest.raises(TooManyRequests) as refused:
        complaints.file("p1", ComplaintCategory.SERVICE, "客服电话占线", PHONE)
    assert refused.value.details["retry_after"] == 14 * 3600  # until midnight in China
    clock.advance(hours=14)  # midnight in China: a new day
    complaints.file("p1", ComplaintCategory.SERVICE, "客服电话占线", PHONE)


def test_the_listings_are_newest_first_mine_and_by_status() -> None:
    complaints, _, clock = service()
    first = complaints.file("p1", ComplaintCategory.IDENTITY_MISUSE, "有人冒用我的身份", PHONE)
    clock.advance(minutes=5)
    second = complaints.file("p1", ComplaintCategory.OTHER, "补充说明", PHONE)
    other = complaints.file("p2", ComplaintCategory.OTHER, "别人的投诉", PHONE)
    assert [c.complaint_id for c in complaints.mine("p1")] == [second.complaint_id, first.complaint_id]
    assert {c.complaint_id for c in complaints.listing(ComplaintStatus.RECEIVED)} == {
        first.complaint_id,
        second.complaint_id,
        other.complaint_id,
    }
    assert complaints.listing(ComplaintStatus.CLOSED) == []


def test_an_interim_answer_keeps_the_complaint_in_progress_and_the_final_one_closes_it() -> None:
    from chalicelib.kernel.errors import Conflict

    complaints, store, clock = service()
    filed = complaints.file("p1", ComplaintCategory.SERVICE, "一直收不到短信", PHONE)
    interim = complaints.answer(filed.complaint_id, "reviewer-1", "正在核查，请稍候", close=False)
    assert (interim.status, interim.answer, interim.answered_by) == (
        ComplaintStatus.IN_PROGRESS,
        "正在核查，请稍候",
        "reviewer-1",
    )
    assert not interim.overdue(clock())
    clock.advance(days=30)  # past the 15 working days
    final = complaints.answer(filed.complaint_id, "reviewer-2", "已重新发送")
    assert final.status is ComplaintStatus.CLOSED
    assert final.overdue(clock())  # answered after its deadline: counted as late
    assert store.items[filed.complaint_id] == final
    with pytest.raises(Conflict) as refused:
        complaints.answer(filed.complaint_id, "reviewer-1", "再答复一次")
    assert refused.value.code == "complaint.closed"


def test_of_two_answers_at_once_the_second_is_refused_and_changes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chalicelib.kernel.errors import Conflict

    complaints, store, _ = service()
    filed = complaints.file("p1", ComplaintCategory.SERVICE, "一直收不到短信", PHONE)
    first = filed.model_copy(update={"status": ComplaintStatus.CLOSED, "answer": "甲的答复"})
    monkeypatch.setattr(store, "get", lambda complaint_id: filed)  # read before the first landed
    store.items[filed.complaint_id] = first
    with pytest.raises(Conflict) as refused:
        complaints.answer(filed.complaint_id, "reviewer-2", "乙的答复")
    assert refused.value.code == "complaint.changed"
    assert store.items[filed.complaint_id].answer == "甲的答复"
