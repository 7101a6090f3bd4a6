"""Inventory: import (OEM admin) and look-ups by VIN, ICCID and MSISDN (OEM staff and dealers)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from chalice.app import Blueprint
from pydantic import Field

from chalicelib.api.http import JSON, ApiModel, Call, Refusal, route
from chalicelib.core import deps, lazy
from chalicelib.core.auth import OEM_ROLES, Role
from chalicelib.core.settings import get_settings
from chalicelib.kernel.errors import BadRequest

if TYPE_CHECKING:
    from chalicelib.cards import inventory, views
    from chalicelib.kernel import validators
else:
    inventory = lazy.module("chalicelib.cards.inventory")
    views = lazy.module("chalicelib.cards.views")
    validators = lazy.module("chalicelib.kernel.validators")

bp = Blueprint(__name__)

LOOKUP_ROLES = OEM_ROLES | {Role.DEALER}
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
    summary="A vehicle with its cards (personal data masked by role; a retired card marked, after the "
    "one in service)",
    roles=LOOKUP_ROLES,
    response=lambda: views.VehicleView,
    errors=(404, 422),
    tags=("inventory",),
)
def get_vehicle(call: Call, vin: str) -> views.VehicleView:
    vin = validators.validate("vin", vin, field="vin").value
    return views.vehicle_view(vin, deps.inventory_repo(), deps.party_repo(), call.user, deps.outbox_store())


@route(
    bp,
    "/v1/cards/{iccid}",
    summary="A card by ICCID (OEM roles: with its registration and the flows holding its evidence)",
    roles=LOOKUP_ROLES,
    response=lambda: views.CardView,
    errors=(404, 422),
    tags=("inventory",),
)
def get_card(call: Call, iccid: str) -> views.CardView:
    iccid = validators.validate("iccid", iccid, field="iccid").value
    view = views.card_view(iccid, deps.inventory_repo(), deps.party_repo(), call.user, deps.outbox_store())
    if call.user.has_any(OEM_ROLES):
        link = deps.spot_checks().registration_of_card(iccid)
        if link is not None:
            view = view.model_copy(update={"registration": views.CardRegistration(**link.model_dump())})
    return view


class CardQuery(ApiModel):
    msisdn: Annotated[
        str,
        Field(description="the card's 13-digit IoT number"),
        Refusal("msisdn.required", "请提供车联网卡号码", "Give ?msisdn=", status=400),
    ]


@route(
    bp,
    "/v1/cards",
    summary="A card by MSISDN (?msisdn=)",
    roles=LOOKUP_ROLES,
    response=lambda: views.CardView,
    errors=(400, 404, 422),
    query=CardQuery,
    tags=("inventory",),
)
def find_card(call: Call) -> views.CardView:
    msisdn = validators.validate("msisdn", call.query.msisdn, field="msisdn").value
    return views.card_by_msisdn_view(msisdn, deps.inventory_repo(), deps.party_repo(), call.user)


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
    return views.card_history_view(iccid, deps.inventory_repo())
