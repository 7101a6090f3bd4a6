"""Read models of the cards context: vehicles and cards with personal data masked by role, a card's
registration status, the outcome of a lifecycle step, and the reconciliation report."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel

from chalicelib.cards.domain.inventory import (
    Card,
    CardEvent,
    CardFunction,
    CardState,
    card_not_found,
    vehicle_not_found,
)
from chalicelib.cards.domain.lifecycle import CardLifecycle, Retirement
from chalicelib.cards.ports import InventoryRepository, PartyRepository
from chalicelib.core.auth import OEM_ROLES, Principal
from chalicelib.kernel.operators import Operator
from chalicelib.kernel.personal import PartyView, mask_phone
from chalicelib.operators.domain.outbox import CallbackNote
from chalicelib.operators.ports import OutboxStore


class CardView(BaseModel):
    iccid: str
    msisdn: str
    operator: Operator
    vin: str
    state: CardState
    functions: list[CardFunction]
    version: int
    updated_at: datetime | None
    holder: PartyView | None = None


class VehicleView(BaseModel):
    vin: str
    engine_no: str
    brand: str
    model: str
    colour: str
    production_date: date | None
    dealer_code: str | None
    cards: list[CardView]


class CardHistoryView(BaseModel):
    iccid: str
    events: list[CardEvent]


def _card_view(card: Card, parties: PartyRepository, who: Principal) -> CardView:
    holder = None
    if card.holder_id:
        party = parties.get(card.holder_id)
        if party is not None:
            holder = PartyView.of(party, reveal=who.reveals_personal_data)
    msisdn = card.msisdn if who.has_any(OEM_ROLES) else mask_phone(card.msisdn)
    return CardView(**card.model_dump(exclude={"msisdn", "holder_id"}), msisdn=msisdn, holder=holder)


def vehicle_view(
    vin: str, repo: InventoryRepository, parties: PartyRepository, who: Principal
) -> VehicleView:
    vehicle = repo.get_vehicle(vin)
    if vehicle is None:
        raise vehicle_not_found()
    cards = [_card_view(c, parties, who) for c in repo.cards_of_vehicle(vin)]
    return VehicleView(**vehicle.model_dump(exclude={"owner_phone_hash"}), cards=cards)


def _card_or_404(card: Card | None) -> Card:
    if card is None:
        raise card_not_found()
    return card


def card_view(iccid: str, repo: InventoryRepository, parties: PartyRepository, who: Principal) -> CardView:
    return _card_view(_card_or_404(repo.get_card(iccid)), parties, who)


def card_by_msisdn_view(
    msisdn: str, repo: InventoryRepository, parties: PartyRepository, who: Principal
) -> CardView:
    return _card_view(_card_or_404(repo.card_by_msisdn(msisdn)), parties, who)


def card_history_view(iccid: str, repo: InventoryRepository) -> CardHistoryView:
    _card_or_404(repo.get_card(iccid))
    return CardHistoryView(iccid=iccid, events=repo.history(iccid))


# -- the card lifecycle ------------------------------------------------------------------------------


class CardOutcome(BaseModel):
    """A card after a lifecycle step, and the push it caused (if any)."""

    iccid: str
    vin: str
    state: CardState
    functions: list[CardFunction]
    version: int
    record_id: str | None = None
    events: list[str]
    retired: Retirement | None = None


class ScrapResult(BaseModel):
    vin: str
    cards: list[CardOutcome]
    already_retired: list[str]


class SwapResult(BaseModel):
    vin: str
    old: CardOutcome
    new: CardOutcome


class CallbackResult(BaseModel):
    callback_id: str
    message_id: str
    iccid: str
    note: CallbackNote
    state: CardState | None = None


class Refusal(BaseModel):
    """The operator's last refusal, as the user reads it."""

    code: str | None
    message_zh: str | None
    message_en: str | None


class CardStatus(BaseModel):
    card: Card
    lifecycle: CardLifecycle
    last_refusal: Refusal | None
    history: list[CardEvent]


def card_status(iccid: str, repo: InventoryRepository, store: OutboxStore) -> CardStatus:
    """The card, its registration bookkeeping, the operator's last refusal and its history."""
    card = _card_or_404(repo.get_card(iccid))
    life = store.lifecycle(iccid)
    refusal = None
    if life.reason_code or life.reason_zh or life.reason_en:
        refusal = Refusal(code=life.reason_code, message_zh=life.reason_zh, message_en=life.reason_en)
    return CardStatus(card=card, lifecycle=life, last_refusal=refusal, history=repo.history(iccid))


# -- reconciliation ----------------------------------------------------------------------------------


class DriftKind(StrEnum):
    UNKNOWN_CARD = "unknown_card"  # the operator lists a card the platform does not have
    OTHER_OPERATOR = "other_operator"  # the platform has the card under another operator
    STATE = "state"  # registered on one side only
    HOLDER = "holder"  # registered to somebody else
    FUNCTIONS_EXCEED = "functions_exceed"  # more open than the state allows (第十四条)
    MISSING_AT_OPERATOR = "missing_at_operator"  # registered on the platform, not listed by the operator


class Drift(BaseModel):
    iccid: str
    kind: DriftKind
    platform: str | None = None
    operator: str | None = None


class ReconcileReport(BaseModel):
    operator: Operator
    listed: int = 0
    in_sync: int = 0
    in_flight: int = 0  # a push awaits its answer: either side may be right for now
    drift_count: int = 0
    by_kind: dict[str, int] = {}
    drifts: list[Drift] = []
    truncated: bool = False
