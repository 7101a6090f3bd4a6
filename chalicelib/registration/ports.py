"""Port of the owner registrations' store."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict

from chalicelib.kernel.crypto import SealedFields
from chalicelib.registration.domain.registrations import Registration

if TYPE_CHECKING:
    from chalicelib.verification.domain.evidence import EvidenceKind
    from chalicelib.verification.ports import EvidenceLog


@dataclass(frozen=True)
class SealedRegistration:
    """A registration ready to be saved, its personal fields (the phone, a delegation's owner) already
    sealed: saving it asks KMS nothing. A step seals first when it then spends what a failure could not
    give back (the phone's SMS code), so that KMS failing spends nothing."""

    registration: Registration
    #: The sealed fields (None: the store seals nothing, or there is nothing to seal).
    sealed: SealedFields | None = None


class RegistrationRepository(ABC):
    @abstractmethod
    def create(self, reg: Registration) -> None: ...

    @abstractmethod
    def create_if_room(self, reg: Registration, limit: int, now: datetime) -> bool:
        """Create ``reg`` unless its owner already holds ``limit`` open registrations at ``now``
        (``count_open``); False when refused. Decided against the owner's other starts one at a time: a
        burst of starts by one owner cannot all pass."""

    @abstractmethod
    def get(self, registration_id: str) -> Registration | None: ...

    @abstractmethod
    def save(self, reg: Registration) -> Registration:
        """Store ``reg`` (its ``version`` one above the stored one) or raise ``registration.changed``."""

    def seal(self, reg: Registration) -> SealedRegistration:
        """``reg`` with its personal fields sealed, nothing written (``save_sealed`` stores it)."""
        return SealedRegistration(reg)

    def save_sealed(self, ready: SealedRegistration) -> Registration:
        """``save`` of a registration sealed by ``seal``: KMS is not asked again."""
        return self.save(ready.registration)

    def save_noted(
        self,
        ready: SealedRegistration,
        evidence: EvidenceLog,
        flow_id: str,
        kind: EvidenceKind,
        public: Mapping[str, Any],
    ) -> Registration:
        """``save_sealed`` and the entry of the registration's flow evidence that says why (its actor the
        owner), as one write where the stores can join them (this default: the registration, then the
        entry; a store that can overrides it)."""
        reg = self.save_sealed(ready)
        evidence.append(flow_id, kind, reg.owner, public)
        return reg

    @abstractmethod
    def of_owner(self, owner: str) -> list[Registration]:
        """The owner's registrations and de-registrations, oldest first."""

    @abstractmethod
    def registered_for(self, owner_subject: str) -> list[Registration]:
        """委托登记: the delegated registrations whose owner (the person the cards are registered to)
        signs in as ``owner_subject`` (``Delegation.owner_subject``), oldest first."""

    @abstractmethod
    def by_receipt(self, receipt_no: str) -> Registration | None:
        """The registration given the receipt number (受理编号) ``receipt_no``, if any."""

    @abstractmethod
    def link_pushes(self, registration_id: str, record_ids: list[str]) -> None:
        """Remember which registration each operator push belongs to."""

    @abstractmethod
    def by_push(self, record_id: str) -> Registration | None: ...

    @abstractmethod
    def expired_open(self, now: datetime, limit: int) -> list[Registration]: ...

    @abstractmethod
    def submitting(self, claimed_before: datetime, limit: int) -> list[Registration]:
        """Registrations claimed for submission before ``claimed_before`` and never finished."""

    @abstractmethod
    def delete_expired(self, reg: Registration, now: datetime) -> bool:
        """Delete an open registration still expired at ``now`` (False if it moved on meanwhile)."""


class HeadUnitMessage(BaseModel):
    """One code as the car's head unit shows it."""

    model_config = ConfigDict(frozen=True)

    message_id: str
    vin: str
    code: str
    text: str
    shown_at: AwareDatetime
    expires_at: AwareDatetime


class VehicleChannel(ABC):
    """The OEM's telematics (车联网平台): a message shown on a car's head unit (车机), addressed by VIN."""

    @abstractmethod
    def show_code(self, vin: str, code: str, expires_at: datetime) -> None:
        """Show a one-time code on the head unit of ``vin``'s car. A VIN the telematics does not know
        is not an error: nothing is shown (the caller must not learn whether the car exists)."""
