"""Ports: what services need from the outside world. Adapters implement them; tests use fakes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence

from chalicelib.cards.domain.inventory import Card, CardEvent, CardState, Vehicle
from chalicelib.kernel.personal import IdType, Party


class InventoryRepository(ABC):
    """Vehicles, cards and card history."""

    @abstractmethod
    def get_vehicle(self, vin: str) -> Vehicle | None: ...

    @abstractmethod
    def cards_of_vehicle(self, vin: str) -> list[Card]: ...

    @abstractmethod
    def get_card(self, iccid: str) -> Card | None: ...

    @abstractmethod
    def card_by_msisdn(self, msisdn: str) -> Card | None: ...

    @abstractmethod
    def get_vehicles(self, vins: Iterable[str]) -> dict[str, Vehicle]:
        """Batch read: the ones that exist, by VIN."""

    @abstractmethod
    def get_cards(self, iccids: Iterable[str]) -> dict[str, Card]:
        """Batch read: the ones that exist, by ICCID."""

    @abstractmethod
    def msisdn_holders(self, msisdns: Iterable[str]) -> dict[str, str]:
        """Batch read: the ICCID of the card each of these numbers belongs to, where one does."""

    @abstractmethod
    def claim_msisdns(self, claims: Mapping[str, str]) -> set[str]:
        """Give each number (key) to its card (value) unless another card holds it, each by a conditional
        write (of two concurrent claims of one number exactly one wins); returns the numbers not given."""

    @abstractmethod
    def release_msisdn(self, msisdn: str, iccid: str) -> None:
        """Give the number back if the card ``iccid`` holds it (a claim whose card was not written)."""

    @abstractmethod
    def put_new(
        self, vehicles: Sequence[Vehicle], cards: Sequence[Card], events: Sequence[CardEvent]
    ) -> None:
        """Batch write items known not to exist yet (a concurrent writer may race: last write wins)."""

    @abstractmethod
    def update_vehicle(self, vehicle: Vehicle) -> None:
        """Replace a vehicle's facts (it must exist)."""

    @abstractmethod
    def update_card_facts(self, card: Card, msisdn: str, event: CardEvent) -> Card:
        """Change a card's number keeping its state, the old number given back in the same write;
        refused if the card changed meanwhile or another card holds ``msisdn``."""

    @abstractmethod
    def transition(self, card: Card, target: CardState, event: CardEvent, holder_id: str | None) -> Card:
        """Move ``card`` (as read, at its version) to ``target`` and append ``event``, atomically.

        Raises ``Conflict`` when the card changed since it was read.
        """

    @abstractmethod
    def history(self, iccid: str) -> list[CardEvent]: ...


class PartyRepository(ABC):
    """People and companies cards are registered to; personal fields encrypted at rest."""

    @abstractmethod
    def put(self, party: Party) -> None: ...

    @abstractmethod
    def get(self, party_id: str) -> Party | None: ...

    @abstractmethod
    def find_by_id_number(self, id_type: IdType, id_number: str) -> list[Party]: ...

    @abstractmethod
    def delete(self, party_id: str) -> None:
        """Remove a party nothing refers to (a registration whose push was refused)."""
