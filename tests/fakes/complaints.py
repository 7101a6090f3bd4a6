"""An in-memory complaint store (the port ``complaints.ports.ComplaintStore``)."""

from __future__ import annotations

from datetime import datetime

from chalicelib.complaints.domain import Complaint, ComplaintStatus
from chalicelib.complaints.ports import ComplaintStore


class FakeComplaintStore(ComplaintStore):
    def __init__(self) -> None:
        self.items: dict[str, Complaint] = {}

    def add(self, complaint: Complaint) -> None:
        assert complaint.complaint_id not in self.items, "complaint numbers are unique"
        self.items[complaint.complaint_id] = complaint

    def _newest(self, found: list[Complaint], limit: int) -> list[Complaint]:
        return sorted(found, key=lambda c: c.created_at, reverse=True)[:limit]

    def of_subject(self, subject: str, limit: int) -> list[Complaint]:
        return self._newest([c for c in self.items.values() if c.subject == subject], limit)

    def count_since(self, subject: str, since: datetime) -> int:
        return sum(1 for c in self.items.values() if c.subject == subject and c.created_at >= since)

    def by_status(self, status: ComplaintStatus, limit: int) -> list[Complaint]:
        return self._newest([c for c in self.items.values() if c.status is status], limit)

    def get(self, complaint_id: str) -> Complaint | None:
        return self.items.get(complaint_id)

    def save_answer(self, answered: Complaint, expected: ComplaintStatus) -> bool:
        current = self.items.get(answered.complaint_id)
        if current is None or current.status is not expected:
            return False
        self.items[answered.complaint_id] = answered
        return True
