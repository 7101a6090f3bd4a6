"""Face checks (人证一致, SPEC §10): prove the live person is the person on the ID card.

A liveness session first (single use, bound to the flow and the person, valid a few minutes, only
after the separate biometric consent), then the live capture against the ID card's portrait. Face
attempts are limited per flow and per person and day (China time); an attempt is counted once the
frames have been judged and the live capture matched, whatever the verdict (never when an engine could
not answer: ``engine.unavailable``), and when they run out the flow may go to manual review.

- The face check starts with the first session: the flow records it (``checks.face = started``, a
  conditional write on the flow's version), which locks the typed identity and the ID photos, and each
  session keeps the flow version it was handed out at. The verdict is saved only onto that version of
  the flow (``liveness.flow_changed`` otherwise, before anything is judged; ``flow.changed`` if the flow
  changes while the burst is judged).
- The challenge cannot be re-drawn at will: while the flow has an unused, unexpired session, starting
  again hands out that same session, and a flow starts at most ``liveness_sessions_per_flow`` sessions
  (``liveness.sessions_exhausted``).
- A burst in which some frame holds no face (or several), or in which the person did not turn (held
  still: no pose change, identical frames, and nothing else wrong), was not judged as a face: it is a
  capture problem (``liveness.capture_problem``), not an attempt, and the same session (its challenge
  and capture nonce) can be used again. Such a burst is never matched with the ID portrait, so asking
  again for free tells nothing about the match. Any other verdict (another person, frames not of one
  capture or of another session, the wrong turn, a face unlike the ID portrait) spends an attempt.
- While the person lines up, the client asks for live guidance (``preview``: one small frame, the
  face's box, size, light and pose), which spends nothing and is limited per session.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from chalicelib.core.metric_names import Metric
from chalicelib.core.observability import emit, logger
from chalicelib.kernel.clock import Clock, china_day, end_of_china_day, utc_now
from chalicelib.kernel.errors import Conflict, DomainError, TooManyRequests
from chalicelib.verification.cases import CaseOpener
from chalicelib.verification.consents import require_biometric_consent
from chalicelib.verification.documents import Documents
from chalicelib.verification.domain.authority import ServiceUnavailable
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.engines import EngineUnavailable
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import (
    AttemptsLeft,
    CheckName,
    CheckVerdict,
    Flow,
    LivenessSession,
    VerificationPolicy,
    attempts_exhausted,
    check_session,
)
from chalicelib.verification.domain.gates import GateOutcome, GateVerdict
from chalicelib.verification.domain.liveness import (
    PREVIEW_MAX_BYTES,
    PREVIEW_MAX_SIDE,
    PREVIEW_MESSAGES,
    PREVIEWS_PER_SESSION,
    FacePreview,
    LivenessCapture,
    LivenessChallenge,
    LivenessVerdict,
    capture_failed,
    capture_problem,
    preview_guidance,
    preview_too_large,
    preview_too_wide,
    preview_unreadable,
    previews_exhausted,
)
from chalicelib.verification.flows import Flows
from chalicelib.verification.portrait import PortraitMatch, match_portrait
from chalicelib.verification.ports import (
    AttemptCharge,
    AttemptCounters,
    EvidenceLog,
    EvidenceNote,
    FaceEngine,
    FaceGate,
    LivenessEngine,
    LivenessSessions,
    SealedFlow,
)
from chalicelib.verification.views import FaceCheckOutcome, LivenessStart


class FaceChecks:
    def __init__(
        self,
        *,
        flows: Flows,
        documents: Documents,
        attempts: AttemptCounters,
        sessions: LivenessSessions,
        faces: FaceEngine,
        liveness: LivenessEngine,
        evidence: EvidenceLog,
        policy: VerificationPolicy,
        cases: CaseOpener,
        gates: Sequence[FaceGate] = (),
        clock: Clock = utc_now,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self._cases = cases
        self._gates = tuple(gates)
        self._flows = flows
        self._documents = documents
        self._attempts = attempts
        self._sessions = sessions
        self._faces = faces
        self._liveness = liveness
        self._evidence = evidence
        self._policy = policy
        self._clock = clock
        self._new_id = new_id

    def start_liveness(self, flow_id: str, caller: str) -> LivenessStart:
        """A single-use session bound to this flow and person, valid for a few minutes.

        The flow's unused, unexpired session is handed out again rather than a new challenge drawn;
        sessions are numbered per flow, at most ``liveness_sessions_per_flow`` of them.
        """
        flow = self._flows.open_for_checks(flow_id, caller)
        self._check_ready(flow)
        assert flow.person_hash is not None
        now = self._clock()
        left = self._left(flow, flow.person_hash, now)
        self._refuse_if_exhausted(left)
        if CheckName.FACE not in flow.checks:
            flow = self._flows.save(flow, checks={**flow.checks, CheckName.FACE: CheckVerdict.STARTED})
        limit = self._policy.liveness_sessions_per_flow
        for number in range(1, limit + 1):
            session_id = f"ls{flow.flow_id}-{number}"
            existing = self._sessions.get(session_id)
            if existing is None:
                session = self._new_session(flow, session_id, now)
                try:
                    self._sessions.create(session)
                except Conflict:
                    continue  # a concurrent start took this number
                return self._started(session, left.left)
            if self._reusable(existing, flow, now):
                return self._started(existing, left.left)
        raise TooManyRequests(
            "liveness.sessions_exhausted",
            f"本次办理已开始 {limit} 次活体检测，不能再开始新的检测，请重新办理",
            f"This flow has started its {limit} liveness checks; no new one can start in it",
            details={"limit": limit},
        )

    def _new_session(self, flow: Flow, session_id: str, now: datetime) -> LivenessSession:
        assert flow.person_hash is not None
        challenge = self._liveness.new_challenge()
        provider = self._liveness.start(challenge)
        return LivenessSession(
            session_id=session_id,
            flow_id=flow.flow_id,
            owner=flow.owner,
            person_hash=flow.person_hash,
            engine=self._liveness.name,
            provider_session_id=provider.provider_session_id,
            challenge=challenge.model_dump(mode="json"),
            created_at=now,
            expires_at=now + timedelta(seconds=self._policy.liveness_session_seconds),
            flow_version=flow.version,
            client=provider.client,
        )

    @staticmethod
    def _reusable(session: LivenessSession, flow: Flow, now: datetime) -> bool:
        """Unused, unexpired, and handed out at the flow's current version to its current person."""
        return (
            session.used_at is None
            and session.expires_at > now
            and session.flow_version == flow.version
            and session.person_hash == flow.person_hash
            and session.owner == flow.owner
        )

    @staticmethod
    def _started(session: LivenessSession, attempts_left: int) -> LivenessStart:
        return LivenessStart(
            session_id=session.session_id,
            engine=session.engine,
            challenge=session.challenge,
            client=session.client,
            expires_at=session.expires_at,
            attempts_left=attempts_left,
        )

    def complete_liveness(
        self,
        flow_id: str,
        caller: str,
        session_id: str,
        frames: Sequence[bytes],
        capture: LivenessCapture | None = None,
    ) -> FaceCheckOutcome:
        """Judge the session's frames, then match the live capture with the ID portrait.

        Order: the session is checked (and the flow must be at the version it was handed out at), the
        frames judged (bad frames, or a capture problem, change nothing) and, when live, the live
        capture matched with the ID portrait; only then, whatever the verdict, is the session claimed,
        one attempt counted, the verdict saved onto the flow as it was read here and its evidence (the
        liveness verdict counted as an attempt, the portrait match) chained, in one write
        (``LivenessSessions.claim_counting``). So an engine that cannot answer (``engine.unavailable``,
        503), a bucket, a key service or a store that fails leaves the session unused, the attempt
        uncounted and the flow as it was, and the same session may be sent again; only the evidence of
        a check that could not be made stays (``attempt: false``). The live capture kept for the verdict
        is deleted again, and put back when the stored flow records it all the same (a concurrent send
        of the same frames saved that very key, or the write landed with its answer lost); a send whose
        verdict was saved puts its capture back if such a deletion took it. The claim is what makes two
        concurrent sends of one session count once, and a send after the verdict was saved (its reply
        lost included) is refused (``liveness.session_used``). What the gates note of a pass
        (``FaceGate.passed``: the face bound) is chained in that same write; the attempts left are read
        after it.
        """
        flow = self._flows.open_for_checks(flow_id, caller)
        now = self._clock()
        session = check_session(self._sessions.get(session_id), flow, now)
        if session.flow_version is not None and session.flow_version != flow.version:
            raise Conflict(
                "liveness.flow_changed",
                "活体检测开始后办理信息发生了变化，请重新开始活体检测",
                "The flow changed after this liveness check started; start a new one",
                details={"session_version": session.flow_version, "flow_version": flow.version},
            )
        assert flow.person_hash is not None
        before = self._left(flow, flow.person_hash, now)
        self._refuse_if_exhausted(before)
        challenge = LivenessChallenge.model_validate(session.challenge)
        verdict = self._liveness.judge(session.provider_session_id, challenge, frames, capture)
        if capture_problem(verdict):
            self._record_liveness(flow, caller, session, challenge, verdict, counted=False)
            emit(Metric.LIVENESS_RESULT, result="retry")
            raise capture_failed(verdict.reasons, before.left)
        compared: PortraitMatch | DomainError | None = None
        if verdict.live:
            try:
                compared = self._compare(flow, verdict)
            except EngineUnavailable:
                self._record_liveness(flow, caller, session, challenge, verdict, counted=False)
                raise
        gated: GateVerdict | None = None
        if verdict.live and isinstance(compared, PortraitMatch) and compared.verdict == "match":
            # The gates (the identity authority's portrait check, the one-face-one-identity index) run
            # before the attempt is counted: a service that cannot answer (503) costs nothing either.
            assert verdict.reference_image is not None
            try:
                gated = self._run_gates(flow, caller, verdict.reference_image)
            except ServiceUnavailable:
                self._record_liveness(flow, caller, session, challenge, verdict, counted=False)
                raise
        documents = dict(flow.documents)
        matches = isinstance(compared, PortraitMatch) and compared.verdict == "match"
        passed = verdict.live and matches and gated is None
        verdict_now = CheckVerdict.PASSED if passed else CheckVerdict.FAILED
        # The flow's verdict is sealed (KMS) before the capture is kept: a key service that cannot answer
        # leaves nothing kept.
        ready = self._flows.seal(flow, checks={**flow.checks, CheckName.FACE: verdict_now})
        kept: str | None = None  # the capture this send put in the bucket (not one the flow records)
        if passed and verdict.reference_image is not None:
            # Kept before anything is spent: a bucket that cannot take it (503) spends nothing either.
            stored = self._documents.store_live_capture(flow, verdict.reference_image)
            documents[DocumentKind.LIVE_CAPTURE.value] = stored.key
            if flow.documents.get(DocumentKind.LIVE_CAPTURE.value) != stored.key:
                kept = stored.key
        ready = ready.with_unsealed(documents=documents)
        # The evidence of the check made (the attempt it counts, the portrait match, what the gates note
        # of a pass) lands with what it spends, in one write (the session claimed, the attempt counted,
        # the verdict saved): a failure or a refusal of that write leaves neither.
        notes = [self._liveness_note(caller, session, challenge, verdict, counted=True)]
        matched: bool | None = None
        reasons = list(verdict.reasons)
        stopped: GateVerdict | None = None
        if verdict.live:
            assert compared is not None
            note, matched = self._match_note(caller, session, compared)
            notes.append(note)
            if not matched:
                reasons.append("face.no_match")
            else:
                stopped = gated
                if stopped is not None and stopped.reason:
                    reasons.append(stopped.reason)
        if passed:
            assert verdict.reference_image is not None
            for gate in self._gates:  # what the gates note of the pass (the face bound) lands with it
                notes.extend(gate.passed(ready.flow, caller, verdict.reference_image))
        try:
            self._spend(flow, flow.person_hash, session, ready, caller, now, notes)
        except Exception:
            # Not saved (or not known to be): the capture kept for it goes, unless the stored flow
            # records it after the deletion (a concurrent send of the same frames, under the same key,
            # saved it; or this write landed and its answer was lost): then it is put back.
            if kept is not None:
                assert verdict.reference_image is not None
                self._documents.discard_live_capture(flow, kept, verdict.reference_image)
            raise
        saved = ready.flow
        if kept is not None:
            assert verdict.reference_image is not None
            self._keep_capture(saved, verdict.reference_image)
        left = self._left(flow, flow.person_hash, now)
        emit(Metric.LIVENESS_RESULT, result="live" if verdict.live else "not_live")
        case_id: str | None = None
        if stopped is not None and stopped.outcome is GateOutcome.REVIEW:
            assert stopped.review_reason is not None
            case = self._cases.open(saved, caller, stopped.review_reason, {"gate": stopped.gate})
            case_id = case.case_id
        elif not passed and left.left == 0:
            self._evidence.append(
                flow.flow_id,
                EvidenceKind.ATTEMPTS_EXHAUSTED,
                caller,
                {"flow_left": left.flow, "person_today_left": left.person_today, "review_available": True},
            )
        emit(Metric.FACE_ATTEMPT, result="passed" if passed else "failed")
        return FaceCheckOutcome(
            session_id=session.session_id,
            live=verdict.live,
            matched=matched,
            passed=passed,
            reasons=reasons,
            attempts_left=left.left,
            review_available=not passed and case_id is None and left.left == 0,
            review_case_id=case_id,
        )

    def preview(self, flow_id: str, caller: str, session_id: str, frame: bytes) -> FacePreview:
        """Where the face is in one small frame of the live video, and what the person should do.

        The live guidance of the capture (too far, too dark, not centred...) and the client's view of
        the turn as it happens: the session must be open (unused, unexpired, this flow's and person's),
        the frame a JPEG of at most ``PREVIEW_MAX_BYTES`` and ``PREVIEW_MAX_SIDE`` px (both checked
        before it is decoded), at most ``PREVIEWS_PER_SESSION`` per session. Nothing is stored and no
        attempt spent: the verdict is the burst's (``complete_liveness``).
        """
        flow = self._flows.open_for_checks(flow_id, caller)
        session = check_session(self._sessions.get(session_id), flow, self._clock())
        width, height = _preview_size(frame)
        left = self._sessions.count_preview(session.session_id, PREVIEWS_PER_SESSION)
        if left is None:
            raise previews_exhausted()
        faces = self._faces.detect(frame)
        face = faces[0] if len(faces) == 1 else None
        box = (
            [
                round(face.box.left / width, 3),
                round(face.box.top / height, 3),
                round((face.box.left + face.box.width) / width, 3),
                round((face.box.top + face.box.height) / height, 3),
            ]
            if face is not None
            else None
        )
        brightness = _brightness(frame, box)
        size = round(face.relative_size, 3) if face is not None else None
        guidance = preview_guidance(len(faces), box, size, brightness)
        return FacePreview(
            faces=len(faces),
            box=box,
            size=size,
            brightness=brightness,
            yaw=face.yaw if face is not None else None,
            pitch=face.pitch if face is not None else None,
            guidance=guidance,
            message_zh=PREVIEW_MESSAGES[guidance],
            previews_left=left,
        )

    def attempts_left(self, flow_id: str, caller: str) -> AttemptsLeft | None:
        """The caller's attempts left in this flow today; ``None`` before the identity is typed."""
        return self.left_for(self._flows.flow(flow_id, caller))

    def left_for(self, flow: Flow) -> AttemptsLeft | None:
        """The attempts left to ``flow`` now; ``None`` before the identity is typed."""
        if flow.person_hash is None:
            return None
        return self._left(flow, flow.person_hash, self._clock())

    def _check_ready(self, flow: Flow) -> None:
        """Identity typed, ID front uploaded and read, biometric consent given, face not yet passed."""
        missing = [
            step
            for step, done in (
                ("identity", flow.person_hash is not None),
                (DocumentKind.ID_FRONT.value, DocumentKind.ID_FRONT.value in flow.documents),
                (
                    CheckName.OCR_ID_FRONT.value,
                    flow.checks.get(CheckName.OCR_ID_FRONT) in (CheckVerdict.PASSED, CheckVerdict.APPROVED),
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
        require_biometric_consent(flow)
        if flow.checks.get(CheckName.FACE) is CheckVerdict.PASSED:
            raise Conflict("face.already_passed", "人脸核验已通过", "The face check has already passed")

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

    def _spend(
        self,
        flow: Flow,
        person_hash: str,
        session: LivenessSession,
        ready: SealedFlow,
        caller: str,
        now: datetime,
        notes: Sequence[EvidenceNote],
    ) -> None:
        """Claim the session, count one attempt against both quotas, save the verdict (``ready``) and
        chain ``notes`` to the evidence, as one write: refused (the session used or expired, a quota
        full: that refusal goes into the evidence, the flow changed) or failed, it spends nothing and
        chains none of them."""
        p = self._policy
        charge = AttemptCharge(
            flow_id=flow.flow_id,
            person_hash=person_hash,
            day=china_day(now),
            per_flow=p.attempts_per_flow,
            per_day=p.attempts_per_person_day,
            expires_at=end_of_china_day(now) + timedelta(days=1),
        )
        try:
            self._sessions.claim_counting(
                session.session_id, self._clock(), charge, ready, self._evidence, notes
            )
        except DomainError as err:
            if err.code == "face.attempts_exhausted":
                self._evidence.append(flow.flow_id, EvidenceKind.ATTEMPTS_EXHAUSTED, caller, err.details)
            raise

    def _keep_capture(self, flow: Flow, live_capture: bytes) -> None:
        """The live capture the saved ``flow`` records, put back if a concurrent send of the same frames
        (the same key) deleted it before this write landed (``Documents.discard_live_capture``). The
        pass stands whatever the bucket answers: a failure here is logged. Whether it is there is asked
        of the bucket alone (its body is neither downloaded nor decrypted)."""
        try:
            if self._documents.has_photo(flow, DocumentKind.LIVE_CAPTURE):
                return
            gone, error = True, "document.missing"
        except DomainError as err:  # the saved flow records no capture: nothing to put back
            gone, error = False, err.code
        except Exception as exc:  # the saved pass must not be answered as a failure
            gone, error = False, type(exc).__name__
        if gone:
            try:
                self._documents.store_live_capture(flow, live_capture)
                return
            except Exception as exc:  # the saved pass must not be answered as a failure
                error = type(exc).__name__
        logger.warning("live capture not confirmed", extra={"flow": flow.flow_id, "error": error})

    def _record_liveness(
        self,
        flow: Flow,
        caller: str,
        session: LivenessSession,
        challenge: LivenessChallenge,
        verdict: LivenessVerdict,
        *,
        counted: bool,
    ) -> None:
        """The liveness verdict into the evidence on its own (a check made that counts nothing)."""
        note = self._liveness_note(caller, session, challenge, verdict, counted=counted)
        self._evidence.append(flow.flow_id, note.kind, note.actor, note.public)

    @staticmethod
    def _liveness_note(
        caller: str,
        session: LivenessSession,
        challenge: LivenessChallenge,
        verdict: LivenessVerdict,
        *,
        counted: bool,
    ) -> EvidenceNote:
        """The liveness verdict's evidence entry; ``attempt`` says whether it is counted as an attempt."""
        return EvidenceNote(
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
                "attempt": counted,
            },
        )

    def _run_gates(self, flow: Flow, caller: str, live_capture: bytes) -> GateVerdict | None:
        """Each gate in order; the first verdict that does not pass (None when all pass)."""
        for gate in self._gates:
            verdict = gate.admit(flow, caller, live_capture)
            if not verdict.passed:
                return verdict
        return None

    def _compare(self, flow: Flow, verdict: LivenessVerdict) -> PortraitMatch | DomainError:
        """The live capture against the ID portrait: the match, or the engine's refusal (no match).
        Raises ``engine.unavailable`` when the engine cannot answer (nothing is counted then)."""
        if verdict.reference_image is None:
            raise Conflict(
                "liveness.reference_missing",
                "活体检测未返回参考照片，请重新检测",
                "The liveness check returned no reference image; start a new one",
            )
        card = self._documents.photo(flow, DocumentKind.ID_FRONT)
        try:
            return match_portrait(self._faces, card, verdict.reference_image, self._policy.face_threshold)
        except EngineUnavailable:
            raise
        except DomainError as err:
            return err

    def _match_note(
        self, caller: str, session: LivenessSession, compared: PortraitMatch | DomainError
    ) -> tuple[EvidenceNote, bool]:
        """The portrait match's evidence entry, and whether it matched (an engine refusal is no match)."""
        if isinstance(compared, DomainError):
            public: dict[str, object] = {
                "session_id": session.session_id,
                "threshold": self._policy.face_threshold,
                "verdict": "error",
                "code": compared.code,
            }
            return EvidenceNote(EvidenceKind.FACE_COMPARED, caller, public), False
        result = compared
        public = {
            "session_id": session.session_id,
            "engine": result.engine,
            "engine_version": result.engine_version,
            "similarity": result.similarity,
            "threshold": result.threshold,
            "verdict": result.verdict,
            "portrait_face_px": result.portrait_face_px,
            "live_face_px": result.live_face_px,
            "faces_on_card": result.faces_on_card,
        }
        return EvidenceNote(EvidenceKind.FACE_COMPARED, caller, public), result.verdict == "match"


def _preview_size(frame: bytes) -> tuple[int, int]:
    """The preview frame's size, read from its JPEG header: the byte and pixel caps before decoding."""
    if len(frame) > PREVIEW_MAX_BYTES:
        raise preview_too_large(len(frame))
    if not frame.startswith(b"\xff\xd8\xff"):
        raise preview_unreadable()
    from chalicelib.kernel.images import ImageRefused, open_image

    try:  # reads the header only; a frame claiming more pixels than a preview has is refused unread
        with open_image(frame, max_pixels=PREVIEW_MAX_SIDE * PREVIEW_MAX_SIDE, formats=("JPEG",)) as image:
            width, height = image.size
            kind = image.format
    except ImageRefused as exc:
        if exc.reason == "too_many_pixels" and exc.width and exc.height:
            raise preview_too_wide(exc.width, exc.height) from exc
        raise preview_unreadable() from exc
    if kind != "JPEG" or not width or not height:
        raise preview_unreadable()
    if max(width, height) > PREVIEW_MAX_SIDE:
        raise preview_too_wide(width, height)
    return width, height


def _brightness(frame: bytes, box: Sequence[float] | None) -> int:
    """Mean grey level (0–255) of the face region (``box``, fractions of the frame), else of the frame."""
    from PIL import ImageStat

    from chalicelib.kernel.images import ImageRefused, open_image

    try:
        with open_image(frame, max_pixels=PREVIEW_MAX_SIDE * PREVIEW_MAX_SIDE, formats=("JPEG",)) as image:
            grey = image.convert("L")
    except ImageRefused as exc:
        raise preview_unreadable() from exc
    if box is not None:
        width, height = grey.size
        left, top = max(0, int(box[0] * width)), max(0, int(box[1] * height))
        right, bottom = min(width, int(box[2] * width)), min(height, int(box[3] * height))
        if right > left and bottom > top:
            grey = grey.crop((left, top, right, bottom))
    return round(ImageStat.Stat(grey).mean[0])
