"""In-memory fakes of the verification ports: the flows' state, the document store and the engines.

The state fakes keep what they store in dicts and honour each port's documented conditions (the
flow's version conflict, both attempt quotas at once, single-use sessions, cases decided once); the
engine fakes return what the test configured and count their calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import ClassVar

from chalicelib.kernel.errors import Conflict
from chalicelib.verification.domain.documents import PostForm, missing, too_large
from chalicelib.verification.domain.faces import (
    DetectedFace,
    FaceBox,
    FaceComparison,
    image_unreadable,
    no_face,
)
from chalicelib.verification.domain.flows import (
    AttemptsLeft,
    Flow,
    FlowStatus,
    LivenessSession,
    ReviewCase,
    ReviewStatus,
    attempts_exhausted,
    case_decided,
    case_not_found,
    session_expired,
    session_used,
)
from chalicelib.verification.domain.liveness import (
    LivenessCapture,
    LivenessChallenge,
    LivenessDirection,
    LivenessVerdict,
    ProviderSession,
    check_frames,
)
from chalicelib.verification.domain.readings import TextLine
from chalicelib.verification.ports import (
    AttemptCharge,
    AttemptCounters,
    DocumentStore,
    EvidenceLog,
    EvidenceNote,
    FaceEngine,
    FlowRepository,
    LivenessEngine,
    LivenessSessions,
    OcrEngine,
    ReviewCases,
    SealedFlow,
)


class FakeFlows(FlowRepository):
    """Flows by id; ``save`` refuses a flow whose version is not one above the stored one."""

    def __init__(self) -> None:
        self.flows: dict[str, Flow] = {}

    def create(self, flow: Flow) -> None:
        if flow.flow_id in self.flows:
            raise Conflict("flow.exists", "办理流程已存在", "The flow already exists")
        self.flows[flow.flow_id] = flow

    def get(self, flow_id: str) -> Flow | None:
        return self.flows.get(flow_id)

    def create_if_room(self, flow: Flow, limit: int, now: datetime) -> bool:
        # Counted on the flows themselves (not on ``open_count``, which a test may make lag as an index does).
        held = [f for f in self.flows.values() if f.owner == flow.owner]
        if sum(1 for f in held if f.status is FlowStatus.OPEN and f.expires_at > now) >= limit:
            return False
        self.create(flow)
        return True

    def open_count(self, owner: str, now: datetime) -> int:
        return sum(
            1
            for f in self.flows.values()
            if f.owner == owner and f.status is FlowStatus.OPEN and f.expires_at > now
        )

    def save(self, flow: Flow) -> Flow:
        stored = self.flows.get(flow.flow_id)
        if stored is None or stored.version != flow.version - 1:
            raise Conflict(
                "flow.changed",
                "办理流程已被其他操作修改，请刷新后重试",
                "The flow changed meanwhile; reload it and try again",
            )
        self.flows[flow.flow_id] = flow
        return flow

    def expired(self, now: datetime, limit: int) -> list[Flow]:
        return [f for f in self.flows.values() if f.expires_at < now][:limit]

    def delete_expired(self, flow: Flow, now: datetime) -> bool:
        stored = self.flows.get(flow.flow_id)
        if stored is None or stored.expires_at >= now:
            return False
        del self.flows[flow.flow_id]
        return True


class FakeAttempts(AttemptCounters):
    """Tallies per flow and per person and day; ``consume`` counts against both or neither."""

    def __init__(self) -> None:
        self.per_flow: dict[str, int] = {}
        self.per_person_day: dict[tuple[str, date], int] = {}

    def left(self, flow_id: str, person_hash: str, day: date, per_flow: int, per_day: int) -> AttemptsLeft:
        return AttemptsLeft(
            flow=max(0, per_flow - self.per_flow.get(flow_id, 0)),
            person_today=max(0, per_day - self.per_person_day.get((person_hash, day), 0)),
        )

    def consume(
        self, flow_id: str, person_hash: str, day: date, per_flow: int, per_day: int, expires_at: datetime
    ) -> AttemptsLeft:
        if self.per_flow.get(flow_id, 0) >= per_flow:
            raise attempts_exhausted("flow", per_flow)
        if self.per_person_day.get((person_hash, day), 0) >= per_day:
            raise attempts_exhausted("person_day", per_day)
        self.per_flow[flow_id] = self.per_flow.get(flow_id, 0) + 1
        self.per_person_day[(person_hash, day)] = self.per_person_day.get((person_hash, day), 0) + 1
        return self.left(flow_id, person_hash, day, per_flow, per_day)


class FakeLivenessSessions(LivenessSessions):
    """Sessions by id; ``claim`` succeeds once, and only before the session expires. ``claim_counting``
    checks the session, both quotas (in ``attempts``) and the flow's version (in ``flows``) before it
    changes any of them: all or nothing."""

    def __init__(self, attempts: FakeAttempts, flows: FakeFlows) -> None:
        self.sessions: dict[str, LivenessSession] = {}
        self.previews: dict[str, int] = {}
        self.attempts = attempts
        self.flows = flows

    def create(self, session: LivenessSession) -> None:
        if session.session_id in self.sessions:
            raise Conflict("liveness.session_exists", "会话已存在", "The session already exists")
        self.sessions[session.session_id] = session

    def get(self, session_id: str) -> LivenessSession | None:
        return self.sessions.get(session_id)

    def claim(self, session_id: str, now: datetime) -> bool:
        session = self.sessions.get(session_id)
        if session is None or session.used_at is not None or session.expires_at <= now:
            return False
        self.sessions[session_id] = session.model_copy(update={"used_at": now})
        return True

    def claim_counting(
        self,
        session_id: str,
        now: datetime,
        charge: AttemptCharge,
        ready: SealedFlow,
        evidence: EvidenceLog,
        notes: Sequence[EvidenceNote] = (),
    ) -> None:
        session = self.sessions.get(session_id)
        if session is None or session.used_at is not None:
            raise session_used()
        if session.expires_at <= now:
            raise session_expired()
        c = charge
        left = self.attempts.left(c.flow_id, c.person_hash, c.day, c.per_flow, c.per_day)
        if left.flow == 0:
            raise attempts_exhausted("flow", charge.per_flow)
        if left.person_today == 0:
            raise attempts_exhausted("person_day", charge.per_day)
        stored = self.flows.flows.get(ready.flow.flow_id)
        if stored is None or stored.version != ready.flow.version - 1:
            raise Conflict(
                "flow.changed",
                "办理流程已被其他操作修改，请刷新后重试",
                "The flow changed meanwhile; reload it and try again",
            )
        self.flows.save_sealed(ready)
        self.attempts.consume(c.flow_id, c.person_hash, c.day, c.per_flow, c.per_day, c.expires_at)
        self.sessions[session_id] = session.model_copy(update={"used_at": now})
        for note in notes:  # nothing between the checks and here can fail: the notes land with the rest
            evidence.append(ready.flow.flow_id, note.kind, note.actor, note.public)

    def count_preview(self, session_id: str, limit: int) -> int | None:
        count = self.previews.get(session_id, 0)
        if session_id not in self.sessions or count >= limit:
            return None
        self.previews[session_id] = count + 1
        return limit - count - 1


class FakeReviewCases(ReviewCases):
    """Cases by id, paged oldest first (the cursor is the next index); decided once."""

    def __init__(self) -> None:
        self.cases: dict[str, ReviewCase] = {}

    def open(self, case: ReviewCase) -> ReviewCase:
        return self.cases.setdefault(case.case_id, case)

    def get(self, case_id: str) -> ReviewCase | None:
        return self.cases.get(case_id)

    def page(
        self, status: ReviewStatus, limit: int, cursor: str | None
    ) -> tuple[list[ReviewCase], str | None]:
        matching = sorted(
            (c for c in self.cases.values() if c.status is status), key=lambda c: (c.created_at, c.case_id)
        )
        start = int(cursor) if cursor else 0
        end = start + limit
        return matching[start:end], str(end) if end < len(matching) else None

    def decide(
        self, case_id: str, status: ReviewStatus, by: str, note: str | None, at: datetime
    ) -> ReviewCase:
        case = self.cases.get(case_id)
        if case is None:
            raise case_not_found()
        if case.status is not ReviewStatus.OPEN:
            raise case_decided(case)
        decided = case.model_copy(
            update={"status": status, "decided_by": by, "decision_note": note, "decided_at": at}
        )
        self.cases[case_id] = decided
        return decided


class FakeDocumentStore(DocumentStore):
    """Objects by key with their content type; ``forms`` keeps every presigned form's conditions."""

    URL = "https://documents.fake/"

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.forms: dict[str, dict[str, object]] = {}

    def presign_post(
        self, key: str, content_type: str, min_bytes: int, max_bytes: int, expires_in: int
    ) -> PostForm:
        self.forms[key] = {
            "content_type": content_type,
            "min_bytes": min_bytes,
            "max_bytes": max_bytes,
            "expires_in": expires_in,
        }
        return PostForm(url=self.URL, fields={"key": key, "Content-Type": content_type})

    def upload(self, key: str, body: bytes) -> None:
        """What the client does with a presigned form."""
        form = self.forms[key]
        self.objects[key] = (body, str(form["content_type"]))

    def presign_get(self, key: str, expires_in: int) -> str:
        return f"{self.URL}{key}?expires_in={expires_in}"

    def get(self, key: str, max_bytes: int) -> bytes:
        if key not in self.objects:
            raise missing()
        body = self.objects[key][0]
        if len(body) > max_bytes:
            raise too_large(len(body), max_bytes)
        return body

    def exists(self, key: str) -> bool:
        return key in self.objects

    def put(self, key: str, body: bytes, content_type: str) -> None:
        self.objects[key] = (body, content_type)

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    def delete_under(self, prefix: str) -> int:
        doomed = [k for k in self.objects if k.startswith(prefix)]
        for key in doomed:
            del self.objects[key]
        return len(doomed)

    def keys(self, prefix: str = "") -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))


class FakeOcr(OcrEngine):
    """Reads the lines configured for a photo (``readings``), else ``lines``; counts its reads."""

    name: ClassVar[str] = "fake-ocr"

    def __init__(
        self,
        lines: Sequence[TextLine] = (),
        readings: Mapping[bytes, Sequence[TextLine]] | None = None,
    ) -> None:
        self.lines = list(lines)
        self.readings = {k: list(v) for k, v in (readings or {}).items()}
        self.reads = 0

    @property
    def version(self) -> str:
        return "fake-ocr-1"

    def read(self, image: bytes) -> list[TextLine]:
        self.reads += 1
        return list(self.readings.get(image, self.lines))

    def say(self, *texts: str, confidence: float = 0.99) -> None:
        """From now on read these lines on every photo."""
        self.lines = [TextLine(text=t, confidence=confidence) for t in texts]


def a_face(size_px: int = 300, left: int = 200, top: int = 100, yaw: float = 0.0) -> DetectedFace:
    """One frontal face of ``size_px`` at (``left``, ``top``)."""
    return DetectedFace(
        box=FaceBox(left=left, top=top, width=size_px, height=size_px),
        size_px=size_px,
        relative_size=0.5,
        yaw=yaw,
        pitch=0.0,
        roll=0.0,
    )


class FakeFaceEngine(FaceEngine):
    """``detect`` returns the faces configured for a photo (``detections``), else ``faces``;
    ``compare`` returns ``similarity`` (``face.none`` for a photo configured without faces)."""

    name: ClassVar[str] = "fake-faces"
    recommended_threshold: ClassVar[float] = 50.0

    def __init__(
        self,
        faces: Sequence[DetectedFace] | None = None,
        similarity: float = 90.0,
        detections: Mapping[bytes, Sequence[DetectedFace]] | None = None,
        unreadable: Sequence[bytes] = (),
    ) -> None:
        self.faces = list(faces) if faces is not None else [a_face()]
        self.similarity = similarity
        self.detections = {k: list(v) for k, v in (detections or {}).items()}
        self.unreadable = set(unreadable)
        self.compared = 0

    @property
    def version(self) -> str:
        return "fake-faces-1"

    def detect(self, image: bytes) -> list[DetectedFace]:
        if image in self.unreadable:
            raise image_unreadable()
        return list(self.detections.get(image, self.faces))

    def compare(self, a: bytes, b: bytes) -> FaceComparison:
        self.compared += 1
        for photo, which in ((a, "a"), (b, "b")):
            if not self.detect(photo):
                raise no_face(image=which)
        return FaceComparison(similarity=self.similarity, engine=self.name, engine_version=self.version)


class FakeLivenessEngine(LivenessEngine):
    """Judges every check ``live`` or not as configured; the first frame is the reference image.

    ``verdicts`` (consumed in order) override ``live`` one judgement at a time; ``error`` is raised
    by the next ``judge`` instead (``liveness.not_finished``, bad frames...); ``reasons`` (consumed in
    order) make the next judgements not live for those reasons (``liveness.no_face``...).
    """

    name: ClassVar[str] = "fake-liveness"

    def __init__(self, live: bool = True, verdicts: Sequence[bool] = ()) -> None:
        self.live = live
        self.verdicts = list(verdicts)
        self.error: Exception | None = None
        self.reasons: list[list[str]] = []
        self.started = 0
        self.judged = 0

    @property
    def version(self) -> str:
        return "fake-liveness-1"

    def new_challenge(self) -> LivenessChallenge:
        return LivenessChallenge(direction=LivenessDirection.LEFT, min_frames=1, max_frames=8)

    def start(self, challenge: LivenessChallenge) -> ProviderSession:
        self.started += 1
        return ProviderSession(provider_session_id=f"fake-{self.started}", client={"direction": "left"})

    def judge(
        self,
        provider_session_id: str | None,
        challenge: LivenessChallenge,
        frames: Sequence[bytes],
        capture: LivenessCapture | None = None,
    ) -> LivenessVerdict:
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        check_frames(challenge, frames)
        self.judged += 1
        reasons = self.reasons.pop(0) if self.reasons else None
        live = False if reasons else self.verdicts.pop(0) if self.verdicts else self.live
        return LivenessVerdict(
            live=live,
            confidence=99.0 if live else 10.0,
            engine=self.name,
            engine_version=self.version,
            reasons=reasons or ([] if live else ["liveness.wrong_direction"]),
            frames=len(frames),
            details={"provider_session_id": provider_session_id},
            reference_image=frames[0] if frames else None,
        )
