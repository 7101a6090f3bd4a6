"""一证多卡 (第十一条): one individual's ID holds at most 10 active cards per operator online; more go
through the operator's business hall. Enterprise fleets are checked by the operator (第九条)."""

from __future__ import annotations

from enum import StrEnum

from chalicelib.kernel.errors import Conflict
from chalicelib.kernel.operators import Operator


class HolderKind(StrEnum):
    INDIVIDUAL = "individual"
    ENTERPRISE = "enterprise"


#: 第十一条: more than 10 cards of one operator under one person's ID go through the operator's hall.
CARDS_PER_ID_LIMIT = 10


OPERATOR_NAMES: dict[Operator, tuple[str, str]] = {
    Operator.CHINA_MOBILE: ("中国移动", "China Mobile"),
    Operator.CHINA_UNICOM: ("中国联通", "China Unicom"),
    Operator.CHINA_TELECOM: ("中国电信", "China Telecom"),
    Operator.CHINA_BROADNET: ("中国广电", "China Broadnet"),
}


def counts_toward_limit(kind: HolderKind) -> bool:
    """第十一条 limits individual users (个人用户); enterprise fleets are checked by the operator (第九条)."""
    return kind is HolderKind.INDIVIDUAL


def cards_per_id_exceeded(operator: Operator, limit: int = CARDS_PER_ID_LIMIT) -> Conflict:
    zh, en = OPERATOR_NAMES[operator]
    return Conflict(
        "registration.cards_per_id_exceeded",
        f"该证件在{zh}名下的车联网卡已达 {limit} 张（一证多卡上限，《车联网卡实名登记实施细则》第十一条），"
        f"无法在线登记。请携带本人有效证件前往{zh}营业厅办理。",
        f"This ID document already holds {limit} {en} vehicle cards, the limit (Article 11), so it "
        f"cannot be registered online. Please visit a {en} business hall with your ID document.",
        field="id_number",
        details={"operator": operator.value, "limit": limit},
    )


def check_cards_per_id(active: int, operator: Operator, limit: int = CARDS_PER_ID_LIMIT) -> None:
    """Refuse one more card when ``active`` cards (pending or registered) are already at the limit."""
    if active >= limit:
        raise cards_per_id_exceeded(operator, limit)
