"""What the owner reads: a registration (its step, vehicle, cards, result) and my vehicles (我的车辆).
Everything personal is masked; a card's history shows only the reader's own part of it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel

from chalicelib.cards.domain.inventory import (
    Card,
    CardEvent,
    CardFunction,
    CardState,
    Vehicle,
    vehicle_not_found,
)
from chalicelib.cards.ports import InventoryRepository
from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.errors import NotFound
from chalicelib.kernel.operators import Operator
from chalicelib.kernel.personal import mask_id_number, mask_name, mask_phone, mask_vin
from chalicelib.registration.domain.registrations import (
    PossessionMethod,
    Registration,
    RegistrationKind,
    RegistrationStatus,
    Step,
    not_my_vehicle,
    step_before_submission,
    trustee_named,
)
from chalicelib.registration.domain.submission import CardOutcome, holder_events, transferred_away
from chalicelib.registration.outcome import Outcomes
from chalicelib.registration.ports import RegistrationRepository
from chalicelib.registration.records import Registrations
from chalicelib.verification.domain.flows import Flow, FlowStatus

REGISTRATION = RegistrationKind.REGISTRATION


def mask_iccid(iccid: str) -> str:
    return iccid[:6] + "*" * (len(iccid) - 10) + iccid[-4:]


class VehicleSummary(BaseModel):
    vin_masked: str
    brand: str
    model: str
    colour: str


class HistoryEntry(BaseModel):
    at: datetime
    event: str
    from_state: CardState | None
    to_state: CardState
    reason: str | None
    #: 受理编号 of the submission this entry is the start of (the owner's registration or
    #: de-registration), so the history and the receipt read alike.
    receipt_no: str | None = None


class CardSummary(BaseModel):
    iccid_masked: str
    msisdn_masked: str
    operator: Operator
    state: CardState
    functions: list[CardFunction]
    history: list[HistoryEntry] = []
    #: Who the card is registered to (登记人), masked; only the reader's own holder, only while the card
    #: is registered (or pending) to them.
    holder_masked: str | None = None


class PendingNext(StrEnum):
    """What happens next while a registration or de-registration is with the operator."""

    #: Pushed recently: the operator's answer normally comes within minutes, then an SMS.
    WAITING_OPERATOR = "waiting_operator"
    #: Late: the platform asks the operator itself (hourly reconciliation), then an SMS; nothing to do.
    CHECKING_WITH_OPERATOR = "checking_with_operator"


#: A push unanswered this long is asked about by the reconciliation (``Settings.push_stale_minutes``).
PUSH_LATE_AFTER = timedelta(minutes=30)


def pending_next(
    since: datetime | None, now: datetime, late_after: timedelta = PUSH_LATE_AFTER
) -> PendingNext:
    """What the person is told happens next for a push submitted at ``since``."""
    if since is not None and now - since >= late_after:
        return PendingNext.CHECKING_WITH_OPERATOR
    return PendingNext.WAITING_OPERATOR


class Outcome(BaseModel):
    step: Step
    reason_zh: str | None = None
    reason_en: str | None = None
    #: While ``pending``: what happens next (the operator answers, or the platform is asking it).
    next: PendingNext | None = None


class ConsentSummary(BaseModel):
    kind: str
    version: str
    accepted_at: datetime


class DelegationSummary(BaseModel):
    owner_name_masked: str
    owner_id_masked: str
    owner_phone_masked: str | None = None
    letter: bool
    owner_id_photo: bool
    #: The owner agreed (a code sent to the owner's phone): a delegation not confirmed is not submitted.
    confirmed: bool = False
    confirmed_by: str | None = None
    #: Whether the letter's trustee is the person the flow verifies (``None`` until they typed it):
    #: when not, the delegation step is due again with a letter naming them.
    trustee_named: bool | None = None
    #: The flow of the owner's own face check, when the owner confirms that way.
    owner_flow_id: str | None = None


class PossessionSummary(BaseModel):
    """How the person showed they hold the car, and their contest of someone else's claim on it."""

    method: PossessionMethod | None
    proved: bool
    head_unit_code_sent: bool
    #: Proved, but the car is pending or registered under someone else: it may be contested.
    claimed_by_other: bool
    contest_case_id: str | None
    #: Claimed by someone's registration with nothing pending at the operator: the person may go on as
    #: its buyer (过户, ``…/transfer``).
    transferable: bool = False
    #: The person chose the transfer: the registration's cards are the seller's, pushed as a transfer.
    transfer: bool = False


class Ended(BaseModel):
    """A registration accepted once whose cards are no longer registered to its holder: the card's
    state now, so that a success is never shown over a card that is not registered any more."""

    #: ``deregistered`` (注销, or the card left service) or ``transferred`` (过户 to a buyer).
    step: Step
    at: datetime
    event: str


class RegistrationView(BaseModel):
    registration_id: str
    kind: RegistrationKind
    delegated: bool
    step: Step
    steps: list[Step]
    flow_id: str | None
    vehicle: VehicleSummary
    cards: list[CardSummary]
    phone_masked: str | None
    delegation: DelegationSummary | None
    possession: PossessionSummary | None = None
    consents: list[ConsentSummary]
    result: Outcome | None
    created_at: datetime
    submitted_at: datetime | None
    expires_at: datetime | None
    #: 受理编号, from the submission on (the receipt the result screen shows).
    receipt_no: str | None = None
    #: Who the cards are registered to (登记人) or, for a de-registration, whose registration ends;
    #: masked, once submitted.
    holder_masked: str | None = None
    #: An accepted registration ended since (注销, 过户): what the cards are now.
    ended: Ended | None = None


class MyVehicle(VehicleSummary):
    registration_id: str
    #: The vehicle's true state for its owner: ``registered`` only while a card is registered;
    #: ``deregistered`` once a de-registration was accepted or the registration ended otherwise.
    step: Step
    result: Outcome | None
    cards: list[CardSummary]
    #: The owner's latest de-registration of the vehicle, when there is one: pending with the
    #: operator, accepted, or refused with the operator's reason (the card then stays registered).
    deregistration: Outcome | None = None
    #: 委托登记, as the trustee reads it: registered for this owner (masked name), whose the cards are;
    #: only the owner may de-register them. ``None`` for the holder's own vehicles.
    registered_for: str | None = None
    #: The holder reads a vehicle a trustee registered for them as ``delegated``.
    delegated: bool = False
    #: 受理编号 of the registration, and of the latest de-registration when there is one.
    receipt_no: str | None = None
    deregistration_receipt_no: str | None = None
    submitted_at: datetime | None = None


class InProgress(BaseModel):
    """A registration or de-registration the person has not finished: where to carry on (继续办理)."""

    registration_id: str
    kind: RegistrationKind
    delegated: bool
    vin_masked: str
    step: Step
    created_at: datetime
    expires_at: datetime | None


class ReceiptLookup(BaseModel):
    """受理编号 as support reads it (an owner calls with the number): which business, which car and
    cards, where it stands; the holder masked."""

    receipt_no: str
    registration_id: str
    kind: RegistrationKind
    transfer: bool
    delegated: bool
    vin: str
    iccids: list[str]
    step: Step
    submitted_at: datetime | None
    holder_masked: str | None


class MyVehicles(BaseModel):
    vehicles: list[MyVehicle]
    #: Unfinished registrations and de-registrations (not submitted, not expired), newest first.
    in_progress: list[InProgress] = []


class OpenRegistrations(BaseModel):
    """继续办理 on opening the app: the person's unfinished registrations and de-registrations."""

    registrations: list[InProgress]


#: History entries whose reason names parties (过户): not shown to owners.
_PARTY_EVENTS = frozenset({"transfer_requested", "transferred"})


def card_summary(
    card: Card,
    events: Sequence[CardEvent] = (),
    *,
    holder_masked: str | None = None,
    receipts: Sequence[tuple[Registration, str]] = (),
) -> CardSummary:
    """``receipts``: (a submitted registration, the history event that starts it) whose first such
    entry since its submission carries its receipt number."""
    marked = _receipt_entries(events, receipts)
    return CardSummary(
        iccid_masked=mask_iccid(card.iccid),
        msisdn_masked=mask_phone(card.msisdn),
        operator=card.operator,
        state=card.state,
        functions=list(card.functions),
        history=[
            HistoryEntry(
                at=e.at,
                event=e.event,
                from_state=e.from_state,
                to_state=e.to_state,
                # 过户 entries name the parties (internal ids): nobody's business but the OEM's.
                reason=None if e.event in _PARTY_EVENTS else e.reason,
                receipt_no=marked.get(i),
            )
            for i, e in enumerate(events)
        ],
        holder_masked=holder_masked,
    )


def _receipt_entries(
    events: Sequence[CardEvent], receipts: Sequence[tuple[Registration, str]]
) -> dict[int, str]:
    marked: dict[int, str] = {}
    for reg, event_name in receipts:
        if not reg.receipt_no or reg.submitted_at is None:
            continue
        for i, e in enumerate(events):
            if e.event == event_name and e.at >= reg.submitted_at and i not in marked:
                marked[i] = reg.receipt_no
                break
    return marked


#: The history entry that starts a submission of each kind.
_SUBMITTED_EVENT = {
    RegistrationKind.REGISTRATION: "registration_submitted",
    RegistrationKind.DEREGISTRATION: "deregistration_requested",
}


def _submitted_event(reg: Registration) -> str:
    return "transfer_requested" if reg.is_transfer else _SUBMITTED_EVENT[reg.kind]


def ended_since(reg: Registration, histories: Mapping[str, Sequence[CardEvent]]) -> Ended | None:
    """An accepted registration whose every card left its holder since (``holder_events`` ends there):
    de-registered (or retired) or transferred to a buyer; ``None`` while any card is still theirs."""
    lasts = [events[-1] for events in histories.values() if events]
    if not lasts or len(lasts) < len(histories):
        return None
    away = [transferred_away(e, reg) for e in lasts]
    if not all(a or e.to_state is CardState.UNREGISTERED for a, e in zip(away, lasts, strict=True)):
        return None
    last = max(lasts, key=lambda e: e.at)
    return Ended(step=Step.TRANSFERRED if all(away) else Step.DEREGISTERED, at=last.at, event=last.event)


def vehicle_summary(vehicle: Vehicle) -> VehicleSummary:
    return VehicleSummary(
        vin_masked=mask_vin(vehicle.vin), brand=vehicle.brand, model=vehicle.model, colour=vehicle.colour
    )


def unknown_vehicle(vin: str) -> VehicleSummary:
    """What a registration shows of its vehicle before possession is shown: the VIN typed, masked."""
    return VehicleSummary(vin_masked=mask_vin(vin), brand="", model="", colour="")


def outcome_view(
    outcome: CardOutcome,
    since: datetime | None = None,
    now: datetime | None = None,
    late_after: timedelta = PUSH_LATE_AFTER,
) -> Outcome:
    """The outcome as the person reads it; pending ones say what happens next (``since``: submitted)."""
    waiting = pending_next(since, now or utc_now(), late_after) if outcome.step is Step.PENDING else None
    return Outcome(step=outcome.step, reason_zh=outcome.reason_zh, reason_en=outcome.reason_en, next=waiting)


def delegation_summary(reg: Registration, flow: Flow | None = None) -> DelegationSummary | None:
    if reg.delegation is None:
        return None
    return DelegationSummary(
        owner_name_masked=mask_name(reg.delegation.owner_name),
        owner_id_masked=mask_id_number(reg.delegation.owner_id_number),
        owner_phone_masked=mask_phone(reg.delegation.owner_phone) if reg.delegation.owner_phone else None,
        letter=reg.delegation.letter_key is not None,
        owner_id_photo=reg.delegation.owner_id_key is not None,
        confirmed=reg.delegation.confirmed,
        confirmed_by=reg.delegation.confirmed_by.value if reg.delegation.confirmed_by else None,
        trustee_named=trustee_named(reg.delegation, flow),
        owner_flow_id=reg.delegation.owner_flow_id,
    )


#: What a refused manual review shows.
REVIEW_REFUSED = Outcome(
    step=Step.REJECTED, reason_zh="人工审核未通过", reason_en="Manual review refused the check"
)


class RegistrationViews:
    def __init__(
        self,
        store: RegistrationRepository,
        registrations: Registrations,
        inventory: InventoryRepository,
        outcomes: Outcomes,
        *,
        clock: Clock = utc_now,
        late_after: timedelta = PUSH_LATE_AFTER,
    ) -> None:
        """``late_after``: when a pending push is the reconciliation's to ask about (the stage's
        ``push_stale_minutes``), so the person is told the platform is checking with the operator."""
        self._store = store
        self._registrations = registrations
        self._inventory = inventory
        self._outcomes = outcomes
        self._clock = clock
        self._late_after = late_after

    def in_service(self, cards: Sequence[Card]) -> list[Card]:
        """``cards`` without the retired ones (swapped out, scrapped)."""
        return self._outcomes.in_service(cards)

    def transferable(self, cards: Sequence[Card]) -> list[str]:
        """The cards a buyer may take over by transfer (过户); none if any is not transferable."""
        return self._outcomes.transferable(cards)

    def get(self, registration_id: str, caller: str, kind: RegistrationKind) -> RegistrationView:
        reg = self._registrations.own(registration_id, caller)
        if reg.kind is not kind:
            raise NotFound("registration.not_found", "办理记录不存在或已过期", "No such registration")
        return self.view(reg)

    def view(self, reg: Registration, flow: Flow | None = None) -> RegistrationView:
        if flow is None and reg.flow_id and reg.status is RegistrationStatus.OPEN:
            flow = self._registrations.flow(reg)
        step, outcome = self._step(reg, flow)
        possession = self._possession(reg)
        hidden = reg.kind is RegistrationKind.REGISTRATION and not (possession and possession.proved)
        vehicle = None if hidden else self._inventory.get_vehicle(reg.vin)
        if vehicle is None and reg.kind is RegistrationKind.DEREGISTRATION:
            raise vehicle_not_found()
        cards = [c for c in (self._inventory.get_card(i) for i in reg.iccids) if c is not None]
        submitted = reg.status is not RegistrationStatus.OPEN
        ended = None
        if outcome is not None and outcome.step is Step.REGISTERED and reg.kind is REGISTRATION:
            histories = {i: holder_events(self._inventory.history(i), reg) for i in reg.iccids}
            ended = ended_since(reg, histories)
        return RegistrationView(
            registration_id=reg.registration_id,
            kind=reg.kind,
            delegated=reg.delegated,
            step=step,
            steps=list(reg.steps),
            flow_id=reg.flow_id,
            # Until the person shows they hold the car, nothing is told of it (not even that it exists).
            vehicle=vehicle_summary(vehicle) if vehicle is not None else unknown_vehicle(reg.vin),
            cards=[card_summary(c) for c in cards],
            phone_masked=mask_phone(reg.phone) if reg.phone else None,
            delegation=delegation_summary(reg, flow),
            possession=possession,
            consents=[
                ConsentSummary(kind=c.kind.value, version=c.version, accepted_at=c.accepted_at)
                for c in reg.consents
            ],
            result=outcome,
            created_at=reg.created_at,
            submitted_at=reg.submitted_at,
            expires_at=reg.expires_at if reg.status is RegistrationStatus.OPEN else None,
            receipt_no=reg.receipt_no if submitted else None,
            holder_masked=self.holder_masked(reg, flow) if submitted else None,
            ended=ended,
        )

    def holder_masked(self, reg: Registration, flow: Flow | None = None) -> str | None:
        """Whom a submitted registration's cards are registered to, masked: the owner a trustee
        registered for, else the person the flow verified (a de-registration: the registered holder)."""
        if reg.delegation is not None:
            return mask_name(reg.delegation.owner_name)
        if flow is None and reg.flow_id:
            try:
                flow = self._registrations.flow(reg)
            except NotFound:
                return None  # purged with its materials (第十八条): the name is not kept elsewhere here
        return mask_name(flow.identity.name) if flow is not None and flow.identity is not None else None

    def _possession(self, reg: Registration) -> PossessionSummary | None:
        p = reg.possession
        if reg.kind is not RegistrationKind.REGISTRATION or p is None:
            return None
        on_vehicle = self._inventory.cards_of_vehicle(reg.vin) if p.proved and not reg.iccids else []
        claimed = any(c.state in (CardState.PENDING, CardState.REGISTERED) for c in on_vehicle)
        return PossessionSummary(
            method=p.method,
            proved=p.proved,
            head_unit_code_sent=p.head_unit is not None,
            claimed_by_other=claimed,
            contest_case_id=p.contest_case_id,
            transferable=claimed and bool(self.transferable(on_vehicle)),
            transfer=p.transfer,
        )

    def _step(self, reg: Registration, flow: Flow | None) -> tuple[Step, Outcome | None]:
        if reg.status is RegistrationStatus.SUBMITTED or (
            reg.status is RegistrationStatus.SUBMITTING and self._outcomes.pushed(reg)
        ):
            outcome = outcome_view(self._outcomes.of(reg), reg.submitted_at, self._clock(), self._late_after)
            return outcome.step, outcome
        if reg.status is RegistrationStatus.SUBMITTING:
            return Step.SUBMIT, None
        if flow is not None and flow.status is FlowStatus.IN_REVIEW:
            return Step.REVIEW, None
        if flow is not None and flow.status is FlowStatus.REJECTED:
            return Step.REJECTED, REVIEW_REFUSED
        return step_before_submission(reg, flow), None

    def my_vehicles(self, caller: str) -> MyVehicles:
        """The vehicles the caller registered (latest registration of each), cards still theirs or in
        progress (never a retired one), with states, their own part of the history and the vehicle's
        true state: a de-registration since shows as pending, done or refused; all masked."""
        latest: dict[str, Registration] = {}
        deregistrations: dict[str, Registration] = {}
        for reg in self._registrations.held_by(caller):
            if reg.status is not RegistrationStatus.SUBMITTED:
                continue
            chosen = latest if reg.kind is RegistrationKind.REGISTRATION else deregistrations
            earlier = chosen.get(reg.vin)
            if earlier is None or _submitted(earlier) <= _submitted(reg):
                chosen[reg.vin] = reg
        vehicles = [
            v
            for v in (self._my_vehicle(reg, deregistrations.get(reg.vin), caller) for reg in latest.values())
            if v is not None
        ]
        return MyVehicles(vehicles=vehicles, in_progress=self.in_progress(caller))

    def receipt(self, receipt_no: str) -> ReceiptLookup:
        """Support's lookup of a receipt number (404 ``receipt.not_found`` for an unknown one)."""
        reg = self._registrations.by_receipt(receipt_no)
        if reg is None or reg.receipt_no is None:
            raise NotFound(
                "receipt.not_found", "没有该受理编号的办理记录", "No registration has this receipt number"
            )
        view = self.view(reg)
        return ReceiptLookup(
            receipt_no=reg.receipt_no,
            registration_id=reg.registration_id,
            kind=reg.kind,
            transfer=reg.is_transfer,
            delegated=reg.delegated,
            vin=reg.vin,
            iccids=list(reg.iccids),
            step=view.step,
            submitted_at=reg.submitted_at,
            holder_masked=view.holder_masked,
        )

    def vin_of(self, caller: str, registration_id: str) -> str:
        """The VIN of a vehicle in the caller's 我的车辆, by the registration it lists: 注销 picks the car
        there (the VIN is never typed again); any other id is ``vehicle.not_yours``."""
        for reg in self._registrations.held_by(caller):
            if reg.registration_id == registration_id and reg.kind is REGISTRATION:
                return reg.vin
        raise not_my_vehicle()

    def in_progress(self, caller: str) -> list[InProgress]:
        """The caller's registrations and de-registrations not submitted and not expired, newest first,
        each with the step due (继续办理)."""
        now = self._clock()
        found: list[InProgress] = []
        for reg in reversed(self._store.of_owner(caller)):
            if reg.status is RegistrationStatus.SUBMITTED:
                continue
            try:
                if (
                    reg.status is RegistrationStatus.OPEN
                    and reg.expires_at is not None
                    and reg.expires_at <= now
                ):
                    reg = self._registrations.own(reg.registration_id, caller)  # kept while a reviewer has it
                view = self.view(reg)
            except NotFound:
                continue  # expired, or its flow or vehicle is gone: nothing to carry on with
            found.append(
                InProgress(
                    registration_id=reg.registration_id,
                    kind=reg.kind,
                    delegated=reg.delegated,
                    vin_masked=view.vehicle.vin_masked,
                    step=view.step,
                    created_at=reg.created_at,
                    expires_at=view.expires_at,
                )
            )
        return found

    def _my_vehicle(self, reg: Registration, dereg: Registration | None, caller: str) -> MyVehicle | None:
        vehicle = self._inventory.get_vehicle(reg.vin)
        if vehicle is None:
            return None
        histories = {iccid: holder_events(self._inventory.history(iccid), reg) for iccid in reg.iccids}
        outcome = outcome_view(
            self._outcomes.of(reg, histories), reg.submitted_at, self._clock(), self._late_after
        )
        mine: list[Card] = []
        away: set[str] = set()
        for iccid in reg.iccids:
            card = self._inventory.get_card(iccid)
            if card is None:
                continue
            if card.holder_id not in (None, reg.party_id):
                if histories[iccid] and transferred_away(histories[iccid][-1], reg):
                    away.add(iccid)  # 过户 accepted: shown as transferred, no longer theirs
                elif not (reg.is_transfer and outcome.step is not Step.REGISTERED):
                    continue  # registered to someone else since
            mine.append(card)  # (or the seller's, while the buyer's transfer waits or was refused)
        in_service = self.in_service(mine)
        if not in_service:
            return None
        holder = self.holder_masked(reg)
        receipts = [(reg, _submitted_event(reg))] + ([(dereg, _submitted_event(dereg))] if dereg else [])
        cards = [
            card_summary(
                c,
                histories[c.iccid],
                # whose the card is: only the reader's own holder, while it is registered (or pending) to them
                holder_masked=holder
                if c.holder_id == reg.party_id and c.state in (CardState.REGISTERED, CardState.PENDING)
                else None,
                receipts=receipts,
            )
            for c in in_service
        ]
        deregistration = None
        if dereg is not None and _submitted(dereg) >= _submitted(reg):
            deregistration = outcome_view(
                self._outcomes.of(dereg), dereg.submitted_at, self._clock(), self._late_after
            )
        step = outcome.step
        if step is Step.REGISTERED and not any(c.state is CardState.REGISTERED for c in in_service):
            step = Step.DEREGISTERED  # ended since: de-registered (accepted or not yet answered), scrapped
        if deregistration is not None:
            # pending with the operator, or done; refused: the operator keeps the registration
            step = outcome.step if deregistration.step is Step.REJECTED else deregistration.step
        if away and away == {c.iccid for c in in_service}:
            step, deregistration = Step.TRANSFERRED, None  # 过户: the buyer's registration was accepted
        result: Outcome | None = outcome if step is outcome.step else Outcome(step=step)
        if deregistration is not None and deregistration.step is Step.PENDING:
            result = None  # the de-registration's own line says it is with the operator
        return MyVehicle(
            **vehicle_summary(vehicle).model_dump(),
            registration_id=reg.registration_id,
            step=step,
            result=result,
            cards=cards,
            deregistration=deregistration,
            registered_for=_registered_for(reg, caller),
            delegated=reg.delegated,
            receipt_no=reg.receipt_no,
            deregistration_receipt_no=dereg.receipt_no if deregistration is not None and dereg else None,
            submitted_at=reg.submitted_at,
        )


def _registered_for(reg: Registration, caller: str) -> str | None:
    """委托登记 read by the trustee: the owner it was registered for, masked (never the holder's own)."""
    d = reg.delegation
    if d is None or d.owner_subject == caller:
        return None
    return mask_name(d.owner_name)


def _submitted(reg: Registration) -> datetime:
    return reg.submitted_at or reg.created_at
