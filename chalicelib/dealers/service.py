"""Dealers (第二十条): whose vehicles a dealer account sees, its listing, and the on-the-spot hand-off of
an owner's registration to the H5 client on the dealer's tablet.

A dealer's code is re-read from its account on every call (a disabled account, or a token whose ``dlr``
claim names another code, sees nothing). A vehicle of another dealer is answered exactly as an unknown
one (``vehicle.not_found``): nobody learns which VINs exist by asking.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from chalicelib.cards.domain.inventory import Card, Vehicle, card_not_found, vehicle_not_found
from chalicelib.cards.ports import InventoryRepository
from chalicelib.core.auth import Principal
from chalicelib.dealers.domain import (
    HANDOFF_CODE,
    DealerAccount,
    Handoff,
    dealer_not_found,
    handoff_hash_input,
    handoff_invalid,
    not_a_dealer,
)
from chalicelib.dealers.ports import DealerAccountRegistry, DealerVehicles, HandoffStore
from chalicelib.enterprise.agents import AccountFacts
from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.crypto import KeyedHasher
from chalicelib.kernel.paging import MAX_PAGE

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IssuedHandoff:
    """A hand-off and its code in clear: shown to the dealer's tablet once, never stored."""

    handoff: Handoff
    code: str


class Dealers:
    def __init__(
        self,
        vehicles: DealerVehicles,
        handoffs: HandoffStore,
        registry: DealerAccountRegistry,
        inventory: InventoryRepository,
        hasher: KeyedHasher,
        *,
        account_of: Callable[[str], AccountFacts | None],
        handoff_ttl: timedelta = timedelta(minutes=10),
        clock: Clock = utc_now,
        new_code: Callable[[], str] = lambda: secrets.token_urlsafe(24),
    ) -> None:
        self._vehicles = vehicles
        self._handoffs = handoffs
        self._registry = registry
        self._inventory = inventory
        self._hasher = hasher
        self._account_of = account_of
        self._ttl = handoff_ttl
        self._clock = clock
        self._new_code = new_code

    # -- whose vehicles --------------------------------------------------------------------------

    def dealer_of(self, principal: Principal) -> str | None:
        """The dealer code the caller's account holds now (None: not an active dealer account, or the
        token's claim names another code)."""
        account = self._account_of(principal.subject)
        if account is None or not account.active or account.kind != "dealer" or not account.dealer_code:
            return None
        if principal.dealer is not None and principal.dealer != account.dealer_code:
            return None
        return account.dealer_code

    def require_dealer(self, principal: Principal) -> str:
        code = self.dealer_of(principal)
        if code is None:
            raise not_a_dealer()
        return code

    def vehicle_for(self, principal: Principal, vin: str) -> Vehicle:
        """The vehicle if it was sold through the caller's dealer code; ``vehicle.not_found`` otherwise
        (the same answer as for an unknown VIN)."""
        code = self.dealer_of(principal)
        vehicle = self._inventory.get_vehicle(vin)
        if code is None or vehicle is None or vehicle.dealer_code != code:
            raise vehicle_not_found()
        return vehicle

    def card_for(self, principal: Principal, card: Card | None) -> Card:
        """The card if its vehicle is the caller's dealer's; ``card.not_found`` otherwise."""
        code = self.dealer_of(principal)
        if card is None or code is None:
            raise card_not_found()
        vehicle = self._inventory.get_vehicle(card.vin)
        if vehicle is None or vehicle.dealer_code != code:
            raise card_not_found()
        return card

    def vehicles(
        self, principal: Principal, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[tuple[Vehicle, list[Card]]], str | None]:
        """A page of the caller's dealer's vehicles, each with its cards."""
        code = self.require_dealer(principal)
        found, next_cursor = self._vehicles.page(code, max(1, min(limit, MAX_PAGE)), cursor)
        return [(v, self._inventory.cards_of_vehicle(v.vin)) for v in found], next_cursor

    # -- the hand-off ----------------------------------------------------------------------------

    def start_assisted(self, principal: Principal, vin: str) -> IssuedHandoff:
        """A single-use hand-off of ``vin`` (a vehicle of the caller's dealer) to the owner."""
        code_of_dealer = self.require_dealer(principal)
        vehicle = self.vehicle_for(principal, vin)
        now = self._clock()
        code = self._new_code()
        handoff = Handoff(
            code_hash=self._hash(code),
            vin=vehicle.vin,
            dealer_code=code_of_dealer,
            dealer_account_id=principal.subject,
            created_at=now,
            expires_at=now + self._ttl,
        )
        self._handoffs.create(handoff)
        logger.info("assisted registration handed off", extra={"dealer_code": code_of_dealer})
        return IssuedHandoff(handoff, code)

    def redeem(self, code: str, owner: str) -> Handoff:
        """Use the hand-off ``code`` for the owner ``owner`` (once): its VIN and dealer. Refused alike
        when unknown, used, expired, or when the dealer's account or the vehicle's dealer changed."""
        if not HANDOFF_CODE.match(code or ""):
            raise handoff_invalid()
        handoff = self._handoffs.get(self._hash(code))
        now = self._clock()
        if handoff is None or handoff.used_at is not None or now >= handoff.expires_at:
            raise handoff_invalid()
        dealer = self._account_of(handoff.dealer_account_id)
        vehicle = self._inventory.get_vehicle(handoff.vin)
        if (
            dealer is None
            or not dealer.active
            or dealer.dealer_code != handoff.dealer_code
            or vehicle is None
            or vehicle.dealer_code != handoff.dealer_code
        ):
            raise handoff_invalid()
        if not self._handoffs.use(handoff, owner, now):
            raise handoff_invalid()
        return handoff

    def attach(self, handoff: Handoff, registration_id: str) -> None:
        self._handoffs.attach(handoff.code_hash, registration_id)

    def _hash(self, code: str) -> str:
        return self._hasher.digest(handoff_hash_input(code))

    # -- the OEM's registry of dealer accounts -----------------------------------------------------

    def require_known_code(self, dealer_code: str) -> None:
        """The dealer code names vehicles of the inventory (``dealer.not_found`` otherwise)."""
        if not self._vehicles.any_of(dealer_code):
            raise dealer_not_found()

    def register_account(self, entry: DealerAccount) -> None:
        self._registry.add(entry)

    def accounts_of(self, dealer_code: str) -> list[DealerAccount]:
        return self._registry.of_dealer(dealer_code)

    def account_entry(self, dealer_code: str, account_id: str) -> DealerAccount | None:
        return self._registry.get(dealer_code, account_id)
