"""A submission and its outcome: who may claim it, whom the cards are registered to, and how the
registration ended, read from its cards' history since the submission (the operator's answers)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from chalicelib.cards.domain.inventory import CardEvent, CardState
from chalicelib.cards.domain.lifecycle import LifecycleEvent, transferred_from
from chalicelib.kernel.errors import Forbidden, InvalidField
from chalicelib.kernel.personal import IdType, Party
from chalicelib.registration.domain.registrations import (
    Registration,
    RegistrationKind,
    RegistrationStatus,
    Step,
)
from chalicelib.sms.domain import SIGNATURE
from chalicelib.verification.domain.flows import TypedIdentity, address_required

#: A claim older than this whose push never committed (the request died) may be submitted again.
STALE_CLAIM = timedelta(minutes=2)


def claimable(reg: Registration, now: datetime) -> bool:
    """Whether a submit may claim ``reg``: open, or claimed by a request that died (the claim gone
    stale; the caller has seen that its push never committed)."""
    if reg.status is RegistrationStatus.OPEN:
        return True
    return (
        reg.status is RegistrationStatus.SUBMITTING
        and reg.submitted_at is not None
        and now - reg.submitted_at > STALE_CLAIM
    )


def holder_party(reg: Registration, verified: TypedIdentity, now: datetime) -> Party:
    """The cards' holder: the owner who authorized a trustee, else the person the flow verified, whose
    address is required (422 ``identity.address_required``; a delegation requires the owner's)."""
    if reg.delegation is not None:
        d = reg.delegation
        # The operator's contact for the card is the owner's phone (given for them), not the trustee's.
        return Party(
            id_type=IdType(d.owner_id_type),
            id_number=d.owner_id_number,
            name=d.owner_name,
            address=d.owner_address,
            phone=d.owner_phone or reg.phone,
            id_valid_until=d.owner_id_valid_until,
            id_permanent=d.owner_id_permanent,
            created_at=now,
        )
    if not verified.address:
        # 第五条: the holder's address is registered with the other facts (typed, as on the document).
        raise address_required()
    return Party(
        id_type=IdType(verified.id_type),
        id_number=verified.id_number,
        name=verified.name,
        address=verified.address,
        phone=reg.phone,
        id_valid_until=verified.id_valid_until,
        id_permanent=verified.id_permanent,
        created_at=now,
    )


def holds(reg: Registration, caller: str) -> bool:
    """Whether ``caller`` is the holder of ``reg``'s cards: the person it verified, or, 委托登记, the
    owner it was made for (signed in with the phone given for them), never the trustee."""
    if reg.delegation is not None:
        return reg.delegation.owner_subject == caller
    return reg.owner == caller


def holder_phone_hash(reg: Registration) -> str | None:
    """The keyed hash of the holder's phone: the owner's, for a delegated registration."""
    return reg.delegation.owner_phone_hash if reg.delegation is not None else reg.phone_hash


def registered_for_owner(reg: Registration) -> Forbidden:
    """委托登记: the trustee asked to de-register the cards registered for the owner."""
    return Forbidden(
        "deregistration.registered_for_owner",
        "该车辆由您受托为车主登记，只有车主本人可以注销实名",
        "You registered this vehicle for its owner as their trustee: only the owner may de-register it",
        field="vin",
    )


def trustee_is_owner() -> InvalidField:
    return InvalidField(
        "delegation.same_person",
        "受托人与车主为同一人，请直接办理实名登记",
        "The trustee is the owner: register directly",
        field="owner.id_number",
    )


def not_the_holder() -> Forbidden:
    return Forbidden(
        "deregistration.not_holder",
        "核验的身份与该车联网卡的登记人不一致",
        "The verified person is not the card's registered holder",
    )


# -- outcome --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CardOutcome:
    """How one submitted card's push ended (or the whole registration's), read from history."""

    step: Step
    reason_zh: str | None = None
    reason_en: str | None = None


def was_pushed(reg: Registration, histories: Mapping[str, Sequence[CardEvent]]) -> bool:
    """A claimed submission whose push committed: a card went pending (or its de-registration was
    requested) since."""
    since = reg.submitted_at
    return since is not None and any(
        e.at >= since
        and (
            e.to_state in (CardState.PENDING, CardState.DEREGISTERED)
            or e.event in (LifecycleEvent.DEREGISTRATION_REQUESTED, LifecycleEvent.TRANSFER_REQUESTED)
        )
        for events in histories.values()
        for e in events
    )


def card_outcome(kind: RegistrationKind, events: Sequence[CardEvent]) -> CardOutcome:
    """One card's outcome from its events since the submission; a refusal carries the event's reason."""
    if kind is RegistrationKind.DEREGISTRATION:
        # Done when the operator says so: its acceptance, or its refusal with the reason.
        for event in events:
            if event.event == LifecycleEvent.DEREGISTRATION_CONFIRMED:
                return CardOutcome(step=Step.DEREGISTERED)
            if event.event == LifecycleEvent.DEREGISTRATION_REFUSED:
                return CardOutcome(step=Step.REJECTED, reason_zh=event.reason, reason_en=event.reason)
        return CardOutcome(step=Step.PENDING)
    for event in events:
        # 过户: the buyer's registration is the transfer's answer (the card stays registered meanwhile).
        if event.event == LifecycleEvent.TRANSFERRED:
            return CardOutcome(step=Step.REGISTERED)
        if event.event == LifecycleEvent.TRANSFER_REJECTED:
            return CardOutcome(step=Step.REJECTED, reason_zh=event.reason, reason_en=event.reason)
        if event.from_state is not CardState.PENDING:
            continue
        if event.to_state is CardState.REGISTERED:
            return CardOutcome(step=Step.REGISTERED)
        return CardOutcome(step=Step.REJECTED, reason_zh=event.reason, reason_en=event.reason)
    return CardOutcome(step=Step.PENDING)


def registration_outcome(outcomes: Sequence[CardOutcome]) -> CardOutcome:
    """The registration's outcome: final only once every card has its answer; a refusal wins."""
    for step in (Step.PENDING, Step.REJECTED):
        found = [o for o in outcomes if o.step is step]
        if found:
            return found[0]
    return outcomes[0] if outcomes else CardOutcome(step=Step.PENDING)


def holder_events(history: Sequence[CardEvent], reg: Registration) -> list[CardEvent]:
    """A card's history as one registration's holder sees it: from its submission until the card left
    them (back to unregistered: refused, de-registered, ended); nobody else's events."""
    since = reg.submitted_at
    mine: list[CardEvent] = []
    for event in history:
        if since is None or event.at < since:
            continue
        mine.append(event)
        if event.to_state is CardState.UNREGISTERED or transferred_away(event, reg):
            break
    return mine


def transferred_away(event: CardEvent, reg: Registration) -> bool:
    """A ``transferred`` entry that ended ``reg``'s holding (过户 to a buyer)."""
    return (
        event.event == LifecycleEvent.TRANSFERRED
        and reg.party_id is not None
        and transferred_from(event.reason) == reg.party_id
    )


def transfer_requested_message(vin: str) -> str:
    """The SMS to the seller (the card's registered holder) when a buyer's transfer is pushed."""
    return (
        f"{SIGNATURE}您名下车辆（VIN 尾号 {vin[-6:]}）的车联网卡有人申请过户，电信企业同意后您的实名登记"
        "将终止。如非您本人出售或转让该车辆，请尽快联系车企客服。"
    )


def delegated_owner_message(vin: str, outcome: CardOutcome) -> str | None:
    """委托登记: the final outcome told to the owner it was made for (on the phone the trustee gave for
    them, which the owner confirmed), so that a registration in one's name never goes unnoticed. None
    for outcomes that are not a registration's end."""
    tail = vin[-6:]
    if outcome.step is Step.REGISTERED:
        return (
            f"{SIGNATURE}受托人已为您名下的车辆（VIN 尾号 {tail}）办理车联网卡实名登记，登记成功。"
            "您可使用本手机号登录查看或注销；如非您本人委托，请联系车企客服。"
        )
    if outcome.step is Step.REJECTED:
        reason = outcome.reason_zh or "请联系车企客服"
        return f"{SIGNATURE}受托人为您的车辆（VIN 尾号 {tail}）办理的车联网卡实名登记未通过：{reason}。"
    return None


def result_message(
    vin: str,
    outcome: CardOutcome,
    kind: RegistrationKind = RegistrationKind.REGISTRATION,
    *,
    transfer: bool = False,
) -> str:
    """The SMS with a final outcome (确认登记结果), once the operator has answered."""
    tail = vin[-6:]
    if transfer and outcome.step is Step.REGISTERED:
        return f"{SIGNATURE}您的车辆（VIN 尾号 {tail}）车联网卡过户实名登记成功，已登记在您的名下。"
    if transfer and outcome.step is Step.REJECTED:
        reason = outcome.reason_zh or "请联系车企客服"
        return f"{SIGNATURE}您的车辆（VIN 尾号 {tail}）车联网卡过户未获电信企业同意：{reason}。原登记不变。"
    if kind is RegistrationKind.DEREGISTRATION and outcome.step is Step.REJECTED:
        reason = outcome.reason_zh or "请联系车企客服"
        return f"{SIGNATURE}您的车辆（VIN 尾号 {tail}）车联网卡实名注销未获电信企业同意：{reason}。"
    if outcome.step is Step.REGISTERED:
        return f"{SIGNATURE}您的车辆（VIN 尾号 {tail}）车联网卡实名登记成功，已开通必要功能。"
    if outcome.step is Step.DEREGISTERED:
        return f"{SIGNATURE}您的车辆（VIN 尾号 {tail}）车联网卡已注销实名，仅保留紧急呼叫功能。"
    reason = outcome.reason_zh or "请核对信息后重新办理"
    return f"{SIGNATURE}您的车辆（VIN 尾号 {tail}）车联网卡实名登记未通过：{reason}。"
