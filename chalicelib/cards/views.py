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
from chalicelib.kernel.personal import PartyKind, PartyView, mask_phone
from chalicelib.operators.domain.outbox import CallbackNote
from chalicelib.operators.ports import OutboxStore


class CardRegistration(BaseModel):
    """The registration a card's current push belongs to, and the flows holding its evidence (the OEM's
    and its auditors' way from a card to ``GET /v1/flows/{flow_id}/evidence``)."""

    registration_id: str
    kind: str
    status: str
    flow_ids: list[str]


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
    #: Retired for good (更换零部件: swapped_out, 报废: scrapped) and when; None while in service.
    retired: Retirement | None = None
    retired_at: datetime | None = None
    #: The vehicle's card in service now (a retired card stays on the VIN, marked, not current).
    current: bool = True
    #: OEM roles only: the card's registration and its flows (None when it has none).
    registration: CardRegistration | None = None


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


def _card_view(card: Card, parties: PartyRepository, who: Principal, clear: bool = False) -> CardView:
    """The card; with ``clear`` (a reason given, the read recorded by the caller), the MSISDN in clear for
    OEM roles and the holder in clear for the roles that may read personal data. Masked otherwise."""
    holder = None
    if card.holder_id:
        party = parties.get(card.holder_id)
        if party is not None:
            holder = PartyView.of(party, reveal=clear and who.reveals_personal_data)
    msisdn = card.msisdn if clear and who.has_any(OEM_ROLES) else mask_phone(card.msisdn)
    return CardView(**card.model_dump(exclude={"msisdn", "holder_id"}), msisdn=msisdn, holder=holder)


def clear_fields(view: CardView) -> list[str]:
    """The personal fields ``view`` shows in clear (for the read log): the MSISDN, the holder's."""
    fields = [] if "*" in view.msisdn else ["msisdn"]
    holder = view.holder
    if holder is not None and not holder.masked:
        person = holder.kind is not PartyKind.ENTERPRISE  # a company's name and USCC are public
        shown = {"name": person, "id_number": person, "address": True, "phone": True}
        fields += [f"holder.{k}" for k, personal in shown.items() if personal and getattr(holder, k)]
    return fields


def _retirement(view: CardView, life: CardLifecycle | None) -> CardView:
    if life is None or life.retired is None:
        return view
    return view.model_copy(update={"retired": life.retired, "retired_at": life.retired_at, "current": False})


def vehicle_view(
    vin: str,
    repo: InventoryRepository,
    parties: PartyRepository,
    who: Principal,
    store: OutboxStore | None = None,
    clear: bool = False,
) -> VehicleView:
    """The vehicle and its cards; with ``store``, a retired card is marked (why, when) and listed after
    the card in service (the one fitted now); ``clear`` as for ``_card_view``."""
    vehicle = repo.get_vehicle(vin)
    if vehicle is None:
        raise vehicle_not_found()
    found = repo.cards_of_vehicle(vin)
    lives = store.lifecycles([c.iccid for c in found]) if store is not None and found else {}
    cards = [_retirement(_card_view(c, parties, who, clear), lives.get(c.iccid)) for c in found]
    cards.sort(key=lambda c: not c.current)
    return VehicleView(**vehicle.model_dump(exclude={"owner_phone_hash"}), cards=cards)


def _card_or_404(card: Card | None) -> Card:
    if card is None:
        raise card_not_found()
    return card


def card_view(
    iccid: str,
    repo: InventoryRepository,
    parties: PartyRepository,
    who: Principal,
    store: OutboxStore | None = None,
    clear: bool = False,
) -> CardView:
    """The card; with ``store``, marked when retired; ``clear`` as for ``_card_view``."""
    view = _card_view(_card_or_404(repo.get_card(iccid)), parties, who, clear)
    return _retirement(view, store.lifecycle(iccid) if store is not None else None)


def card_by_msisdn_view(
    msisdn: str, repo: InventoryRepository, parties: PartyRepository, who: Principal, clear: bool = False
) -> CardView:
    return _card_view(_card_or_404(repo.card_by_msisdn(msisdn)), parties, who, clear)


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


class TransferOpened(BaseModel):
    """过户 at a dealer's request: the vehicle takes the buyer's phone as its sales contact (the buyer
    shows possession by it and registers in the H5 client); each card's history notes it."""

    vin: str
    dealer_code: str
    cards: list[CardOutcome]


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
