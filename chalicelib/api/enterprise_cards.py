"""The enterprise's vehicles and the actual users of its cards (实际使用人, 第九条(四)), as its legal-person
account and its agents see them; the OEM's staff read a card's actual users too.

- ``GET /v1/enterprise/vehicles``: the vehicles whose cards are registered (or being registered) to the
  enterprise the caller acts for, a page at a time, each card with its state, the batch that registered
  it when known, and its actual user of today (masked).
- ``GET /v1/enterprise/cards/{iccid}/actual-users``: the card's actual users, newest first, masked; staff
  who may read in clear get them with ``?reason=`` (recorded in the read log).
- ``POST /v1/enterprise/cards/{iccid}/actual-users``: a new actual user from a date; the one of the
  moment ends on that date.
- ``POST /v1/enterprise/cards/{iccid}/actual-users/{record_id}/end``: the actual user ends, nobody
  follows.

Whom the caller acts for is re-read on every call (``AgentGrants.acting``); every change is recorded in
the enterprise action log under the caller's name. A card not registered to that enterprise is answered
404 as unknown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.api.audit import read_of, record_reads, reveal_reason
from chalicelib.api.http import Blueprint, Call, route
from chalicelib.core import deps, lazy
from chalicelib.core.auth import OEM_ROLES, REVEAL_ROLES, Principal, Role

if TYPE_CHECKING:
    from chalicelib.api import enterprise_cards_views as views
    from chalicelib.api import models as api_models
    from chalicelib.audit import domain as audit_domain
    from chalicelib.fleet.actual_users_domain import ActualUserInput
else:
    api_models = lazy.module("chalicelib.api.models")
    audit_domain = lazy.module("chalicelib.audit.domain")
    views = lazy.module("chalicelib.api.enterprise_cards_views")

bp = Blueprint(__name__)

#: The enterprise's own accounts (the service checks whom each acts for).
ENTERPRISE_ROLES = frozenset({Role.ACCOUNT, Role.ENTERPRISE_LEGAL, Role.ENTERPRISE_AGENT})

ACTION_RECORDED = "actual_user.recorded"
ACTION_ENDED = "actual_user.ended"


def _acting(call: Call) -> tuple[str, Principal]:
    """The enterprise the caller acts for now (its session alive), and the caller."""
    deps.accounts().require_live_session(call.user)
    return deps.agent_grants().acting_enterprise(call.user), call.user


@route(
    bp,
    "/v1/enterprise/vehicles",
    summary="The vehicles whose cards are registered (or being registered) to the enterprise the caller "
    "acts for, with each card's state, batch and actual user (masked)",
    roles=ENTERPRISE_ROLES,
    response=lambda: views.EnterpriseVehicleList,
    query=lambda: api_models.PageQuery,
    errors=(400, 403),
    tags=("enterprise",),
)
def enterprise_vehicles(call: Call) -> views.EnterpriseVehicleList:
    uscc, _ = _acting(call)
    query: api_models.PageQuery = call.query
    entries, cursor = deps.actual_users().vehicles(uscc, query.limit, query.cursor)
    vehicles: dict[str, views.EnterpriseVehicleView] = {}
    for entry in entries:  # a page's cards grouped by vehicle, in the order first met
        vin = entry.card.vin
        if vin not in vehicles:
            v = entry.vehicle
            vehicles[vin] = views.EnterpriseVehicleView(
                vin=vin,
                brand=v.brand if v else None,
                model=v.model if v else None,
                colour=v.colour if v else None,
                cards=[],
            )
        vehicles[vin].cards.append(views.card_view(entry))
    return views.EnterpriseVehicleList(items=list(vehicles.values()), next_cursor=cursor)


@route(
    bp,
    "/v1/enterprise/cards/{iccid}/actual-users",
    summary="The actual users (实际使用人) of one of the enterprise's cards, newest first, masked; OEM staff "
    "who may read in clear see them with ?reason= (recorded in the read log)",
    roles=ENTERPRISE_ROLES | OEM_ROLES,
    response=lambda: views.ActualUserList,
    query=lambda: views.ReasonOnlyQuery,
    errors=(403, 404, 422, 503),
    tags=("enterprise",),
)
def card_actual_users(call: Call, iccid: str) -> views.ActualUserList:
    staff = bool(call.user.roles & OEM_ROLES) and not call.user.roles & ENTERPRISE_ROLES
    if staff:
        reason = reveal_reason(call, bool(call.user.roles & REVEAL_ROLES))
        records = deps.actual_users().history(None, iccid)
        if not records and deps.inventory_repo().get_card(iccid) is None:
            from chalicelib.fleet.actual_users_domain import card_not_found

            raise card_not_found()
        if reason is not None:
            read = read_of(
                audit_domain.RecordKind.CARD,
                iccid,
                ["actual_user.name", "actual_user.id_number", "actual_user.phone"],
            )
            if records and read is not None:
                record_reads(call, [read], reason)
        reveal = reason is not None
    else:
        uscc, _ = _acting(call)
        records = deps.actual_users().history(uscc, iccid)
        reveal = False
    return views.ActualUserList(
        iccid=iccid, items=[views.actual_user_view(r, reveal=reveal) for r in records]
    )


def _input(body: views.ActualUserBody) -> ActualUserInput:
    """The typed actual user, each field checked as every ID and phone is (every error at once)."""
    from chalicelib.fleet.actual_users_domain import ActualUserInput
    from chalicelib.kernel import validators
    from chalicelib.kernel.errors import InvalidField, ValidationErrors
    from chalicelib.kernel.names import TextKind, clean_text
    from chalicelib.kernel.personal import IdType

    errors: list[InvalidField] = []
    name = id_number = phone = ""
    id_type: IdType | None = None
    try:
        name = clean_text(TextKind.NAME, body.name, field="name")
    except InvalidField as err:
        errors.append(err)
    if body.id_type not in views.ID_TYPE_ZH:
        errors.append(
            InvalidField(
                "actual_user.id_type",
                "证件类型无效（应为个人有效证件）",
                "Unknown ID type (a person's ID document is needed)",
                field="id_type",
            )
        )
    else:
        id_type = IdType(body.id_type)
        try:
            id_number = validators.validate(id_type.value, body.id_number, field="id_number").value
        except InvalidField as err:
            errors.append(err)
    try:
        phone = validators.mobile(body.phone, field="phone").value
    except InvalidField as err:
        errors.append(err)
    if errors:
        raise errors[0] if len(errors) == 1 else ValidationErrors(errors)
    assert id_type is not None
    return ActualUserInput(
        name=name,
        id_type=id_type,
        id_number=id_number,
        phone=phone,
        valid_from=body.valid_from,
        valid_to=body.valid_to,
    )


@route(
    bp,
    "/v1/enterprise/cards/{iccid}/actual-users",
    method="POST",
    summary="Record the actual user (实际使用人) of one of the enterprise's cards from a date; the one of "
    "the moment ends on that date. Pushed to the card's operator when it wants actual users",
    roles=ENTERPRISE_ROLES,
    body=lambda: views.ActualUserBody,
    response=lambda: views.ActualUserView,
    status=201,
    errors=(403, 404, 409),
    tags=("enterprise",),
)
def record_actual_user(call: Call, iccid: str) -> views.ActualUserView:
    uscc, user = _acting(call)
    wanted = _input(call.body)
    record = deps.actual_users().record(uscc, user.subject, iccid, wanted)
    deps.enterprise_actions().record(
        uscc, user, ACTION_RECORDED, {"iccid": iccid, "record_id": record.record_id}
    )
    return views.actual_user_view(record, reveal=False)


@route(
    bp,
    "/v1/enterprise/cards/{iccid}/actual-users/{record_id}/end",
    method="POST",
    summary="End an actual user of one of the enterprise's cards (nobody follows); pushed like a change",
    roles=ENTERPRISE_ROLES,
    body=lambda: views.EndBody,
    response=lambda: views.ActualUserView,
    errors=(403, 404, 409),
    tags=("enterprise",),
)
def end_actual_user(call: Call, iccid: str, record_id: str) -> views.ActualUserView:
    uscc, user = _acting(call)
    body: views.EndBody = call.body
    record = deps.actual_users().end(uscc, user.subject, iccid, record_id, body.valid_to)
    deps.enterprise_actions().record(uscc, user, ACTION_ENDED, {"iccid": iccid, "record_id": record_id})
    return views.actual_user_view(record, reveal=False)
