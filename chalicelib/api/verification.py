"""Verification API: flows, document photos, OCR, liveness + face match, manual review, evidence.

Every flow step is its own route; the server enforces the order, the limits and the thresholds.
A person sees only their own flows (another person's flow is 403 and says nothing about it), with
personal fields masked; reviewers see them in clear, auditors see the evidence chain.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field

from chalicelib.api.http import ApiModel, Blueprint, Call, route
from chalicelib.core import deps
from chalicelib.core.auth import PERSON_ROLES, REVEAL_ROLES, Principal, Role
from chalicelib.kernel.errors import Forbidden, InvalidField
from chalicelib.kernel.personal import IdType, mask_address, mask_id_number, mask_name
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.flows import (
    Flow,
    FlowPurpose,
    ReviewCase,
    TypedIdentity,
)
from chalicelib.verification.domain.liveness import PREVIEW_MAX_BYTES, FacePreview, LivenessCapture
from chalicelib.verification.views import (
    AuthorityOutcome,
    FaceCheckOutcome,
    LivenessStart,
    OcrOutcome,
    PresignedUpload,
    StoredDocument,
)

bp = Blueprint(__name__)

#: People who verify themselves in a flow: an owner, an enterprise's legal person or agent, and a portal
#: account doing its real-name authentication (``account_verification`` flows only, see ``open_flow``).
FLOW_ROLES = PERSON_ROLES | {Role.ACCOUNT}
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


def _identity_view(identity: TypedIdentity | None, reveal: bool) -> IdentityView | None:
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
    return FlowView(
        flow_id=flow.flow_id,
        purpose=flow.purpose,
        status=flow.status.value,
        documents=sorted(flow.documents),
        checks={k: v.value for k, v in flow.checks.items()},
        identity=_identity_view(flow.identity, reveal),
        attempts_left=attempts_left,
        created_at=flow.created_at,
        expires_at=flow.expires_at,
    )


def reveal_for(user: Principal) -> bool:
    return bool(user.roles & REVEAL_ROLES)


@route(
    bp,
    "/v1/flows",
    method="POST",
    summary="Open a verification flow (registration, de-registration, ...) for the caller",
    roles=FLOW_ROLES,
    body=OpenFlow,
    response=FlowView,
    status=201,
    errors=(429,),
    tags=("verification",),
)
def open_flow(call: Call) -> FlowView:
    purpose: FlowPurpose = call.body.purpose
    account_flow = purpose is FlowPurpose.ACCOUNT_VERIFICATION
    # A portal account verifies itself (账号实名认证) and nothing else; only an account does that.
    if not call.user.has_any({Role.ACCOUNT} if account_flow else PERSON_ROLES):
        raise Forbidden(
            "flow.purpose_not_allowed",
            "当前账号不能办理该业务",
            f"This caller cannot open a {purpose.value} flow",
            field="purpose",
        )
    if account_flow:
        deps.accounts().require_live_session(call.user)  # a signed-out account's token opens nothing
    return flow_view(deps.verification_service().open_flow(call.actor, purpose))


@route(
    bp,
    "/v1/flows/{flow_id}",
    summary="One of my flows: its steps done, checks and attempts left (personal data masked)",
    roles=FLOW_ROLES,
    response=FlowView,
    errors=(404,),
    tags=("verification",),
)
def get_flow(call: Call, flow_id: str) -> FlowView:
    service = deps.verification_service()
    flow = service.flow(flow_id, call.actor)
    left = service.attempts_left(flow_id, call.actor)
    return flow_view(flow, attempts_left=left.left if left else None)


class IdentityBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    id_type: IdType
    id_number: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=64)
    address: str | None = Field(default=None, max_length=128)
    company_name: str | None = Field(default=None, max_length=128)
    uscc: str | None = Field(default=None, max_length=18)


@route(
    bp,
    "/v1/flows/{flow_id}/identity",
    method="PUT",
    summary="The identity document details as typed (validated, stored encrypted)",
    roles=FLOW_ROLES,
    body=IdentityBody,
    response=FlowView,
    errors=(404, 409),
    tags=("verification",),
    step="identity",
)
def put_identity(call: Call, flow_id: str) -> FlowView:
    body: IdentityBody = call.body
    identity = TypedIdentity(
        id_type=body.id_type.value,
        id_number=body.id_number,
        name=body.name,
        address=body.address,
        company_name=body.company_name,
        uscc=body.uscc,
    )
    return flow_view(deps.verification_service().set_identity(flow_id, call.actor, identity))


class UploadRequest(ApiModel):
    model_config = ConfigDict(extra="forbid")

    kind: DocumentKind
    content_type: str = Field(max_length=64)


@route(
    bp,
    "/v1/flows/{flow_id}/uploads",
    method="POST",
    summary="A presigned S3 POST for one document photo (the photo goes straight to storage)",
    roles=FLOW_ROLES,
    body=UploadRequest,
    response=PresignedUpload,
    status=201,
    errors=(404, 409),
    tags=("verification",),
)
def presign_upload(call: Call, flow_id: str) -> PresignedUpload:
    body: UploadRequest = call.body
    return deps.verification_service().presign_upload(flow_id, call.actor, body.kind, body.content_type)


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


@route(
    bp,
    "/v1/flows/{flow_id}/documents",
    method="POST",
    summary="Validate an uploaded photo and keep it (refusals keep nothing)",
    roles=FLOW_ROLES,
    body=CompleteUpload,
    response=DocumentView,
    status=201,
    errors=(404, 409),
    tags=("verification",),
    step="documents",
)
def complete_upload(call: Call, flow_id: str) -> DocumentView:
    body: CompleteUpload = call.body
    stored: StoredDocument = deps.verification_service().complete_upload(
        flow_id, call.actor, body.kind, body.key
    )
    return DocumentView(
        kind=stored.kind, sha256=stored.sha256, size=stored.size, width=stored.width, height=stored.height
    )


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


@route(
    bp,
    "/v1/flows/{flow_id}/ocr/{kind}",
    method="POST",
    summary="Read a stored ID card or licence photo and check it against the typed details",
    roles=FLOW_ROLES,
    response=OcrView,
    errors=(404, 409, 422, 503),
    tags=("verification",),
    step="ocr",
)
def read_document(call: Call, flow_id: str, kind: str) -> OcrView:
    try:
        document = DocumentKind(kind)
    except ValueError as exc:
        raise InvalidField(
            "ocr.kind", "该类证件不支持识别", f"{kind!r} photos are not read", field="kind"
        ) from exc
    outcome = deps.verification_service().read_document(flow_id, call.actor, document)
    return ocr_view(outcome, reveal=False)


@route(
    bp,
    "/v1/flows/{flow_id}/readings/{kind}",
    method="POST",
    summary="OCR first: read my stored ID card photo (id_front / id_back) to fill the form I then confirm",
    roles=FLOW_ROLES,
    response=OcrView,
    errors=(404, 409, 422, 503),
    tags=("verification",),
    step="ocr",
)
def read_for_confirmation(call: Call, flow_id: str, kind: str) -> OcrView:
    """识别后确认: nothing is checked against an identity here; the confirmed identity (PUT identity) is
    cross-checked with the card by ``POST ocr/{kind}``. The back's validity is checked at once."""
    try:
        document = DocumentKind(kind)
    except ValueError as exc:
        raise InvalidField(
            "ocr.kind", "该类证件不支持识别", f"{kind!r} photos are not read", field="kind"
        ) from exc
    outcome = deps.verification_service().read_for_confirmation(flow_id, call.actor, document)
    # The person's own card, shown back to them to confirm: in clear (the response is never logged), and
    # recorded in the read log as read by its owner (reason ``self``) before it is answered.
    view = ocr_view(outcome, reveal=True)
    from chalicelib.api.audit import read_of, record_reads
    from chalicelib.audit.domain import SELF_REASON, RecordKind

    read = read_of(
        RecordKind.FLOW, flow_id, [f"reading.{document.value}.{k}" for k, v in view.reading.items() if v]
    )
    record_reads(call, [read] if read else [], SELF_REASON)
    return view


@route(
    bp,
    "/v1/flows/{flow_id}/authority-check",
    method="POST",
    summary="Check the typed identity with the identity authority again (after 503 authority.unavailable)",
    roles=FLOW_ROLES,
    response=AuthorityOutcome,
    errors=(404, 409, 422, 503),
    tags=("verification",),
    step="authority",
)
def authority_check(call: Call, flow_id: str) -> AuthorityOutcome:
    return deps.verification_service().check_authority(flow_id, call.actor)


@route(
    bp,
    "/v1/flows/{flow_id}/liveness-sessions",
    method="POST",
    summary="Start a liveness check: a single-use session bound to this flow and person (3 minutes)",
    roles=FLOW_ROLES,
    response=LivenessStart,
    status=201,
    errors=(404, 409, 429),
    tags=("verification",),
)
def start_liveness(call: Call, flow_id: str) -> LivenessStart:
    return deps.verification_service().start_liveness(flow_id, call.actor)


class LivenessFrames(ApiModel):
    model_config = ConfigDict(extra="forbid")

    #: JPEG/PNG frames, base64; empty for engines that captured them themselves (Rekognition).
    frames: list[str] = Field(default_factory=list, max_length=MAX_FRAMES)
    #: The session's capture nonce (``challenge.nonce``), sent back with the frames.
    nonce: str | None = Field(default=None, max_length=128)
    #: Each frame's capture time in milliseconds (client clock), in the order of the frames.
    timestamps_ms: list[int] | None = Field(default=None, max_length=MAX_FRAMES)


def _frames(encoded: list[str]) -> list[bytes]:
    frames = []
    for index, text in enumerate(encoded):
        try:
            frames.append(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise InvalidField(
                "liveness.frame_encoding",
                f"第 {index + 1} 帧不是有效的 base64 编码",
                f"Frame {index + 1} is not valid base64",
                field=f"frames[{index}]",
            ) from exc
    return frames


@route(
    bp,
    "/v1/flows/{flow_id}/liveness-sessions/{session_id}/result",
    method="POST",
    summary="Judge the liveness check and match the live capture with the ID portrait (one attempt)",
    roles=FLOW_ROLES,
    body=LivenessFrames,
    response=FaceCheckOutcome,
    errors=(404, 409, 429),
    tags=("verification",),
    step="face",
)
def complete_liveness(call: Call, flow_id: str, session_id: str) -> FaceCheckOutcome:
    frames = _frames(call.body.frames)
    capture = LivenessCapture(nonce=call.body.nonce, timestamps_ms=call.body.timestamps_ms)
    return deps.verification_service().complete_liveness(flow_id, call.actor, session_id, frames, capture)


class PreviewFrame(ApiModel):
    model_config = ConfigDict(extra="forbid")

    #: One small JPEG of the live video (at most 320 px and 64 KB: a larger one is refused as such), base64.
    frame: str = Field(max_length=4 * (2 * PREVIEW_MAX_BYTES // 3 + 1))


@route(
    bp,
    "/v1/flows/{flow_id}/liveness-sessions/{session_id}/preview",
    method="POST",
    summary="Live guidance while the face is lined up: the face's box, size, light and pose in one small "
    "frame (no attempt spent, limited per session)",
    roles=FLOW_ROLES,
    body=PreviewFrame,
    response=FacePreview,
    errors=(404, 409, 413, 429),
    tags=("verification",),
)
def preview_liveness(call: Call, flow_id: str, session_id: str) -> FacePreview:
    try:
        frame = base64.b64decode(call.body.frame, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidField(
            "liveness.frame_encoding",
            "预览画面不是有效的 base64 编码",
            "The frame is not valid base64",
            field="frame",
        ) from exc
    return deps.verification_service().preview_liveness(flow_id, call.actor, session_id, frame)


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


@route(
    bp,
    "/v1/flows/{flow_id}/review",
    method="POST",
    summary="Send the flow to manual review once the face attempts are used up",
    roles=FLOW_ROLES,
    response=ReviewCaseView,
    status=201,
    errors=(404, 409),
    tags=("verification",),
)
def request_review(call: Call, flow_id: str) -> ReviewCaseView:
    return case_view(deps.verification_service().request_review(flow_id, call.actor))


class BiometricConsentBody(ApiModel):
    """The biometric consent text as served by ``GET /v1/consents`` (kind ``biometric_consent``)."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(min_length=1, max_length=16)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    client: dict[str, str] = Field(default_factory=dict, max_length=8, description="User agent, screen")


@route(
    bp,
    "/v1/flows/{flow_id}/biometric-consent",
    method="POST",
    summary="人脸信息处理单独同意: the separate consent the face check needs first (PIPL 第二十九条)",
    roles=FLOW_ROLES,
    body=BiometricConsentBody,
    response=FlowView,
    errors=(404, 409),
    tags=("verification",),
    step="biometric_consent",
)
def biometric_consent(call: Call, flow_id: str) -> FlowView:
    body: BiometricConsentBody = call.body
    client = {k[:32]: v[:300] for k, v in body.client.items()}
    flow = deps.verification_service().give_biometric_consent(
        flow_id, call.actor, body.version, body.sha256, client
    )
    return flow_view(flow)
