"""Owner registration (实名登记), delegated registration (委托登记) and de-registration (实名注销) of
one vehicle's cards: the steps around the verification flow, the submission and its outcome.

The server decides the step (``domain.registration``): a client can leave and come back, and no step
runs ahead. Submission is claimed by one request (conditional write), committed with its operator
pushes in one transaction (``Lifecycle.submit_registrations``) and then only read: the outcome comes
from the cards' history, and the person gets an SMS when the operator has answered.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from pydantic import BaseModel

from chalicelib.cards.domain import Card, CardEvent, CardFunction, CardState, Vehicle
from chalicelib.cards.lifecycle import Lifecycle, holder_from_party
from chalicelib.cards.ports import InventoryRepository, PartyRepository
from chalicelib.core.observability import logger
from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.crypto import KeyedHasher
from chalicelib.kernel.errors import Conflict, DomainError, Forbidden, InvalidField, NotFound
from chalicelib.kernel.operators import Operator
from chalicelib.kernel.personal import IdType, Party, mask_id_number, mask_name, mask_phone, mask_vin
from chalicelib.kernel.validators import validate
from chalicelib.registration.domain import (
    FINAL_STEPS,
    AcceptedConsent,
    ConsentRecord,
    Delegation,
    Registration,
    RegistrationKind,
    RegistrationStatus,
    Step,
    check_consents,
    check_owner,
    require_step,
    step_before_submission,
)
from chalicelib.registration.ports import RegistrationRepository
from chalicelib.sms.domain import SmsPurpose
from chalicelib.sms.ports import SmsSender
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import CheckName, Flow, FlowPurpose, FlowStatus, TypedIdentity
from chalicelib.verification.service import VerificationService

#: A submitted registration's flow (identity, photos, live capture, evidence) is kept this long: the
#: card's service life is unknown here, so long enough to outlive it plus the two years of 第十七条.
EVIDENCE_RETENTION = timedelta(days=365 * 20)


#: A claim older than this whose push never committed (the request died) may be submitted again.
STALE_CLAIM = timedelta(minutes=2)


class PhoneCodes(Protocol):
    """What registration needs of SMS codes (``services.sms.SmsCodeService``)."""

    def check(self, phone: str, purpose: SmsPurpose, code: str) -> None: ...

    def phone_hash(self, phone: str) -> str: ...


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


class CardSummary(BaseModel):
    iccid_masked: str
    msisdn_masked: str
    operator: Operator
    state: CardState
    functions: list[CardFunction]
    history: list[HistoryEntry] = []


class Outcome(BaseModel):
    step: Step
    reason_zh: str | None = None
    reason_en: str | None = None


class ConsentSummary(BaseModel):
    kind: str
    version: str
    accepted_at: datetime


class DelegationSummary(BaseModel):
    owner_name_masked: str
    owner_id_masked: str
    letter: bool
    owner_id_photo: bool


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
    consents: list[ConsentSummary]
    result: Outcome | None
    created_at: datetime
    submitted_at: datetime | None
    expires_at: datetime | None


class MyVehicle(VehicleSummary):
    registration_id: str
    step: Step
    result: Outcome | None
    cards: list[CardSummary]


class MyVehicles(BaseModel):
    vehicles: list[MyVehicle]


def _history(events: Sequence[CardEvent]) -> list[HistoryEntry]:
    return [
        HistoryEntry(at=e.at, event=e.event, from_state=e.from_state, to_state=e.to_state, reason=e.reason)
        for e in events
    ]


def _card_summary(card: Card, events: Sequence[CardEvent] = ()) -> CardSummary:
    return CardSummary(
        iccid_masked=mask_iccid(card.iccid),
        msisdn_masked=mask_phone(card.msisdn),
        operator=card.operator,
        state=card.state,
        functions=list(card.functions),
        history=_history(events),
    )


def _vehicle_summary(vehicle: Vehicle) -> VehicleSummary:
    return VehicleSummary(
        vin_masked=mask_vin(vehicle.vin), brand=vehicle.brand, model=vehicle.model, colour=vehicle.colour
    )


def vehicle_not_found() -> NotFound:
    return NotFound(
        "vehicle.not_found", "未找到该车辆，请核对车辆识别代号", "No vehicle with this VIN", field="vin"
    )


def not_my_vehicle() -> Forbidden:
    return Forbidden(
        "vehicle.not_yours",
        "该车辆不在您名下的已登记车辆中",
        "This vehicle is not among the vehicles registered to you",
        field="vin",
    )


def _own_events(history: Sequence[CardEvent], reg: Registration) -> list[CardEvent]:
    """A card's history as one registration's holder sees it: from its submission until the card left
    them (back to unregistered: refused, de-registered, ended); nobody else's events."""
    since = reg.submitted_at
    mine: list[CardEvent] = []
    for event in history:
        if since is None or event.at < since:
            continue
        mine.append(event)
        if event.to_state is CardState.UNREGISTERED:
            break
    return mine


class RegistrationService:
    """The owner's use cases; every dependency passed in (ports), time from ``clock``."""

    def __init__(
        self,
        registrations: RegistrationRepository,
        inventory: InventoryRepository,
        parties: PartyRepository,
        verification: VerificationService,
        lifecycle: Lifecycle,
        codes: PhoneCodes,
        hasher: KeyedHasher,
        sms: SmsSender | None = None,
        *,
        flow_ttl: timedelta = timedelta(hours=24),
        clock: Clock = utc_now,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self._regs = registrations
        self._inventory = inventory
        self._parties = parties
        self._verification = verification
        self._lifecycle = lifecycle
        self._codes = codes
        self._hasher = hasher
        self._sms = sms
        self._flow_ttl = flow_ttl
        self._clock = clock
        self._new_id = new_id

    # -- reads ---------------------------------------------------------------------------------------

    def _own(self, registration_id: str, caller: str) -> Registration:
        now = self._clock()
        reg = self._regs.get(registration_id)
        if (
            reg is not None
            and reg.owner == caller
            and reg.status is RegistrationStatus.OPEN
            and reg.expires_at is not None
            and reg.expires_at <= now
        ):
            in_review = self._in_review(reg)
            if in_review is not None:  # the reviewer's time does not count against the person
                reg = self._save(reg, expires_at=in_review.expires_at)
        return check_owner(reg, caller, now)

    def _flow(self, reg: Registration) -> Flow | None:
        return self._verification.flow(reg.flow_id, reg.owner) if reg.flow_id else None

    def _save(self, reg: Registration, **changes: object) -> Registration:
        updated = reg.model_copy(update={**changes, "version": reg.version + 1, "updated_at": self._clock()})
        return self._regs.save(updated)

    def _outcome(self, reg: Registration, histories: dict[str, list[CardEvent]] | None = None) -> Outcome:
        """Where a submitted registration stands, read from its cards' history since the submission."""
        since = reg.submitted_at
        assert since is not None
        outcomes: list[Outcome] = []
        for iccid in reg.iccids:
            history = histories[iccid] if histories is not None else self._inventory.history(iccid)
            events = [e for e in history if e.at >= since]
            outcomes.append(self._card_outcome(reg, iccid, events))
        for step in (Step.PENDING, Step.REJECTED):  # final only once every card has its answer
            found = [o for o in outcomes if o.step is step]
            if found:
                return found[0]
        return outcomes[0] if outcomes else Outcome(step=Step.PENDING)

    def _card_outcome(self, reg: Registration, iccid: str, events: Sequence[CardEvent]) -> Outcome:
        if reg.kind is RegistrationKind.DEREGISTRATION:
            done = any(e.to_state is CardState.DEREGISTERED for e in events)
            return Outcome(step=Step.DEREGISTERED if done else Step.PENDING)
        for event in events:
            if event.from_state is not CardState.PENDING:
                continue
            if event.to_state is CardState.REGISTERED:
                return Outcome(step=Step.REGISTERED)
            refusal = self._lifecycle.status(iccid).last_refusal
            return Outcome(
                step=Step.REJECTED,
                reason_zh=(refusal.message_zh if refusal else None) or event.reason,
                reason_en=(refusal.message_en if refusal else None) or event.reason,
            )
        return Outcome(step=Step.PENDING)

    def _step(self, reg: Registration, flow: Flow | None) -> tuple[Step, Outcome | None]:
        if reg.status is RegistrationStatus.SUBMITTED or (
            reg.status is RegistrationStatus.SUBMITTING and self._pushed(reg)
        ):
            outcome = self._outcome(reg)
            return outcome.step, outcome
        if reg.status is RegistrationStatus.SUBMITTING:
            return Step.SUBMIT, None
        if flow is not None and flow.status is FlowStatus.IN_REVIEW:
            return Step.REVIEW, None
        if flow is not None and flow.status is FlowStatus.REJECTED:
            reason = Outcome(
                step=Step.REJECTED, reason_zh="人工审核未通过", reason_en="Manual review refused the check"
            )
            return Step.REJECTED, reason
        return step_before_submission(reg, flow), None

    def _pushed(self, reg: Registration) -> bool:
        """A claimed submission whose push committed (the request died before recording it)."""
        since = reg.submitted_at
        return since is not None and any(
            e.at >= since and e.to_state in (CardState.PENDING, CardState.DEREGISTERED)
            for iccid in reg.iccids
            for e in self._inventory.history(iccid)
        )

    def view(self, reg: Registration, flow: Flow | None = None) -> RegistrationView:
        if flow is None and reg.flow_id and reg.status is RegistrationStatus.OPEN:
            flow = self._flow(reg)
        step, outcome = self._step(reg, flow)
        vehicle = self._inventory.get_vehicle(reg.vin)
        if vehicle is None:
            raise vehicle_not_found()
        cards = [c for c in (self._inventory.get_card(i) for i in reg.iccids) if c is not None]
        delegation = None
        if reg.delegation is not None:
            delegation = DelegationSummary(
                owner_name_masked=mask_name(reg.delegation.owner_name),
                owner_id_masked=mask_id_number(reg.delegation.owner_id_number),
                letter=reg.delegation.letter_key is not None,
                owner_id_photo=reg.delegation.owner_id_key is not None,
            )
        return RegistrationView(
            registration_id=reg.registration_id,
            kind=reg.kind,
            delegated=reg.delegated,
            step=step,
            steps=list(reg.steps),
            flow_id=reg.flow_id,
            vehicle=_vehicle_summary(vehicle),
            cards=[_card_summary(c) for c in cards],
            phone_masked=mask_phone(reg.phone) if reg.phone else None,
            delegation=delegation,
            consents=[
                ConsentSummary(kind=c.kind.value, version=c.version, accepted_at=c.accepted_at)
                for c in reg.consents
            ],
            result=outcome,
            created_at=reg.created_at,
            submitted_at=reg.submitted_at,
            expires_at=reg.expires_at if reg.status is RegistrationStatus.OPEN else None,
        )

    def get(self, registration_id: str, caller: str, kind: RegistrationKind) -> RegistrationView:
        reg = self._own(registration_id, caller)
        if reg.kind is not kind:
            raise NotFound("registration.not_found", "办理记录不存在或已过期", "No such registration")
        return self.view(reg)

    # -- start ---------------------------------------------------------------------------------------

    def _vehicle(self, vin: str) -> tuple[Vehicle, list[Card]]:
        vin = validate("vin", vin, field="vin").value
        vehicle = self._inventory.get_vehicle(vin)
        if vehicle is None:
            raise vehicle_not_found()
        return vehicle, self._inventory.cards_of_vehicle(vin)

    def _latest_registration(self, caller: str, vin: str) -> Registration | None:
        mine = [
            r
            for r in self._regs.of_owner(caller)
            if r.kind is RegistrationKind.REGISTRATION
            and r.vin == vin
            and r.status is not RegistrationStatus.OPEN
        ]
        return mine[-1] if mine else None

    def _resumable(self, caller: str, kind: RegistrationKind, vin: str) -> Registration | None:
        now = self._clock()
        for reg in reversed(self._regs.of_owner(caller)):
            if (
                reg.kind is kind
                and reg.vin == vin
                and reg.status is RegistrationStatus.OPEN
                and (reg.expires_at is None or reg.expires_at > now)
            ):
                return reg
        return None

    def start(
        self, caller: str, kind: RegistrationKind, vin: str, *, delegated: bool = False
    ) -> tuple[RegistrationView, bool]:
        """Open (or resume) the caller's registration of ``vin``; True when a new one was opened.

        Registration: the vehicle must be in the inventory with at least one card that can still be
        registered. De-registration: the vehicle must carry a card registered through the caller.
        """
        vehicle, cards = self._vehicle(vin)
        resumed = self._resumable(caller, kind, vehicle.vin)
        if resumed is not None and resumed.delegated == delegated:
            return self.view(resumed), False
        if kind is RegistrationKind.REGISTRATION:
            iccids = [c.iccid for c in cards if c.state is CardState.UNREGISTERED]
            if not cards:
                raise Conflict(
                    "vehicle.no_cards", "该车辆没有车联网卡", "The vehicle has no IoT card", field="vin"
                )
            if not iccids:
                raise Conflict(
                    "registration.already_registered",
                    "该车辆的车联网卡已实名登记或正在办理；车辆过户请联系经销商办理",
                    "The vehicle's cards are already registered or in progress; a new owner needs a transfer",
                    field="vin",
                )
        else:
            if delegated:
                raise InvalidField(
                    "deregistration.no_delegation",
                    "注销不支持委托办理",
                    "De-registration cannot be delegated",
                )
            latest = self._latest_registration(caller, vehicle.vin)
            if latest is None or not latest.party_id:
                raise not_my_vehicle()
            iccids = [
                c.iccid for c in cards if c.state is CardState.REGISTERED and c.holder_id == latest.party_id
            ]
            if not iccids:
                raise not_my_vehicle()
        now = self._clock()
        reg = Registration(
            registration_id=f"r{self._new_id()}",
            owner=caller,
            kind=kind,
            delegated=delegated,
            vin=vehicle.vin,
            iccids=iccids,
            status=RegistrationStatus.OPEN,
            version=1,
            # A de-registration has no vehicle to confirm: the person chose it from their own.
            confirmed_at=now if kind is RegistrationKind.DEREGISTRATION else None,
            created_at=now,
            updated_at=now,
            expires_at=now + self._flow_ttl,
        )
        self._regs.create(reg)
        logger.info("registration opened", extra={"registration": reg.registration_id, "kind": kind.value})
        return self.view(reg), True

    # -- steps ---------------------------------------------------------------------------------------

    def confirm_vehicle(self, registration_id: str, caller: str) -> RegistrationView:
        reg = self._own(registration_id, caller)
        require_step(reg, self._flow(reg), Step.CONFIRM_VEHICLE)
        if reg.confirmed_at is None:
            reg = self._save(reg, confirmed_at=self._clock())
        return self.view(reg)

    def verify_phone(self, registration_id: str, caller: str, phone: str, code: str) -> RegistrationView:
        """The owner's (or user's) phone, proved by its code; a de-registration needs the phone the
        registration gave. Opens the verification flow on first success."""
        reg = self._own(registration_id, caller)
        require_step(reg, self._flow(reg), Step.VERIFY_PHONE)
        number = validate("mobile", phone, field="phone").value
        phone_hash = self._codes.phone_hash(number)
        if reg.kind is RegistrationKind.DEREGISTRATION:
            latest = self._latest_registration(caller, reg.vin)
            if latest is None or latest.phone_hash != phone_hash:
                raise InvalidField(
                    "phone.not_registered",
                    "请使用登记时预留的手机号码",
                    "Use the phone number given at registration",
                    field="phone",
                )
        purpose = (
            SmsPurpose.DEREGISTRATION
            if reg.kind is RegistrationKind.DEREGISTRATION
            else SmsPurpose.OWNER_PHONE
        )
        self._codes.check(number, purpose, code)
        flow_id = reg.flow_id
        if flow_id is None:
            flow_purpose = FlowPurpose.DELEGATED_REGISTRATION if reg.delegated else reg.kind.flow_purpose
            flow_id = self._verification.open_flow(caller, flow_purpose).flow_id
        reg = self._save(reg, phone=number, phone_hash=phone_hash, flow_id=flow_id)
        self._verification.note(flow_id, EvidenceKind.SMS_CHECKED, caller, {"purpose": purpose.value})
        return self.view(reg)

    def delegate(self, registration_id: str, caller: str, owner: TypedIdentity) -> RegistrationView:
        """委托登记 (第十二条): the owner's identity, with the owner's ID card photo (read and cross-checked)
        and the authorization letter already uploaded to the flow; the trustee then proves their own
        identity, face included, through the flow."""
        reg = self._own(registration_id, caller)
        flow = self._flow(reg)
        require_step(reg, flow, Step.DELEGATION)
        id_type = IdType(owner.id_type)
        number = validate(id_type.value, owner.id_number, field="owner.id_number").value
        if flow is not None and flow.checks.get(CheckName.FACE) is not None:
            raise Conflict(
                "delegation.locked",
                "人脸核验已开始，委托信息不能再修改",
                "The delegation cannot change once face checks have started",
            )
        letter = flow.documents.get(DocumentKind.AUTHORIZATION_LETTER.value) if flow else None
        if letter is None:
            raise InvalidField(
                "delegation.letter_missing",
                "请先上传车主签署的授权委托书",
                "Upload the authorization letter signed by the owner first",
                field="authorization_letter",
            )
        owner_id = flow.documents.get(DocumentKind.OWNER_ID_FRONT.value) if flow else None
        if flow is None or owner_id is None:
            raise InvalidField(
                "delegation.owner_id_missing",
                "请先上传车主身份证人像面照片",
                "Upload a photo of the owner's ID card (portrait side) first",
                field="owner_id_front",
            )
        # 第十二条: the owner's document is checked too (read, and agreeing with what was typed).
        typed_owner = TypedIdentity(
            id_type=id_type.value, id_number=number, name=owner.name.strip(), address=owner.address
        )
        self._verification.check_owner_id(flow.flow_id, caller, typed_owner)
        delegation = Delegation(
            owner_id_type=id_type.value,
            owner_id_number=number,
            owner_name=owner.name.strip(),
            owner_address=owner.address,
            letter_key=letter,
            owner_id_key=owner_id,
        )
        reg = self._save(reg, delegation=delegation)
        return self.view(reg)

    def give_consents(
        self, registration_id: str, caller: str, accepted: list[AcceptedConsent], client: dict[str, str]
    ) -> RegistrationView:
        reg = self._own(registration_id, caller)
        flow = self._flow(reg)
        require_step(reg, flow, Step.CONSENTS)
        check_consents(accepted)
        now = self._clock()
        records = [
            ConsentRecord(kind=a.kind, version=a.version, sha256=a.sha256, accepted_at=now, client=client)
            for a in accepted
        ]
        reg = self._save(reg, consents=records)
        assert reg.flow_id is not None
        self._verification.record_consents(reg.flow_id, caller, records)
        return self.view(reg)

    # -- submission ----------------------------------------------------------------------------------

    def _claim(self, reg: Registration) -> Registration | None:
        """Claim the submission for this request; None when another request holds or made it."""
        now = self._clock()
        stale = (
            reg.status is RegistrationStatus.SUBMITTING
            and reg.submitted_at is not None
            and now - reg.submitted_at > STALE_CLAIM
            and not self._pushed(reg)
        )
        if reg.status is not RegistrationStatus.OPEN and not stale:
            return None
        try:
            return self._save(reg, status=RegistrationStatus.SUBMITTING, submitted_at=now, expires_at=None)
        except Conflict:
            return None

    def submit(self, registration_id: str, caller: str) -> RegistrationView:
        """Submit once: a second submit (or a concurrent one) gets the same registration, no second push.

        The claim takes the registration and its flow out of expiry before anything is pushed, so a
        request that dies after the push commits leaves nothing to purge; ``recover_stuck`` (and the
        next read) finishes such a submission from what the cards show.
        """
        reg = self._own(registration_id, caller)
        if reg.status is RegistrationStatus.SUBMITTED:
            return self.view(reg)
        flow = self._flow(reg)
        if reg.status is RegistrationStatus.OPEN:
            require_step(reg, flow, Step.SUBMIT)
        elif self._pushed(reg):
            return self.view(self._complete(reg, flow, caller))
        claimed = self._claim(reg)
        if claimed is None:
            return self.view(self._own(registration_id, caller))
        assert flow is not None
        assert flow.identity is not None
        assert flow.person_hash is not None
        flow = self._verification.keep(flow, self._clock() + EVIDENCE_RETENTION)
        pushed: tuple[list[str], str | None]
        try:
            if claimed.kind is RegistrationKind.REGISTRATION:
                pushed = self._push_registration(claimed, flow, caller)
            else:
                pushed = self._push_deregistration(claimed, flow, caller)
        except DomainError:
            self._release(claimed, flow)
            raise
        done = self._finish(claimed, flow, pushed)
        logger.info(
            "registration submitted", extra={"registration": done.registration_id, "kind": done.kind.value}
        )
        return self.view(done)

    def _release(self, claimed: Registration, flow: Flow | None) -> None:
        """A refused push: the registration is open again and expires as it would have."""
        expires = claimed.created_at + self._flow_ttl
        self._save(claimed, status=RegistrationStatus.OPEN, submitted_at=None, expires_at=expires)
        if flow is not None:
            self._verification.reopen(flow.flow_id, claimed.owner, expires)

    def _complete(self, reg: Registration, flow: Flow | None, actor: str) -> Registration:
        """Finish a submission whose request died after its push committed. A de-registration ends the
        cards it had not reached yet first (each card is its own transaction)."""
        if reg.kind is RegistrationKind.DEREGISTRATION and flow is not None:
            self._push_deregistration(reg, flow, actor)
        return self._finish(reg, flow)

    def _finish(
        self, reg: Registration, flow: Flow | None, pushed: tuple[list[str], str | None] | None = None
    ) -> Registration:
        """Record a committed push: its records (for the result SMS), the holder and the onsite photo.

        ``pushed`` (record ids, holder party) comes from the push itself; a recovery reads them from
        the cards instead.
        """
        if pushed is not None:
            record_ids, party_id = pushed
        else:
            record_ids, party_id = [], reg.party_id
            for iccid in reg.iccids:
                status = self._lifecycle.status(iccid)
                if status.lifecycle.message_id:
                    record_ids.append(status.lifecycle.message_id)
                if reg.kind is RegistrationKind.REGISTRATION and status.card.holder_id:
                    party_id = status.card.holder_id
        onsite = flow.documents.get(DocumentKind.LIVE_CAPTURE.value) if flow is not None else None
        # Linked first: once the registration reads "submitted", every callback can find it.
        self._regs.link_pushes(reg.registration_id, record_ids)
        done = self._save(
            reg,
            status=RegistrationStatus.SUBMITTED,
            record_ids=record_ids,
            party_id=party_id,
            onsite_photo=onsite,
            expires_at=None,
        )
        # A de-registration is final at once; a registration the operator already answered (while the
        # request that pushed it was dead) is too.
        self._notify(done)
        return done

    def recover_stuck(self, limit: int = 100) -> dict[str, int]:
        """Submissions whose request died: finished when their push committed, else opened again."""
        now = self._clock()
        finished = released = 0
        for reg in self._regs.submitting(now - STALE_CLAIM, limit):
            try:
                try:
                    flow = self._flow(reg)
                except NotFound:
                    flow = None  # expired before it was kept: nothing was pushed with it
                if self._pushed(reg):
                    self._complete(reg, flow, "system")
                    finished += 1
                else:
                    self._release(reg, flow)
                    released += 1
            except DomainError:
                continue  # moved meanwhile: the next round sees it as it is now
        return {"finished": finished, "released": released}

    def _party(self, reg: Registration, flow: Flow) -> Party:
        """The holder: the owner who authorized a trustee, else the person the flow verified."""
        identity = flow.identity
        assert identity is not None
        if reg.delegation is not None:
            d = reg.delegation
            return Party(
                id_type=IdType(d.owner_id_type),
                id_number=d.owner_id_number,
                name=d.owner_name,
                address=d.owner_address,
                phone=reg.phone,
                created_at=self._clock(),
            )
        return Party(
            id_type=IdType(identity.id_type),
            id_number=identity.id_number,
            name=identity.name,
            address=identity.address,
            phone=reg.phone,
            created_at=self._clock(),
        )

    def _push_registration(self, reg: Registration, flow: Flow, caller: str) -> tuple[list[str], str]:
        """The holder stored as a party, then every card pushed in one transaction; a refused push
        leaves no party behind."""
        party = self._party(reg, flow)
        holder = holder_from_party(party, self._hasher)
        if reg.delegation is not None and holder.id_hash == flow.person_hash:
            raise InvalidField(
                "delegation.same_person",
                "受托人与车主为同一人，请直接办理实名登记",
                "The trustee is the owner: register directly",
                field="owner.id_number",
            )
        self._parties.put(party)
        try:
            outcomes = self._lifecycle.submit_registrations(reg.iccids, holder, caller)
        except DomainError:
            self._parties.delete(party.party_id)
            raise
        return [o.record_id for o in outcomes if o.record_id], party.party_id

    def _push_deregistration(
        self, reg: Registration, flow: Flow, caller: str
    ) -> tuple[list[str], str | None]:
        """注销 by the registered person only: the face-checked identity must be the card's holder.
        A card no longer registered (ended by an earlier, interrupted submit) is left as it is."""
        registered = [i for i in reg.iccids if self._lifecycle.status(i).card.state is CardState.REGISTERED]
        for iccid in registered:
            life = self._lifecycle.status(iccid).lifecycle
            if life.holder_id_hash != flow.person_hash:
                raise Forbidden(
                    "deregistration.not_holder",
                    "核验的身份与该车联网卡的登记人不一致",
                    "The verified person is not the card's registered holder",
                )
        record_ids: list[str] = []
        for iccid in registered:
            outcome = self._lifecycle.deregister(iccid, caller, "owner de-registration (实名注销)")
            if outcome.record_id:
                record_ids.append(outcome.record_id)
        return record_ids, reg.party_id

    # -- the operator's answer -----------------------------------------------------------------------

    def on_push_result(self, record_id: str) -> None:
        """An operator callback for ``record_id`` was applied: tell the person once the outcome is final."""
        reg = self._regs.by_push(record_id)
        if reg is None or reg.status is not RegistrationStatus.SUBMITTED:
            return
        outcome = self._outcome(reg)
        if reg.flow_id:
            self._verification.note(
                reg.flow_id,
                EvidenceKind.PUSH_RESULT,
                "operator",
                {"record": record_id, "step": outcome.step.value},
            )
        if outcome.step in FINAL_STEPS:
            self._notify(reg)

    def _notify(self, reg: Registration) -> None:
        """One SMS with the outcome (确认登记结果), at most once per registration."""
        if reg.notified_at is not None or not reg.phone or self._sms is None:
            return
        outcome = self._outcome(reg)
        if outcome.step not in FINAL_STEPS:
            return
        try:
            marked = self._save(reg, notified_at=self._clock())
        except Conflict:
            return  # another callback got there first
        tail = reg.vin[-6:]
        if outcome.step is Step.REGISTERED:
            text = f"【车联网卡实名登记】您的车辆（VIN 尾号 {tail}）车联网卡实名登记成功，已开通必要功能。"
        elif outcome.step is Step.DEREGISTERED:
            text = f"【车联网卡实名登记】您的车辆（VIN 尾号 {tail}）车联网卡已注销实名，仅保留紧急呼叫功能。"
        else:
            reason = outcome.reason_zh or "请核对信息后重新办理"
            text = f"【车联网卡实名登记】您的车辆（VIN 尾号 {tail}）车联网卡实名登记未通过：{reason}。"
        try:
            self._sms.send(reg.phone, text)
        except DomainError:
            logger.warning("result SMS not sent", extra={"registration": marked.registration_id})

    # -- my vehicles ---------------------------------------------------------------------------------

    def my_vehicles(self, caller: str) -> MyVehicles:
        """The vehicles the caller registered (latest registration of each), cards still theirs or in
        progress, with states, history and the last result; all masked."""
        latest: dict[str, Registration] = {}
        for reg in self._regs.of_owner(caller):
            if reg.kind is RegistrationKind.REGISTRATION and reg.status is RegistrationStatus.SUBMITTED:
                latest[reg.vin] = reg
        vehicles: list[MyVehicle] = []
        for vin, reg in latest.items():
            vehicle = self._inventory.get_vehicle(vin)
            if vehicle is None:
                continue
            histories = {iccid: _own_events(self._inventory.history(iccid), reg) for iccid in reg.iccids}
            outcome = self._outcome(reg, histories)
            cards: list[CardSummary] = []
            for iccid in reg.iccids:
                card = self._inventory.get_card(iccid)
                if card is None:
                    continue
                if card.holder_id not in (None, reg.party_id):
                    continue  # registered to someone else since (a transfer)
                cards.append(_card_summary(card, histories[iccid]))
            if not cards:
                continue
            vehicles.append(
                MyVehicle(
                    **_vehicle_summary(vehicle).model_dump(),
                    registration_id=reg.registration_id,
                    step=outcome.step,
                    result=outcome,
                    cards=cards,
                )
            )
        return MyVehicles(vehicles=vehicles)

    # -- housekeeping --------------------------------------------------------------------------------

    def _in_review(self, reg: Registration) -> Flow | None:
        try:
            flow = self._flow(reg)
        except NotFound:
            return None
        return flow if flow is not None and flow.status is FlowStatus.IN_REVIEW else None

    def purge_abandoned(self, limit: int = 100) -> dict[str, int]:
        """Abandoned registrations and flows (expired before submission) deleted, photos with them."""
        now = self._clock()
        registrations = 0
        for reg in self._regs.expired_open(now, limit):
            in_review = self._in_review(reg)
            if in_review is not None:
                # Waiting for a reviewer: it lives as long as its flow's review window.
                self._save(reg, expires_at=in_review.expires_at)
            elif self._regs.delete_expired(reg, now):
                registrations += 1
        flows = self._verification.purge_expired(limit)
        return {"registrations": registrations, "flows": flows, **self.recover_stuck(limit)}
