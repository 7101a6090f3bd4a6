"""The registrations as the use cases read and change them: the caller's own (expiry counted, the
reviewer's time not), its verification flow, versioned saves, and the receipt number (受理编号) a
submission is given."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from chalicelib.kernel.clock import CHINA, Clock, utc_now
from chalicelib.kernel.errors import NotFound
from chalicelib.registration.domain.registrations import (
    Registration,
    RegistrationKind,
    RegistrationStatus,
    changed,
    check_owner,
)
from chalicelib.registration.ports import RegistrationRepository, SealedRegistration
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import Flow, FlowStatus
from chalicelib.verification.service import VerificationService

#: Crockford's base 32: no I, L, O or U, so that a number read out over the phone is not misheard.
_RECEIPT_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def receipt_prefix(reg: Registration) -> str:
    """登记 DJ, 过户 GH, 注销 ZX: the kind of business, read at a glance."""
    if reg.kind is RegistrationKind.DEREGISTRATION:
        return "ZX"
    return "GH" if reg.is_transfer else "DJ"


def receipt_candidates(reg: Registration, at: datetime) -> Iterator[str]:
    """The receipt numbers ``reg`` may be given, first choice first: kind, the China day of the
    submission and six characters derived from the registration id (``DJ20261129-4K7M9Q``). A
    candidate another registration holds already is passed over (``Registrations.issue_receipt``)."""
    day = at.astimezone(CHINA).strftime("%Y%m%d")
    attempt = 0
    while True:
        digest = hashlib.sha256(f"{reg.registration_id}:{attempt}".encode()).digest()
        bits = int.from_bytes(digest[:4], "big") >> 2  # 30 bits: six characters
        tail = "".join(_RECEIPT_ALPHABET[(bits >> shift) & 31] for shift in range(25, -1, -5))
        yield f"{receipt_prefix(reg)}{day}-{tail}"
        attempt += 1


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

    def issue_receipt(self, reg: Registration, at: datetime) -> str:
        """``reg``'s receipt number: the one it has, else the first candidate no other registration
        holds (the store's receipt index is the check)."""
        if reg.receipt_no:
            return reg.receipt_no
        for candidate in receipt_candidates(reg, at):
            holder = self._store.by_receipt(candidate)
            if holder is None or holder.registration_id == reg.registration_id:
                return candidate
        raise AssertionError("unreachable: the candidates never end")

    def by_receipt(self, receipt_no: str) -> Registration | None:
        """The registration given ``receipt_no`` (support looks it up for an owner who calls)."""
        return self._store.by_receipt(receipt_no.strip().upper())

    def save(self, reg: Registration, **changes: object) -> Registration:
        """Store ``reg`` with ``changes``; ``registration.changed`` (409) if it moved meanwhile."""
        return self._store.save(changed(reg, self._clock(), **changes))

    def seal(self, reg: Registration, **changes: object) -> SealedRegistration:
        """``reg`` with ``changes``, its personal fields sealed and nothing written: a step seals before
        it spends what a KMS failure could not give back, then stores it with ``save_sealed``."""
        return self._store.seal(changed(reg, self._clock(), **changes))

    def save_sealed(self, ready: SealedRegistration) -> Registration:
        """Store a registration ``seal`` prepared; ``registration.changed`` (409) if it moved meanwhile."""
        return self._store.save_sealed(ready)

    def save_noted(
        self, reg: Registration, kind: EvidenceKind, public: dict[str, Any], /, **changes: object
    ) -> Registration:
        """``save`` with the entry of the registration's flow evidence that says why (``kind``,
        ``public``; its actor the owner): both land or neither, so a step refused by the store leaves
        the registration and the evidence as they were. Without a flow, the save alone."""
        if reg.flow_id is None:
            return self.save(reg, **changes)
        return self._store.save_noted(
            self.seal(reg, **changes), self._verification.evidence, reg.flow_id, kind, public
        )
