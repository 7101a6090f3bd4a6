"""What the dealer context needs from the outside world: its vehicles by dealer code, hand-offs, and
the registry of dealer accounts per dealer code."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime

from chalicelib.cards.domain.inventory import Vehicle
from chalicelib.dealers.domain import DealerAccount, Handoff


class DealerVehicles(ABC):
    @abstractmethod
    def page(self, dealer_code: str, limit: int, cursor: str | None) -> tuple[list[Vehicle], str | None]:
        """A page of the dealer's vehicles by VIN (an index on the dealer code, never a scan)."""

    @abstractmethod
    def any_of(self, dealer_code: str) -> bool:
        """Whether the inventory holds a vehicle of this dealer code."""


class HandoffStore(ABC):
    @abstractmethod
    def create(self, handoff: Handoff) -> None: ...

    @abstractmethod
    def get(self, code_hash: str) -> Handoff | None: ...

    @abstractmethod
    def use(self, handoff: Handoff, owner: str, now: datetime) -> bool:
        """Mark the hand-off used by ``owner`` if it is still unused and unexpired; False otherwise."""

    @abstractmethod
    def attach(self, code_hash: str, registration_id: str) -> None:
        """Name the registration the hand-off opened."""


class DealerAccountRegistry(ABC):
    @abstractmethod
    def add(self, entry: DealerAccount) -> None: ...

    @abstractmethod
    def of_dealer(self, dealer_code: str) -> list[DealerAccount]: ...

    @abstractmethod
    def get(self, dealer_code: str, account_id: str) -> DealerAccount | None: ...
