"""The registrations as the use cases read and change them: the caller's own (expiry counted, the
reviewer's time not), its verification flow, and versioned saves."""

from __future__ import annotations

from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.errors import NotFound
from chalicelib.registration.domain.registrations import (
    Registration,
    RegistrationStatus,
    changed,
    check_owner,
)
from chalicelib.registration.ports import RegistrationRepository
from chalicelib.verification.domain.flows import Flow, FlowStatus
from chalicelib.verification.service import VerificationService


class Registrations:
    def __init__(
        self, store: RegistrationRepository, verification: VerificationService, *, clock: Clock = utc_now
    ) -> None:
        self._store = store
        self._verification = verification
        self._clock = clock

    def own(self, registration_id: str, caller: str) -> Registration:
        """The caller's registration (403 for someone else's, 404 once expired). One waiting for a
        reviewer lives as long as the review window: the reviewer's time does not count against it."""
        now = self._clock()
        reg = self._store.get(registration_id)
        if (
            reg is not None
            and reg.owner == caller
            and reg.status is RegistrationStatus.OPEN
            and reg.expires_at is not None
            and reg.expires_at <= now
        ):
            in_review = self.in_review(reg)
            if in_review is not None:
                reg = self.save(reg, expires_at=in_review.expires_at)
        return check_owner(reg, caller, now)

    def held_by(self, caller: str) -> list[Registration]:
        """The caller's registrations and de-registrations, and the delegated registrations made for
        them (委托登记: the caller signed in with the phone the trustee gave as the owner's), oldest
        first: the vehicles whose cards are, or were, the caller's."""
        mine = {r.registration_id: r for r in self._store.of_owner(caller)}
        for reg in self._store.registered_for(caller):
            mine.setdefault(reg.registration_id, reg)
        return sorted(mine.values(), key=lambda r: r.created_at)

    def flow(self, reg: Registration) -> Flow | None:
        return self._verification.flow(reg.flow_id, reg.owner) if reg.flow_id else None

    def in_review(self, reg: Registration) -> Flow | None:
        """The registration's flow when a reviewer has it (None too when the flow is gone)."""
        try:
            flow = self.flow(reg)
        except NotFound:
            return None
        return flow if flow is not None and flow.status is FlowStatus.IN_REVIEW else None

    def save(self, reg: Registration, **changes: object) -> Registration:
        """Store ``reg`` with ``changes``; ``registration.changed`` (409) if it moved meanwhile."""
        return self._store.save(changed(reg, self._clock(), **changes))
