"""Complaints and the texts accepted at login on DynamoDB: a complaint's description and contact phone
sealed with a KMS data key bound to its number."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from chalicelib.adapters.dynamo.base import utc_aware
from chalicelib.adapters.dynamo.models_complaints import AcceptedTextMap, AccountConsentModel, ComplaintModel
from chalicelib.complaints.domain import Complaint, ComplaintCategory, ComplaintStatus
from chalicelib.complaints.ports import ComplaintStore
from chalicelib.consents.account import AccountConsentLog
from chalicelib.consents.account_models import AcceptedAccountText, AccountTextKind
from chalicelib.kernel.crypto import FieldCipher, SealedFields


class DynamoComplaintStore(ComplaintStore):
    def __init__(self, cipher: FieldCipher) -> None:
        self._cipher = cipher

    @staticmethod
    def _context(complaint_id: str) -> str:
        return f"complaints#{complaint_id}"

    def add(self, complaint: Complaint) -> None:
        sealed = self._cipher.seal(
            self._context(complaint.complaint_id),
            {"description": complaint.description, "contact_phone": complaint.contact_phone},
        )
        ComplaintModel(
            complaint.complaint_id,
            subject=complaint.subject,
            category=complaint.category.value,
            status=complaint.status.value,
            vin=complaint.vin,
            created_at=complaint.created_at,
            data_key=sealed.data_key,
            description_enc=sealed.values["description"],
            contact_phone_enc=sealed.values["contact_phone"],
        ).save(condition=ComplaintModel.complaint_id.does_not_exist())

    def _complaint(self, item: ComplaintModel) -> Complaint:
        clear = self._cipher.open(
            self._context(item.complaint_id),
            SealedFields(
                item.data_key, {"description": item.description_enc, "contact_phone": item.contact_phone_enc}
            ),
        )
        answer = None
        if item.answer_key is not None and item.answer_enc is not None:
            answer = self._cipher.open(
                self._answer_context(item.complaint_id),
                SealedFields(item.answer_key, {"answer": item.answer_enc}),
            )["answer"]
        return Complaint(
            complaint_id=item.complaint_id,
            subject=item.subject,
            category=ComplaintCategory(item.category),
            description=clear["description"],
            contact_phone=clear["contact_phone"],
            vin=item.vin,
            status=ComplaintStatus(item.status),
            created_at=utc_aware(item.created_at),
            answer=answer,
            answered_by=item.answered_by,
            answered_at=utc_aware(item.answered_at) if item.answered_at else None,
        )

    @staticmethod
    def _answer_context(complaint_id: str) -> str:
        return f"complaints#{complaint_id}#answer"

    def get(self, complaint_id: str) -> Complaint | None:
        try:
            return self._complaint(ComplaintModel.get(complaint_id, consistent_read=True))
        except ComplaintModel.DoesNotExist:
            return None

    def save_answer(self, answered: Complaint, expected: ComplaintStatus) -> bool:
        from pynamodb.exceptions import UpdateError

        sealed = self._cipher.seal(
            self._answer_context(answered.complaint_id), {"answer": answered.answer or ""}
        )
        assert answered.answered_by is not None, "an answer names who gave it"
        assert answered.answered_at is not None, "an answer names when"
        item = ComplaintModel(answered.complaint_id)
        try:
            item.update(
                actions=[
                    ComplaintModel.status.set(answered.status.value),
                    ComplaintModel.answer_key.set(sealed.data_key),
                    ComplaintModel.answer_enc.set(sealed.values["answer"]),
                    ComplaintModel.answered_by.set(answered.answered_by),
                    ComplaintModel.answered_at.set(answered.answered_at),
                ],
                condition=ComplaintModel.complaint_id.exists() & (ComplaintModel.status == expected.value),
            )
        except UpdateError as err:
            if getattr(err, "cause_response_code", None) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def of_subject(self, subject: str, limit: int) -> list[Complaint]:
        items = ComplaintModel.by_subject.query(subject, scan_index_forward=False, limit=limit)
        return [self._complaint(i) for i in items]

    def count_since(self, subject: str, since: datetime) -> int:
        return sum(1 for _ in ComplaintModel.by_subject.query(subject, ComplaintModel.created_at >= since))

    def by_status(self, status: ComplaintStatus, limit: int) -> list[Complaint]:
        items = ComplaintModel.by_status.query(status.value, scan_index_forward=False, limit=limit)
        return [self._complaint(i) for i in items]


class DynamoAccountConsentLog(AccountConsentLog):
    def record(self, subject: str, accepted: Sequence[AcceptedAccountText], at: datetime) -> None:
        AccountConsentModel(
            subject,
            at,
            texts=[
                AcceptedTextMap(kind=a.kind.value, version=a.version, sha256=a.sha256)  # type: ignore[no-untyped-call]
                for a in accepted
            ],
        ).save()

    def latest(self, subject: str) -> tuple[datetime, list[AcceptedAccountText]] | None:
        for item in AccountConsentModel.query(subject, scan_index_forward=False, limit=1):
            texts = [
                AcceptedAccountText(kind=AccountTextKind(t.kind), version=t.version, sha256=t.sha256)
                for t in item.texts
            ]
            return utc_aware(item.accepted_at), texts
        return None
