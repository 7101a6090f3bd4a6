"""Verification API: flows, document photos, OCR, liveness + face match, manual review, evidence.

Every flow step is its own route; the server enforces the order, the limits and the thresholds.
A person sees only their own flows (another person's flow is 403 and says nothing about it), with
personal fields masked; reviewers see them in clear, auditors see the evidence chain.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING

from chalicelib.api.http import Blueprint, Call, route
from chalicelib.core import deps, lazy
from chalicelib.core.auth import PERSON_ROLES, REVEAL_ROLES, Principal, Role
from chalicelib.kernel.errors import Forbidden, InvalidField

if TYPE_CHECKING:
    from chalicelib.api import verification_views as models
    from chalicelib.verification import views
    from chalicelib.verification.domain import documents, flows, liveness
    from chalicelib.verification.domain.flows import FlowPurpose
    from chalicelib.verification.domain.liveness import FacePreview
    from chalicelib.verification.views import (
        AuthorityOutcome,
        FaceCheckOutcome,
        LivenessStart,
        PresignedUpload,
        StoredDocument,
    )
else:
    # The routes' models, and the domain they name, load with the first request that needs them.
    models = lazy.module("chalicelib.api.verification_views")
    views = lazy.module("chalicelib.verification.views")
    documents = lazy.module("chalicelib.verification.domain.documents")
    flows = lazy.module("chalicelib.verification.domain.flows")
    liveness = lazy.module("chalicelib.verification.domain.liveness")

bp = Blueprint(__name__)

#: People who verify themselves in a flow: an owner, an enterprise's legal person or agent, and a portal
#: account doing its real-name authentication (``account_verification`` flows only, see ``open_flow``).
FLOW_ROLES = PERSON_ROLES | {Role.ACCOUNT}


def reveal_for(user: Principal) -> bool:
    return bool(user.roles & REVEAL_ROLES)


@route(
    bp,
    "/v1/flows",
    method="POST",
    summary="Open a verification flow (registration, de-registration, ...) for the caller",
    roles=FLOW_ROLES,
    body=lambda: models.OpenFlow,
    response=lambda: models.FlowView,
    status=201,
    errors=(429,),
    tags=("verification",),
)
def open_flow(call: Call) -> models.FlowView:
    purpose: FlowPurpose = call.body.purpose
    account_flow = purpose is flows.FlowPurpose.ACCOUNT_VERIFICATION
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
    return models.flow_view(deps.verification_service().open_flow(call.actor, purpose))


@route(
    bp,
    "/v1/flows/{flow_id}",
    summary="One of my flows: its steps done, checks and attempts left (personal data masked)",
    roles=FLOW_ROLES,
    response=lambda: models.FlowView,
    errors=(404,),
    tags=("verification",),
)
def get_flow(call: Call, flow_id: str) -> models.FlowView:
    service = deps.verification_service()
    flow = service.flow(flow_id, call.actor)
    left = service.attempts_left(flow_id, call.actor)
    return models.flow_view(flow, attempts_left=left.left if left else None)


@route(
    bp,
    "/v1/flows/{flow_id}/identity",
    method="PUT",
    summary="The identity document details as typed (validated, stored encrypted)",
    roles=FLOW_ROLES,
    body=lambda: models.IdentityBody,
    response=lambda: models.FlowView,
    errors=(404, 409),
    tags=("verification",),
    step="identity",
)
def put_identity(call: Call, flow_id: str) -> models.FlowView:
    body: models.IdentityBody = call.body
    identity = flows.TypedIdentity(
        id_type=body.id_type.value,
        id_number=body.id_number,
        name=body.name,
        address=body.address,
        company_name=body.company_name,
        uscc=body.uscc,
    )
    return models.flow_view(deps.verification_service().set_identity(flow_id, call.actor, identity))


@route(
    bp,
    "/v1/flows/{flow_id}/uploads",
    method="POST",
    summary="A presigned S3 POST for one document photo (the photo goes straight to storage)",
    roles=FLOW_ROLES,
    body=lambda: models.UploadRequest,
    response=lambda: views.PresignedUpload,
    status=201,
    errors=(404, 409),
    tags=("verification",),
)
def presign_upload(call: Call, flow_id: str) -> PresignedUpload:
    body: models.UploadRequest = call.body
    return deps.verification_service().presign_upload(flow_id, call.actor, body.kind, body.content_type)


@route(
    bp,
    "/v1/flows/{flow_id}/documents",
    method="POST",
    summary="Validate an uploaded photo and keep it (refusals keep nothing)",
    roles=FLOW_ROLES,
    body=lambda: models.CompleteUpload,
    response=lambda: models.DocumentView,
    status=201,
    errors=(404, 409),
    tags=("verification",),
    step="documents",
)
def complete_upload(call: Call, flow_id: str) -> models.DocumentView:
    body: models.CompleteUpload = call.body
    stored: StoredDocument = deps.verification_service().complete_upload(
        flow_id, call.actor, body.kind, body.key
    )
    return models.DocumentView(
        kind=stored.kind, sha256=stored.sha256, size=stored.size, width=stored.width, height=stored.height
    )


@route(
    bp,
    "/v1/flows/{flow_id}/ocr/{kind}",
    method="POST",
    summary="Read a stored ID card or licence photo and check it against the typed details",
    roles=FLOW_ROLES,
    response=lambda: models.OcrView,
    errors=(404, 409, 422, 503),
    tags=("verification",),
    step="ocr",
)
def read_document(call: Call, flow_id: str, kind: str) -> models.OcrView:
    try:
        document = documents.DocumentKind(kind)
    except ValueError as exc:
        raise InvalidField(
            "ocr.kind", "该类证件不支持识别", f"{kind!r} photos are not read", field="kind"
        ) from exc
    outcome = deps.verification_service().read_document(flow_id, call.actor, document)
    return models.ocr_view(outcome, reveal=False)


@route(
    bp,
    "/v1/flows/{flow_id}/readings/{kind}",
    method="POST",
    summary="OCR first: read my stored ID card photo (id_front / id_back) to fill the form I then confirm",
    roles=FLOW_ROLES,
    response=lambda: models.OcrView,
    errors=(404, 409, 422, 503),
    tags=("verification",),
    step="ocr",
)
def read_for_confirmation(call: Call, flow_id: str, kind: str) -> models.OcrView:
    """识别后确认: nothing is checked against an identity here; the confirmed identity (PUT identity) is
    cross-checked with the card by ``POST ocr/{kind}``. The back's validity is checked at once."""
    try:
        document = documents.DocumentKind(kind)
    except ValueError as exc:
        raise InvalidField(
            "ocr.kind", "该类证件不支持识别", f"{kind!r} photos are not read", field="kind"
        ) from exc
    outcome = deps.verification_service().read_for_confirmation(flow_id, call.actor, document)
    # The person's own card, shown back to them to confirm: in clear (the response is never logged), and
    # recorded in the read log as read by its owner (reason ``self``) before it is answered.
    view = models.ocr_view(outcome, reveal=True)
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
    response=lambda: views.AuthorityOutcome,
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
    response=lambda: views.LivenessStart,
    status=201,
    errors=(404, 409, 429),
    tags=("verification",),
)
def start_liveness(call: Call, flow_id: str) -> LivenessStart:
    return deps.verification_service().start_liveness(flow_id, call.actor)


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
    body=lambda: models.LivenessFrames,
    response=lambda: views.FaceCheckOutcome,
    errors=(404, 409, 429),
    tags=("verification",),
    step="face",
)
def complete_liveness(call: Call, flow_id: str, session_id: str) -> FaceCheckOutcome:
    frames = _frames(call.body.frames)
    capture = liveness.LivenessCapture(nonce=call.body.nonce, timestamps_ms=call.body.timestamps_ms)
    return deps.verification_service().complete_liveness(flow_id, call.actor, session_id, frames, capture)


@route(
    bp,
    "/v1/flows/{flow_id}/liveness-sessions/{session_id}/preview",
    method="POST",
    summary="Live guidance while the face is lined up: the face's box, size, light and pose in one small "
    "frame (no attempt spent, limited per session)",
    roles=FLOW_ROLES,
    body=lambda: models.PreviewFrame,
    response=lambda: liveness.FacePreview,
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


@route(
    bp,
    "/v1/flows/{flow_id}/review",
    method="POST",
    summary="Send the flow to manual review once the face attempts are used up",
    roles=FLOW_ROLES,
    response=lambda: models.ReviewCaseView,
    status=201,
    errors=(404, 409),
    tags=("verification",),
)
def request_review(call: Call, flow_id: str) -> models.ReviewCaseView:
    return models.case_view(deps.verification_service().request_review(flow_id, call.actor))


@route(
    bp,
    "/v1/flows/{flow_id}/biometric-consent",
    method="POST",
    summary="人脸信息处理单独同意: the separate consent the face check needs first (PIPL 第二十九条)",
    roles=FLOW_ROLES,
    body=lambda: models.BiometricConsentBody,
    response=lambda: models.FlowView,
    errors=(404, 409),
    tags=("verification",),
    step="biometric_consent",
)
def biometric_consent(call: Call, flow_id: str) -> models.FlowView:
    body: models.BiometricConsentBody = call.body
    client = {k[:32]: v[:300] for k, v in body.client.items()}
    flow = deps.verification_service().give_biometric_consent(
        flow_id, call.actor, body.version, body.sha256, client
    )
    return models.flow_view(flow)
