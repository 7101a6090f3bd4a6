"""The fleet batch's rules: what a batch (批次) of an enterprise's vehicles is, the states it goes
through from draft to completed, and the documents it carries.

A batch is either a registration (单位车辆实名登记) or a de-registration (解除登记) of up to
``MAX_BATCH_VEHICLES`` vehicles; once approved its cards are handled in chunks of ``CHUNK_VEHICLES``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from chalicelib.kernel.errors import Conflict, InvalidField, NotFound

CHUNK_VEHICLES = 25
"""Vehicles per registration (or de-registration) chunk once a batch is approved."""

MAX_BATCH_VEHICLES = 500
"""The most vehicles one batch may carry."""

BATCH_ID_PREFIX = "fb_"


class BatchKind(StrEnum):
    """What a batch asks for."""

    REGISTRATION = "registration"  # 实名登记
    DEREGISTRATION = "deregistration"  # 解除登记


class BatchStatus(StrEnum):
    """Where a batch stands."""

    DRAFT = "draft"  # being built by the enterprise
    SUBMITTED = "submitted"  # workflow started, automatic checks running
    IN_REVIEW = "in_review"  # waiting for a reviewer
    RESUBMISSION_REQUESTED = "resubmission_requested"  # the enterprise must replace named documents
    APPROVED = "approved"  # cards being registered / de-registered and pushed
    COMPLETED = "completed"  # every card pushed; the operator's answers then show per card
    REJECTED = "rejected"  # final
    EXPIRED = "expired"  # resubmission never came


OPEN_STATUSES: frozenset[BatchStatus] = frozenset(
    {
        BatchStatus.DRAFT,
        BatchStatus.SUBMITTED,
        BatchStatus.IN_REVIEW,
        BatchStatus.RESUBMISSION_REQUESTED,
        BatchStatus.APPROVED,
    }
)
"""Statuses in which a batch still holds its vehicles: a vehicle may be in one open batch only."""

FINAL_STATUSES: frozenset[BatchStatus] = frozenset(
    {BatchStatus.COMPLETED, BatchStatus.REJECTED, BatchStatus.EXPIRED}
)

BATCH_STATUS_ZH: dict[BatchStatus, str] = {
    BatchStatus.DRAFT: "草稿",
    BatchStatus.SUBMITTED: "已提交，自动核验中",
    BatchStatus.IN_REVIEW: "审核中",
    BatchStatus.RESUBMISSION_REQUESTED: "待补充材料",
    BatchStatus.APPROVED: "审核通过，登记中",
    BatchStatus.COMPLETED: "已完成",
    BatchStatus.REJECTED: "已驳回",
    BatchStatus.EXPIRED: "已过期",
}


class DocumentSlot(StrEnum):
    """A document a batch carries (each uploaded through the batch's verification flow)."""

    BUSINESS_LICENCE = "business_licence"  # 营业执照
    AUTHORIZATION_LETTER = "authorization_letter"  # 授权书
    CUSTODY_AGREEMENT = "custody_agreement"  # 车卡保管协议 (registration only)
    RESPONSIBLE_ID_FRONT = "responsible_id_front"  # 责任人证件人像面
    RESPONSIBLE_ID_BACK = "responsible_id_back"  # 责任人证件国徽面


DOCUMENT_SLOT_ZH: dict[DocumentSlot, str] = {
    DocumentSlot.BUSINESS_LICENCE: "营业执照",
    DocumentSlot.AUTHORIZATION_LETTER: "授权书",
    DocumentSlot.CUSTODY_AGREEMENT: "车卡保管协议",
    DocumentSlot.RESPONSIBLE_ID_FRONT: "责任人证件人像面",
    DocumentSlot.RESPONSIBLE_ID_BACK: "责任人证件国徽面",
}


def document_slots(kind: BatchKind) -> tuple[DocumentSlot, ...]:
    """The documents a batch of ``kind`` must carry."""
    if kind is BatchKind.REGISTRATION:
        return tuple(DocumentSlot)
    return tuple(s for s in DocumentSlot if s is not DocumentSlot.CUSTODY_AGREEMENT)


def chunk_count(vehicles: int) -> int:
    """How many chunks of ``CHUNK_VEHICLES`` a batch of ``vehicles`` vehicles makes."""
    return (vehicles + CHUNK_VEHICLES - 1) // CHUNK_VEHICLES


def chunk_of(vins: tuple[str, ...], index: int) -> tuple[str, ...]:
    """The VINs of chunk ``index`` (0-based) of a batch's vehicles, in the batch's order."""
    if index < 0:
        return ()
    return vins[index * CHUNK_VEHICLES : (index + 1) * CHUNK_VEHICLES]


@dataclass(frozen=True)
class FleetBatch:
    """One batch of an enterprise's vehicles.

    ``flow_id`` is the verification flow of the responsible person and the documents;
    ``responsible_id_hash`` the keyed hash of the responsible person's ID type and number;
    ``consents`` maps a consent text kind to the version accepted; ``round`` starts at 1 and grows by
    one at each resubmission; ``resubmit_documents`` and ``outcome_reasons`` are those of the last
    decision; ``version`` guards conditional writes."""

    batch_id: str
    uscc: str
    company_name: str
    kind: BatchKind
    status: BatchStatus
    created_by: str
    created_at: datetime
    updated_at: datetime
    vins: tuple[str, ...] = ()
    dealer_code: str | None = None
    flow_id: str | None = None
    responsible_phone_verified: bool = False
    responsible_name_masked: str | None = None
    responsible_id_hash: str | None = None
    consents: dict[str, str] = field(default_factory=dict)
    typed_company_name: str | None = None
    submitted_at: datetime | None = None
    round: int = 1
    execution_arn: str | None = None
    resubmit_documents: tuple[DocumentSlot, ...] = ()
    outcome_reasons: tuple[str, ...] = ()
    cards_total: int = 0
    cards_pushed: int = 0
    version: int = 1
    #: The responsible person's phone, verified by SMS (in clear in memory only: sealed at rest).
    responsible_phone: str | None = field(default=None, repr=False)
    #: The document keys of the slots named by the last resubmission request, as they were then: a
    #: resubmission needs each of them replaced (its key changed).
    decision_documents: dict[str, str] = field(default_factory=dict)

    @property
    def is_open(self) -> bool:
        """Whether the batch still holds its vehicles."""
        return self.status in OPEN_STATUSES

    @property
    def chunks(self) -> int:
        """How many chunks the batch's vehicles make."""
        return chunk_count(len(self.vins))


class BatchStep(StrEnum):
    """A step of building a batch, in the order the portal walks them (seed 000 §3, §4)."""

    VEHICLES = "vehicles"  # 输入VIN，选择车辆
    DEALER = "dealer"  # 勾选售车经销商 (registration)
    RESPONSIBLE_PHONE = "responsible_phone"  # 车辆负责人手机号 + 验证码 (registration)
    BUSINESS_LICENCE = "business_licence"  # 营业执照 (read, and the enterprise's)
    AUTHORIZATION_LETTER = "authorization_letter"  # 授权书
    RESPONSIBLE_IDENTITY = "responsible_identity"  # 负责人身份证 (both sides read, cross-checked)
    FACE = "face"  # 人脸识别
    CUSTODY_AGREEMENT = "custody_agreement"  # 车卡分管协议 (registration)
    CONSENTS = "consents"  # 同意车联网协议 (registration)


REGISTRATION_STEPS: tuple[BatchStep, ...] = tuple(BatchStep)
DEREGISTRATION_STEPS: tuple[BatchStep, ...] = (
    BatchStep.VEHICLES,
    BatchStep.BUSINESS_LICENCE,
    BatchStep.AUTHORIZATION_LETTER,
    BatchStep.RESPONSIBLE_IDENTITY,
    BatchStep.FACE,
)


def steps_of(kind: BatchKind) -> tuple[BatchStep, ...]:
    """The steps a batch of ``kind`` needs before it is submitted."""
    return REGISTRATION_STEPS if kind is BatchKind.REGISTRATION else DEREGISTRATION_STEPS


def new_batch_id(hex24: str) -> str:
    """``fb_<24 hex>``."""
    return f"{BATCH_ID_PREFIX}{hex24}"


# -- refusals ------------------------------------------------------------------------------------


def batch_not_found() -> NotFound:
    """Unknown, or a batch of another enterprise (told the same)."""
    return NotFound("fleet.batch_not_found", "批次不存在", "No such batch")


def batch_too_large(count: int) -> InvalidField:
    return InvalidField(
        "fleet.batch_too_large",
        f"每个批次最多 {MAX_BATCH_VEHICLES} 辆车，本次共 {count} 辆",
        f"A batch holds at most {MAX_BATCH_VEHICLES} vehicles; this one would hold {count}",
        field="vins",
        details={"count": count, "limit": MAX_BATCH_VEHICLES},
    )


def wrong_status(status: BatchStatus, allowed: frozenset[BatchStatus] | set[BatchStatus]) -> Conflict:
    return Conflict(
        "fleet.wrong_status",
        f"批次当前状态为「{BATCH_STATUS_ZH[status]}」，不能进行此操作",
        f"The batch is {status.value}; this cannot be done now",
        details={"status": status.value, "allowed": sorted(s.value for s in allowed)},
    )


def steps_missing(missing: list[BatchStep]) -> Conflict:
    return Conflict(
        "fleet.steps_missing",
        "还有步骤未完成：" + "、".join(STEP_ZH[s] for s in missing),
        "Steps not done yet: " + ", ".join(s.value for s in missing),
        details={"missing": [s.value for s in missing]},
    )


def batch_changed() -> Conflict:
    return Conflict(
        "fleet.batch_changed",
        "批次已被他人修改，请刷新后重试",
        "The batch changed meanwhile; reload it and try again",
    )


STEP_ZH: dict[BatchStep, str] = {
    BatchStep.VEHICLES: "选择车辆",
    BatchStep.DEALER: "售车经销商",
    BatchStep.RESPONSIBLE_PHONE: "负责人手机号验证",
    BatchStep.BUSINESS_LICENCE: "营业执照",
    BatchStep.AUTHORIZATION_LETTER: "授权书",
    BatchStep.RESPONSIBLE_IDENTITY: "负责人身份证",
    BatchStep.FACE: "人脸识别",
    BatchStep.CUSTODY_AGREEMENT: "车卡分管协议",
    BatchStep.CONSENTS: "车联网协议",
}
