"""In-memory fakes of the ports, for unit tests of services (no AWS, no mocks)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from chalicelib.cards.domain.inventory import (
    Card,
    CardEvent,
    CardState,
    Vehicle,
    card_not_found,
    check_transition,
    functions_for,
)
from chalicelib.cards.ports import InventoryRepository, PartyRepository
from chalicelib.kernel.errors import Conflict
from chalicelib.kernel.personal import IdType, Party


class FakeInventory(InventoryRepository):
    def __init__(self) -> None:
        self.vehicles: dict[str, Vehicle] = {}
        self.cards: dict[str, Card] = {}
        self.events: dict[str, list[CardEvent]] = {}
        self.msisdns: dict[str, str] = {}
        self.writes = 0

    def get_vehicle(self, vin: str) -> Vehicle | None:
        return self.vehicles.get(vin)

    def cards_of_vehicle(self, vin: str) -> list[Card]:
        return sorted((c for c in self.cards.values() if c.vin == vin), key=lambda c: c.iccid)

    def get_card(self, iccid: str) -> Card | None:
        return self.cards.get(iccid)

    def card_by_msisdn(self, msisdn: str) -> Card | None:
        held = self.cards.get(self.msisdns.get(msisdn, ""))
        if held is not None and held.msisdn == msisdn:
            return held
        return next((c for c in self.cards.values() if c.msisdn == msisdn), None)

    def msisdn_holders(self, msisdns: Iterable[str]) -> dict[str, str]:
        return {m: self.msisdns[m] for m in msisdns if m in self.msisdns}

    def claim_msisdns(self, claims: Mapping[str, str]) -> set[str]:
        lost = {m for m, iccid in claims.items() if self.msisdns.get(m, iccid) != iccid}
        self.msisdns.update({m: iccid for m, iccid in claims.items() if m not in lost})
        return lost

    def release_msisdn(self, msisdn: str, iccid: str) -> None:
        if self.msisdns.get(msisdn) == iccid:
            del self.msisdns[msisdn]

    def get_vehicles(self, vins: Iterable[str]) -> dict[str, Vehicle]:
        return {v: self.vehicles[v] for v in vins if v in self.vehicles}

    def get_cards(self, iccids: Iterable[str]) -> dict[str, Card]:
        return {i: self.cards[i] for i in iccids if i in self.cards}

    def put_new(
        self, vehicles: Sequence[Vehicle], cards: Sequence[Card], events: Sequence[CardEvent]
    ) -> None:
        for v in vehicles:
            self.vehicles[v.vin] = v
        for c in cards:
            self.cards[c.iccid] = c
        for e in events:
            self.events.setdefault(e.iccid, []).append(e)
        self.writes += len(vehicles) + len(cards) + len(events)

    def update_vehicle(self, vehicle: Vehicle) -> None:
        self.vehicles[vehicle.vin] = vehicle
        self.writes += 1

    def _check(self, card: Card) -> None:
        stored = self.cards.get(card.iccid)
        if stored is None or stored.version != card.version or stored.state != card.state:
            raise Conflict("card.changed", "车联网卡已被其他操作修改", "The card changed", field="iccid")

    def update_card_facts(self, card: Card, msisdn: str, event: CardEvent) -> Card:
        self._check(card)
        if self.msisdns.get(msisdn, card.iccid) != card.iccid:
            raise Conflict(
                "inventory.msisdn_taken", "号码已属于另一张卡", "The MSISDN is taken", field="msisdn"
            )
        self.release_msisdn(card.msisdn, card.iccid)
        self.msisdns[msisdn] = card.iccid
        new = card.model_copy(update={"msisdn": msisdn, "version": event.seq})
        self.cards[card.iccid] = new
        self.events.setdefault(card.iccid, []).append(event)
        self.writes += 2
        return new

    def transition(self, card: Card, target: CardState, event: CardEvent, holder_id: str | None) -> Card:
        self._check(card)
        new = card.model_copy(
            update={
                "state": target,
                "functions": functions_for(target),
                "version": event.seq,
                "holder_id": holder_id,
            }
        )
        self.cards[card.iccid] = new
        self.events.setdefault(card.iccid, []).append(event)
        self.writes += 2
        return new

    def history(self, iccid: str) -> list[CardEvent]:
        return list(self.events.get(iccid, []))


class FakeParties(PartyRepository):
    def __init__(self) -> None:
        self.parties: dict[str, Party] = {}

    def put(self, party: Party) -> None:
        self.parties[party.party_id] = party

    def get(self, party_id: str) -> Party | None:
        return self.parties.get(party_id)

    def find_by_id_number(self, id_type: IdType, id_number: str) -> list[Party]:
        return [p for p in self.parties.values() if p.id_type == id_type and p.id_number == id_number]

    def delete(self, party_id: str) -> None:
        self.parties.pop(party_id, None)


def put_card_state(
    repo: InventoryRepository,
    iccid: str,
    target: CardState,
    *,
    actor: str,
    reason: str | None = None,
    holder_id: str | None = None,
) -> Card:
    """Set up a card's state through the repository alone (no outbox, no operator): for tests of the
    inventory and its reads. The move is checked against the state machine and guarded by version."""
    card = repo.get_card(iccid)
    if card is None:
        raise card_not_found()
    check_transition(iccid, card.state, target)
    keep_holder = holder_id or (
        card.holder_id if target in (CardState.PENDING, CardState.REGISTERED) else None
    )
    event = CardEvent(
        iccid=iccid,
        seq=card.version + 1,
        at=datetime.now(UTC),
        event="transition",
        from_state=card.state,
        to_state=target,
        actor=actor,
        reason=reason,
    )
    return repo.transition(card, target, event, keep_holder)
