"""Verification flows (办理流程): the checks one caller makes to prove who they are, and their limits.

A flow belongs to the caller who opened it and holds what the checks need: the identity the person
typed (kept encrypted), the stored document photos, and each check's verdict. Every flow kind
(registration, de-registration, delegated and enterprise registration, account real-name) runs the
same checks through the use cases of ``chalicelib.verification``.

Rules kept here, pure:

- face attempts: at most ``per_flow`` per flow and ``per_day`` per person per day (China time);
  the attempt is consumed when a liveness session is judged, before the verdict is known;
- a liveness session is single use, bound to one flow and one person, and expires;
- when attempts run out the flow offers manual review (人工审核) instead of a dead end.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from chalicelib.kernel.clock import CHINA
from chalicelib.kernel.errors import Conflict, Forbidden, InvalidField, NotFound, TooManyRequests
from chalicelib.kernel.names import TextKind, clean_optional, clean_text


@dataclass(frozen=True)
class VerificationPolicy:
    """The server-side numbers (from settings)."""

    face_threshold: float
    attempts_per_flow: int = 3
    attempts_per_person_day: int = 5
    liveness_session_seconds: int = 180
    #: Liveness sessions one flow may start (an unused, unexpired one is handed out again instead).
    liveness_sessions_per_flow: int = 6
    flow_ttl: timedelta = timedelta(hours=24)
    #: Flows one person may hold open at once (``open_flows_per_owner``).
    open_flows: int = 10


#: A flow in manual review is kept at least this long for the reviewer (then it may expire as usual).
REVIEW_WINDOW = timedelta(days=14)


class FlowPurpose(StrEnum):
    REGISTRATION = "registration"  # 实名登记
    DEREGISTRATION = "deregistration"  # 实名注销
    DELEGATED_REGISTRATION = "delegated_registration"  # 委托登记 (第十二条)
    #: 委托登记: the owner's own face check (liveness + the owner's ID portrait), confirming the delegation.
    DELEGATION_OWNER = "delegation_owner"
    ENTERPRISE_REGISTRATION = "enterprise_registration"  # 单位登记
    ENTERPRISE_DEREGISTRATION = "enterprise_deregistration"  # 单位解除登记
    ACCOUNT_VERIFICATION = "account_verification"  # 账号实名认证


class FlowStatus(StrEnum):
    OPEN = "open"
    IN_REVIEW = "in_review"  # attempts ran out; a reviewer decides
    VERIFIED = "verified"  # face check passed (by the engines or by a reviewer)
    REJECTED = "rejected"  # a reviewer refused


class CheckName(StrEnum):
    """The checks a flow records (``Flow.checks``)."""

    OCR_ID_FRONT = "ocr_id_front"
    OCR_ID_BACK = "ocr_id_back"
    OCR_BUSINESS_LICENCE = "ocr_business_licence"
    FACE = "face"
    #: 委托登记 (第十二条): the owner's ID card read and agreeing with the owner's typed identity.
    OCR_OWNER_ID_FRONT = "ocr_owner_id_front"
    #: 委托登记: the owner's resident ID card back read: its validity (第五条), not expired.
    OCR_OWNER_ID_BACK = "ocr_owner_id_back"
    #: 人脸信息处理单独同意 (PIPL 第二十九条): given before any face is processed.
    BIOMETRIC_CONSENT = "biometric_consent"
    #: The identity authority knows the typed name and ID number together (证件真实性).
    AUTHORITY = "authority"
    #: 委托登记: the owner's name and ID number, checked with the identity authority.
    AUTHORITY_OWNER = "authority_owner"
    #: 委托登记: the owner's phone held in the owner's name with the carrier (运营商三要素).
    AUTHORITY_OWNER_PHONE = "authority_owner_phone"


class CheckVerdict(StrEnum):
    #: A face check has started (its first liveness session): identity and ID photos are locked.
    STARTED = "started"
    PASSED = "passed"
    FAILED = "failed"
    IN_REVIEW = "in_review"
    APPROVED = "approved"  # passed by a reviewer
    REJECTED = "rejected"  # refused by a reviewer


#: ``TypedIdentity.id_validity`` of an ID valid without end (长期).
PERMANENT = "permanent"


class TypedIdentity(BaseModel):
    """What the person typed: compared with the photos; stored encrypted."""

    model_config = ConfigDict(frozen=True)

    id_type: str
    id_number: str = Field(repr=False)
    name: str = Field(repr=False)
    address: str | None = Field(default=None, repr=False)
    company_name: str | None = None
    uscc: str | None = None
    #: The ID card's validity as its back was read (第五条 如实登记): an ISO end date, or ``permanent``
    #: for 长期; ``None`` until the back is read (or for documents OCR does not read).
    id_validity: str | None = Field(default=None, repr=False)

    @property
    def id_valid_until(self) -> date | None:
        return None if self.id_validity in (None, PERMANENT) else date.fromisoformat(str(self.id_validity))

    @property
    def id_permanent(self) -> bool:
        return self.id_validity == PERMANENT

    @field_validator("name")
    @classmethod
    def _name_is_text(cls, value: str, info: ValidationInfo) -> str:
        """Normalised once (``kernel.names``): a name of spaces or invisible characters is refused."""
        kind = TextKind.COMPANY_NAME if info.data.get("id_type") == "uscc" else TextKind.NAME
        return clean_text(kind, value, field="name")

    @field_validator("address")
    @classmethod
    def _address_is_text(cls, value: str | None) -> str | None:
        return clean_optional(TextKind.ADDRESS, value, field="address")

    @field_validator("company_name")
    @classmethod
    def _company_is_text(cls, value: str | None) -> str | None:
        return clean_optional(TextKind.COMPANY_NAME, value, field="company_name")


def strict_uscc(value: str, field: str = "uscc") -> str:
    """统一社会信用代码 as an account's real-name takes it: normalised, and a wrong check character refused
    (``uscc.invalid``) rather than sent to review: the person has the licence in hand to copy it again."""
    from chalicelib.kernel.validators import validate  # the validators: not at a cold start

    checked = validate("uscc", value, field=field)
    if checked.review:
        raise InvalidField(
            "uscc.invalid",
            "统一社会信用代码有误，请对照营业执照核对后重新填写",
            "The unified social credit code is wrong (its check character does not match)",
            field=field,
        )
    return checked.value


def address_required(field: str = "address") -> InvalidField:
    """第五条: the holder's address is registered with the other identity facts."""
    return InvalidField(
        "identity.address_required",
        "请填写住址（与证件一致）",
        "Give the address (as on the identity document)",
        field=field,
    )


class Flow(BaseModel):
    model_config = ConfigDict(frozen=True)

    flow_id: str
    owner: str
    purpose: FlowPurpose
    status: FlowStatus
    version: int
    person_hash: str | None = None
    identity: TypedIdentity | None = None
    #: Document kind → key of the stored photo.
    documents: dict[str, str] = Field(default_factory=dict)
    checks: dict[str, CheckVerdict] = Field(default_factory=dict)
    created_at: AwareDatetime
    updated_at: AwareDatetime
    expires_at: AwareDatetime


def new_flow(flow_id: str, owner: str, purpose: FlowPurpose, now: datetime, ttl: timedelta) -> Flow:
    return Flow(
        flow_id=flow_id,
        owner=owner,
        purpose=purpose,
        status=FlowStatus.OPEN,
        version=1,
        created_at=now,
        updated_at=now,
        expires_at=now + ttl,
    )


def flow_not_found() -> NotFound:
    return NotFound("flow.not_found", "办理流程不存在或已过期", "The flow does not exist or has expired")


def check_access(flow: Flow | None, caller: str, now: datetime) -> Flow:
    """The caller's own, unexpired flow. Another person's flow is 403 with nothing about it."""
    if flow is None or flow.expires_at <= now:
        raise flow_not_found()
    if flow.owner != caller:
        raise Forbidden("flow.not_yours", "无权访问该办理流程", "This flow belongs to someone else")
    return flow


def check_open(flow: Flow) -> None:
    """Checks can run only while the flow is open (not in review, not decided)."""
    if flow.status is not FlowStatus.OPEN:
        raise Conflict(
            "flow.not_open",
            "该办理流程当前不能继续核验",
            f"The flow is {flow.status.value}: no more checks can be made",
            details={"status": flow.status.value},
        )


class AttemptsLeft(BaseModel):
    model_config = ConfigDict(frozen=True)

    flow: int = Field(ge=0)
    person_today: int = Field(ge=0)

    @property
    def left(self) -> int:
        return min(self.flow, self.person_today)


def attempts_exhausted(scope: Literal["flow", "person_day"], limit: int) -> TooManyRequests:
    if scope == "flow":
        zh = f"本次办理的人脸核验已达 {limit} 次上限，可提交人工审核"
        en = f"The {limit} face attempts of this flow are used up; you can send it to manual review"
    else:
        zh = f"今日人脸核验已达 {limit} 次上限，请明日再试或提交人工审核"
        en = f"Today's {limit} face attempts are used up; try tomorrow or send the flow to manual review"
    return TooManyRequests(
        "face.attempts_exhausted",
        zh,
        en,
        details={"scope": scope, "limit": limit, "review_available": True},
    )


class LivenessSession(BaseModel):
    """A liveness check in progress: single use, bound to one flow and one person."""

    model_config = ConfigDict(frozen=True)

    session_id: str
    flow_id: str
    owner: str
    person_hash: str
    engine: str
    provider_session_id: str | None
    challenge: dict[str, Any]
    created_at: AwareDatetime
    expires_at: AwareDatetime
    used_at: AwareDatetime | None = None
    #: The flow's version when the session was handed out: a pass is saved only onto that version.
    flow_version: int | None = None
    #: What the client needs to run the check (handed out again while the session is unused).
    client: dict[str, str] = Field(default_factory=dict)


def session_unknown() -> NotFound:
    return NotFound("liveness.session_unknown", "活体检测会话不存在", "The liveness session does not exist")


def session_used() -> Conflict:
    return Conflict(
        "liveness.session_used",
        "该活体检测会话已使用，请重新开始活体检测",
        "This liveness session was already used; start a new one",
    )


def session_expired() -> InvalidField:
    return InvalidField(
        "liveness.session_expired",
        "活体检测会话已过期，请重新开始活体检测",
        "This liveness session has expired; start a new one",
    )


def check_session(session: LivenessSession | None, flow: Flow, now: datetime) -> LivenessSession:
    """A session of this flow and its person, unused and unexpired."""
    if session is None or session.flow_id != flow.flow_id:
        raise session_unknown()
    if session.owner != flow.owner or session.person_hash != flow.person_hash:
        raise Forbidden(
            "liveness.session_not_yours",
            "该活体检测会话不属于当前办理人",
            "This liveness session belongs to another person",
        )
    if session.used_at is not None:
        raise session_used()
    if session.expires_at <= now:
        raise session_expired()
    return session


class ReviewStatus(StrEnum):
    OPEN = "open"
    APPROVED = "approved"
    REJECTED = "rejected"


class ReviewDecision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


class ReviewReason(StrEnum):
    FACE_ATTEMPTS_EXHAUSTED = "face_attempts_exhausted"
    #: The identity authority could not answer (and the stage sends such flows to review).
    AUTHORITY_UNAVAILABLE = "authority_unavailable"
    #: The live face is already bound to another identity on this platform (一脸多证).
    FACE_DUPLICATE = "face_duplicate"
    #: A person who showed they hold the car contests someone else's pending or registered claim on it.
    POSSESSION_CONTESTED = "possession_contested"
    #: An ID type the identity authority does not hold (passports, permits): a reviewer checks it.
    AUTHORITY_NOT_COVERED = "authority_not_covered"
    #: A document OCR does not read (passports, permits): a reviewer reads the photos and checks them
    #: against the typed identity at once; approved, the person does the face check against its portrait.
    DOCUMENT_NOT_MACHINE_READABLE = "document_not_machine_readable"
    #: 人工实名认证 (seed 001): an account's real-name authentication whose automatic checks did not all
    #: pass (a reading the person stands by, the identity authority, the face attempts): a reviewer
    #: compares the photos with what was given and decides; approved, the account completes real-name.
    REAL_NAME = "real_name"


#: Identity documents OCR reads (both sides); every other type goes to a reviewer at its first read.
MACHINE_READABLE_ID_TYPES = frozenset({"resident_id"})


class ReviewCase(BaseModel):
    """人工审核 case: what the reviewer needs to find the flow's evidence, nothing personal."""

    model_config = ConfigDict(frozen=True)

    case_id: str
    flow_id: str
    owner: str
    purpose: FlowPurpose
    reason: ReviewReason
    status: ReviewStatus
    created_at: AwareDatetime
    summary: dict[str, Any] = Field(default_factory=dict)
    decided_at: AwareDatetime | None = None
    decided_by: str | None = None
    decision_note: str | None = None
    #: 审核编号 the owner is told and may quote to the service desk (``case_number_for``).
    case_number: str | None = None

    @property
    def number(self) -> str:
        """The case number, stored since it was opened (derived the same way for older cases)."""
        return self.case_number or case_number_for(self.case_id, self.created_at)


def case_id_for(flow_id: str, reason: ReviewReason) -> str:
    """One case per flow and reason: asking twice finds the same case."""
    return f"rc-{flow_id}-{reason.value}"


#: Crockford's base32: no I, L, O or U, so a number read out over the phone is not misheard.
_CASE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def case_number_for(case_id: str, opened_at: datetime) -> str:
    """审核编号: ``SH`` + the China date it was opened + 8 characters drawn from the case id
    (``SH20261129-7K3Q9A2M``): short enough to read out, the same however often it is asked."""
    digest = int.from_bytes(hashlib.sha256(case_id.encode()).digest()[:5], "big")
    tail = "".join(_CASE_ALPHABET[(digest >> (5 * i)) & 31] for i in reversed(range(8)))
    day = opened_at.astimezone(CHINA).strftime("%Y%m%d")
    return f"SH{day}-{tail}"


def case_not_found() -> NotFound:
    return NotFound("review.not_found", "审核工单不存在", "The review case does not exist")


def case_decided(case: ReviewCase) -> Conflict:
    return Conflict(
        "review.already_decided",
        "该审核工单已处理",
        f"The review case was already decided ({case.status.value})",
        details={"status": case.status.value},
    )


def too_many_open_flows(limit: int) -> TooManyRequests:
    return TooManyRequests(
        "flow.too_many_open",
        f"您已有 {limit} 个未完成的办理流程，请先完成其中一个，或等未完成的流程过期后再办理",
        f"You already have {limit} unfinished verification flows; finish one, or let an unfinished one "
        "expire, before starting another",
        details={"limit": limit},
    )
