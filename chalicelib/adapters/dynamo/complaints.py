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
        return Complaint(
            complaint_id=item.complaint_id,
            subject=item.subject,
            category=ComplaintCategory(item.category),
            description=clear["description"],
            contact_phone=clear["contact_phone"],
            vin=item.vin,
            status=ComplaintStatus(item.status),
            created_at=utc_aware(item.created_at),
        )

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
