"""Face checks under pressure: a running check locks the flow, the challenge cannot be re-drawn at will,
and a burst without a face is a capture problem rather than an attempt."""

from __future__ import annotations

from collections.abc import Sequence

from chalicelib.kernel.errors import Conflict, InvalidField, TooManyRequests
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.flows import CheckName, CheckVerdict, FlowStatus, TypedIdentity
from chalicelib.verification.domain.liveness import LivenessCapture, LivenessChallenge, LivenessVerdict
from tests.fakes.verification import FakeLivenessEngine
from tests.unit.stories import refusal as refused
from tests.unit.verification.world import OTHER_NUMBER, OWNER, World, frame

# --- the running check locks the flow -----------------------------------------------------------


def test_starting_a_face_check_marks_the_flow_and_locks_the_identity_and_the_id_photo() -> None:
    # given a flow ready for the face check
    world = World()
    flow_id = world.ready()
    # when the first liveness session is handed out
    world.service.start_liveness(flow_id, OWNER)
    # then the flow records the running check, and the identity and ID front can no longer change
    assert world.service.flow(flow_id, OWNER).checks[CheckName.FACE] is CheckVerdict.STARTED
    identity = TypedIdentity(id_type="resident_id", id_number=OTHER_NUMBER, name="李四")
    assert (
        refused(lambda: world.service.set_identity(flow_id, OWNER, identity)).code == "flow.identity_locked"
    )
    error = refused(lambda: world.service.presign_upload(flow_id, OWNER, DocumentKind.ID_FRONT, "image/jpeg"))
    assert error.code == "flow.documents_locked"


def test_an_identity_change_racing_the_start_of_a_face_check_is_refused() -> None:
    # given an identity change that read the flow before the face check started
    world = World()
    flow_id = world.ready()
    read_before = world.flows.get(flow_id)
    assert read_before is not None
    world.service.start_liveness(flow_id, OWNER)
    # when it is written
    changed = read_before.model_copy(
        update={"person_hash": "another-person", "version": read_before.version + 1}
    )
    error = refused(lambda: world.flows.save(changed))
    # then the conditional write on the flow's version refuses it
    assert error.code == "flow.changed"
    assert world.service.flow(flow_id, OWNER).person_hash == read_before.person_hash


def test_a_flow_changed_after_the_session_was_handed_out_is_not_judged() -> None:
    # given a session, then the flow changes (another version of it is stored)
    world = World()
    flow_id = world.ready()
    start = world.service.start_liveness(flow_id, OWNER)
    flow = world.service.flow(flow_id, OWNER)
    world.service.flows.save(flow, documents={**flow.documents, "id_back": "documents/x/id_back"})
    # when the burst is sent
    error = refused(lambda: world.service.complete_liveness(flow_id, OWNER, start.session_id, [frame()]))
    # then it is refused before anything is judged or counted
    assert isinstance(error, Conflict)
    assert error.code == "liveness.flow_changed"
    assert world.liveness.judged == 0
    assert world.service.attempts_left(flow_id, OWNER).left == 3  # type: ignore[union-attr]


class ChangesTheFlowWhileJudging(FakeLivenessEngine):
    """Judges live, but while it judges someone writes another identity into the flow."""

    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world
        self.flow_id = ""

    def judge(
        self,
        provider_session_id: str | None,
        challenge: LivenessChallenge,
        frames: Sequence[bytes],
        capture: LivenessCapture | None = None,
    ) -> LivenessVerdict:
        flow = self.world.flows.get(self.flow_id)
        assert flow is not None
        self.world.flows.save(
            flow.model_copy(update={"person_hash": "another-person", "version": flow.version + 1})
        )
        return super().judge(provider_session_id, challenge, frames, capture)


def test_a_pass_is_never_saved_onto_a_flow_changed_during_the_check() -> None:
    # given a face check during which the flow's identity is changed behind its back
    world = World()
    flow_id = world.ready()
    engine = ChangesTheFlowWhileJudging(world)
    engine.flow_id = flow_id
    world.service.face._liveness = engine
    start = world.service.start_liveness(flow_id, OWNER)
    # when the (live, matching) burst is judged
    error = refused(lambda: world.service.complete_liveness(flow_id, OWNER, start.session_id, [frame()]))
    # then the verdict is not saved: the flow keeps the other identity and no passed face
    assert error.code == "flow.changed"
    stored = world.flows.get(flow_id)
    assert stored is not None
    assert stored.checks[CheckName.FACE] is CheckVerdict.STARTED
    assert DocumentKind.LIVE_CAPTURE.value not in stored.documents


# --- the challenge cannot be re-drawn -------------------------------------------------------------


def test_starting_again_hands_out_the_same_unused_session_and_challenge() -> None:
    world = World()
    flow_id = world.ready()
    first = world.service.start_liveness(flow_id, OWNER)
    # when the client asks again (and again) before using it
    again = [world.service.start_liveness(flow_id, OWNER) for _ in range(5)]
    # then it gets the same session, and the engine drew one challenge
    assert {s.session_id for s in again} == {first.session_id}
    assert {tuple(sorted(s.challenge.items())) for s in again} == {tuple(sorted(first.challenge.items()))}
    assert world.liveness.started == 1


def test_a_new_challenge_is_drawn_only_once_the_session_expired_and_at_most_the_flows_cap() -> None:
    # given sessions abandoned until each expires
    world = World()
    flow_id = world.ready()
    cap = world.policy.liveness_sessions_per_flow
    ids = []
    for _ in range(cap):
        ids.append(world.service.start_liveness(flow_id, OWNER).session_id)
        world.clock.advance(seconds=world.policy.liveness_session_seconds)
    # then each was new, and one more is refused with its own code
    assert len(set(ids)) == cap == world.liveness.started
    error = refused(lambda: world.service.start_liveness(flow_id, OWNER))
    assert isinstance(error, TooManyRequests)
    assert (error.code, error.details) == ("liveness.sessions_exhausted", {"limit": cap})


# --- fair attempts ---------------------------------------------------------------------------------


def test_a_burst_without_a_face_is_a_capture_problem_and_not_an_attempt() -> None:
    # given a session, and a burst in which the engine finds no face
    world = World()
    flow_id = world.ready()
    start = world.service.start_liveness(flow_id, OWNER)
    world.liveness.reasons = [["liveness.no_face"]]
    # when it is sent
    error = refused(lambda: world.service.complete_liveness(flow_id, OWNER, start.session_id, [frame()]))
    # then it is told as a capture problem, attempts are unchanged, and the session is still usable
    assert isinstance(error, InvalidField)
    assert (error.code, error.field) == ("liveness.capture_problem", "frames")
    assert error.details == {"reasons": ["liveness.no_face"], "attempts_left": 3}
    assert world.service.attempts_left(flow_id, OWNER).left == 3  # type: ignore[union-attr]
    assert CheckName.FACE in world.service.flow(flow_id, OWNER).checks
    outcome = world.service.complete_liveness(flow_id, OWNER, start.session_id, [frame()])
    assert (outcome.passed, outcome.attempts_left) == (True, 2)


def test_a_not_live_burst_is_an_attempt() -> None:
    world = World()
    flow_id = world.ready()
    world.liveness.reasons = [["liveness.not_continuous"]]
    outcome = world.attempt(flow_id)
    assert (outcome.passed, outcome.reasons, outcome.attempts_left) == (False, ["liveness.not_continuous"], 2)


def test_review_opens_when_the_persons_daily_attempts_ran_out_in_another_flow() -> None:
    # given a person who used the day's attempts in another flow; this flow never made an attempt
    world = World(attempts_per_flow=3, attempts_per_person_day=2)
    world.faces.similarity = 10.0
    other, this = world.ready(), world.ready()
    world.attempt(other)
    world.attempt(other)
    assert refused(lambda: world.service.start_liveness(this, OWNER)).code == "face.attempts_exhausted"
    # when this flow asks for review
    case = world.service.request_review(this, OWNER)
    # then a reviewer gets it today
    assert case.flow_id == this
    assert world.service.flow(this, OWNER).status is FlowStatus.IN_REVIEW


def test_review_is_not_offered_while_attempts_are_left() -> None:
    world = World()
    flow_id = world.ready()
    error = refused(lambda: world.service.request_review(flow_id, OWNER))
    assert (error.code, error.details) == ("review.not_available", {"attempts_left": 3})
    assert world.service.flow(flow_id, OWNER).checks.get(CheckName.FACE) is None


def test_review_after_the_daily_limit_needs_a_read_id_card() -> None:
    # given a person whose day's attempts ran out in another flow, and a new flow with only an identity
    world = World(attempts_per_flow=3, attempts_per_person_day=1)
    world.faces.similarity = 10.0
    world.attempt(world.ready())
    bare = world.open()
    world.type_identity(bare)
    # when the bare flow asks for review
    error = refused(lambda: world.service.request_review(bare, OWNER))
    # then there is nothing for a reviewer to compare: refused, and the flow stays open
    assert (error.code, error.details) == ("review.not_available", {"missing": "ocr_id_front"})
    assert world.service.flow(bare, OWNER).status is FlowStatus.OPEN


def test_an_identity_the_authority_refused_cannot_be_sent_to_review() -> None:
    # given a flow whose attempts ran out and whose identity the authority refused
    world = World(attempts_per_flow=1)
    world.faces.similarity = 10.0
    flow_id = world.ready()
    world.attempt(flow_id)
    flow = world.service.flow(flow_id, OWNER)
    world.service.flows.save(flow, checks={**flow.checks, CheckName.AUTHORITY: CheckVerdict.FAILED})
    # when it asks for review
    error = refused(lambda: world.service.request_review(flow_id, OWNER))
    # then a reviewer is never asked to pass an identity the authority does not know
    assert error.code == "review.identity_refused"
    assert world.service.flow(flow_id, OWNER).status is FlowStatus.OPEN
