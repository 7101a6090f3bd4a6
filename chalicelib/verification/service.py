"""Verification core (SPEC §3, §8, §10): the checks every flow makes, enforced on the server.

One entry point for every kind of flow, each method handed to the use case that owns it:

- ``flows.Flows``: open a flow, find it, type the identity, keep, reopen, purge the expired ones;
- ``documents.Documents``: upload photos safely, read them (OCR) and cross-check them;
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
from chalicelib.verification.cases import CaseOpener
from chalicelib.verification.consents import Consents
from chalicelib.verification.documents import Documents
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import (
    AttemptsLeft,
    Flow,
    FlowPurpose,
    ReviewCase,
    ReviewDecision,
    ReviewStatus,
    TypedIdentity,
    VerificationPolicy,
)
from chalicelib.verification.face import FaceChecks
from chalicelib.verification.flows import Flows
from chalicelib.verification.ports import (
    AttemptCounters,
    EvidenceLog,
    FaceEngine,
    FaceGate,
    FlowRepository,
    LivenessEngine,
    LivenessSessions,
    OcrEngine,
    ReviewCases,
)
from chalicelib.verification.review import Reviews
from chalicelib.verification.uploads import UploadService
from chalicelib.verification.views import (
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
        clock: Clock = utc_now,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.flows = Flows(
            flows=flows,
            uploads=uploads,
            evidence=evidence,
            hasher=hasher,
            policy=policy,
            clock=clock,
            new_id=new_id,
        )
        self.documents = Documents(
            flows=self.flows, uploads=uploads, ocr=ocr, faces=faces, evidence=evidence, clock=clock
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
            cases=CaseOpener(flows=self.flows, cases=cases, evidence=evidence, clock=clock),
            gates=gates,
            clock=clock,
            new_id=new_id,
        )
        self.reviews = Reviews(flows=self.flows, face=self.face, cases=cases, evidence=evidence, clock=clock)
        self.consents = Consents(flows=self.flows, evidence=evidence, clock=clock)

    # --- flows ---------------------------------------------------------------------------------

    def open_flow(self, owner: str, purpose: FlowPurpose) -> Flow:
        return self.flows.open_flow(owner, purpose)

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

    def check_owner_id(self, flow_id: str, caller: str, owner: TypedIdentity) -> None:
        self.documents.check_owner_id(flow_id, caller, owner)

    def document_url(self, flow: Flow, kind: str) -> str | None:
        return self.documents.document_url(flow, kind)

    # --- face ----------------------------------------------------------------------------------

    def start_liveness(self, flow_id: str, caller: str) -> LivenessStart:
        return self.face.start_liveness(flow_id, caller)

    def complete_liveness(
        self, flow_id: str, caller: str, session_id: str, frames: Sequence[bytes]
    ) -> FaceCheckOutcome:
        return self.face.complete_liveness(flow_id, caller, session_id, frames)

    def attempts_left(self, flow_id: str, caller: str) -> AttemptsLeft | None:
        return self.face.attempts_left(flow_id, caller)

    # --- manual review -------------------------------------------------------------------------

    def request_review(self, flow_id: str, caller: str) -> ReviewCase:
        return self.reviews.request_review(flow_id, caller)

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
