"""Owner registrations (实名登记) and de-registrations (实名注销): one resumable resource per vehicle and
person, whose next step the server decides (SPEC §3, seed 000 §1–2, 第八条/第十二条/第十三条).

Registration: confirm the vehicle → verify the owner's or user's phone → show possession of the car
→ identity → ID photos (OCR cross-check) → live face check against the ID portrait → consents → submit
→ the operator's answer. Until possession is shown, a registration tells nothing about the vehicle.
(The H5 client reads the ID photos first and has the identity confirmed from the reading: the
identity step is then the confirmed reading, cross-checked with the card as a typed one.)
De-registration of one of *my* vehicles: phone → identity (the registered holder's, taken as the
flow opens: not typed again) → ID photos → face of the registered person → submit. The identity,
photos and face checks are the verification flow's (``domain.flows``); this module only says which
step is due and refuses the others.

Delegated registration (委托登记, 第十二条) is a registration whose flow verifies the trustee (受托人)
while the owner's identity and the authorization letter (授权委托书) are recorded beside it.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from chalicelib.consents.domain import ConsentRecord
from chalicelib.kernel.errors import Conflict, Forbidden, NotFound, TooManyRequests
from chalicelib.kernel.names import TextKind, clean_optional, clean_text
from chalicelib.sms.domain import subject_for
from chalicelib.verification.domain.flows import (
    PERMANENT,
    CheckName,
    CheckVerdict,
    Flow,
    FlowPurpose,
    FlowStatus,
)


class RegistrationKind(StrEnum):
    REGISTRATION = "registration"  # 实名登记
    DEREGISTRATION = "deregistration"  # 实名注销

    @property
    def flow_purpose(self) -> FlowPurpose:
        return FlowPurpose(self.value)


class RegistrationStatus(StrEnum):
    OPEN = "open"
    SUBMITTING = "submitting"  # claimed by one submit request; the push is being committed
    SUBMITTED = "submitted"  # committed with its pushes; the outcome is read from the cards


class Step(StrEnum):
    """What the person does next, or where the registration ended."""

    CONFIRM_VEHICLE = "confirm_vehicle"
    VERIFY_PHONE = "verify_phone"
    POSSESSION = "possession"  # the person shows they hold the car (no squatting)
    DELEGATION = "delegation"  # 委托登记: the owner's identity and the authorization letter
    IDENTITY = "identity"
    DOCUMENTS = "documents"
    FACE = "face"
    REVIEW = "review"  # face attempts ran out; a reviewer decides
    CONSENTS = "consents"
    SUBMIT = "submit"
    PENDING = "pending"  # with the operator
    REGISTERED = "registered"
    DEREGISTERED = "deregistered"
    REJECTED = "rejected"
    TRANSFERRED = "transferred"  # 过户: the seller's registration ended when the buyer's was accepted


FINAL_STEPS = frozenset({Step.REGISTERED, Step.DEREGISTERED, Step.REJECTED})


REGISTRATION_STEPS: tuple[Step, ...] = (
    Step.CONFIRM_VEHICLE,
    Step.VERIFY_PHONE,
    Step.POSSESSION,
    Step.IDENTITY,
    Step.DOCUMENTS,
    Step.FACE,
    Step.CONSENTS,
    Step.SUBMIT,
)


DELEGATED_STEPS: tuple[Step, ...] = (
    Step.CONFIRM_VEHICLE,
    Step.VERIFY_PHONE,
    Step.POSSESSION,
    Step.DELEGATION,
    Step.IDENTITY,
    Step.DOCUMENTS,
    Step.FACE,
    Step.CONSENTS,
    Step.SUBMIT,
)


DEREGISTRATION_STEPS: tuple[Step, ...] = (
    Step.VERIFY_PHONE,
    Step.IDENTITY,
    Step.DOCUMENTS,
    Step.FACE,
    Step.SUBMIT,
)


class DelegationConfirmation(StrEnum):
    """How the owner agreed to the delegation (第十二条: the owner, not only a photo of their card)."""

    SMS = "sms"  # a code sent to the owner's phone, given to the trustee by the owner
    FACE = "face"  # the owner's own face check against the owner's ID card photo


class Delegation(BaseModel):
    """委托登记 (第十二条): the owner who authorized a trustee, the authorization letter, and the owner's
    confirmation (a delegation not confirmed by the owner cannot be submitted)."""

    model_config = ConfigDict(frozen=True)

    owner_id_type: str
    owner_id_number: str = Field(repr=False)
    owner_name: str = Field(repr=False)
    owner_address: str | None = Field(default=None, repr=False)
    #: Key of the stored photo of the authorization letter (授权委托书).
    letter_key: str | None = None
    #: Key of the stored photo of the owner's ID card (read and cross-checked with the fields above).
    owner_id_key: str | None = None
    #: Key of the stored photo of the back of the owner's resident ID card, read for its validity.
    owner_id_back_key: str | None = None
    #: The owner's ID validity as its back was read (第五条 如实登记), as ``TypedIdentity.id_validity``:
    #: an ISO end date or ``permanent`` (长期); ``None`` for documents without one read.
    owner_id_validity: str | None = Field(default=None, repr=False)
    #: The trustee (受托人) the letter names, as read: the verified trustee must be this person.
    trustee_name: str | None = Field(default=None, repr=False)
    #: The owner's phone the confirmation code goes to (stored sealed), and its keyed hash.
    owner_phone: str | None = Field(default=None, repr=False)
    owner_phone_hash: str | None = None
    confirmed_by: DelegationConfirmation | None = None
    confirmed_at: AwareDatetime | None = None
    #: The flow of the owner's own face check (``FlowPurpose.DELEGATION_OWNER``), when one was opened.
    owner_flow_id: str | None = None

    @field_validator("owner_name", "trustee_name")
    @classmethod
    def _name_is_text(cls, value: str | None, info: ValidationInfo) -> str | None:
        field = "owner.name" if info.field_name == "owner_name" else "trustee.name"
        return None if value is None else clean_text(TextKind.NAME, value, field=field)

    @field_validator("owner_address")
    @classmethod
    def _address_is_text(cls, value: str | None) -> str | None:
        return clean_optional(TextKind.ADDRESS, value, field="owner.address")

    @property
    def confirmed(self) -> bool:
        return self.confirmed_at is not None

    @property
    def owner_subject(self) -> str | None:
        """The owner's sign-in subject: the one of the phone given for them (``sms.domain.subject_for``
        of its keyed hash). Signed in with that phone, the owner sees the car and may de-register it."""
        return subject_for(self.owner_phone_hash) if self.owner_phone_hash else None

    @property
    def owner_id_valid_until(self) -> date | None:
        v = self.owner_id_validity
        return None if v in (None, PERMANENT) else date.fromisoformat(str(v))

    @property
    def owner_id_permanent(self) -> bool:
        return self.owner_id_validity == PERMANENT


class PossessionMethod(StrEnum):
    """How a person shows they hold the car (the OEM enables some: setting ``possession_methods``)."""

    SALES_PHONE = "sales_phone"  # the verified phone is the sales / in-service record's contact phone
    HEAD_UNIT = "head_unit"  # a one-time code shown on the car's head unit (车机)
    VEHICLE_DOCUMENT = "vehicle_document"  # 行驶证 or purchase invoice whose VIN, read by OCR, matches


class HeadUnitCode(BaseModel):
    """The one-time code last sent to the car's head unit: only its keyed hash is kept."""

    model_config = ConfigDict(frozen=True)

    code_hash: str = Field(repr=False)
    sent_at: AwareDatetime
    expires_at: AwareDatetime
    sends: int = 1
    failures: int = 0


class Possession(BaseModel):
    """Proof that the person holds the car, and a contest of someone else's claim on it."""

    model_config = ConfigDict(frozen=True)

    method: PossessionMethod | None = None
    proved_at: AwareDatetime | None = None
    head_unit: HeadUnitCode | None = None
    #: The review case opened when the car was already pending or registered under someone else.
    contest_case_id: str | None = None
    contested_at: AwareDatetime | None = None
    #: 过户 (第十三条): the car is registered to someone else and the person goes on as its buyer: the
    #: registration's cards are the seller's, pushed as a transfer (effective when the operator accepts).
    transfer: bool = False
    transfer_chosen_at: AwareDatetime | None = None

    @property
    def proved(self) -> bool:
        return self.proved_at is not None


class Registration(BaseModel):
    """One person's registration or de-registration of one vehicle's cards."""

    model_config = ConfigDict(frozen=True)

    registration_id: str
    owner: str
    kind: RegistrationKind
    delegated: bool = False
    #: 经销商现场协助 (第二十条): the dealer code of the dealer whose tablet the owner registered on.
    assisted_by: str | None = None
    vin: str
    iccids: list[str]
    status: RegistrationStatus
    version: int
    flow_id: str | None = None
    confirmed_at: AwareDatetime | None = None
    phone: str | None = Field(default=None, repr=False)
    phone_hash: str | None = None
    delegation: Delegation | None = None
    possession: Possession | None = None
    consents: list[ConsentRecord] = Field(default_factory=list)
    party_id: str | None = None
    #: 现场拍摄留存照片: the live capture the face check chose, kept with the submitted registration.
    onsite_photo: str | None = None
    record_ids: list[str] = Field(default_factory=list)
    #: 受理编号: given when the submission is claimed, never changed; the owner reads it on the result and
    #: in 我的车辆, support finds the registration by it (``receipts.receipt_candidates``).
    receipt_no: str | None = None
    submitted_at: AwareDatetime | None = None
    notified_at: AwareDatetime | None = None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    expires_at: AwareDatetime | None = None

    @property
    def is_transfer(self) -> bool:
        """过户: a registration by the buyer of a car registered to someone else."""
        return self.possession is not None and self.possession.transfer

    @property
    def steps(self) -> tuple[Step, ...]:
        if self.kind is RegistrationKind.DEREGISTRATION:
            return DEREGISTRATION_STEPS
        return DELEGATED_STEPS if self.delegated else REGISTRATION_STEPS


def trustee_named(delegation: Delegation, flow: Flow | None) -> bool | None:
    """Whether the letter's trustee (受托人) is the person the flow verifies; ``None`` until that
    person's identity is typed. Both names are normalised text (``kernel.names``)."""
    if flow is None or flow.identity is None:
        return None
    named = delegation.trustee_name
    return named is not None and named.casefold() == flow.identity.name.casefold()


def _check_passed(flow: Flow, check: CheckName) -> bool:
    return flow.checks.get(check) in (CheckVerdict.PASSED, CheckVerdict.APPROVED)


def step_before_submission(reg: Registration, flow: Flow | None) -> Step:
    """The next step of an open registration (its flow as it is now)."""
    for step in reg.steps:
        if not _done(step, reg, flow):
            return step
    return Step.SUBMIT


def _done(step: Step, reg: Registration, flow: Flow | None) -> bool:
    if step is Step.CONFIRM_VEHICLE:
        return reg.confirmed_at is not None
    if step is Step.VERIFY_PHONE:
        return reg.phone_hash is not None
    if step is Step.POSSESSION:
        # Proved, and the cards to register were free when it was (a car held by someone else: contest).
        return reg.possession is not None and reg.possession.proved and bool(reg.iccids)
    if step is Step.DELEGATION:
        # The photos recorded must still be the flow's (a replaced one needs the step again).
        d = reg.delegation
        if d is None or d.letter_key is None or d.owner_id_key is None or not d.confirmed:
            return False
        if trustee_named(d, flow) is False:
            return False  # the letter authorizes someone else than the person this flow verifies
        return flow is None or (
            d.letter_key == flow.documents.get("authorization_letter")
            and d.owner_id_key == flow.documents.get("owner_id_front")
            and d.owner_id_back_key == flow.documents.get("owner_id_back")
        )
    if flow is None:
        return False
    if step is Step.IDENTITY:
        return flow.identity is not None
    if step is Step.DOCUMENTS:
        # 证件真实性: the identity authority knows the identity (or, unable to answer or not covering
        # its type, the face check will send the flow to a reviewer).
        authority = _check_passed(flow, CheckName.AUTHORITY) or (
            flow.checks.get(CheckName.AUTHORITY) is CheckVerdict.IN_REVIEW
        )
        return (
            _check_passed(flow, CheckName.OCR_ID_FRONT)
            and _check_passed(flow, CheckName.OCR_ID_BACK)
            and authority
        )
    if step is Step.FACE:
        return _check_passed(flow, CheckName.FACE) or flow.status is FlowStatus.VERIFIED
    if step is Step.CONSENTS:
        return bool(reg.consents)
    return False  # SUBMIT is never "done" before submission


def require_step(reg: Registration, flow: Flow | None, wanted: Step) -> None:
    """Refuse an action of ``wanted`` unless it is the step due (409 ``*.step_out_of_order``).

    Earlier steps may be repeated while the registration is open (e.g. another phone code); later ones
    never run ahead.
    """
    if reg.status is not RegistrationStatus.OPEN:
        raise already_submitted(reg)
    due = step_before_submission(reg, flow)
    steps = reg.steps
    if wanted not in steps:
        raise step_out_of_order(reg, due, wanted)
    if steps.index(wanted) > steps.index(due) if due in steps else True:
        raise step_out_of_order(reg, due, wanted)


def step_out_of_order(reg: Registration, due: Step, wanted: Step) -> Conflict:
    return Conflict(
        f"{reg.kind.value}.step_out_of_order",
        "请先完成当前步骤",
        f"The step due is {due.value}, not {wanted.value}",
        details={"step": due.value, "requested": wanted.value},
    )


def already_submitted(reg: Registration) -> Conflict:
    return Conflict(
        f"{reg.kind.value}.already_submitted",
        "该办理已提交，不能再修改",
        "This has been submitted and can no longer change",
        details={"status": reg.status.value},
    )


def not_found() -> NotFound:
    return NotFound(
        "registration.not_found", "办理记录不存在或已过期", "No such registration, or it has expired"
    )


def check_owner(reg: Registration | None, caller: str, now: datetime) -> Registration:
    """The caller's own registration; another person's is 403 with nothing about it."""
    if reg is None:
        raise not_found()
    if reg.owner != caller:
        raise Forbidden(
            "registration.not_yours", "无权访问该办理记录", "This registration belongs to someone else"
        )
    if reg.status is RegistrationStatus.OPEN and reg.expires_at is not None and reg.expires_at <= now:
        raise not_found()
    return reg


def not_my_vehicle() -> Forbidden:
    return Forbidden(
        "vehicle.not_yours",
        "该车辆不在您名下的已登记车辆中",
        "This vehicle is not among the vehicles registered to you",
        field="vin",
    )


def changed(reg: Registration, now: datetime, **changes: object) -> Registration:
    """``reg`` with ``changes``, one version up (what the store's conditional save expects)."""
    return reg.model_copy(update={**changes, "version": reg.version + 1, "updated_at": now})


def count_open(registrations: list[Registration], now: datetime) -> int:
    """How many of a person's registrations are open: unfinished (not submitted) and unexpired."""
    return sum(
        1
        for reg in registrations
        if reg.status is RegistrationStatus.OPEN and (reg.expires_at is None or reg.expires_at > now)
    )


def too_many_open_registrations(limit: int) -> TooManyRequests:
    return TooManyRequests(
        "registration.too_many_open",
        f"您已有 {limit} 个未完成的登记，请先完成其中一个，或等未完成的登记过期后再新建",
        f"You already have {limit} unfinished registrations; finish one, or let an unfinished one expire, "
        "before starting another",
        details={"limit": limit},
    )
