"""Face checks: liveness sessions (consent first, single use, expiry), the portrait match, attempt limits."""

from __future__ import annotations

from chalicelib.kernel.errors import Conflict, Forbidden, TooManyRequests
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import CheckName, CheckVerdict, FlowStatus
from chalicelib.verification.domain.liveness import not_finished
from tests.unit.stories import refusal as refused
from tests.unit.verification.world import OTHER_NUMBER, OWNER, World, frame

# --- liveness sessions ------------------------------------------------------------------------


def test_a_liveness_session_needs_the_separate_biometric_consent() -> None:
    # given a flow with the identity typed and the ID front read, but no biometric consent
    world = World()
    flow_id = world.ready()
    flow = world.service.flow(flow_id, OWNER)
    world.service.flows.save(
        flow, checks={k: v for k, v in flow.checks.items() if k != CheckName.BIOMETRIC_CONSENT}
    )
    # when
    error = refused(lambda: world.service.start_liveness(flow_id, OWNER))
    # then
    assert isinstance(error, Conflict)
    assert error.code == "consent.biometric_required"
    assert world.liveness.started == 0


def test_a_liveness_session_needs_the_identity_and_the_id_front_read_first() -> None:
    world = World()
    flow_id = world.open()
    # when
    error = refused(lambda: world.service.start_liveness(flow_id, OWNER))
    # then
    assert error.code == "flow.step_out_of_order"
    assert error.details == {"missing": ["identity", "id_front", "ocr_id_front"]}


def test_a_started_session_is_bound_to_the_flow_and_person_and_expires() -> None:
    world = World()
    flow_id = world.ready()
    # when
    start = world.service.start_liveness(flow_id, OWNER)
    # then
    session = world.sessions.get(start.session_id)
    assert session is not None
    assert (session.flow_id, session.owner) == (flow_id, OWNER)
    assert session.person_hash == world.service.flow(flow_id, OWNER).person_hash
    assert (start.expires_at - world.clock()).total_seconds() == world.policy.liveness_session_seconds
    assert start.engine == world.liveness.name
    assert start.client == {"direction": "left"}
    assert start.attempts_left == 3


def test_a_session_is_single_use() -> None:
    # given a session already completed
    world = World()
    flow_id = world.ready()
    world.liveness.live = False
    start = world.service.start_liveness(flow_id, OWNER)
    world.service.complete_liveness(flow_id, OWNER, start.session_id, [frame()])
    # when it is sent again
    error = refused(lambda: world.service.complete_liveness(flow_id, OWNER, start.session_id, [frame()]))
    # then it is refused and no second attempt is counted
    assert error.code == "liveness.session_used"
    assert world.service.attempts_left(flow_id, OWNER).flow == 2  # type: ignore[union-attr]


def test_an_expired_session_is_refused_and_counts_no_attempt() -> None:
    # given a session started longer ago than it lives
    world = World()
    flow_id = world.ready()
    start = world.service.start_liveness(flow_id, OWNER)
    world.clock.advance(seconds=world.policy.liveness_session_seconds)
    # when
    error = refused(lambda: world.service.complete_liveness(flow_id, OWNER, start.session_id, [frame()]))
    # then
    assert error.code == "liveness.session_expired"
    assert world.liveness.judged == 0
    assert world.service.attempts_left(flow_id, OWNER).flow == 3  # type: ignore[union-attr]


def test_another_flows_session_is_unknown_and_another_persons_is_not_yours() -> None:
    # given two flows of the same dealer, one for another person
    world = World()
    mine = world.ready()
    other = world.ready(number=OTHER_NUMBER)
    start = world.service.start_liveness(other, OWNER)
    # when the session is completed in the wrong flow, then
    assert refused(
        lambda: world.service.complete_liveness(mine, OWNER, start.session_id, [frame()])
    ).code == ("liveness.session_unknown")
    # given a session of this flow whose person changed meanwhile
    session = world.sessions.sessions[start.session_id]
    world.sessions.sessions[start.session_id] = session.model_copy(update={"person_hash": "someone-else"})
    # when, then
    error = refused(lambda: world.service.complete_liveness(other, OWNER, start.session_id, [frame()]))
    assert isinstance(error, Forbidden)
    assert error.code == "liveness.session_not_yours"


def test_frames_that_cannot_be_judged_change_nothing() -> None:
    # given a started session and an engine still running its check
    world = World()
    flow_id = world.ready()
    start = world.service.start_liveness(flow_id, OWNER)
    world.liveness.error = not_finished("IN_PROGRESS")
    # when
    error = refused(lambda: world.service.complete_liveness(flow_id, OWNER, start.session_id, [frame()]))
    # then the session stays usable and no attempt is counted
    assert error.code == "liveness.not_finished"
    assert world.sessions.get(start.session_id).used_at is None  # type: ignore[union-attr]
    assert world.service.attempts_left(flow_id, OWNER).flow == 3  # type: ignore[union-attr]


# --- the face match ---------------------------------------------------------------------------


def test_a_live_person_matching_the_portrait_passes_and_the_live_capture_is_kept() -> None:
    world = World()
    flow_id = world.ready()
    # when
    outcome = world.attempt(flow_id)
    # then
    assert (outcome.live, outcome.matched, outcome.passed, outcome.reasons) == (True, True, True, [])
    assert (outcome.attempts_left, outcome.review_available) == (2, False)
    flow = world.service.flow(flow_id, OWNER)
    assert flow.checks[CheckName.FACE] is CheckVerdict.PASSED
    capture = flow.documents[DocumentKind.LIVE_CAPTURE.value]
    assert world.store.objects[capture][0] == frame()
    # and a passed face check cannot be started again
    assert refused(lambda: world.service.start_liveness(flow_id, OWNER)).code == "face.already_passed"


def test_the_liveness_verdict_and_the_comparison_are_recorded_without_telling_the_client_the_score() -> None:
    world = World()
    flow_id = world.ready()
    # when
    outcome = world.attempt(flow_id)
    # then
    liveness, compared = world.evidence.entries(flow_id)[-2:]
    assert liveness.kind is EvidenceKind.LIVENESS_CHECKED
    assert (liveness.public["session_id"], liveness.public["live"]) == (outcome.session_id, True)
    assert liveness.public["engine"] == world.liveness.name
    assert compared.kind is EvidenceKind.FACE_COMPARED
    assert (compared.public["similarity"], compared.public["threshold"]) == (90.0, 50.0)
    assert compared.public["verdict"] == "match"
    assert "similarity" not in outcome.model_dump()
    assert "threshold" not in outcome.model_dump()
    assert world.evidence.verify(flow_id).ok


def test_a_face_that_does_not_match_fails_and_costs_an_attempt() -> None:
    # given an engine scoring the live face below the threshold
    world = World()
    world.faces.similarity = 20.0
    flow_id = world.ready()
    # when
    outcome = world.attempt(flow_id)
    # then
    assert (outcome.live, outcome.matched, outcome.passed) == (True, False, False)
    assert outcome.reasons == ["face.no_match"]
    assert outcome.attempts_left == 2
    flow = world.service.flow(flow_id, OWNER)
    assert flow.checks[CheckName.FACE] is CheckVerdict.FAILED
    assert DocumentKind.LIVE_CAPTURE.value not in flow.documents
    assert world.evidence.entries(flow_id)[-1].public["verdict"] == "no_match"


def test_a_live_capture_without_a_face_is_no_match_recorded_as_an_error() -> None:
    # given a burst whose reference frame holds no face
    world = World()
    world.faces.detections[frame()] = []
    flow_id = world.ready()
    # when
    outcome = world.attempt(flow_id)
    # then
    assert (outcome.matched, outcome.passed) == (False, False)
    compared = world.evidence.entries(flow_id)[-1]
    assert (compared.public["verdict"], compared.public["code"]) == ("error", "face.none")


def test_a_check_that_is_not_live_fails_without_a_match() -> None:
    world = World()
    world.liveness.live = False
    flow_id = world.ready()
    # when
    outcome = world.attempt(flow_id)
    # then
    assert (outcome.live, outcome.matched, outcome.passed) == (False, None, False)
    assert outcome.reasons == ["liveness.wrong_direction"]
    assert world.faces.compared == 0
    assert world.evidence_kinds(flow_id)[-1] == "liveness_checked"


# --- attempts ---------------------------------------------------------------------------------


def test_the_flows_attempts_run_out_then_review_is_offered_and_further_attempts_refused() -> None:
    # given a flow whose every attempt fails
    world = World()
    world.faces.similarity = 10.0
    flow_id = world.ready()
    # when three attempts fail
    outcomes = [world.attempt(flow_id) for _ in range(3)]
    # then the last offers review, and the exhaustion is recorded
    assert [o.attempts_left for o in outcomes] == [2, 1, 0]
    assert [o.review_available for o in outcomes] == [False, False, True]
    exhausted = world.evidence.entries(flow_id)[-1]
    assert exhausted.kind is EvidenceKind.ATTEMPTS_EXHAUSTED
    assert exhausted.public == {"flow_left": 0, "person_today_left": 2, "review_available": True}
    # when a fourth session is asked for, then
    error = refused(lambda: world.service.start_liveness(flow_id, OWNER))
    assert isinstance(error, TooManyRequests)
    assert (error.code, error.details["scope"], error.details["limit"]) == (
        "face.attempts_exhausted",
        "flow",
        3,
    )


def test_the_persons_daily_attempts_count_across_flows_until_the_next_china_day() -> None:
    # given a person who failed in one flow twice and in another flow once, with a daily quota of 3
    world = World(attempts_per_flow=3, attempts_per_person_day=3)
    world.faces.similarity = 10.0
    first, second = world.ready(), world.ready()
    world.attempt(first)
    world.attempt(first)
    last = world.attempt(second)
    # then the day's quota is used up in every flow of that person
    assert last.attempts_left == 0
    assert last.review_available
    error = refused(lambda: world.service.start_liveness(first, OWNER))
    assert (error.code, error.details["scope"], error.details["limit"]) == (
        "face.attempts_exhausted",
        "person_day",
        3,
    )
    # when the next day in China begins (16:00 UTC), then the first flow has its last attempt back
    world.clock.advance(hours=14)
    assert world.service.attempts_left(first, OWNER).left == 1  # type: ignore[union-attr]
    assert world.attempt(first).attempts_left == 0


def test_a_session_started_before_the_quota_ran_out_elsewhere_is_refused_and_recorded() -> None:
    # given a session started while one daily attempt was left, then used up in another flow
    world = World(attempts_per_flow=3, attempts_per_person_day=1)
    world.faces.similarity = 10.0
    first, second = world.ready(), world.ready()
    start = world.service.start_liveness(first, OWNER)
    world.attempt(second)
    # when the first session is completed
    error = refused(lambda: world.service.complete_liveness(first, OWNER, start.session_id, [frame()]))
    # then
    assert (error.code, error.details["scope"]) == ("face.attempts_exhausted", "person_day")
    assert world.liveness.judged == 1  # only the other flow's frames were judged


def test_attempts_left_is_unknown_before_the_identity_is_typed() -> None:
    world = World()
    flow_id = world.open()
    assert world.service.attempts_left(flow_id, OWNER) is None
    world.type_identity(flow_id)
    assert world.service.attempts_left(flow_id, OWNER).left == 3  # type: ignore[union-attr]


def test_no_face_check_once_the_flow_is_in_review() -> None:
    world = World(attempts_per_flow=1)
    world.faces.similarity = 10.0
    flow_id = world.ready()
    world.attempt(flow_id)
    world.service.request_review(flow_id, OWNER)
    # when, then
    assert world.service.flow(flow_id, OWNER).status is FlowStatus.IN_REVIEW
    assert refused(lambda: world.service.start_liveness(flow_id, OWNER)).code == "flow.not_open"
