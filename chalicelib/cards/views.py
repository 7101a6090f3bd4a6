"""Read models for the API: vehicles and cards with personal data masked by role."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel

from chalicelib.cards.domain import Card, CardEvent, CardFunction, CardState
from chalicelib.cards.ports import InventoryRepository, PartyRepository
from chalicelib.core.auth import OEM_ROLES, Principal
from chalicelib.kernel.errors import NotFound
from chalicelib.kernel.operators import Operator
from chalicelib.kernel.personal import PartyView, mask_phone


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
        raise NotFound("vehicle.not_found", "未找到该车辆", "No vehicle with this VIN", field="vin")
    cards = [_card_view(c, parties, who) for c in repo.cards_of_vehicle(vin)]
    return VehicleView(**vehicle.model_dump(), cards=cards)


def _card_or_404(card: Card | None) -> Card:
    if card is None:
        raise NotFound("card.not_found", "未找到该车联网卡", "No such card", field="iccid")
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
