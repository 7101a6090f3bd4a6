"""Card lifecycle for OEM admins: transfer (过户), scrap (报废), part replacement (更换零部件), and the
operator push outbox (what is pending, sent or dead; retry a dead push)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.api.http import Blueprint, Call, route
from chalicelib.core import deps, lazy
from chalicelib.core.auth import Role
from chalicelib.kernel.errors import NotFound

if TYPE_CHECKING:
    from chalicelib.api import lifecycle_views as models
    from chalicelib.cards import holders, views
    from chalicelib.cards.views import CardOutcome, ScrapResult, SwapResult, TransferOpened
    from chalicelib.kernel import validators
    from chalicelib.kernel.personal import Party
    from chalicelib.operators.domain import outbox
    from chalicelib.operators.domain.outbox import OutboxPage, OutboxSummary
else:
    models = lazy.module("chalicelib.api.lifecycle_views")
    holders = lazy.module("chalicelib.cards.holders")
    views = lazy.module("chalicelib.cards.views")
    validators = lazy.module("chalicelib.kernel.validators")
    outbox = lazy.module("chalicelib.operators.domain.outbox")

bp = Blueprint(__name__)

ADMIN = frozenset({Role.ADMIN})
READERS = frozenset({Role.ADMIN, Role.AUDITOR})


def _party(party_id: str, field: str) -> Party:
    party = deps.party_repo().get(party_id)
    if party is None:
        raise NotFound("party.not_found", "未找到该登记人", "No party with this id", field=field)
    return party


@route(
    bp,
    "/v1/admin/cards/{iccid}/transfer",
    method="POST",
    summary="Transfer a registered card to a new holder (过户): pushed; effective when the operator accepts",
    roles=ADMIN,
    body=lambda: models.TransferBody,
    response=lambda: views.CardOutcome,
    errors=(404, 409),
    tags=("lifecycle",),
)
def transfer(call: Call, iccid: str) -> CardOutcome:
    iccid = validators.validate("iccid", iccid, field="iccid").value
    body: models.TransferBody = call.body
    responsible = _party(body.responsible_id, "responsible_id") if body.responsible_id else None
    holder = holders.holder_from_party(_party(body.holder_id, "holder_id"), deps.keyed_hasher(), responsible)
    reason = f"OEM correction: {body.reason.strip()}"
    return deps.lifecycle().transfer(iccid, holder, call.actor, reason)


@route(
    bp,
    "/v1/admin/vehicles/{vin}/transfers",
    method="POST",
    summary="过户 at a dealer's request: the buyer's phone shows possession; the buyer then registers in H5",
    roles=ADMIN,
    body=lambda: models.TransferOpenBody,
    response=lambda: views.TransferOpened,
    status=201,
    errors=(404, 409, 422),
    tags=("lifecycle",),
)
def open_transfer(call: Call, vin: str) -> TransferOpened:
    vin = validators.validate("vin", vin, field="vin").value
    body: models.TransferOpenBody = call.body
    phone = validators.validate("mobile", body.buyer_phone, field="buyer_phone").value
    phone_hash = deps.sms_code_service().phone_hash(phone)
    return deps.lifecycle().open_transfer(vin, phone_hash, body.dealer_code, call.actor)


@route(
    bp,
    "/v1/admin/vehicles/{vin}/scrap",
    method="POST",
    summary="Scrap a vehicle (报废): every card de-registered, pushed and retired (idempotent)",
    roles=ADMIN,
    response=lambda: views.ScrapResult,
    errors=(404, 409, 422),
    tags=("lifecycle",),
)
def scrap(call: Call, vin: str) -> ScrapResult:
    vin = validators.validate("vin", vin, field="vin").value
    return deps.lifecycle().scrap(vin, call.actor)


@route(
    bp,
    "/v1/admin/vehicles/{vin}/swap",
    method="POST",
    summary="Replace the part holding a card (更换零部件): old card de-registered, new card fitted",
    roles=ADMIN,
    body=lambda: models.SwapBody,
    response=lambda: views.SwapResult,
    errors=(404, 409),
    tags=("lifecycle",),
)
def swap(call: Call, vin: str) -> SwapResult:
    vin = validators.validate("vin", vin, field="vin").value
    body: models.SwapBody = call.body
    old = validators.validate("iccid", body.old_iccid, field="old_iccid").value
    new = validators.validate("iccid", body.new_iccid, field="new_iccid").value
    return deps.lifecycle().swap(vin, old, new, call.actor)


@route(
    bp,
    "/v1/admin/outbox",
    summary="Operator pushes by status (pending, sent, dead), a page at a time",
    roles=READERS,
    response=lambda: outbox.OutboxPage,
    errors=(400, 422),
    query=lambda: models.OutboxQuery,
    tags=("lifecycle",),
)
def list_outbox(call: Call) -> OutboxPage:
    query: models.OutboxQuery = call.query
    from chalicelib.operators import dispatch

    return dispatch.list_records(deps.outbox_store(), query.status, query.limit, query.cursor or None)


@route(
    bp,
    "/v1/admin/outbox/{record_id}/retry",
    method="POST",
    summary="Push a dead record again with a fresh attempt budget",
    roles=ADMIN,
    response=lambda: outbox.OutboxSummary,
    errors=(404, 409, 422),
    tags=("lifecycle",),
)
def retry_outbox(call: Call, record_id: str) -> OutboxSummary:
    from chalicelib.operators import dispatch

    return dispatch.retry_record(deps.outbox_store(), deps.push_queue(), record_id)
