"""What the complaints context needs from the outside world: where complaints are kept."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime

from chalicelib.complaints.domain import Complaint, ComplaintStatus


class ComplaintStore(ABC):
    """Complaints, their description and contact phone sealed at rest."""

    @abstractmethod
    def add(self, complaint: Complaint) -> None:
        """Keep a new complaint (its number is unique)."""

    @abstractmethod
    def of_subject(self, subject: str, limit: int) -> list[Complaint]:
        """One person's complaints, newest first."""

    @abstractmethod
    def count_since(self, subject: str, since: datetime) -> int:
        """How many complaints one person filed since ``since``."""

    @abstractmethod
    def by_status(self, status: ComplaintStatus, limit: int) -> list[Complaint]:
        """Complaints in one status, newest first (the OEM's listing)."""

    @abstractmethod
    def get(self, complaint_id: str) -> Complaint | None:
        """One complaint by its number."""

    @abstractmethod
    def save_answer(self, answered: Complaint, expected: ComplaintStatus) -> bool:
        """Keep the answer and the new status, only if the complaint is still ``expected`` (False when
        it changed meanwhile: another answer came first)."""
