"""The models of the verification flow's routes (``chalicelib.api.verification``) and the views built
from a flow, its OCR readings and its review case (masked unless revealed; the review routes use them
too). Loaded on their first use: a cold start builds none of them, nor imports the verification's
domain."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field

from chalicelib.api.models import ApiModel
from chalicelib.kernel.personal import IdType, mask_address, mask_id_number, mask_name
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.flows import Flow, FlowPurpose, ReviewCase, TypedIdentity
from chalicelib.verification.domain.liveness import PREVIEW_MAX_BYTES
from chalicelib.verification.views import OcrOutcome

#: Frames of one liveness burst, base64 in JSON: 8 frames of at most 1 MB fit the body limit.
MAX_FRAMES = 8


class OpenFlow(ApiModel):
    model_config = ConfigDict(extra="forbid")

    purpose: FlowPurpose


class IdentityView(ApiModel):
    id_type: str
    id_number: str
    name: str
    address: str | None = None
    company_name: str | None = None
    uscc: str | None = None


class FlowView(ApiModel):
    flow_id: str
    purpose: FlowPurpose
    status: str
    documents: list[str]
    checks: dict[str, str]
    identity: IdentityView | None
    attempts_left: int | None
    created_at: datetime
    expires_at: datetime


def identity_fields(identity: TypedIdentity | None) -> list[str]:
    """The identity's personal fields a view in clear shows (a company's name and code are public)."""
    if identity is None:
        return []
    personal = identity.id_type != IdType.USCC.value
    names = ["identity.id_number", "identity.name"] if personal else []
    return [*names, "identity.address"] if identity.address else names


def identity_view(identity: TypedIdentity | None, reveal: bool) -> IdentityView | None:
    """The identity typed in the flow: personal fields masked unless ``reveal``."""
    if identity is None:
        return None
    if reveal:
        return IdentityView(**identity.model_dump(exclude={"id_validity"}))
    personal = identity.id_type != IdType.USCC.value
    return IdentityView(
        id_type=identity.id_type,
        id_number=mask_id_number(identity.id_number) if personal else identity.id_number,
        name=mask_name(identity.name) if personal else identity.name,
        address=mask_address(identity.address) if identity.address else None,
        company_name=identity.company_name,
        uscc=identity.uscc,
    )


def flow_view(flow: Flow, *, reveal: bool = False, attempts_left: int | None = None) -> FlowView:
    """The flow as a view: personal fields masked unless ``reveal``."""
    return FlowView(
        flow_id=flow.flow_id,
        purpose=flow.purpose,
        status=flow.status.value,
        documents=sorted(flow.documents),
        checks={k: v.value for k, v in flow.checks.items()},
        identity=identity_view(flow.identity, reveal),
        attempts_left=attempts_left,
        created_at=flow.created_at,
        expires_at=flow.expires_at,
    )


class IdentityBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    id_type: IdType
    id_number: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=64)
    address: str | None = Field(default=None, max_length=128)
    company_name: str | None = Field(default=None, max_length=128)
    uscc: str | None = Field(default=None, max_length=18)


class UploadRequest(ApiModel):
    model_config = ConfigDict(extra="forbid")

    kind: DocumentKind
    content_type: str = Field(max_length=64)


class CompleteUpload(ApiModel):
    model_config = ConfigDict(extra="forbid")

    kind: DocumentKind
    key: str = Field(max_length=256)


class DocumentView(ApiModel):
    kind: DocumentKind
    sha256: str
    size: int
    width: int
    height: int


class OcrView(ApiModel):
    kind: DocumentKind
    agreed: bool
    fields_read: list[str]
    confidences: dict[str, float]
    reading: dict[str, Any]
    #: A passport or permit (OCR does not read it): the review case it went to at once.
    review_case_id: str | None = None


def _mask_date(_value: str) -> str:
    return "****-**-**"


_MASKS: dict[str, Callable[[str], str]] = {
    "name": mask_name,
    "id_number": mask_id_number,
    "address": mask_address,
    "birth_date": _mask_date,
}


def ocr_view(outcome: OcrOutcome, reveal: bool) -> OcrView:
    """What OCR read from a document photo: personal fields masked unless ``reveal``."""
    reading = dict(outcome.reading)
    if not reveal and outcome.kind is not DocumentKind.BUSINESS_LICENCE:
        reading = {k: (_MASKS[k](str(v)) if k in _MASKS and v else v) for k, v in reading.items()}
    return OcrView(
        kind=outcome.kind,
        agreed=outcome.agreed,
        fields_read=outcome.fields_read,
        confidences=outcome.confidences,
        reading=reading,
        review_case_id=outcome.review_case_id,
    )


class LivenessFrames(ApiModel):
    model_config = ConfigDict(extra="forbid")

    #: JPEG/PNG frames, base64; empty for engines that captured them themselves (Rekognition).
    frames: list[str] = Field(default_factory=list, max_length=MAX_FRAMES)
    #: The session's capture nonce (``challenge.nonce``), sent back with the frames.
    nonce: str | None = Field(default=None, max_length=128)
    #: Each frame's capture time in milliseconds (client clock), in the order of the frames.
    timestamps_ms: list[int] | None = Field(default=None, max_length=MAX_FRAMES)


class PreviewFrame(ApiModel):
    model_config = ConfigDict(extra="forbid")

    #: One small JPEG of the live video (at most 320 px and 64 KB: a larger one is refused as such), base64.
    frame: str = Field(max_length=4 * (2 * PREVIEW_MAX_BYTES // 3 + 1))


class ReviewCaseView(ApiModel):
    case_id: str
    case_number: str = Field(description="审核编号, told to the owner")
    flow_id: str
    purpose: FlowPurpose
    reason: str
    status: str
    created_at: datetime
    summary: dict[str, Any]
    decided_at: datetime | None = None
    decided_by: str | None = None


def case_view(case: ReviewCase) -> ReviewCaseView:
    """A review case as its routes show it."""
    return ReviewCaseView(
        case_id=case.case_id,
        case_number=case.number,
        flow_id=case.flow_id,
        purpose=case.purpose,
        reason=case.reason.value,
        status=case.status.value,
        created_at=case.created_at,
        summary=case.summary,
        decided_at=case.decided_at,
        decided_by=case.decided_by,
    )


class BiometricConsentBody(ApiModel):
    """The biometric consent text as served by ``GET /v1/consents`` (kind ``biometric_consent``)."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(min_length=1, max_length=16)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    client: dict[str, str] = Field(default_factory=dict, max_length=8, description="User agent, screen")
