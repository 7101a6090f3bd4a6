"""The identity authority (证件真实性): an identity it does not know never passes; an outage never
passes either (the person retries, or a reviewer decides); a real identity with another face fails."""

from __future__ import annotations

from chalicelib.kernel.errors import DomainError
from chalicelib.verification.authority import AuthorityPortraitGate
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import (
    CheckName,
    CheckVerdict,
    FlowStatus,
    ReviewDecision,
    ReviewReason,
    TypedIdentity,
)
from tests.fakes.authority import FakeAuthority, FakeCitizen
from tests.unit.stories import refusal as refused
from tests.unit.verification.world import NAME, NUMBER, OTHER_NUMBER, OWNER, World, frame, id_front_lines


def citizen() -> FakeCitizen:
    """The world's person as the authority knows them: their face is the world's first frame."""
    return FakeCitizen(name=NAME, id_number=NUMBER, face=frame())


def read_front(world: World, number: str = NUMBER, name: str = NAME) -> tuple[str, DomainError | None]:
    """Identity typed, ID front uploaded and read (which asks the authority); the refusal if any."""
    world.ocr.say(*id_front_lines(number, name))
    flow_id = world.open()
    world.type_identity(flow_id, number=number, name=name)
    world.upload(flow_id, DocumentKind.ID_FRONT)
    try:
        world.service.read_document(flow_id, OWNER, DocumentKind.ID_FRONT)
    except DomainError as err:
        return flow_id, err
    return flow_id, None


def authority_entries(world: World, flow_id: str) -> list[dict[str, object]]:
    return [e.public for e in world.evidence.entries(flow_id) if e.kind is EvidenceKind.AUTHORITY_CHECKED]


def test_a_known_identity_passes_and_the_answer_is_in_the_evidence_without_personal_facts() -> None:
    # given an authority that knows the person
    world = World(authority=FakeAuthority(citizen()))
    # when the ID front is read
    flow_id, error = read_front(world)
    # then the authority check passed, with the provider's reference in the evidence
    assert error is None
    flow = world.flows.get(flow_id)
    assert flow is not None
    assert flow.checks[CheckName.AUTHORITY] is CheckVerdict.PASSED
    [entry] = authority_entries(world, flow_id)
    assert entry["result"] == "match"
    assert entry["provider"] == "fake-authority"
    assert entry["provider_version"] == "fake-1"
    assert entry["reference"] == "ref-1"
    assert NAME not in str(entry)
    assert NUMBER not in str(entry)


def test_an_invented_identity_is_refused_and_the_check_fails() -> None:
    # given an authority that does not know the typed number (an invented identity)
    world = World(authority=FakeAuthority(citizen()))
    # when its ID card (drawn to agree with what was typed) is read
    flow_id, error = read_front(world, number=OTHER_NUMBER)
    # then it is refused on the number, and the check is failed: nothing can build on it
    assert error is not None
    assert (error.code, error.status, error.field) == ("authority.not_found", 422, "id_number")
    flow = world.flows.get(flow_id)
    assert flow is not None
    assert flow.checks[CheckName.AUTHORITY] is CheckVerdict.FAILED
    assert authority_entries(world, flow_id)[-1]["result"] == "not_found"


def test_a_real_number_under_another_name_is_refused_on_the_name() -> None:
    world = World(authority=FakeAuthority(citizen()))
    flow_id, error = read_front(world, name="李四")
    assert error is not None
    assert (error.code, error.field) == ("authority.no_match", "name")
    flow = world.flows.get(flow_id)
    assert flow is not None
    assert flow.checks[CheckName.AUTHORITY] is CheckVerdict.FAILED


def test_an_invented_identity_cannot_pass_the_face_check_even_with_a_matching_face() -> None:
    # given an invented identity whose card was read (the authority refused it)
    world = World(authority=FakeAuthority(citizen()))
    flow_id, _ = read_front(world, number=OTHER_NUMBER)
    world.consent(flow_id)
    # when a live face matching the card's portrait is checked
    outcome = world.attempt(flow_id)
    # then the face check fails on the authority
    assert not outcome.passed
    assert "authority.not_passed" in outcome.reasons
    flow = world.flows.get(flow_id)
    assert flow is not None
    assert flow.checks[CheckName.FACE] is CheckVerdict.FAILED


def test_authority_down_with_retry_is_503_nothing_passes_and_a_retry_passes_once_it_is_back() -> None:
    # given the authority down and the stage's policy "retry"
    authority = FakeAuthority(citizen())
    authority.down = True
    world = World(authority=authority, authority_unavailable="retry")
    # when the ID front is read
    flow_id, error = read_front(world)
    # then 503 with when to retry, and the check is not passed
    assert error is not None
    assert (error.code, error.status) == ("authority.unavailable", 503)
    assert error.details["retry_after_seconds"] == 7
    flow = world.flows.get(flow_id)
    assert flow is not None
    assert flow.checks[CheckName.AUTHORITY] is CheckVerdict.FAILED
    assert world.cases.cases == {}
    # when asked again while still down: the same refusal
    assert refused(lambda: world.service.check_authority(flow_id, OWNER)).code == "authority.unavailable"
    # when asked again once it is back: the check passes, without a new upload
    authority.down = False
    outcome = world.service.check_authority(flow_id, OWNER)
    assert (outcome.result.value, outcome.verdict) == ("match", CheckVerdict.PASSED)
    flow = world.flows.get(flow_id)
    assert flow is not None
    assert flow.checks[CheckName.AUTHORITY] is CheckVerdict.PASSED
    assert [e["result"] for e in authority_entries(world, flow_id)] == ["unavailable", "unavailable", "match"]


def test_authority_down_with_review_lets_the_face_check_run_but_sends_the_flow_to_a_reviewer() -> None:
    # given the authority down and the stage's policy "review"
    authority = FakeAuthority(citizen())
    authority.down = True
    world = World(authority=authority, authority_unavailable="review")
    flow_id, error = read_front(world)
    assert error is None
    flow = world.flows.get(flow_id)
    assert flow is not None
    assert flow.checks[CheckName.AUTHORITY] is CheckVerdict.IN_REVIEW
    world.consent(flow_id)
    # when the live face matches the card's portrait
    outcome = world.attempt(flow_id)
    # then it does not pass: a review case holds the flow
    assert not outcome.passed
    assert outcome.review_case_id is not None
    case = world.cases.get(outcome.review_case_id)
    assert case is not None
    assert case.reason is ReviewReason.AUTHORITY_UNAVAILABLE
    flow = world.flows.get(flow_id)
    assert flow is not None
    assert flow.status is FlowStatus.IN_REVIEW


def test_a_reviewer_approving_an_authority_case_approves_the_waiting_identity_check() -> None:
    authority = FakeAuthority(citizen())
    authority.down = True
    world = World(authority=authority, authority_unavailable="review")
    flow_id, _ = read_front(world)
    world.consent(flow_id)
    case_id = world.attempt(flow_id).review_case_id
    assert case_id is not None
    world.service.decide_review(case_id, "reviewer-1", ReviewDecision.APPROVE, "checked by phone")
    flow = world.flows.get(flow_id)
    assert flow is not None
    assert flow.status is FlowStatus.VERIFIED
    assert flow.checks[CheckName.AUTHORITY] is CheckVerdict.APPROVED


def test_a_real_identity_with_another_face_fails_on_the_authoritative_portrait() -> None:
    # given a known identity and a live face that matches the card (a card forged with the
    # impostor's photo) but not the authority's portrait
    world = World(authority=FakeAuthority(citizen()))
    flow_id, _ = read_front(world)
    world.consent(flow_id)
    # when the impostor's face is checked
    outcome = world.attempt(flow_id, face=frame(9))
    # then the attempt fails with the portrait mismatch, and the comparison is in the evidence
    assert not outcome.passed
    assert outcome.matched is True
    assert "authority.portrait_mismatch" in outcome.reasons
    portrait = [e for e in authority_entries(world, flow_id) if e["check"] == "portrait"]
    assert portrait[-1]["result"] == "no_match"
    assert portrait[-1]["similarity"] == 12.0
    # and the person's own face passes
    assert world.attempt(flow_id).passed


def test_portrait_check_down_with_retry_is_a_503_that_counts_nothing_and_the_session_passes_later() -> None:
    authority = FakeAuthority(citizen())
    world = World(authority=authority, authority_unavailable="retry")
    flow_id, _ = read_front(world)
    world.consent(flow_id)
    before = world.service.attempts_left(flow_id, OWNER)
    assert before is not None
    session = world.service.start_liveness(flow_id, OWNER)
    authority.down = True
    # when the authority cannot compare the portrait, the face check answers 503 and counts nothing
    error = refused(
        lambda: world.service.complete_liveness(flow_id, OWNER, session.session_id, [frame(), frame(1)])
    )
    assert error.code == "authority.unavailable"
    assert error.status == 503
    assert "不计入核验次数" in error.message_zh
    after = world.service.attempts_left(flow_id, OWNER)
    assert after is not None
    assert after.left == before.left
    flow = world.flows.get(flow_id)
    assert flow is not None
    assert flow.checks.get(CheckName.FACE) is not CheckVerdict.FAILED, flow.checks
    # and once it answers, the same session is sent again and passes
    authority.down = False
    outcome = world.service.complete_liveness(flow_id, OWNER, session.session_id, [frame(), frame(1)])
    assert outcome.passed
    assert outcome.attempts_left == before.left - 1


def test_an_id_type_the_authority_does_not_cover_goes_to_a_reviewer() -> None:
    # given a flow whose typed identity is a passport (the citizen database does not hold them)
    authority = FakeAuthority(citizen())
    world = World(authority=authority)
    flow_id = world.open()
    passport = TypedIdentity(id_type="passport", id_number="E12345678", name=NAME)
    typed = world.service.set_identity(flow_id, OWNER, passport)
    # when the authority check runs for it
    assert world.service.authority is not None
    outcome = world.service.authority.check_holder(typed, OWNER)
    # then it is recorded "not covered", without asking the authority, and waits for a reviewer
    flow = world.flows.get(flow_id)
    assert outcome.result.value == "not_covered"
    assert outcome.review_pending
    assert flow is not None
    assert flow.checks[CheckName.AUTHORITY] is CheckVerdict.IN_REVIEW
    assert authority.calls == []
    assert authority_entries(world, flow_id)[-1]["result"] == "not_covered"
    # and the face gate would send the flow to a reviewer for that reason
    verdict = AuthorityPortraitGate(world.service.authority, world.evidence).admit(flow, OWNER, frame())
    assert verdict.review_reason is ReviewReason.AUTHORITY_NOT_COVERED


def test_a_changed_identity_must_be_checked_again() -> None:
    world = World(authority=FakeAuthority(citizen()))
    flow_id, _ = read_front(world)
    world.type_identity(flow_id, name="李四")
    flow = world.flows.get(flow_id)
    assert flow is not None
    assert CheckName.AUTHORITY not in flow.checks


def test_the_retry_route_needs_the_id_front_read_first() -> None:
    world = World(authority=FakeAuthority(citizen()))
    flow_id = world.open()
    world.type_identity(flow_id)
    assert refused(lambda: world.service.check_authority(flow_id, OWNER)).code == "flow.step_out_of_order"


def test_a_delegated_owner_the_authority_does_not_know_is_refused_on_the_owners_number() -> None:
    # given a trustee's flow and an owner's ID card drawn for an invented identity
    world = World(authority=FakeAuthority(citizen()))
    flow_id, _ = read_front(world)
    world.upload(flow_id, DocumentKind.OWNER_ID_FRONT)
    world.ocr.say(*id_front_lines(OTHER_NUMBER, "李四"))
    owner = TypedIdentity(id_type="resident_id", id_number=OTHER_NUMBER, name="李四")
    # when the owner's card is read and checked
    error = refused(lambda: world.service.check_owner_id(flow_id, OWNER, owner))
    # then the owner's identity is refused, and the owner's check is failed
    assert (error.code, error.field) == ("authority.not_found", "owner.id_number")
    flow = world.flows.get(flow_id)
    assert flow is not None
    assert flow.checks[CheckName.AUTHORITY_OWNER] is CheckVerdict.FAILED
    assert authority_entries(world, flow_id)[-1]["subject"] == "owner"


def test_a_delegated_owner_the_authority_knows_passes() -> None:
    authority = FakeAuthority(citizen(), FakeCitizen(name="李四", id_number=OTHER_NUMBER))
    world = World(authority=authority)
    flow_id, _ = read_front(world)
    world.upload(flow_id, DocumentKind.OWNER_ID_FRONT)
    world.ocr.say(*id_front_lines(OTHER_NUMBER, "李四"))
    owner = TypedIdentity(id_type="resident_id", id_number=OTHER_NUMBER, name="李四")
    world.service.check_owner_id(flow_id, OWNER, owner)
    flow = world.flows.get(flow_id)
    assert flow is not None
    assert flow.checks[CheckName.AUTHORITY_OWNER] is CheckVerdict.PASSED


def test_an_owners_phone_left_unchecked_by_an_outage_sends_the_matched_face_to_a_reviewer() -> None:
    # given the person known, and the carrier unavailable for the owner's phone under the "review" policy
    authority = FakeAuthority(
        citizen(), FakeCitizen(name="李四", id_number=OTHER_NUMBER, phone="13700001111")
    )
    authority.down_for = {"verify_phone_holder"}
    world = World(authority=authority, authority_unavailable="review")
    flow_id, _ = read_front(world)
    checks = world.service.authority
    assert checks is not None
    checks.check_phone_holder(flow_id, OWNER, "李四", "resident_id", OTHER_NUMBER, "13700001111")
    flow = world.flows.get(flow_id)
    assert flow is not None
    assert flow.checks[CheckName.AUTHORITY_OWNER_PHONE] is CheckVerdict.IN_REVIEW
    world.consent(flow_id)
    # when the live face matches the card's and the authority's portraits
    outcome = world.attempt(flow_id)
    # then it does not pass: a reviewer decides, told the authority was unavailable for the phone
    assert not outcome.passed
    assert outcome.review_case_id is not None
    case = world.cases.get(outcome.review_case_id)
    assert case is not None
    assert case.reason is ReviewReason.AUTHORITY_UNAVAILABLE


def test_the_owners_phone_checked_again_and_held_by_the_owner_replaces_the_waiting_verdict() -> None:
    authority = FakeAuthority(
        citizen(), FakeCitizen(name="李四", id_number=OTHER_NUMBER, phone="13700001111")
    )
    authority.down = True
    world = World(authority=authority, authority_unavailable="review")
    flow_id = world.open()
    checks = world.service.authority
    assert checks is not None
    checks.check_phone_holder(flow_id, OWNER, "李四", "resident_id", OTHER_NUMBER, "13700001111")
    authority.down = False
    checks.check_phone_holder(flow_id, OWNER, "李四", "resident_id", OTHER_NUMBER, "13700001111")
    flow = world.flows.get(flow_id)
    assert flow is not None
    assert flow.checks[CheckName.AUTHORITY_OWNER_PHONE] is CheckVerdict.PASSED


def test_a_non_resident_owners_phone_is_not_checked_and_recorded_as_not_covered() -> None:
    authority = FakeAuthority(citizen())
    world = World(authority=authority)
    flow_id = world.open()
    checks = world.service.authority
    assert checks is not None
    checks.check_phone_holder(flow_id, OWNER, "JOHN SMITH", "passport", "E12345678", "13700001111")
    assert "verify_phone_holder" not in authority.calls
    [entry] = authority_entries(world, flow_id)
    assert (entry["check"], entry["result"], entry["id_type"]) == ("phone_holder", "not_covered", "passport")
