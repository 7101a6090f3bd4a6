"""Filing and listing complaints (投诉举报, 第二十一条).

A complaint is validated whole before anything is kept (every field's refusal at once); the log line
it leaves names its number, category and the person's pseudonym, never the description or the phone.
"""

from __future__ import annotations

import unicodedata
import uuid
from datetime import timedelta

from chalicelib.complaints.domain import (
    MAX_ANSWER,
    MAX_DESCRIPTION,
    Complaint,
    ComplaintCategory,
    ComplaintStatus,
    complaint_number,
)
from chalicelib.complaints.ports import ComplaintStore
from chalicelib.kernel.clock import CHINA, Clock, utc_now
from chalicelib.kernel.errors import Conflict, InvalidField, NotFound, TooManyRequests, ValidationErrors
from chalicelib.kernel.validators import validate

#: The most complaints a listing returns.
MAX_LISTED = 100


def _description(value: str) -> str:
    """The description as kept: NFC, control characters dropped, trimmed; 1–500 characters."""
    text = unicodedata.normalize("NFC", value)
    text = "".join(c for c in text if c in "\n\t" or unicodedata.category(c)[0] != "C").strip()
    if not text:
        raise InvalidField(
            "complaint.description_missing",
            "请写下您要投诉或举报的情况",
            "Describe what the complaint is about",
            field="description",
        )
    if len(text) > MAX_DESCRIPTION:
        raise InvalidField(
            "complaint.description_too_long",
            f"情况说明最多 {MAX_DESCRIPTION} 字，当前 {len(text)} 字，请精简后提交",
            f"The description holds {len(text)} characters; at most {MAX_DESCRIPTION}",
            field="description",
            details={"max": MAX_DESCRIPTION, "length": len(text)},
        )
    return text


def _answer_text(value: str) -> str:
    """The answer as kept: NFC, control characters (but line breaks) dropped, trimmed; 1–500 characters."""
    text = unicodedata.normalize("NFC", value)
    text = "".join(c for c in text if c in "\n\t" or unicodedata.category(c)[0] != "C").strip()
    if not text or len(text) > MAX_ANSWER:
        raise InvalidField(
            "complaint.answer_invalid",
            f"请填写答复内容（1–{MAX_ANSWER} 字）",
            f"Give the answer (1–{MAX_ANSWER} characters)",
            field="answer",
            details={"max": MAX_ANSWER, "length": len(text)},
        )
    return text


def complaint_not_found() -> NotFound:
    return NotFound("complaint.not_found", "投诉不存在", "No such complaint", field="complaint_id")


class Complaints:
    """Files a person's complaint and lists complaints to their author and to the OEM; the OEM answers
    them (第二十一条) before their deadline, once closed never again."""

    def __init__(self, store: ComplaintStore, *, per_day: int, clock: Clock = utc_now) -> None:
        self._store = store
        self._per_day = per_day
        self._clock = clock

    def file(
        self,
        subject: str,
        category: ComplaintCategory,
        description: str,
        contact_phone: str,
        vin: str | None = None,
    ) -> Complaint:
        errors: list[InvalidField] = []
        text = phone = checked_vin = None
        try:
            text = _description(description)
        except InvalidField as err:
            errors.append(err)
        try:
            phone = validate("mobile", contact_phone.strip(), field="contact_phone").value
        except InvalidField as err:
            errors.append(err)
        if vin is not None and vin.strip():
            try:
                checked_vin = validate("vin", vin.strip().upper(), field="vin").value
            except InvalidField as err:
                errors.append(err)
        if errors:
            raise errors[0] if len(errors) == 1 else ValidationErrors(errors)
        assert text is not None
        assert phone is not None
        now = self._clock()
        day_start = now.astimezone(CHINA).replace(hour=0, minute=0, second=0, microsecond=0)
        if self._store.count_since(subject, day_start) >= self._per_day:
            tomorrow = day_start + timedelta(days=1)
            raise TooManyRequests(
                "complaint.too_many",
                f"今天已提交 {self._per_day} 条投诉，请明天再提交，或拨打客服电话",
                f"At most {self._per_day} complaints a day",
                details={"retry_after": int((tomorrow - now).total_seconds())},
            )
        complaint = Complaint(
            complaint_id=complaint_number(now, uuid.uuid4().hex),
            subject=subject,
            category=category,
            description=text,
            contact_phone=phone,
            vin=checked_vin,
            status=ComplaintStatus.RECEIVED,
            created_at=now,
        )
        self._store.add(complaint)
        return complaint

    def mine(self, subject: str) -> list[Complaint]:
        return self._store.of_subject(subject, MAX_LISTED)

    def listing(self, status: ComplaintStatus, limit: int = MAX_LISTED) -> list[Complaint]:
        return self._store.by_status(status, min(limit, MAX_LISTED))

    def get(self, complaint_id: str) -> Complaint:
        found = self._store.get(complaint_id)
        if found is None:
            raise complaint_not_found()
        return found

    def answer(self, complaint_id: str, staff: str, answer: str, *, close: bool = True) -> Complaint:
        """Answer the person: the answer kept (sealed) with who gave it and when; the complaint closed
        (办结), or in progress for an interim answer. A closed complaint is not answered again."""
        text = _answer_text(answer)
        current = self.get(complaint_id)
        if current.status is ComplaintStatus.CLOSED:
            raise Conflict(
                "complaint.closed",
                "该投诉已办结，不能再次答复",
                "The complaint is closed and was answered already",
            )
        answered = current.model_copy(
            update={
                "answer": text,
                "answered_by": staff,
                "answered_at": self._clock(),
                "status": ComplaintStatus.CLOSED if close else ComplaintStatus.IN_PROGRESS,
            }
        )
        if not self._store.save_answer(answered, current.status):
            raise Conflict(
                "complaint.changed",
                "该投诉刚被他人处理，请刷新后查看",
                "The complaint changed meanwhile; read it again",
            )
        return answered
