"""The models of the enterprise's vehicle and actual-user routes (``chalicelib.api.enterprise_cards``) and
the views built from its cards, loaded on their first use: a cold start of the app builds none of them."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from pydantic import AwareDatetime, ConfigDict, Field

from chalicelib.api.audit import REASON_DESCRIPTION
from chalicelib.api.models import ApiModel

if TYPE_CHECKING:
    from chalicelib.fleet.actual_users import EnterpriseCard
    from chalicelib.fleet.actual_users_domain import ActualUser

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


def actual_user_view(record: ActualUser, *, reveal: bool) -> ActualUserView:
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


def card_view(entry: EnterpriseCard) -> EnterpriseCardView:
    from chalicelib.kernel.personal import mask_phone

    card = entry.card
    return EnterpriseCardView(
        iccid=card.iccid,
        msisdn=mask_phone(card.msisdn),
        operator=card.operator.value,
        state=card.state.value,
        state_zh=STATE_ZH.get(card.state.value, card.state.value),
        batch_id=entry.batch_id,
        actual_user=actual_user_view(entry.actual_user, reveal=False) if entry.actual_user else None,
    )
