"""Verification core (SPEC §3, §8, §10): the checks every flow makes, enforced on the server.

One service runs them for every kind of flow: take document photos safely (``uploads``), read them
(OCR) and cross-check them with what the person typed, prove the live person is the person on the ID
(liveness, then the live capture against the ID card's portrait), limit face attempts, fall back to
manual review, and record every check in the flow's evidence log (查验日志).

What the client learns is pass/fail and the reasons' codes; scores and thresholds stay on the server
(they are in the evidence). Bad input raises before anything is written: a refused photo is never
kept, a mismatching ID card is not accepted, a liveness session is claimed and an attempt counted only
once the frames have been judged.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict

from chalicelib.kernel.clock import china_day, end_of_china_day
from chalicelib.kernel.crypto import KeyedHasher
from chalicelib.kernel.errors import Conflict, DomainError, InvalidField, ValidationErrors
from chalicelib.kernel.personal import IdType, id_lookup_value
from chalicelib.kernel.validators import validate
from chalicelib.registration.domain import AcceptedConsent, ConsentKind, check_consents, current_consent
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import (
    AttemptsLeft,
    CheckName,
    CheckVerdict,
    Flow,
    FlowPurpose,
    FlowStatus,
    LivenessSession,
    ReviewCase,
    ReviewDecision,
    ReviewReason,
    ReviewStatus,
    TypedIdentity,
    attempts_exhausted,
    case_id_for,
    case_not_found,
    check_access,
    check_open,
    check_session,
    new_flow,
    session_expired,
    session_used,
)
from chalicelib.verification.domain.liveness import LivenessChallenge, LivenessVerdict
from chalicelib.verification.domain.ocr import (
    TypedDetails,
    cross_check,
    parse_business_licence,
    parse_id_back,
    parse_id_front,
)
from chalicelib.verification.domain.readings import BusinessLicence, IdBack, IdFront
from chalicelib.verification.portrait import find_portrait, match_portrait
from chalicelib.verification.ports import (
    AttemptCounters,
    EvidenceLog,
    FaceEngine,
    FlowRepository,
    LivenessEngine,
    LivenessSessions,
    OcrEngine,
    ReviewCases,
)
from chalicelib.verification.uploads import PresignedUpload, StoredDocument, UploadService

#: Documents OCR reads, and the check each one records.
OCR_CHECKS: dict[DocumentKind, CheckName] = {
    DocumentKind.ID_FRONT: CheckName.OCR_ID_FRONT,
    DocumentKind.ID_BACK: CheckName.OCR_ID_BACK,
    DocumentKind.BUSINESS_LICENCE: CheckName.OCR_BUSINESS_LICENCE,
}


@dataclass(frozen=True)
class VerificationPolicy:
    """The server-side numbers (from settings)."""

    face_threshold: float
    attempts_per_flow: int = 3
    attempts_per_person_day: int = 5
    liveness_session_seconds: int = 180
    flow_ttl: timedelta = timedelta(hours=24)


class OcrOutcome(BaseModel):
    """What the person is told about a reading: which fields were read and that they agree."""

    model_config = ConfigDict(frozen=True)

    kind: DocumentKind
    fields_read: list[str]
    confidences: dict[str, float]
    agreed: bool
    #: The reading, for the caller to mask or reveal by role (never logged).
    reading: dict[str, Any]


class LivenessStart(BaseModel):
    model_config = ConfigDict(frozen=True)

    session_id: str
    engine: str
    challenge: dict[str, Any]
    client: dict[str, str]
    expires_at: datetime
    attempts_left: int


class FaceCheckOutcome(BaseModel):
    """The result of one face attempt: pass/fail and reason codes, never the score or threshold."""

    model_config = ConfigDict(frozen=True)

    session_id: str
    live: bool
    matched: bool | None
    passed: bool
    reasons: list[str]
    attempts_left: int
    review_available: bool


def _mismatch_errors(mismatches: Sequence[InvalidField]) -> DomainError:
    return mismatches[0] if len(mismatches) == 1 else ValidationErrors(list(mismatches))


#: A flow in manual review is kept at least this long for the reviewer (then it may expire as usual).
REVIEW_WINDOW = timedelta(days=14)


def _check_replaceable(flow: Flow, kind: DocumentKind) -> None:
    """What a person may upload: never the live capture (the liveness check chooses and keeps it), and,
    once a face check has started, no other ID card photo (like the identity): the face verdict must
    stay about the portrait it was made against."""
    if kind is DocumentKind.LIVE_CAPTURE:
        raise InvalidField(
            "document.server_only",
            "现场人像由人脸检测生成，不能上传",
            "The live capture comes from the liveness check; it cannot be uploaded",
            field="kind",
        )
    if (
        kind in (DocumentKind.ID_FRONT, DocumentKind.AUTHORIZATION_LETTER, DocumentKind.OWNER_ID_FRONT)
        and flow.checks.get(CheckName.FACE) is not None
    ):
        raise Conflict(
            "flow.documents_locked",
            "人脸核验已开始，证件照片和授权委托书不能再更换",
            "The ID card photo and the authorization letter cannot change once face checks have started",
            field="kind",
        )


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
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self._flows = flows
        self._attempts = attempts
        self._sessions = sessions
        self._cases = cases
        self._uploads = uploads
        self._ocr = ocr
        self._faces = faces
        self._liveness = liveness
        self._evidence = evidence
        self._hasher = hasher
        self._policy = policy
        self._clock = clock
        self._new_id = new_id

    # --- flows ---------------------------------------------------------------------------------

    def open_flow(self, owner: str, purpose: FlowPurpose) -> Flow:
        flow = new_flow(f"f{self._new_id()}", owner, purpose, self._clock(), self._policy.flow_ttl)
        self._flows.create(flow)
        return flow

    def flow(self, flow_id: str, caller: str) -> Flow:
        return check_access(self._flows.get(flow_id), caller, self._clock())

    def _open_flow(self, flow_id: str, caller: str) -> Flow:
        flow = self.flow(flow_id, caller)
        check_open(flow)
        return flow

    def _save(self, flow: Flow, **changes: Any) -> Flow:
        updated = flow.model_copy(
            update={**changes, "version": flow.version + 1, "updated_at": self._clock()}
        )
        return self._flows.save(updated)

    def set_identity(self, flow_id: str, caller: str, identity: TypedIdentity) -> Flow:
        """What the person typed: validated, hashed for the per-person quota, stored encrypted."""
        flow = self._open_flow(flow_id, caller)
        if flow.checks.get(CheckName.FACE) is not None:
            raise Conflict(
                "flow.identity_locked",
                "人脸核验已开始，证件信息不能再修改",
                "The identity cannot change once face checks have started",
                field="id_number",
            )
        id_type = IdType(identity.id_type)
        number = validate(id_type.value, identity.id_number, field="id_number").value
        clean = identity.model_copy(update={"id_number": number})
        person_hash = self._hasher.digest(id_lookup_value(id_type, number))
        # A changed identity invalidates readings checked against the old one.
        checks = {
            k: v
            for k, v in flow.checks.items()
            if k not in (CheckName.OCR_ID_FRONT, CheckName.OCR_BUSINESS_LICENCE)
        }
        return self._save(flow, identity=clean, person_hash=person_hash, checks=checks)

    # --- documents -----------------------------------------------------------------------------

    def presign_upload(
        self, flow_id: str, caller: str, kind: DocumentKind, content_type: str
    ) -> PresignedUpload:
        flow = self._open_flow(flow_id, caller)
        _check_replaceable(flow, kind)
        return self._uploads.presign(flow.flow_id, kind, content_type)

    def complete_upload(self, flow_id: str, caller: str, kind: DocumentKind, key: str) -> StoredDocument:
        """Validate and keep an uploaded photo; an ID front must show a portrait to compare with."""
        flow = self._open_flow(flow_id, caller)
        _check_replaceable(flow, kind)
        try:
            stored = self._uploads.complete(flow.flow_id, kind, key)
            if kind is DocumentKind.ID_FRONT:
                try:
                    find_portrait(self._faces, self._uploads.read(stored.key))
                except DomainError:
                    self._uploads.delete(stored.key)
                    raise
        except DomainError as err:
            self._evidence.append(
                flow.flow_id,
                EvidenceKind.UPLOAD_REFUSED,
                caller,
                {"document": kind.value, "code": err.code, "status": err.status},
            )
            raise
        replaced = flow.documents.get(kind.value)
        checks = dict(flow.checks)
        if kind in OCR_CHECKS:
            checks.pop(OCR_CHECKS[kind], None)  # a new photo must be read again
        self._save(flow, documents={**flow.documents, kind.value: stored.key}, checks=checks)
        if replaced and replaced != stored.key:
            self._uploads.delete(replaced)
        self._evidence.append(
            flow.flow_id,
            EvidenceKind.UPLOAD_ACCEPTED,
            caller,
            {
                "document": kind.value,
                "sha256": stored.sha256,
                "size": stored.size,
                "width": stored.width,
                "height": stored.height,
            },
        )
        return stored

    def _document(self, flow: Flow, kind: DocumentKind) -> bytes:
        key = flow.documents.get(kind.value)
        if key is None:
            raise Conflict(
                "flow.document_missing",
                "请先上传所需的证件照片",
                f"Upload the {kind.value} photo first",
                field=kind.value,
                details={"document": kind.value},
            )
        return self._uploads.read(key)

    # --- OCR -----------------------------------------------------------------------------------

    def read_document(self, flow_id: str, caller: str, kind: DocumentKind) -> OcrOutcome:
        """OCR the stored photo and cross-check it with the typed identity, field by field."""
        flow = self._open_flow(flow_id, caller)
        if kind not in OCR_CHECKS:
            raise InvalidField(
                "ocr.kind", "该类证件不支持识别", f"{kind.value} photos are not read", field="kind"
            )
        lines = self._ocr.read(self._document(flow, kind))
        parsed: IdFront | IdBack | BusinessLicence
        if kind is DocumentKind.ID_FRONT:
            parsed = parse_id_front(lines)
        elif kind is DocumentKind.ID_BACK:
            parsed = parse_id_back(lines)
        else:
            parsed = parse_business_licence(lines)
        reading, fields_read = self._record_reading(flow, kind, caller, parsed, len(lines))
        self._record_cross_check(flow, kind, caller, self._reading_errors(flow, parsed))
        self._save(flow, checks={**flow.checks, OCR_CHECKS[kind]: CheckVerdict.PASSED})
        return OcrOutcome(
            kind=kind,
            fields_read=fields_read,
            confidences=dict(parsed.confidences),
            agreed=True,
            reading=reading,
        )

    def check_owner_id(self, flow_id: str, caller: str, owner: TypedIdentity) -> None:
        """委托登记 (第十二条): the owner's ID card photo, read and cross-checked with the owner's typed
        identity (name and number), into the evidence; ``ocr.mismatch`` when they disagree."""
        flow = self._open_flow(flow_id, caller)
        kind = DocumentKind.OWNER_ID_FRONT
        lines = self._ocr.read(self._document(flow, kind))
        parsed = parse_id_front(lines)
        self._record_reading(flow, kind, caller, parsed, len(lines))
        typed = TypedDetails(name=owner.name, id_number=owner.id_number)
        errors = [
            InvalidField(e.code, e.message_zh, e.message_en, field=f"owner.{e.field}", details=e.details)
            for e in (m.to_error() for m in cross_check(parsed, typed))
        ]
        self._record_cross_check(flow, kind, caller, errors)
        self._save(flow, checks={**flow.checks, CheckName.OCR_OWNER_ID_FRONT: CheckVerdict.PASSED})

    def _record_reading(
        self,
        flow: Flow,
        kind: DocumentKind,
        caller: str,
        parsed: IdFront | IdBack | BusinessLicence,
        lines: int,
    ) -> tuple[dict[str, Any], list[str]]:
        """The OCR reading into the evidence: what was read publicly, the personal fields sealed."""
        reading = parsed.model_dump(mode="json", exclude={"confidences"})
        fields_read = sorted(k for k, v in reading.items() if v not in (None, False, ""))
        personal = {
            k: str(v) for k, v in reading.items() if k in ("name", "id_number", "address", "birth_date") and v
        }
        self._evidence.append(
            flow.flow_id,
            EvidenceKind.OCR_READ,
            caller,
            {
                "document": kind.value,
                "engine": self._ocr.name,
                "engine_version": self._ocr.version,
                "fields_read": fields_read,
                "confidences": {k: round(v, 4) for k, v in parsed.confidences.items()},
                "lines": lines,
            },
            personal,
        )
        return reading, fields_read

    def _record_cross_check(
        self, flow: Flow, kind: DocumentKind, caller: str, errors: list[InvalidField]
    ) -> None:
        """The cross-check's verdict into the evidence; ``ocr.mismatch`` (or the first error) if any."""
        self._evidence.append(
            flow.flow_id,
            EvidenceKind.OCR_CROSS_CHECKED,
            caller,
            {
                "document": kind.value,
                "agreed": not errors,
                "mismatches": [{"field": e.field, "code": e.code, "details": e.details} for e in errors],
            },
        )
        if errors:
            raise _mismatch_errors(errors)

    def _reading_errors(self, flow: Flow, parsed: IdFront | IdBack | BusinessLicence) -> list[InvalidField]:
        if isinstance(parsed, IdBack):
            today = china_day(self._clock())
            if not parsed.permanent and parsed.valid_until is not None and parsed.valid_until < today:
                return [
                    InvalidField(
                        "id_card.expired",
                        "证件已过有效期，请使用有效证件",
                        "The ID card has expired; use a valid document",
                        field="id_back",
                        details={"valid_until": parsed.valid_until.isoformat()},
                    )
                ]
            return []
        identity = flow.identity
        if identity is None:
            raise Conflict(
                "flow.step_out_of_order",
                "请先填写证件信息",
                "Enter the identity details first",
                details={"missing": "identity"},
            )
        typed = TypedDetails(
            name=identity.name if isinstance(parsed, IdFront) else None,
            id_number=identity.id_number if isinstance(parsed, IdFront) else None,
            uscc=identity.uscc or (identity.id_number if identity.id_type == IdType.USCC else None),
            company_name=identity.company_name
            or (identity.name if identity.id_type == IdType.USCC else None),
        )
        return [m.to_error() for m in cross_check(parsed, typed)]

    # --- liveness and face match ---------------------------------------------------------------

    def _left(self, flow: Flow, person_hash: str, now: datetime) -> AttemptsLeft:
        p = self._policy
        return self._attempts.left(
            flow.flow_id, person_hash, china_day(now), p.attempts_per_flow, p.attempts_per_person_day
        )

    def _refuse_if_exhausted(self, left: AttemptsLeft) -> None:
        if left.flow == 0:
            raise attempts_exhausted("flow", self._policy.attempts_per_flow)
        if left.person_today == 0:
            raise attempts_exhausted("person_day", self._policy.attempts_per_person_day)

    def start_liveness(self, flow_id: str, caller: str) -> LivenessStart:
        """A single-use session bound to this flow and person, valid for a few minutes."""
        flow = self._open_flow(flow_id, caller)
        missing = [
            step
            for step, done in (
                ("identity", flow.person_hash is not None),
                (DocumentKind.ID_FRONT.value, DocumentKind.ID_FRONT.value in flow.documents),
                (
                    CheckName.OCR_ID_FRONT.value,
                    flow.checks.get(CheckName.OCR_ID_FRONT) is CheckVerdict.PASSED,
                ),
            )
            if not done
        ]
        if missing:
            raise Conflict(
                "flow.step_out_of_order",
                "请先完成证件信息填写、证件照片上传与识别",
                "Enter the identity and upload and read the ID card photo first",
                details={"missing": missing},
            )
        if flow.checks.get(CheckName.BIOMETRIC_CONSENT) is not CheckVerdict.PASSED:
            doc = current_consent(ConsentKind.BIOMETRIC_CONSENT)
            raise Conflict(
                "consent.biometric_required",
                f"请先阅读并单独同意《{doc.title}》",
                "The separate consent to process face data must be given before the face check",
                details={"kind": doc.kind.value, "version": doc.version},
            )
        if flow.checks.get(CheckName.FACE) is CheckVerdict.PASSED:
            raise Conflict("face.already_passed", "人脸核验已通过", "The face check has already passed")
        assert flow.person_hash is not None
        now = self._clock()
        left = self._left(flow, flow.person_hash, now)
        self._refuse_if_exhausted(left)
        challenge = self._liveness.new_challenge()
        provider = self._liveness.start(challenge)
        session = LivenessSession(
            session_id=f"ls{self._new_id()}",
            flow_id=flow.flow_id,
            owner=flow.owner,
            person_hash=flow.person_hash,
            engine=self._liveness.name,
            provider_session_id=provider.provider_session_id,
            challenge=challenge.model_dump(mode="json"),
            created_at=now,
            expires_at=now + timedelta(seconds=self._policy.liveness_session_seconds),
        )
        self._sessions.create(session)
        return LivenessStart(
            session_id=session.session_id,
            engine=session.engine,
            challenge=session.challenge,
            client=provider.client,
            expires_at=session.expires_at,
            attempts_left=left.left,
        )

    def complete_liveness(
        self, flow_id: str, caller: str, session_id: str, frames: Sequence[bytes]
    ) -> FaceCheckOutcome:
        """Judge the session's frames, then match the live capture with the ID portrait.

        Order: the session is checked, the frames judged (bad frames change nothing), then the session
        is claimed and one attempt counted, whatever the verdict; then the portrait match runs.
        """
        flow = self._open_flow(flow_id, caller)
        now = self._clock()
        session = check_session(self._sessions.get(session_id), flow, now)
        assert flow.person_hash is not None
        self._refuse_if_exhausted(self._left(flow, flow.person_hash, now))
        challenge = LivenessChallenge.model_validate(session.challenge)
        verdict = self._liveness.judge(session.provider_session_id, challenge, frames)
        if not self._sessions.claim(session.session_id, self._clock()):
            latest = self._sessions.get(session.session_id)
            if latest is not None and latest.used_at is None:
                raise session_expired()
            raise session_used()
        p = self._policy
        try:
            left = self._attempts.consume(
                flow.flow_id,
                flow.person_hash,
                china_day(now),
                p.attempts_per_flow,
                p.attempts_per_person_day,
                end_of_china_day(now) + timedelta(days=1),
            )
        except DomainError as err:
            self._evidence.append(flow.flow_id, EvidenceKind.ATTEMPTS_EXHAUSTED, caller, err.details)
            raise
        self._record_liveness(flow, caller, session, challenge, verdict)
        matched: bool | None = None
        reasons = list(verdict.reasons)
        if verdict.live:
            matched = self._match(flow, caller, session, verdict)
            if not matched:
                reasons.append("face.no_match")
        passed = verdict.live and bool(matched)
        documents = dict(flow.documents)
        if passed and verdict.reference_image is not None:
            stored = self._store_live_capture(flow, verdict.reference_image)
            documents[DocumentKind.LIVE_CAPTURE.value] = stored.key
        verdict_now = CheckVerdict.PASSED if passed else CheckVerdict.FAILED
        current = self._flows.get(flow.flow_id) or flow
        self._save(current, documents=documents, checks={**current.checks, CheckName.FACE: verdict_now})
        if not passed and left.left == 0:
            self._evidence.append(
                flow.flow_id,
                EvidenceKind.ATTEMPTS_EXHAUSTED,
                caller,
                {"flow_left": left.flow, "person_today_left": left.person_today, "review_available": True},
            )
        return FaceCheckOutcome(
            session_id=session.session_id,
            live=verdict.live,
            matched=matched,
            passed=passed,
            reasons=reasons,
            attempts_left=left.left,
            review_available=not passed and left.left == 0,
        )

    def _record_liveness(
        self,
        flow: Flow,
        caller: str,
        session: LivenessSession,
        challenge: LivenessChallenge,
        verdict: LivenessVerdict,
    ) -> None:
        self._evidence.append(
            flow.flow_id,
            EvidenceKind.LIVENESS_CHECKED,
            caller,
            {
                "session_id": session.session_id,
                "engine": verdict.engine,
                "engine_version": verdict.engine_version,
                "challenge": challenge.model_dump(mode="json"),
                "live": verdict.live,
                "confidence": round(verdict.confidence, 2),
                "reasons": verdict.reasons,
                "frames": verdict.frames,
                "details": verdict.details,
            },
        )

    def _match(self, flow: Flow, caller: str, session: LivenessSession, verdict: LivenessVerdict) -> bool:
        if verdict.reference_image is None:
            raise Conflict(
                "liveness.reference_missing",
                "活体检测未返回参考照片，请重新检测",
                "The liveness check returned no reference image; start a new one",
            )
        card = self._document(flow, DocumentKind.ID_FRONT)
        threshold = self._policy.face_threshold
        try:
            result = match_portrait(self._faces, card, verdict.reference_image, threshold)
        except DomainError as err:
            self._evidence.append(
                flow.flow_id,
                EvidenceKind.FACE_COMPARED,
                caller,
                {
                    "session_id": session.session_id,
                    "threshold": threshold,
                    "verdict": "error",
                    "code": err.code,
                },
            )
            return False
        self._evidence.append(
            flow.flow_id,
            EvidenceKind.FACE_COMPARED,
            caller,
            {
                "session_id": session.session_id,
                "engine": result.engine,
                "engine_version": result.engine_version,
                "similarity": result.similarity,
                "threshold": result.threshold,
                "verdict": result.verdict,
                "portrait_face_px": result.portrait_face_px,
                "live_face_px": result.live_face_px,
                "faces_on_card": result.faces_on_card,
            },
        )
        return result.verdict == "match"

    def _store_live_capture(self, flow: Flow, jpeg: bytes) -> StoredDocument:
        from io import BytesIO

        from PIL import Image

        with Image.open(BytesIO(jpeg)) as image:
            width, height = image.size
        return self._uploads.store(flow.flow_id, DocumentKind.LIVE_CAPTURE, jpeg, width, height)

    def attempts_left(self, flow_id: str, caller: str) -> AttemptsLeft | None:
        flow = self.flow(flow_id, caller)
        if flow.person_hash is None:
            return None
        return self._left(flow, flow.person_hash, self._clock())

    # --- manual review -------------------------------------------------------------------------

    def request_review(self, flow_id: str, caller: str) -> ReviewCase:
        """When the face attempts have run out, the flow goes to a reviewer instead of a dead end."""
        flow = self.flow(flow_id, caller)
        case_id = case_id_for(flow.flow_id, ReviewReason.FACE_ATTEMPTS_EXHAUSTED)
        if flow.status is FlowStatus.IN_REVIEW:
            existing = self._cases.get(case_id)
            if existing is not None:
                return existing
        check_open(flow)
        left = self._left(flow, flow.person_hash, self._clock()) if flow.person_hash else None
        if left is None or left.left > 0 or flow.checks.get(CheckName.FACE) is not CheckVerdict.FAILED:
            raise Conflict(
                "review.not_available",
                "人脸核验次数未用完，请继续核验",
                "Manual review opens once the face attempts are used up",
                details={"attempts_left": left.left if left else None},
            )
        now = self._clock()
        case = self._cases.open(
            ReviewCase(
                case_id=case_id,
                flow_id=flow.flow_id,
                owner=flow.owner,
                purpose=flow.purpose,
                reason=ReviewReason.FACE_ATTEMPTS_EXHAUSTED,
                status=ReviewStatus.OPEN,
                created_at=now,
                summary={
                    "documents": sorted(flow.documents),
                    "checks": {k: v.value for k, v in flow.checks.items()},
                    "id_type": flow.identity.id_type if flow.identity else None,
                },
            )
        )
        self._save(
            flow,
            status=FlowStatus.IN_REVIEW,
            checks={**flow.checks, CheckName.FACE: CheckVerdict.IN_REVIEW},
            # The reviewer's time does not count against the flow: it waits for the decision.
            expires_at=max(flow.expires_at, now + REVIEW_WINDOW),
        )
        self._evidence.append(
            flow.flow_id,
            EvidenceKind.REVIEW_OPENED,
            caller,
            {"case_id": case.case_id, "reason": case.reason.value},
        )
        return case

    def review_queue(
        self, status: ReviewStatus, limit: int, cursor: str | None
    ) -> tuple[list[ReviewCase], str | None]:
        return self._cases.page(status, limit, cursor)

    def review_case(self, case_id: str) -> tuple[ReviewCase, Flow]:
        case = self._cases.get(case_id)
        if case is None:
            raise case_not_found()
        flow = self._flows.get(case.flow_id)
        if flow is None:
            raise case_not_found()
        return case, flow

    def decide_review(
        self, case_id: str, reviewer: str, decision: ReviewDecision, note: str | None
    ) -> ReviewCase:
        """Approve (the reviewer saw that the person is the one on the ID) or reject; once."""
        case, flow = self.review_case(case_id)
        status = ReviewStatus.APPROVED if decision is ReviewDecision.APPROVE else ReviewStatus.REJECTED
        decided = self._cases.decide(case_id, status, reviewer, note, self._clock())
        if decision is ReviewDecision.APPROVE:
            self._save(
                flow,
                status=FlowStatus.VERIFIED,
                checks={**flow.checks, CheckName.FACE: CheckVerdict.APPROVED},
            )
        else:
            self._save(
                flow,
                status=FlowStatus.REJECTED,
                checks={**flow.checks, CheckName.FACE: CheckVerdict.REJECTED},
            )
        self._evidence.append(
            flow.flow_id,
            EvidenceKind.REVIEW_DECIDED,
            reviewer,
            {"case_id": case.case_id, "decision": decision.value},
            {"note": note} if note else None,
        )
        return decided

    def give_biometric_consent(
        self, flow_id: str, caller: str, version: str, sha256: str, client: dict[str, str]
    ) -> Flow:
        """人脸信息处理单独同意: the current text, as served, accepted before any face is processed;
        kept in the evidence with its version, hash, time and client. Giving it again changes nothing."""
        flow = self._open_flow(flow_id, caller)
        check_consents(
            [AcceptedConsent(kind=ConsentKind.BIOMETRIC_CONSENT, version=version, sha256=sha256)],
            required=(ConsentKind.BIOMETRIC_CONSENT,),
        )
        if flow.checks.get(CheckName.BIOMETRIC_CONSENT) is CheckVerdict.PASSED:
            return flow
        given = {
            "kind": ConsentKind.BIOMETRIC_CONSENT.value,
            "version": version,
            "sha256": sha256,
            "accepted_at": self._clock().isoformat(),
            "client": client,
        }
        saved = self._save(flow, checks={**flow.checks, CheckName.BIOMETRIC_CONSENT: CheckVerdict.PASSED})
        self._evidence.append(flow.flow_id, EvidenceKind.CONSENT_GIVEN, caller, {"consents": [given]})
        return saved

    def record_consents(self, flow_id: str, caller: str, consents: Sequence[BaseModel]) -> None:
        """Consents given in the flow (text kind, version, hash, time, client) go into its evidence."""
        flow = self.flow(flow_id, caller)
        self._evidence.append(
            flow.flow_id,
            EvidenceKind.CONSENT_GIVEN,
            caller,
            {"consents": [c.model_dump(mode="json") for c in consents]},
        )

    def note(self, flow_id: str, kind: EvidenceKind, actor: str, details: dict[str, Any]) -> None:
        """Add a step of the surrounding use case (an SMS check, a push result) to the flow's evidence."""
        self._evidence.append(flow_id, kind, actor, details)

    def keep(self, flow: Flow, until: datetime) -> Flow:
        """A submitted flow is evidence: closed to any change (``verified``) and kept, with its photos,
        until ``until`` instead of expiring. ``flow`` is one the caller was given access to."""
        if flow.status is FlowStatus.VERIFIED and flow.expires_at >= until:
            return flow
        return self._save(flow, status=FlowStatus.VERIFIED, expires_at=max(until, flow.expires_at))

    def reopen(self, flow_id: str, caller: str, at: datetime) -> Flow:
        """A submission was refused: the flow takes changes again (unless a reviewer decided it) and
        expires at ``at`` as it would have."""
        flow = self.flow(flow_id, caller)
        reviewed = flow.checks.get(CheckName.FACE) is CheckVerdict.APPROVED
        return self._save(flow, status=FlowStatus.VERIFIED if reviewed else FlowStatus.OPEN, expires_at=at)

    def purge_expired(self, limit: int = 100) -> int:
        """Delete abandoned flows (expired, never kept by a submission) with their photos; how many.

        The flow's evidence chain stays, ending with a ``purged`` entry (what was deleted, not the data).
        """
        now = self._clock()
        purged = 0
        for flow in self._flows.expired(now, limit):
            if flow.status is FlowStatus.IN_REVIEW:
                continue  # a reviewer has the case: its expiry moves when the review opens
            objects = self._uploads.purge(flow.flow_id)
            if self._flows.delete_expired(flow, now):
                purged += 1
                self._evidence.append(
                    flow.flow_id,
                    EvidenceKind.PURGED,
                    "system",
                    {
                        "documents": sorted(flow.documents),
                        "objects": objects,
                        "expired_at": flow.expires_at.isoformat(),
                    },
                )
        return purged

    def document_url(self, flow: Flow, kind: str) -> str | None:
        key = flow.documents.get(kind)
        return self._uploads.presign_get(key) if key else None
