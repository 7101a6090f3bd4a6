"""In-memory fake of the registrations' store, with the port's conditions: a create never overwrites,
a save is refused (``registration.changed``) unless it is one version above the stored one, and an
expired open registration is deleted only while it is still expired and open."""

from __future__ import annotations

from datetime import datetime

from chalicelib.kernel.errors import Conflict
from chalicelib.registration.domain.registrations import Registration, RegistrationStatus, count_open
from chalicelib.registration.ports import RegistrationRepository


def _changed() -> Conflict:
    return Conflict(
        "registration.changed",
        "办理记录已被其他操作修改，请刷新后重试",
        "The registration changed meanwhile; reload it and try again",
    )


class FakeRegistrations(RegistrationRepository):
    def __init__(self) -> None:
        self.items: dict[str, Registration] = {}
        self.pushes: dict[str, str] = {}

    def create(self, reg: Registration) -> None:
        if reg.registration_id in self.items:
            raise _changed()
        self.items[reg.registration_id] = reg

    def get(self, registration_id: str) -> Registration | None:
        return self.items.get(registration_id)

    def create_if_room(self, reg: Registration, limit: int, now: datetime) -> bool:
        # Counted on the items themselves, as the store's turn per owner does (not on ``of_owner``, which
        # a test may make lag as an index does).
        if count_open([r for r in self.items.values() if r.owner == reg.owner], now) >= limit:
            return False
        self.create(reg)
        return True

    def save(self, reg: Registration) -> Registration:
        stored = self.items.get(reg.registration_id)
        if stored is None or stored.version != reg.version - 1:
            raise _changed()
        self.items[reg.registration_id] = reg
        return reg

    def of_owner(self, owner: str) -> list[Registration]:
        return sorted((r for r in self.items.values() if r.owner == owner), key=lambda r: r.created_at)

    def registered_for(self, owner_subject: str) -> list[Registration]:
        mine = (
            r for r in self.items.values() if r.delegation and r.delegation.owner_subject == owner_subject
        )
        return sorted(mine, key=lambda r: r.created_at)

    def by_receipt(self, receipt_no: str) -> Registration | None:
        return next((r for r in self.items.values() if r.receipt_no == receipt_no), None)

    def link_pushes(self, registration_id: str, record_ids: list[str]) -> None:
        for record_id in record_ids:
            self.pushes[record_id] = registration_id

    def by_push(self, record_id: str) -> Registration | None:
        registration_id = self.pushes.get(record_id)
        return self.items.get(registration_id) if registration_id else None

    def expired_open(self, now: datetime, limit: int) -> list[Registration]:
        return [r for r in self.items.values() if _expired_open(r, now)][:limit]

    def submitting(self, claimed_before: datetime, limit: int) -> list[Registration]:
        return [
            r
            for r in self.items.values()
            if r.status is RegistrationStatus.SUBMITTING
            and r.submitted_at is not None
            and r.submitted_at < claimed_before
        ][:limit]

    def delete_expired(self, reg: Registration, now: datetime) -> bool:
        stored = self.items.get(reg.registration_id)
        if stored is None or not _expired_open(stored, now):
            return False
        del self.items[reg.registration_id]
        return True


def _expired_open(reg: Registration, now: datetime) -> bool:
    return reg.status is RegistrationStatus.OPEN and reg.expires_at is not None and reg.expires_at < now
