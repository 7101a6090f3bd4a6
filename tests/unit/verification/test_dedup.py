"""One face, one identity (一脸多证): the de-duplication gate in the face check, against fakes."""

from __future__ import annotations

from collections.abc import Callable

from chalicelib.verification.dedup import FaceDedupGate
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import CheckName, CheckVerdict, FlowStatus, ReviewReason
from chalicelib.verification.ports import IndexedFace
from chalicelib.verification.views import FaceCheckOutcome
from tests.fakes.faces import FakeFaceIndex
from tests.unit.verification.world import OTHER_NUMBER, OWNER, World, frame, photo

THRESHOLD = 50.0


def deduplicating(index: FakeFaceIndex) -> World:
    return World(gates=lambda world: (FaceDedupGate(index, world.evidence, THRESHOLD),))


def test_a_passed_face_is_bound_to_the_flows_identity() -> None:
    # given a flow ready for the face check, with the biometric consent
    index = FakeFaceIndex()
    world = deduplicating(index)
    flow_id = world.ready()
    # when the face check passes
    outcome = world.attempt(flow_id)
    # then the live capture is bound under the flow's identity hash, and the binding is in the evidence
    assert outcome.passed
    flow = world.service.flow(flow_id, OWNER)
    assert index.templates == {flow_id: (flow.person_hash, frame())}
    # (the gates run before the attempt is counted, so the search comes before the liveness entries)
    kinds = world.evidence_kinds(flow_id)
    assert kinds[-1] == EvidenceKind.FACE_BOUND
    assert kinds.index(EvidenceKind.FACE_DEDUPLICATED) < kinds.index(EvidenceKind.LIVENESS_CHECKED)


def test_one_face_under_a_second_id_number_goes_to_review_and_is_not_bound() -> None:
    # given a face that passed under one ID number
    index = FakeFaceIndex(score=93.5)
    world = deduplicating(index)
    first = world.ready()
    assert world.attempt(first).passed
    # when the same face is checked under another ID number
    second = world.ready(number=OTHER_NUMBER)
    outcome = world.attempt(second)
    # then the check does not pass: the flow is in review for a duplicate face, with a case
    assert (outcome.live, outcome.matched, outcome.passed) == (True, True, False)
    assert outcome.reasons == ["face.duplicate"]
    assert outcome.review_case_id is not None
    assert world.cases.get(outcome.review_case_id).reason is ReviewReason.FACE_DUPLICATE  # type: ignore[union-attr]
    flow = world.service.flow(second, OWNER)
    assert flow.status is FlowStatus.IN_REVIEW
    assert flow.checks[CheckName.FACE] is CheckVerdict.IN_REVIEW
    # and the second identity got no template
    assert list(index.templates) == [first]
    # and the evidence holds the figures, nothing personal
    found = next(e for e in world.evidence.entries(second) if e.kind is EvidenceKind.FACE_DEDUPLICATED)
    assert found.public == {
        "engine": "fake-index",
        "threshold": THRESHOLD,
        "matches": 1,
        "identities": 1,
        "best_score": 93.5,
        "outcome": "review",
    }
    assert found.personal == {}


def test_the_same_persons_own_earlier_face_is_no_duplicate() -> None:
    # given a face that passed in one flow of a person
    index = FakeFaceIndex()
    world = deduplicating(index)
    first = world.ready()
    assert world.attempt(first).passed
    # when the same person (same ID number) checks the same face in a second flow
    second = world.ready()
    outcome = world.attempt(second)
    # then it passes, and both flows hold a template of the one identity
    assert outcome.passed
    assert set(index.templates) == {first, second}
    assert len(index.people()) == 1


def test_a_different_face_under_another_id_number_passes() -> None:
    # given a face bound under one ID number
    index = FakeFaceIndex()
    world = deduplicating(index)
    assert world.attempt(world.ready()).passed
    # when another person's face is checked under another ID number
    second = world.ready(number=OTHER_NUMBER)
    outcome = world.attempt(second, face=photo(seed=7))
    # then it passes and is bound to the second identity
    assert outcome.passed
    assert len(index.people()) == 2


def test_a_face_the_index_cannot_read_goes_to_review_rather_than_through() -> None:
    # given an index that finds no face in the live capture the portrait match accepted
    index = FakeFaceIndex()
    index.faceless.add(frame())
    world = deduplicating(index)
    flow_id = world.ready()
    # when the face check runs
    outcome = world.attempt(flow_id)
    # then the flow goes to review, with the index's code in the evidence
    assert (outcome.passed, outcome.reasons) == (False, ["face.duplicate"])
    assert outcome.review_case_id is not None
    found = next(e for e in world.evidence.entries(flow_id) if e.kind is EvidenceKind.FACE_DEDUPLICATED)
    assert (found.public["outcome"], found.public["code"]) == ("review", "face.none")
    assert index.templates == {}


def test_a_failed_face_check_runs_no_search_and_binds_nothing() -> None:
    # given a live face that does not match the portrait
    index = FakeFaceIndex()
    world = deduplicating(index)
    world.faces.similarity = 20.0
    flow_id = world.ready()
    # when the face check runs
    outcome = world.attempt(flow_id)
    # then the index is neither searched nor written
    assert not outcome.passed
    assert (index.searches, index.templates) == (0, {})


def test_a_template_follows_the_flow_when_the_abandoned_flow_is_purged() -> None:
    # given a face bound in a flow that is then abandoned
    index = FakeFaceIndex()
    world = deduplicating(index)
    flow_id = world.ready()
    assert world.attempt(flow_id).passed
    assert flow_id in index.templates
    # when the flow expires and the purge runs
    world.clock.advance(hours=25)
    assert world.service.purge_expired() == 1
    # then its template is gone: the same face may register under another identity
    assert index.templates == {}
    second = world.ready(number=OTHER_NUMBER)
    assert world.attempt(second).passed


def test_without_the_biometric_consent_on_the_flow_nothing_is_bound() -> None:
    # given a gate asked to bind a flow that holds no biometric consent
    index = FakeFaceIndex()
    world = deduplicating(index)
    flow_id = world.open()
    world.type_identity(flow_id)
    flow = world.service.flow(flow_id, OWNER)
    gate = FaceDedupGate(index, world.evidence, THRESHOLD)
    # when
    gate.passed(flow, OWNER, frame())
    # then
    assert index.templates == {}


class InterleavingIndex(FakeFaceIndex):
    """Runs ``meanwhile`` (once) inside the next search, after its hits are read and before they are
    returned: another request's whole face check lands between this one's search and its answer."""

    def __init__(self, score: float = 95.0) -> None:
        super().__init__(score)
        self.meanwhile: Callable[[], None] | None = None

    def search(self, image: bytes, threshold: float, limit: int) -> list[IndexedFace]:
        hits = super().search(image, threshold, limit)
        run, self.meanwhile = self.meanwhile, None
        if run is not None:
            run()
        return hits


def test_one_face_checked_under_two_identities_at_the_same_time_never_passes_twice() -> None:
    # given one face about to be checked under two ID numbers
    index = InterleavingIndex()
    world = deduplicating(index)
    first, second = world.ready(), world.ready(number=OTHER_NUMBER)
    outcomes: dict[str, FaceCheckOutcome] = {}
    # when the second check runs whole while the first one's search is on its way back
    index.meanwhile = lambda: outcomes.__setitem__(second, world.attempt(second))
    outcomes[first] = world.attempt(first)
    # then one of them passes and the other goes to review: the face is bound to one identity only
    passed = [flow for flow, outcome in outcomes.items() if outcome.passed]
    stopped = [flow for flow, outcome in outcomes.items() if outcome.reasons == ["face.duplicate"]]
    assert len(passed) == 1, outcomes
    assert len(stopped) == 1, outcomes
    assert list(index.templates) == passed
    assert world.service.flow(stopped[0], OWNER).status is FlowStatus.IN_REVIEW
