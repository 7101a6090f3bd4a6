"""Ports of fleet batches: where batches and the vehicles they claim are kept, and what the batch needs
to know of the OEM's inventory."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from chalicelib.fleet.domain import BatchKind, BatchStatus, FleetBatch


@dataclass(frozen=True)
class VehicleFacts:
    """What a batch needs of a vehicle of the inventory: who sold it, its cards' states and, when its
    cards are registered to an enterprise, that enterprise's USCC."""

    vin: str
    dealer_code: str | None
    card_states: tuple[str, ...]
    holder_uscc: str | None = None

    @property
    def any_registered(self) -> bool:
        """A card of the vehicle is registered, or on its way to be (pending)."""
        return any(s in ("registered", "pending") for s in self.card_states)

    @property
    def all_registered(self) -> bool:
        return bool(self.card_states) and all(s == "registered" for s in self.card_states)


@dataclass(frozen=True)
class VehicleRegistration:
    """A vehicle registered to an enterprise by a completed registration batch, and its responsible
    person (keyed hash of the ID type and number)."""

    vin: str
    uscc: str
    batch_id: str
    responsible_id_hash: str | None


class FleetInventory(ABC):
    """The inventory as batches read it."""

    @abstractmethod
    def vehicles(self, vins: Iterable[str]) -> dict[str, VehicleFacts]:
        """The facts of each known VIN (unknown ones are absent)."""


class BatchStore(ABC):
    """Batches, and the claims of their vehicles (a vehicle is in one open batch at most)."""

    @abstractmethod
    def create(self, batch: FleetBatch) -> None: ...

    @abstractmethod
    def get(self, batch_id: str) -> FleetBatch | None: ...

    @abstractmethod
    def save(self, batch: FleetBatch, expected_version: int) -> FleetBatch:
        """Write ``batch`` (its version already one up) if the stored one is still at
        ``expected_version``; ``fleet.batch_changed`` otherwise."""

    @abstractmethod
    def listing(
        self,
        uscc: str,
        kind: BatchKind | None,
        status: BatchStatus | None,
        limit: int,
        cursor: str | None,
    ) -> tuple[Sequence[FleetBatch], str | None]:
        """A page of the enterprise's batches, newest first."""

    @abstractmethod
    def add_pushed(self, batch_id: str, delta: int) -> FleetBatch:
        """Add ``delta`` to the batch's cards pushed, atomically (its version unchanged)."""

    @abstractmethod
    def claim(self, batch_id: str, vins: Sequence[str]) -> dict[str, str]:
        """Claim each VIN for the batch; those another batch holds are not claimed and are returned
        with that batch's id."""

    @abstractmethod
    def release(self, batch_id: str, vins: Iterable[str]) -> None:
        """Let go of the batch's claims of ``vins`` (another batch's claim is left alone)."""

    @abstractmethod
    def claims(self, vins: Iterable[str]) -> dict[str, str]:
        """The batch holding each claimed VIN."""

    @abstractmethod
    def registrations(self, vins: Iterable[str]) -> dict[str, VehicleRegistration]:
        """The registration batch each VIN was last registered by (absent when none)."""

    @abstractmethod
    def mark_registered(self, batch: FleetBatch) -> None:
        """The batch's vehicles are registered to its enterprise under its responsible person."""

    @abstractmethod
    def mark_deregistered(self, vins: Iterable[str]) -> None: ...
