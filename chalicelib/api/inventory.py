"""Inventory: import (OEM admin) and look-ups by VIN, ICCID and MSISDN (OEM staff and dealers)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib.api.audit import read_of, record_reads, reveal_reason
from chalicelib.api.http import JSON, Blueprint, Call, route
from chalicelib.core import deps, lazy
from chalicelib.core.auth import OEM_ROLES, Principal, Role
from chalicelib.core.settings import get_settings
from chalicelib.kernel.errors import BadRequest

if TYPE_CHECKING:
    from chalicelib.api import inventory_views as models
    from chalicelib.api import models as api_models
    from chalicelib.audit import domain as audit_domain
    from chalicelib.cards import inventory, views
    from chalicelib.kernel import validators
else:
    models = lazy.module("chalicelib.api.inventory_views")
    api_models = lazy.module("chalicelib.api.models")
    audit_domain = lazy.module("chalicelib.audit.domain")
    inventory = lazy.module("chalicelib.cards.inventory")
    views = lazy.module("chalicelib.cards.views")
    validators = lazy.module("chalicelib.kernel.validators")

bp = Blueprint(__name__)

LOOKUP_ROLES = OEM_ROLES | {Role.DEALER}


def _dealer_only(who: Principal) -> bool:
    """A dealer account (no OEM role): it sees only its dealer's vehicles (第二十条), and no holder."""
    return who.has_any({Role.DEALER}) and not who.has_any(OEM_ROLES)


def _dealer_card(who: Principal, card: Any) -> None:
    """A card of another dealer's vehicle is answered as an unknown card (no probing)."""
    if _dealer_only(who):
        deps.dealers().card_for(who, card)


def _no_holder(who: Principal, card: views.CardView) -> views.CardView:
    return card.model_copy(update={"holder": None}) if _dealer_only(who) else card


def _clear_reason(call: Call) -> str | None:
    """OEM staff see a card's MSISDN (and reviewers and auditors its holder) in clear with ?reason=."""
    return reveal_reason(call, call.user.has_any(OEM_ROLES))


def _record_cards(call: Call, reason: str | None, cards: list[views.CardView]) -> None:
    """Record each card shown in clear in the read log, before the answer leaves."""
    if reason is None:
        return
    reads = [read_of(audit_domain.RecordKind.CARD, card.iccid, views.clear_fields(card)) for card in cards]
    record_reads(call, [r for r in reads if r is not None], reason)


CSV = "text/csv"


@route(
    bp,
    "/v1/admin/inventory/imports",
    method="POST",
    summary="Import vehicles and cards from CSV or JSON (idempotent, per-row error report)",
    roles=frozenset({Role.ADMIN}),
    response=lambda: inventory.ImportReport,
    content_types=(CSV, JSON),
    raw_body=True,
    tags=("inventory",),
)
def import_inventory(call: Call) -> inventory.ImportReport:
    content_type = call.request.headers.get("content-type", "").split(";")[0].strip().lower()
    fmt: inventory.ImportFormat = "csv" if content_type == CSV else "json"
    if not call.body:
        raise BadRequest("request.empty", "请求内容为空", "The request body is empty")
    rows = inventory.parse_inventory(call.body, fmt, max_rows=get_settings().max_import_rows)
    return inventory.import_inventory(
        rows, deps.inventory_repo(), actor=call.actor, phone_hash=deps.sms_code_service().phone_hash
    )


@route(
    bp,
    "/v1/vehicles/{vin}",
    summary="A vehicle with its cards (personal data masked; OEM staff see it in clear by role with "
    "?reason=, recorded in the read log; a retired card marked, after the one in service)",
    roles=LOOKUP_ROLES,
    response=lambda: views.VehicleView,
    query=lambda: api_models.ReasonQuery,
    errors=(404, 422, 503),
    tags=("inventory",),
)
def get_vehicle(call: Call, vin: str) -> views.VehicleView:
    reason = _clear_reason(call)
    vin = validators.validate("vin", vin, field="vin").value
    if _dealer_only(call.user):
        deps.dealers().vehicle_for(call.user, vin)  # another dealer's vehicle: vehicle.not_found
    view = views.vehicle_view(
        vin,
        deps.inventory_repo(),
        deps.party_repo(),
        call.user,
        deps.outbox_store(),
        clear=reason is not None,
    )
    _record_cards(call, reason, view.cards)
    if _dealer_only(call.user):
        view = view.model_copy(update={"cards": [_no_holder(call.user, c) for c in view.cards]})
    return view


@route(
    bp,
    "/v1/cards/{iccid}",
    summary="A card by ICCID (OEM roles: with its registration and the flows holding its evidence; "
    "personal data in clear by role with ?reason=, recorded in the read log)",
    roles=LOOKUP_ROLES,
    response=lambda: views.CardView,
    query=lambda: api_models.ReasonQuery,
    errors=(404, 422, 503),
    tags=("inventory",),
)
def get_card(call: Call, iccid: str) -> views.CardView:
    reason = _clear_reason(call)
    iccid = validators.validate("iccid", iccid, field="iccid").value
    _dealer_card(call.user, deps.inventory_repo().get_card(iccid))
    view = views.card_view(
        iccid,
        deps.inventory_repo(),
        deps.party_repo(),
        call.user,
        deps.outbox_store(),
        clear=reason is not None,
    )
    _record_cards(call, reason, [view])
    view = _no_holder(call.user, view)
    if call.user.has_any(OEM_ROLES):
        link = deps.spot_checks().registration_of_card(iccid)
        if link is not None:
            view = view.model_copy(update={"registration": views.CardRegistration(**link.model_dump())})
    return view


@route(
    bp,
    "/v1/cards",
    summary="A card by MSISDN (?msisdn=; personal data in clear by role with ?reason=, recorded in the "
    "read log)",
    roles=LOOKUP_ROLES,
    response=lambda: views.CardView,
    errors=(400, 404, 422, 503),
    query=lambda: models.CardQuery,
    tags=("inventory",),
)
def find_card(call: Call) -> views.CardView:
    reason = _clear_reason(call)
    msisdn = validators.validate("msisdn", call.query.msisdn, field="msisdn").value
    _dealer_card(call.user, deps.inventory_repo().card_by_msisdn(msisdn))
    view = views.card_by_msisdn_view(
        msisdn, deps.inventory_repo(), deps.party_repo(), call.user, clear=reason is not None
    )
    _record_cards(call, reason, [view])
    return _no_holder(call.user, view)


@route(
    bp,
    "/v1/cards/{iccid}/history",
    summary="A card's history (every state change, never overwritten)",
    roles=LOOKUP_ROLES,
    response=lambda: views.CardHistoryView,
    errors=(404, 422),
    tags=("inventory",),
)
def card_history(call: Call, iccid: str) -> views.CardHistoryView:
    iccid = validators.validate("iccid", iccid, field="iccid").value
    _dealer_card(call.user, deps.inventory_repo().get_card(iccid))
    return views.card_history_view(iccid, deps.inventory_repo())
