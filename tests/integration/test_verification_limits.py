"""Liveness sessions, attempt limits and the manual-review fallback, on the embedded AWS.

The engines are scripted fakes (what they decide is not under test here; the local engines have their
own tests); flows, counters, sessions, cases, photos and the evidence log are the real DynamoDB, S3 and
KMS adapters. The clock is controlled, so expiry and the per-day quota are tested without waiting.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from PIL import Image

from chalicelib.kernel.errors import DomainError
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.faces import DetectedFace, FaceBox, FaceComparison
from chalicelib.verification.domain.flows import (
    FlowPurpose,
    FlowStatus,
    ReviewDecision,
    ReviewStatus,
    TypedIdentity,
)
from chalicelib.verification.domain.liveness import (
    LivenessCapture,
    LivenessChallenge,
    LivenessDirection,
    LivenessVerdict,
    ProviderSession,
)
from chalicelib.verification.domain.readings import TextLine
from chalicelib.verification.ports import FaceEngine, LivenessEngine, OcrEngine
from chalicelib.verification.service import VerificationPolicy, VerificationService
from chalicelib.verification.uploads import UploadService

NAME = "王小明"
NUMBER = "110101199003076632"
OWNER = "owner-1"


def jpeg(width: int = 800, height: int = 600) -> bytes:
    noise = Image.effect_noise((width, height), 40)
    ramp = Image.linear_gradient("L").resize((width, height))
    out = io.BytesIO()
    Image.merge("RGB", [noise, ramp, Image.blend(noise, ramp, 0.5)]).save(out, "JPEG")
    return out.getvalue()


class ScriptedFaces(FaceEngine):
    """One large frontal face in every photo; ``similarity`` decides the match."""

    name: ClassVar[str] = "scripted-faces"
    recommended_threshold: ClassVar[float] = 50.0

    def __init__(self) -> None:
        self.similarity = 90.0

    @property
    def version(self) -> str:
        return "1"

    def detect(self, image: bytes) -> list[DetectedFace]:
        box = FaceBox(left=200, top=150, width=300, height=300)
        return [DetectedFace(box=box, size_px=300, relative_size=0.5, yaw=0, pitch=0, roll=0)]

    def compare(self, a: bytes, b: bytes) -> FaceComparison:
        return FaceComparison(similarity=self.similarity, engine=self.name, engine_version=self.version)


class ScriptedOcr(OcrEngine):
    name: ClassVar[str] = "scripted-ocr"

    @property
    def version(self) -> str:
        return "1"

    def read(self, image: bytes) -> list[TextLine]:
        texts = [
            "姓名" + NAME,
            "性别男民族汉",
            "出生1990年3月7日",
            "住址北京市东城区景山前街4号",
            "公民身份号码" + NUMBER,
        ]
        return [TextLine(text=t, confidence=0.99) for t in texts]


class ScriptedLiveness(LivenessEngine):
    name: ClassVar[str] = "scripted-liveness"

    def __init__(self) -> None:
        self.live = True
        self.judged = 0
        #: When set, every judgement is not live for these reasons.
        self.reasons: list[str] | None = None
        #: Called while judging (something else happening to the flow meanwhile).
        self.meanwhile: Callable[[], None] | None = None

    @property
    def version(self) -> str:
        return "1"

    def new_challenge(self) -> LivenessChallenge:
        return LivenessChallenge(direction=LivenessDirection.LEFT)

    def start(self, challenge: LivenessChallenge) -> ProviderSession:
        return ProviderSession(provider_session_id=None, client={"direction": "left"})

    def judge(
        self,
        provider_session_id: str | None,
        challenge: LivenessChallenge,
        frames: Sequence[bytes],
        capture: LivenessCapture | None = None,
    ) -> LivenessVerdict:
        self.judged += 1
        if self.meanwhile is not None:
            self.meanwhile()
        live = self.live and not self.reasons
        return LivenessVerdict(
            live=live,
            confidence=99.0 if live else 10.0,
            engine=self.name,
            engine_version=self.version,
            reasons=self.reasons or ([] if live else ["liveness.wrong_direction"]),
            frames=len(frames),
            details={},
            reference_image=frames[0] if frames else None,
        )


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in China

    def __call__(self) -> datetime:
        return self.now


class World:
    def __init__(self) -> None:
        from chalicelib.adapters.dynamo.flows import (
            DynamoAttemptCounters,
            DynamoFlowRepository,
            DynamoLivenessSessions,
            DynamoReviewCases,
        )
        from chalicelib.adapters.dynamo.models import bind
        from chalicelib.adapters.s3.documents import S3DocumentStore
        from chalicelib.core import deps
        from chalicelib.core.aws import client
        from chalicelib.core.settings import get_settings

        bind(get_settings())
        self.faces = ScriptedFaces()
        self.liveness = ScriptedLiveness()
        self.clock = Clock()
        self.evidence = deps.evidence_log()
        self.service = VerificationService(
            flows=DynamoFlowRepository(deps.field_cipher()),
            attempts=DynamoAttemptCounters(),
            sessions=DynamoLivenessSessions(),
            cases=DynamoReviewCases(),
            uploads=UploadService(
                S3DocumentStore(client("s3"), get_settings().documents_bucket, get_settings().pii_key_alias),
                self.faces,
            ),
            ocr=ScriptedOcr(),
            faces=self.faces,
            liveness=self.liveness,
            evidence=self.evidence,
            hasher=deps.keyed_hasher(),
            policy=VerificationPolicy(face_threshold=50.0, attempts_per_flow=3, attempts_per_person_day=5),
            clock=self.clock,
        )

    def ready_flow(self, owner: str = OWNER) -> str:
        """A flow with the identity typed and the ID front uploaded and read."""
        from chalicelib.core.aws import client
        from chalicelib.core.settings import get_settings

        service = self.service
        flow = service.open_flow(owner, FlowPurpose.REGISTRATION)
        service.set_identity(
            flow.flow_id, owner, TypedIdentity(id_type="resident_id", id_number=NUMBER, name=NAME)
        )
        from chalicelib.consents.domain import ConsentKind
        from chalicelib.consents.texts import current_consent

        doc = current_consent(ConsentKind.BIOMETRIC_CONSENT)
        service.give_biometric_consent(flow.flow_id, owner, doc.version, doc.sha256, {})
        post = service.presign_upload(flow.flow_id, owner, DocumentKind.ID_FRONT, "image/jpeg")
        client("s3").put_object(Bucket=get_settings().documents_bucket, Key=post.key, Body=jpeg())
        service.complete_upload(flow.flow_id, owner, DocumentKind.ID_FRONT, post.key)
        service.read_document(flow.flow_id, owner, DocumentKind.ID_FRONT)
        return flow.flow_id

    def attempt(self, flow_id: str, owner: str = OWNER) -> Any:
        session = self.service.start_liveness(flow_id, owner)
        return self.service.complete_liveness(flow_id, owner, session.session_id, [jpeg(640, 480)] * 3)


@pytest.fixture
def world(aws: None) -> World:
    return World()


def refused(action: Callable[[], Any]) -> DomainError:
    with pytest.raises(DomainError) as caught:
        action()
    return caught.value


def test_a_session_is_single_use(world: World) -> None:
    flow_id = world.ready_flow()
    world.faces.similarity = 10.0  # no match: the flow stays open for another attempt
    session = world.service.start_liveness(flow_id, OWNER)
    world.service.complete_liveness(flow_id, OWNER, session.session_id, [jpeg(640, 480)] * 3)
    err = refused(
        lambda: world.service.complete_liveness(flow_id, OWNER, session.session_id, [jpeg(640, 480)] * 3)
    )
    assert (err.status, err.code) == (409, "liveness.session_used")
    assert world.liveness.judged == 1  # the reused session was not judged again
    left = world.service.attempts_left(flow_id, OWNER)
    assert left is not None
    assert left.flow == 2


def test_an_expired_session_is_refused_and_uses_no_attempt(world: World) -> None:
    flow_id = world.ready_flow()
    session = world.service.start_liveness(flow_id, OWNER)
    world.clock.now += timedelta(seconds=181)
    err = refused(lambda: world.service.complete_liveness(flow_id, OWNER, session.session_id, [jpeg()] * 3))
    assert (err.status, err.code) == (422, "liveness.session_expired")
    assert world.liveness.judged == 0
    left = world.service.attempts_left(flow_id, OWNER)
    assert left is not None
    assert left.flow == 3


def test_a_session_of_another_flow_or_person_is_refused(world: World) -> None:
    first = world.ready_flow()
    second = world.ready_flow()
    session = world.service.start_liveness(first, OWNER)
    err = refused(lambda: world.service.complete_liveness(second, OWNER, session.session_id, [jpeg()] * 3))
    assert (err.status, err.code) == (404, "liveness.session_unknown")
    err = refused(lambda: world.service.complete_liveness(first, "owner-2", session.session_id, [jpeg()] * 3))
    assert (err.status, err.code) == (403, "flow.not_yours")


def test_the_fourth_attempt_is_refused_and_review_takes_over(world: World) -> None:
    flow_id = world.ready_flow()
    world.liveness.live = False
    outcomes = [world.attempt(flow_id) for _ in range(3)]
    assert [o.attempts_left for o in outcomes] == [2, 1, 0]
    assert [o.review_available for o in outcomes] == [False, False, True]
    assert all(not o.passed and o.reasons == ["liveness.wrong_direction"] for o in outcomes)

    err = refused(lambda: world.service.start_liveness(flow_id, OWNER))
    assert (err.status, err.code) == (429, "face.attempts_exhausted")
    assert err.details == {"scope": "flow", "limit": 3, "review_available": True}
    assert err.message_zh
    assert err.message_en

    # Manual review instead of a dead end; asking twice finds the same case.
    case = world.service.request_review(flow_id, OWNER)
    assert case.status is ReviewStatus.OPEN
    assert world.service.request_review(flow_id, OWNER).case_id == case.case_id
    queue, _ = world.service.review_queue(ReviewStatus.OPEN, 10, None)
    assert [c.case_id for c in queue] == [case.case_id]
    assert NUMBER not in json.dumps(case.summary)
    assert NAME not in json.dumps(case.summary)

    decided = world.service.decide_review(
        case.case_id, "reviewer-1", ReviewDecision.APPROVE, "证件与本人一致"
    )
    assert decided.status is ReviewStatus.APPROVED
    assert decided.decided_by == "reviewer-1"
    err = refused(
        lambda: world.service.decide_review(case.case_id, "reviewer-2", ReviewDecision.REJECT, None)
    )
    assert (err.status, err.code) == (409, "review.already_decided")
    flow = world.service.flow(flow_id, OWNER)
    assert flow.status is FlowStatus.VERIFIED
    assert flow.checks["face"].value == "approved"

    entries = world.evidence.entries(flow_id)
    kinds = [e.kind.value for e in entries]
    assert kinds.count("liveness_checked") == 3
    assert kinds[-3:] == ["attempts_exhausted", "review_opened", "review_decided"]
    assert entries[-1].actor == "reviewer-1"
    assert entries[-1].personal == {"note": "证件与本人一致"}
    assert world.evidence.verify(flow_id).ok


def test_review_is_not_offered_while_attempts_remain(world: World) -> None:
    flow_id = world.ready_flow()
    world.liveness.live = False
    world.attempt(flow_id)
    err = refused(lambda: world.service.request_review(flow_id, OWNER))
    assert (err.status, err.code) == (409, "review.not_available")


def test_five_attempts_per_person_per_day_across_flows(world: World) -> None:
    world.liveness.live = False
    first, second = world.ready_flow(), world.ready_flow()
    for _ in range(3):
        world.attempt(first)
    assert [world.attempt(second).attempts_left for _ in range(2)] == [1, 0]
    err = refused(lambda: world.service.start_liveness(second, OWNER))
    assert (err.code, err.details["scope"]) == ("face.attempts_exhausted", "person_day")
    # A new day (China time) gives the person new attempts; the flow still has one left.
    world.clock.now += timedelta(hours=15)  # 01:00 the next day in China, before the flow expires
    assert world.service.start_liveness(second, OWNER).attempts_left == 1


def test_a_passed_face_check_keeps_the_live_capture_and_closes_the_face_step(world: World) -> None:
    flow_id = world.ready_flow()
    outcome = world.attempt(flow_id)
    assert outcome.passed
    assert outcome.matched
    assert outcome.attempts_left == 2
    flow = world.service.flow(flow_id, OWNER)
    assert flow.checks["face"].value == "passed"
    assert "live_capture" in flow.documents
    err = refused(lambda: world.service.start_liveness(flow_id, OWNER))
    assert (err.status, err.code) == (409, "face.already_passed")
    err = refused(
        lambda: world.service.set_identity(
            flow_id, OWNER, TypedIdentity(id_type="resident_id", id_number="11010519491231002X", name="李四")
        )
    )
    assert err.code == "flow.identity_locked"


# --- a running check locks the flow; the challenge is not re-drawn; fair attempts ---------------------


def test_a_session_is_handed_out_again_until_it_expires_and_a_flow_starts_at_most_six(world: World) -> None:
    flow_id = world.ready_flow()
    first = world.service.start_liveness(flow_id, OWNER)
    again = world.service.start_liveness(flow_id, OWNER)
    assert (again.session_id, again.challenge, again.client) == (
        first.session_id,
        first.challenge,
        first.client,
    )
    started = {first.session_id}
    for _ in range(5):
        world.clock.now += timedelta(seconds=181)
        started.add(world.service.start_liveness(flow_id, OWNER).session_id)
    assert len(started) == 6
    world.clock.now += timedelta(seconds=181)
    err = refused(lambda: world.service.start_liveness(flow_id, OWNER))
    assert (err.status, err.code, err.details) == (429, "liveness.sessions_exhausted", {"limit": 6})


def test_the_identity_is_locked_from_the_first_session_and_a_changed_flow_gets_no_verdict(
    world: World,
) -> None:
    from chalicelib.adapters.dynamo.flows import DynamoFlowRepository
    from chalicelib.core import deps

    flow_id = world.ready_flow()
    repo = DynamoFlowRepository(deps.field_cipher())
    read_before = repo.get(flow_id)
    assert read_before is not None
    session = world.service.start_liveness(flow_id, OWNER)
    assert world.service.flow(flow_id, OWNER).checks["face"].value == "started"
    other = TypedIdentity(id_type="resident_id", id_number="11010519491231002X", name="李四")
    err = refused(lambda: world.service.set_identity(flow_id, OWNER, other))
    assert (err.status, err.code) == (409, "flow.identity_locked")
    # An identity change that read the flow before the check started loses the conditional write
    changed = read_before.model_copy(update={"identity": other, "version": read_before.version + 1})
    assert refused(lambda: repo.save(changed)).code == "flow.changed"

    # The flow changes while the burst is judged: the pass is not saved onto it
    def change_the_flow() -> None:
        current = repo.get(flow_id)
        assert current is not None
        repo.save(current.model_copy(update={"identity": other, "version": current.version + 1}))

    world.liveness.meanwhile = change_the_flow
    err = refused(lambda: world.service.complete_liveness(flow_id, OWNER, session.session_id, [jpeg()] * 3))
    assert (err.status, err.code) == (409, "flow.changed")
    flow = world.service.flow(flow_id, OWNER)
    assert flow.checks["face"].value == "started"
    assert "live_capture" not in flow.documents
    # and a session handed out before the change is not judged
    world.liveness.meanwhile = None
    world.clock.now += timedelta(seconds=181)
    stale = world.service.start_liveness(flow_id, OWNER)
    repo.save(flow.model_copy(update={"version": flow.version + 1}))
    judged = world.liveness.judged
    err = refused(lambda: world.service.complete_liveness(flow_id, OWNER, stale.session_id, [jpeg()] * 3))
    assert (err.status, err.code) == (409, "liveness.flow_changed")
    assert world.liveness.judged == judged


def test_a_burst_without_a_face_costs_no_attempt_and_the_session_stays_usable(world: World) -> None:
    flow_id = world.ready_flow()
    session = world.service.start_liveness(flow_id, OWNER)
    world.liveness.reasons = ["liveness.no_face"]
    err = refused(lambda: world.service.complete_liveness(flow_id, OWNER, session.session_id, [jpeg()] * 3))
    assert (err.status, err.code, err.field) == (422, "liveness.capture_problem", "frames")
    assert err.details == {"reasons": ["liveness.no_face"], "attempts_left": 3}
    left = world.service.attempts_left(flow_id, OWNER)
    assert left is not None
    assert left.flow == 3
    recorded = [e for e in world.evidence.entries(flow_id) if e.kind.value == "liveness_checked"]
    assert [e.public["attempt"] for e in recorded] == [False]
    world.liveness.reasons = None
    outcome = world.service.complete_liveness(flow_id, OWNER, session.session_id, [jpeg()] * 3)
    assert (outcome.passed, outcome.attempts_left) == (True, 2)


def test_when_the_days_attempts_ran_out_elsewhere_the_flow_goes_to_review_today(world: World) -> None:
    world.liveness.live = False
    first, second, third = world.ready_flow(), world.ready_flow(), world.ready_flow()
    for _ in range(3):
        world.attempt(first)
    for _ in range(2):
        world.attempt(second)
    # the third flow never made an attempt, and cannot today
    err = refused(lambda: world.service.start_liveness(third, OWNER))
    assert (err.code, err.details["scope"]) == ("face.attempts_exhausted", "person_day")
    case = world.service.request_review(third, OWNER)
    assert case.status is ReviewStatus.OPEN
    assert world.service.flow(third, OWNER).status is FlowStatus.IN_REVIEW
