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

from datetime import date
from typing import TYPE_CHECKING

from pydantic import AwareDatetime, ConfigDict, Field

from chalicelib.api.audit import REASON_DESCRIPTION, read_of, record_reads, reveal_reason
from chalicelib.api.http import ApiModel, Blueprint, Call, PageQuery, route
from chalicelib.audit.domain import RecordKind
from chalicelib.core import deps
from chalicelib.core.auth import OEM_ROLES, REVEAL_ROLES, Principal, Role

if TYPE_CHECKING:
    from chalicelib.fleet.actual_users import EnterpriseCard
    from chalicelib.fleet.actual_users_domain import ActualUser, ActualUserInput

bp = Blueprint(__name__)

#: The enterprise's own accounts (the service checks whom each acts for).
ENTERPRISE_ROLES = frozenset({Role.ACCOUNT, Role.ENTERPRISE_LEGAL, Role.ENTERPRISE_AGENT})

STATE_ZH = {
    "pending": "登记中",
    "registered": "已登记",
    "deregistered": "已注销",
    "unregistered": "未登记",
}

ID_TYPE_ZH = {
    "resident_id": "居民身份证",
    "hk_macau_permit": "港澳居民居住证",
    "taiwan_permit": "台湾居民居住证",
    "foreign_permanent_id": "外国人永久居留身份证",
    "hk_macau_pass": "港澳居民来往内地通行证",
    "taiwan_pass": "台湾居民来往大陆通行证",
    "passport": "护照",
}

ACTION_RECORDED = "actual_user.recorded"
ACTION_ENDED = "actual_user.ended"


class ActualUserBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, description="实际使用人姓名")
    id_type: str = Field(min_length=1, max_length=32, description="证件类型: " + " | ".join(ID_TYPE_ZH))
    id_number: str = Field(min_length=1, max_length=40, description="证件号码")
    phone: str = Field(min_length=1, max_length=20, description="联系电话 (mobile)")
    valid_from: date = Field(description="开始使用日期 (China; at most one day ahead)")
    valid_to: date | None = Field(default=None, description="结束日期 (exclusive; none: until changed)")


class EndBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    valid_to: date | None = Field(default=None, description="结束日期 (default: today, China)")


class ReasonOnlyQuery(ApiModel):
    reason: str | None = Field(default=None, max_length=1000, description=REASON_DESCRIPTION)


class ActualUserView(ApiModel):
    record_id: str
    iccid: str
    name: str
    id_type: str
    id_type_zh: str
    id_number: str
    phone: str
    masked: bool = Field(description="true: name, ID number and phone are masked")
    valid_from: date
    valid_to: date | None = None
    current: bool = Field(description="the card's actual user today (China)")
    created_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    push_state: str = Field(description="not_wanted | pending | accepted | rejected (the operator's answer)")
    push_state_zh: str
    push_reason: str | None = Field(default=None, description="the operator's reason, when rejected")


class ActualUserList(ApiModel):
    iccid: str
    items: list[ActualUserView] = Field(description="newest first")


class EnterpriseCardView(ApiModel):
    iccid: str
    msisdn: str = Field(description="masked")
    operator: str
    state: str
    state_zh: str
    batch_id: str | None = Field(default=None, description="the fleet batch that registered it, when known")
    actual_user: ActualUserView | None = Field(default=None, description="today's actual user, masked")


class EnterpriseVehicleView(ApiModel):
    vin: str
    brand: str | None = None
    model: str | None = None
    colour: str | None = None
    cards: list[EnterpriseCardView]


class EnterpriseVehicleList(ApiModel):
    items: list[EnterpriseVehicleView]
    next_cursor: str | None = None


def _acting(call: Call) -> tuple[str, Principal]:
    """The enterprise the caller acts for now (its session alive), and the caller."""
    deps.accounts().require_live_session(call.user)
    return deps.agent_grants().acting_enterprise(call.user), call.user


def _view(record: ActualUser, *, reveal: bool) -> ActualUserView:
    from chalicelib.fleet.actual_users_domain import PUSH_STATE_ZH
    from chalicelib.kernel.clock import china_day, utc_now

    shown = record.clear() if reveal else record.masked()
    return ActualUserView(
        record_id=record.record_id,
        iccid=record.iccid,
        name=shown["name"],
        id_type=record.id_type.value,
        id_type_zh=ID_TYPE_ZH.get(record.id_type.value, record.id_type.value),
        id_number=shown["id_number"],
        phone=shown["phone"],
        masked=not reveal,
        valid_from=record.valid_from,
        valid_to=record.valid_to,
        current=record.current_on(china_day(utc_now())),
        created_at=record.created_at,
        ended_at=record.ended_at,
        push_state=record.push_state.value,
        push_state_zh=PUSH_STATE_ZH[record.push_state],
        push_reason=record.push_reason,
    )


def _card_view(entry: EnterpriseCard) -> EnterpriseCardView:
    from chalicelib.kernel.personal import mask_phone

    card = entry.card
    return EnterpriseCardView(
        iccid=card.iccid,
        msisdn=mask_phone(card.msisdn),
        operator=card.operator.value,
        state=card.state.value,
        state_zh=STATE_ZH.get(card.state.value, card.state.value),
        batch_id=entry.batch_id,
        actual_user=_view(entry.actual_user, reveal=False) if entry.actual_user else None,
    )


@route(
    bp,
    "/v1/enterprise/vehicles",
    summary="The vehicles whose cards are registered (or being registered) to the enterprise the caller "
    "acts for, with each card's state, batch and actual user (masked)",
    roles=ENTERPRISE_ROLES,
    response=EnterpriseVehicleList,
    query=PageQuery,
    errors=(400, 403),
    tags=("enterprise",),
)
def enterprise_vehicles(call: Call) -> EnterpriseVehicleList:
    uscc, _ = _acting(call)
    query: PageQuery = call.query
    entries, cursor = deps.actual_users().vehicles(uscc, query.limit, query.cursor)
    vehicles: dict[str, EnterpriseVehicleView] = {}
    for entry in entries:  # a page's cards grouped by vehicle, in the order first met
        vin = entry.card.vin
        if vin not in vehicles:
            v = entry.vehicle
            vehicles[vin] = EnterpriseVehicleView(
                vin=vin,
                brand=v.brand if v else None,
                model=v.model if v else None,
                colour=v.colour if v else None,
                cards=[],
            )
        vehicles[vin].cards.append(_card_view(entry))
    return EnterpriseVehicleList(items=list(vehicles.values()), next_cursor=cursor)


@route(
    bp,
    "/v1/enterprise/cards/{iccid}/actual-users",
    summary="The actual users (实际使用人) of one of the enterprise's cards, newest first, masked; OEM staff "
    "who may read in clear see them with ?reason= (recorded in the read log)",
    roles=ENTERPRISE_ROLES | OEM_ROLES,
    response=ActualUserList,
    query=ReasonOnlyQuery,
    errors=(403, 404, 422, 503),
    tags=("enterprise",),
)
def card_actual_users(call: Call, iccid: str) -> ActualUserList:
    staff = bool(call.user.roles & OEM_ROLES) and not call.user.roles & ENTERPRISE_ROLES
    if staff:
        reason = reveal_reason(call, bool(call.user.roles & REVEAL_ROLES))
        records = deps.actual_users().history(None, iccid)
        if not records and deps.inventory_repo().get_card(iccid) is None:
            from chalicelib.fleet.actual_users_domain import card_not_found

            raise card_not_found()
        if reason is not None:
            read = read_of(
                RecordKind.CARD, iccid, ["actual_user.name", "actual_user.id_number", "actual_user.phone"]
            )
            if records and read is not None:
                record_reads(call, [read], reason)
        reveal = reason is not None
    else:
        uscc, _ = _acting(call)
        records = deps.actual_users().history(uscc, iccid)
        reveal = False
    return ActualUserList(iccid=iccid, items=[_view(r, reveal=reveal) for r in records])


def _input(body: ActualUserBody) -> ActualUserInput:
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
    if body.id_type not in ID_TYPE_ZH:
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
    body=ActualUserBody,
    response=ActualUserView,
    status=201,
    errors=(403, 404, 409),
    tags=("enterprise",),
)
def record_actual_user(call: Call, iccid: str) -> ActualUserView:
    uscc, user = _acting(call)
    wanted = _input(call.body)
    record = deps.actual_users().record(uscc, user.subject, iccid, wanted)
    deps.enterprise_actions().record(
        uscc, user, ACTION_RECORDED, {"iccid": iccid, "record_id": record.record_id}
    )
    return _view(record, reveal=False)


@route(
    bp,
    "/v1/enterprise/cards/{iccid}/actual-users/{record_id}/end",
    method="POST",
    summary="End an actual user of one of the enterprise's cards (nobody follows); pushed like a change",
    roles=ENTERPRISE_ROLES,
    body=EndBody,
    response=ActualUserView,
    errors=(403, 404, 409),
    tags=("enterprise",),
)
def end_actual_user(call: Call, iccid: str, record_id: str) -> ActualUserView:
    uscc, user = _acting(call)
    body: EndBody = call.body
    record = deps.actual_users().end(uscc, user.subject, iccid, record_id, body.valid_to)
    deps.enterprise_actions().record(uscc, user, ACTION_ENDED, {"iccid": iccid, "record_id": record_id})
    return _view(record, reveal=False)
