"""Verification core (SPEC §3, §8, §10): the checks every flow makes, enforced on the server.

One entry point for every kind of flow, each method handed to the use case that owns it:

- ``flows.Flows``: open a flow, find it, type the identity, keep, reopen, purge the expired ones;
- ``documents.Documents``: upload photos safely, read them (OCR) and cross-check them;
- ``authority.AuthorityChecks``: the identity (and the live face) against the identity authority;
- ``face.FaceChecks``: liveness sessions, the live capture against the ID portrait, attempt limits;
- ``review.Reviews``: manual review once the attempts have run out;
- ``consents.Consents``: the biometric consent and the flow's other consents, into the evidence.

Every check goes into the flow's evidence log (查验日志).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.crypto import KeyedHasher
from chalicelib.kernel.errors import Conflict
from chalicelib.verification.authority import AuthorityChecks, AuthorityPortraitGate
from chalicelib.verification.cases import CaseOpener
from chalicelib.verification.consents import Consents
from chalicelib.verification.documents import Documents
from chalicelib.verification.domain.authority import UnavailablePolicy
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import (
    AttemptsLeft,
    Flow,
    FlowPurpose,
    ReviewCase,
    ReviewDecision,
    ReviewReason,
    ReviewStatus,
    TypedIdentity,
    VerificationPolicy,
)
from chalicelib.verification.domain.liveness import FacePreview, LivenessCapture
from chalicelib.verification.domain.readings import AuthorizationLetter, VehicleDocument
from chalicelib.verification.face import FaceChecks
from chalicelib.verification.flows import Flows
from chalicelib.verification.ports import (
    AttemptCounters,
    EvidenceLog,
    FaceEngine,
    FaceGate,
    FlowRepository,
    IdentityAuthority,
    LivenessEngine,
    LivenessSessions,
    OcrEngine,
    ReviewCases,
)
from chalicelib.verification.review import Reviews
from chalicelib.verification.uploads import UploadService
from chalicelib.verification.views import (
    AuthorityOutcome,
    FaceCheckOutcome,
    LivenessStart,
    OcrOutcome,
    PresignedUpload,
    StoredDocument,
)

__all__ = ["VerificationPolicy", "VerificationService"]


class VerificationService:
    def __init__(
        self,
        *,
        flows: FlowRepository,
        attempts: AttemptCounters,
        sessions: LivenessSessions,
        cases: ReviewCases,
        uploads: UploadService,
        ocr: OcrEngine,
        faces: FaceEngine,
        liveness: LivenessEngine,
        evidence: EvidenceLog,
        hasher: KeyedHasher,
        policy: VerificationPolicy,
        gates: Sequence[FaceGate] = (),
        authority: IdentityAuthority | None = None,
        authority_unavailable: UnavailablePolicy = "retry",
        clock: Clock = utc_now,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        #: The flows' evidence log (a step of another context joins its own write to an entry).
        self.evidence = evidence
        self.flows = Flows(
            flows=flows,
            uploads=uploads,
            evidence=evidence,
            hasher=hasher,
            policy=policy,
            gates=gates,
            clock=clock,
            new_id=new_id,
        )
        self.authority = (
            None
            if authority is None
            else AuthorityChecks(
                flows=self.flows, authority=authority, evidence=evidence, unavailable=authority_unavailable
            )
        )
        if self.authority is not None:
            gates = (AuthorityPortraitGate(self.authority, evidence), *gates)
        self.cases = CaseOpener(flows=self.flows, cases=cases, evidence=evidence, clock=clock)
        self.documents = Documents(
            flows=self.flows,
            uploads=uploads,
            ocr=ocr,
            faces=faces,
            evidence=evidence,
            authority=self.authority,
            cases=self.cases,
            clock=clock,
        )
        self.face = FaceChecks(
            flows=self.flows,
            documents=self.documents,
            attempts=attempts,
            sessions=sessions,
            faces=faces,
            liveness=liveness,
            evidence=evidence,
            policy=policy,
            cases=self.cases,
            gates=gates,
            clock=clock,
            new_id=new_id,
        )
        self.reviews = Reviews(flows=self.flows, face=self.face, cases=cases, evidence=evidence, clock=clock)
        self.consents = Consents(flows=self.flows, evidence=evidence, clock=clock)

    # --- flows ---------------------------------------------------------------------------------

    def open_flow(self, owner: str, purpose: FlowPurpose, flow_id: str | None = None) -> Flow:
        return self.flows.open_flow(owner, purpose, flow_id)

    def new_flow_id(self) -> str:
        return self.flows.new_flow_id()

    def prepare_open(self, owner: str, purpose: FlowPurpose, flow_id: str) -> tuple[Flow, int]:
        return self.flows.prepare_open(owner, purpose, flow_id)

    def flow(self, flow_id: str, caller: str) -> Flow:
        return self.flows.flow(flow_id, caller)

    def set_identity(self, flow_id: str, caller: str, identity: TypedIdentity) -> Flow:
        return self.flows.set_identity(flow_id, caller, identity)

    def note(self, flow_id: str, kind: EvidenceKind, actor: str, details: dict[str, Any]) -> None:
        self.flows.note(flow_id, kind, actor, details)

    def keep(self, flow: Flow, until: datetime) -> Flow:
        return self.flows.keep(flow, until)

    def reopen(self, flow_id: str, caller: str, at: datetime) -> Flow:
        return self.flows.reopen(flow_id, caller, at)

    def purge_expired(self, limit: int = 100) -> int:
        return self.flows.purge_expired(limit)

    # --- documents -----------------------------------------------------------------------------

    def presign_upload(
        self, flow_id: str, caller: str, kind: DocumentKind, content_type: str
    ) -> PresignedUpload:
        return self.documents.presign_upload(flow_id, caller, kind, content_type)

    def complete_upload(self, flow_id: str, caller: str, kind: DocumentKind, key: str) -> StoredDocument:
        return self.documents.complete_upload(flow_id, caller, kind, key)

    def read_document(self, flow_id: str, caller: str, kind: DocumentKind) -> OcrOutcome:
        return self.documents.read_document(flow_id, caller, kind)

    def read_for_confirmation(self, flow_id: str, caller: str, kind: DocumentKind) -> OcrOutcome:
        return self.documents.read_for_confirmation(flow_id, caller, kind)

    def read_vehicle_document(self, flow_id: str, caller: str, kind: DocumentKind) -> VehicleDocument:
        return self.documents.read_vehicle_document(flow_id, caller, kind)

    def check_owner_id(self, flow_id: str, caller: str, owner: TypedIdentity) -> str | None:
        """The owner's ID card read and checked; the validity its back gave (see ``Documents``)."""
        return self.documents.check_owner_id(flow_id, caller, owner)

    def check_authorization_letter(
        self, flow_id: str, caller: str, *, owner_name: str, owner_id_number: str, vin: str
    ) -> AuthorizationLetter:
        return self.documents.check_authorization_letter(
            flow_id, caller, owner_name=owner_name, owner_id_number=owner_id_number, vin=vin
        )

    def check_authority(self, flow_id: str, caller: str) -> AuthorityOutcome:
        """Ask the identity authority again (after ``authority.unavailable``), without a new upload."""
        if self.authority is None:
            raise Conflict(
                "authority.not_configured",
                "未配置身份核验服务",
                "No identity authority is configured on this stage",
            )
        return self.authority.check_identity(flow_id, caller)

    def document_url(self, flow: Flow, kind: str) -> str | None:
        return self.documents.document_url(flow, kind)

    # --- face ----------------------------------------------------------------------------------

    def start_liveness(self, flow_id: str, caller: str) -> LivenessStart:
        return self.face.start_liveness(flow_id, caller)

    def complete_liveness(
        self,
        flow_id: str,
        caller: str,
        session_id: str,
        frames: Sequence[bytes],
        capture: LivenessCapture | None = None,
    ) -> FaceCheckOutcome:
        return self.face.complete_liveness(flow_id, caller, session_id, frames, capture)

    def preview_liveness(self, flow_id: str, caller: str, session_id: str, frame: bytes) -> FacePreview:
        return self.face.preview(flow_id, caller, session_id, frame)

    def attempts_left(self, flow_id: str, caller: str) -> AttemptsLeft | None:
        return self.face.attempts_left(flow_id, caller)

    # --- manual review -------------------------------------------------------------------------

    def request_review(self, flow_id: str, caller: str) -> ReviewCase:
        return self.reviews.request_review(flow_id, caller)

    def open_case(
        self, flow_id: str, caller: str, reason: ReviewReason, summary: dict[str, Any] | None = None
    ) -> ReviewCase:
        return self.cases.open(self.flows.flow(flow_id, caller), caller, reason, summary)

    def review_queue(
        self, status: ReviewStatus, limit: int, cursor: str | None
    ) -> tuple[list[ReviewCase], str | None]:
        return self.reviews.review_queue(status, limit, cursor)

    def review_case(self, case_id: str) -> tuple[ReviewCase, Flow]:
        return self.reviews.review_case(case_id)

    def decide_review(
        self, case_id: str, reviewer: str, decision: ReviewDecision, note: str | None
    ) -> ReviewCase:
        return self.reviews.decide_review(case_id, reviewer, decision, note)

    # --- consents ------------------------------------------------------------------------------

    def give_biometric_consent(
        self, flow_id: str, caller: str, version: str, sha256: str, client: dict[str, str]
    ) -> Flow:
        return self.consents.give_biometric_consent(flow_id, caller, version, sha256, client)

    def record_consents(self, flow_id: str, caller: str, consents: Sequence[BaseModel]) -> None:
        self.consents.record_consents(flow_id, caller, consents)
