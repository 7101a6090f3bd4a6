"""``cheka card show``: a card as the operations staff read it — states, pushes and history in words
(Chinese, the code in brackets), every actor named (the owner, a reviewer, a dealer, the telecom
operator, the CLI, a system job), times in China time (``2026-11-29 20:15``), the holder masked; none of
the bookkeeping behind it (versions, hashes, party ids, message ids)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from chalicelib.cards.domain.inventory import CardEvent, CardFunction, CardState
from chalicelib.cards.domain.lifecycle import (
    LifecycleEvent,
    Retirement,
)
from chalicelib.cards.ports import PartyRepository
from chalicelib.cards.views import CardStatus
from chalicelib.cli.tally import KIND_NAMES
from chalicelib.kernel.clock import CHINA
from chalicelib.kernel.operators import Operator
from chalicelib.kernel.personal import Party, PartyView
from chalicelib.operators.domain.outbox import OutboxStatus, OutboxSummary

TIME_FORMAT = "%Y-%m-%d %H:%M"

OPERATOR_NAMES = {
    Operator.CHINA_MOBILE: "中国移动",
    Operator.CHINA_UNICOM: "中国联通",
    Operator.CHINA_TELECOM: "中国电信",
    Operator.CHINA_BROADNET: "中国广电",
}
STATE_NAMES = {
    CardState.UNREGISTERED: "未登记",
    CardState.PENDING: "登记中",
    CardState.REGISTERED: "已登记",
    CardState.DEREGISTERED: "已注销",
}
FUNCTION_NAMES = {
    CardFunction.EMERGENCY: "紧急呼叫",
    CardFunction.TELEMATICS: "车联网服务",
    CardFunction.DATA: "车载上网",
}
PUSH_STATUS_NAMES = {
    OutboxStatus.PENDING: "待推送",
    OutboxStatus.SENT: "待运营商答复",
    OutboxStatus.ACCEPTED: "运营商已接受",
    OutboxStatus.REJECTED: "运营商已拒绝",
    OutboxStatus.DEAD: "推送已放弃，可用 cheka outbox retry 重发",
    OutboxStatus.SUPERSEDED: "已作废（被后来的变更取代）",
}
RETIREMENT_NAMES = {Retirement.SCRAPPED: "车辆报废", Retirement.SWAPPED_OUT: "更换零部件，已拆下"}
EVENT_NAMES = {
    "imported": "导入库存",
    "facts_updated": "库存信息更新",
    LifecycleEvent.REGISTRATION_SUBMITTED: "提交实名登记",
    LifecycleEvent.REGISTRATION_ACCEPTED: "运营商接受实名登记",
    LifecycleEvent.REGISTRATION_REJECTED: "运营商拒绝实名登记",
    LifecycleEvent.DEREGISTRATION_REQUESTED: "申请实名注销",
    LifecycleEvent.DEREGISTERED: "实名注销",
    LifecycleEvent.EMERGENCY_ONLY: "仅保留紧急呼叫",
    LifecycleEvent.DEREGISTRATION_CONFIRMED: "运营商确认实名注销",
    LifecycleEvent.DEREGISTRATION_REFUSED: "运营商拒绝实名注销",
    LifecycleEvent.TRANSFER_OPENED: "经销商发起过户",
    LifecycleEvent.TRANSFER_REQUESTED: "申请过户",
    LifecycleEvent.TRANSFERRED: "过户完成",
    LifecycleEvent.TRANSFER_REJECTED: "运营商拒绝过户",
    LifecycleEvent.SPOT_CHECK: "抽查",
    LifecycleEvent.SCRAPPED: "车辆报废",
    LifecycleEvent.SWAPPED_OUT: "更换零部件（拆下）",
    LifecycleEvent.SWAPPED_IN: "更换零部件（装上）",
}

_OWNER_SUBJECT = re.compile(r"^u[0-9a-f]{32}$")
#: A spot check's history entry names the operator's message it answers: internal, left out.
_MESSAGE_PREFIX = re.compile(r"^message \S+: ")
#: Transfers name the parties by id in their entries: shown as the holders they are.
_PARTY = re.compile(r"\bparty ([0-9a-f]{32})\b")


def china_time(at: datetime | None) -> str | None:
    return at.astimezone(CHINA).strftime(TIME_FORMAT) if at is not None else None


def words(name: str, code: str) -> str:
    """``已登记 (registered)``."""
    return f"{name} ({code})"


def actor_name(actor: str, event: str) -> str:
    """Who did it, in words, with the account where there is one."""
    if actor.startswith("operator:"):
        code = actor.split(":", 1)[1]
        try:
            return f"运营商 {OPERATOR_NAMES[Operator(code)]}"
        except ValueError:
            return f"运营商 {code}"
    if actor == "cli":
        return "运维人员 (cheka 命令行)"
    if actor == "seed":
        return "演示数据 (cheka seed)"
    if actor == "system":
        return "系统任务"
    if _OWNER_SUBJECT.match(actor):
        return f"车主 (账号 {actor[:9]}…)"
    if event == LifecycleEvent.SPOT_CHECK:
        return f"审核员 {actor}"
    if event == LifecycleEvent.TRANSFER_OPENED:
        return f"经销商 {actor}"
    return f"平台账号 {actor}"


def holder_words(party: Party | None) -> str | None:
    """The holder, masked: ``张* · 1101**********3272`` (a company's name and USCC are public)."""
    if party is None:
        return None
    view = PartyView.of(party, reveal=False)
    return f"{view.name} · {view.id_number}"


class _Holders:
    """Parties looked up once each, shown masked."""

    def __init__(self, parties: PartyRepository):
        self._parties = parties
        self._seen: dict[str, str | None] = {}

    def __call__(self, party_id: str | None) -> str | None:
        if not party_id:
            return None
        if party_id not in self._seen:
            self._seen[party_id] = holder_words(self._parties.get(party_id)) or "（登记人资料已按期删除）"
        return self._seen[party_id]


def _reason(event: CardEvent, holders: _Holders) -> str | None:
    """The entry's note with the parties it names shown as their (masked) holders, no message id."""
    if not event.reason:
        return None
    named = _PARTY.sub(lambda m: holders(m.group(1)) or "-", event.reason)
    return _MESSAGE_PREFIX.sub("", named)


def _state_change(event: CardEvent) -> str:
    to = STATE_NAMES[event.to_state]
    if event.from_state is None or event.from_state is event.to_state:
        return to
    return f"{STATE_NAMES[event.from_state]} → {to}"


def card_words(status: CardStatus, parties: PartyRepository, push: OutboxSummary | None) -> dict[str, Any]:
    """The card show's document."""
    card, life = status.card, status.lifecycle
    holders = _Holders(parties)
    doc: dict[str, Any] = {
        "iccid": card.iccid,
        "msisdn": card.msisdn,
        "vin": card.vin,
        "operator": words(OPERATOR_NAMES[card.operator], card.operator.value),
        "state": words(STATE_NAMES[card.state], card.state.value),
        "functions": "、".join(FUNCTION_NAMES[f] for f in card.functions),
        "holder": holders(card.holder_id),
        "updated": china_time(card.updated_at),
    }
    if life.retired is not None:
        retired = words(RETIREMENT_NAMES[life.retired], life.retired.value)
        doc["retired"] = f"{retired}, {china_time(life.retired_at)}"
    if life.message_kind is not None:
        kind = life.message_kind
        current: dict[str, Any] = {"kind": words(KIND_NAMES[kind], kind.value)}
        if push is not None:
            current["status"] = words(PUSH_STATUS_NAMES[push.status], push.status.value)
            current["since"] = china_time(push.updated_at)
            if push.attempts:
                current["attempts"] = push.attempts
            if push.last_error and push.status in (OutboxStatus.PENDING, OutboxStatus.DEAD):
                current["last_error"] = push.last_error
            if push.status is OutboxStatus.DEAD:
                # The one id the operations staff need: what `cheka outbox retry` takes.
                current["retry_with"] = f"cheka outbox retry {push.record_id}"
        else:
            current["status"] = "待运营商答复" if life.awaiting else "已答复"
        doc["push"] = current
    if life.pending_holder_id:
        doc["transfer_to"] = holders(life.pending_holder_id)
    if status.last_refusal is not None:
        refusal = status.last_refusal
        text = refusal.message_zh or refusal.message_en or "运营商未说明原因"
        doc["last_refusal"] = f"{text} ({refusal.code})" if refusal.code else text
    doc["history"] = [
        {
            "at": china_time(event.at),
            "event": words(EVENT_NAMES.get(event.event, event.event), event.event),
            "state": _state_change(event),
            "by": actor_name(event.actor, event.event),
            **({"note": note} if (note := _reason(event, holders)) else {}),
        }
        for event in sorted(status.history, key=lambda e: e.seq)
    ]
    doc["times"] = "China time (Asia/Shanghai)"
    return doc
