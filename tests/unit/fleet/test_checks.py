"""The automatic checks of a submitted fleet batch, over the fakes: each check's verdict and reason, and
the outcome the round opens with."""

from __future__ import annotations

from chalicelib.cards.domain.limits import CARDS_PER_ID_LIMIT
from chalicelib.enterprise.domain import EnterpriseType
from chalicelib.fleet.checks import (
    FAILED,
    PASSED,
    REJECTED,
    RESUBMIT,
    REVIEW,
    WARNING,
    CheckResult,
)
from chalicelib.fleet.domain import BatchKind
from chalicelib.kernel.operators import Operator
from chalicelib.operators.domain.outbox import CounterMove, OutboxCommit
from tests.unit.fleet.apply_world import COMPANY, Message, World, licence


def run(world: World, batch_id: str) -> tuple[dict[str, CheckResult], str, dict[str, object]]:
    output = world.checks().run(Message("automatic_checks", batch_id))
    _, checks, outcome = world.cases.rounds[-1]
    return {c.name: c for c in checks}, outcome, output


def test_a_complete_batch_passes_every_check_and_goes_to_review() -> None:
    # given a registration batch of two vehicles with every document, read and agreeing
    world = World()
    batch = world.batch(world.vehicles(2))
    # when its automatic checks run
    checks, outcome, output = run(world, batch.batch_id)
    # then every check passed, the round opened for review and its output is the case's
    assert [c.verdict for c in checks.values()] == [PASSED] * 6
    assert list(checks) == ["uscc", "company_name", "documents", "face", "cards_per_id", "vehicles"]
    assert outcome == REVIEW
    assert output == {"outcome": REVIEW, "remind_after_seconds": 1, "escalate_after_seconds": 2}


def test_a_licence_of_another_company_fails_the_uscc_check_for_resubmission() -> None:
    # given the licence uploaded is another company's (its own code, its own name)
    world = World()
    world.licence = licence(uscc="91310000MA1FL4XQ3T", name="上海别家物流有限公司")
    batch = world.batch(world.vehicles(1))
    # when the checks run
    checks, outcome, _ = run(world, batch.batch_id)
    # then the code and the name fail, each with a reason the enterprise may put right
    assert (checks["uscc"].verdict, checks["uscc"].reason_code) == (FAILED, "uscc_mismatch")
    assert "91310000MA1FL4XQ3T" in checks["uscc"].detail_zh
    assert checks["company_name"].reason_code == "company_name_mismatch"
    assert outcome == RESUBMIT


def test_a_company_name_off_by_one_character_fails() -> None:
    # given the enterprise typed its name with one character different from the licence
    world = World()
    batch = world.batch(world.vehicles(1), typed=COMPANY.replace("星河", "星和"))
    # when the checks run
    checks, outcome, _ = run(world, batch.batch_id)
    # then the name check fails (resubmittable) while the code passes
    assert (checks["company_name"].verdict, checks["company_name"].reason_code) == (
        FAILED,
        "company_name_mismatch",
    )
    assert checks["uscc"].verdict == PASSED
    assert outcome == RESUBMIT


def test_spaces_and_full_width_spaces_are_not_a_different_name() -> None:
    # given the licence read with spaces, the name typed with a trailing full-width space
    world = World()
    world.licence = licence(name="北京 星河车联 科技有限公司")
    batch = world.batch(world.vehicles(1), typed="北京星河车联科技有限公司\u3000")
    # when the checks run
    checks, _, _ = run(world, batch.batch_id)
    # then the name agrees
    assert checks["company_name"].verdict == PASSED


def test_a_missing_custody_agreement_fails_a_registration_but_not_a_deregistration() -> None:
    # given two flows without a custody agreement: one of a registration, one of a de-registration
    world = World()
    without = ["business_licence", "authorization_letter", "id_front", "id_back"]
    registration = world.batch(world.vehicles(1), flow=world.flow(documents=without))
    deregistration = world.batch(
        world.vehicles(1), kind=BatchKind.DEREGISTRATION, flow=world.flow(documents=without)
    )
    # when both are checked
    reg_checks, reg_outcome, _ = run(world, registration.batch_id)
    dereg_checks, _, _ = run(world, deregistration.batch_id)
    # then the registration misses it (a document to hand in), the de-registration needs none
    assert (reg_checks["documents"].verdict, reg_checks["documents"].reason_code) == (
        FAILED,
        "document_missing",
    )
    assert "车卡保管协议" in reg_checks["documents"].detail_zh
    assert reg_outcome == RESUBMIT
    assert dereg_checks["documents"].verdict == PASSED


def test_an_unreadable_licence_fails_for_resubmission() -> None:
    # given a licence photo from which OCR reads nothing
    world = World()
    world.licence = licence(uscc=None, name=None)  # type: ignore[arg-type]
    batch = world.batch(world.vehicles(1))
    # when the checks run
    checks, outcome, _ = run(world, batch.batch_id)
    # then the documents, the code and the name fail as unreadable, and the licence may be replaced
    assert checks["documents"].reason_code == "licence_unreadable"
    assert checks["uscc"].reason_code == "licence_unreadable"
    assert checks["company_name"].reason_code == "licence_unreadable"
    assert outcome == RESUBMIT


def test_a_letter_that_is_not_an_image_is_unreadable() -> None:
    # given an authorization letter stored as something that is not a photo
    world = World()
    flow = world.flow()
    world.photos[flow.documents["authorization_letter"]] = b"%PDF-1.4"
    batch = world.batch(world.vehicles(1), flow=flow)
    # when the checks run
    checks, _, _ = run(world, batch.batch_id)
    # then the documents check names the letter
    assert checks["documents"].reason_code == "letter_unreadable"


def test_an_unreadable_id_back_is_asked_again_and_an_unreadable_portrait_side_ends_the_batch() -> None:
    # given the responsible person's ID: first its emblem side not read, then its portrait side not read
    from chalicelib.verification.domain.flows import CheckName, CheckVerdict

    outcomes = {}
    for side in (CheckName.OCR_ID_BACK, CheckName.OCR_ID_FRONT):
        world = World()
        flow = world.flow()
        world.flows[flow.flow_id] = flow.model_copy(
            update={"checks": {**flow.checks, side: CheckVerdict.FAILED}}
        )
        batch = world.batch(world.vehicles(1), flow=world.flows[flow.flow_id])
        checks, outcome, _ = run(world, batch.batch_id)
        outcomes[side] = (checks["documents"].reason_code, outcome)
    # then the back may be replaced, while the portrait side, which the face was matched against, is final
    assert outcomes[CheckName.OCR_ID_BACK] == ("responsible_id_unclear", RESUBMIT)
    assert outcomes[CheckName.OCR_ID_FRONT] == ("responsible_portrait_unusable", REJECTED)


def _holds(world: World, cards: int, operator: Operator = Operator.CHINA_MOBILE) -> None:
    """The responsible person already holds ``cards`` active cards of ``operator`` (the one-ID count)."""
    world.store.commit(OutboxCommit(counters=(CounterMove(world.responsible_hash, operator, cards),)))


def test_eleven_cards_of_an_individual_business_responsible_person_are_refused() -> None:
    # given a sole proprietorship whose responsible person holds 5 cards, and a batch of 6 more
    world = World(EnterpriseType.INDIVIDUAL_BUSINESS)
    _holds(world, 5)
    batch = world.batch(world.vehicles(6))
    # when the checks run
    checks, outcome, _ = run(world, batch.batch_id)
    # then the one-ID check fails with a final reason: 11 > 10 (Article 11)
    result = checks["cards_per_id"]
    assert (result.verdict, result.reason_code) == (FAILED, "cards_per_id_exceeded")
    assert "11 张" in result.detail_zh
    assert "第十一条" in result.detail_zh
    assert outcome == REJECTED


def test_ten_cards_of_an_individual_business_responsible_person_pass() -> None:
    # given the same person at 4 cards and a batch of 6 (exactly the limit)
    world = World(EnterpriseType.INDIVIDUAL_BUSINESS)
    _holds(world, 4)
    batch = world.batch(world.vehicles(6))
    # when the checks run
    checks, outcome, _ = run(world, batch.batch_id)
    # then it passes
    assert checks["cards_per_id"].verdict == PASSED
    assert f"{CARDS_PER_ID_LIMIT} 张" in checks["cards_per_id"].detail_zh
    assert outcome == REVIEW


def test_a_limited_company_s_eleven_cards_are_a_warning_for_the_reviewer() -> None:
    # given a limited company whose responsible person holds 5 cards, and a batch of 6 more
    world = World(EnterpriseType.ENTERPRISE)
    _holds(world, 5)
    batch = world.batch(world.vehicles(6))
    # when the checks run
    checks, outcome, _ = run(world, batch.batch_id)
    # then the count is shown as a warning (the operator checks fleets, Article 9) and the batch goes on
    result = checks["cards_per_id"]
    assert (result.verdict, result.reason_code) == (WARNING, None)
    assert "11 张" in result.detail_zh
    assert outcome == REVIEW


def test_the_count_is_per_operator() -> None:
    # given a sole proprietor's person holding 10 cards of one operator, and a batch of another's
    world = World(EnterpriseType.INDIVIDUAL_BUSINESS)
    _holds(world, 10, Operator.CHINA_MOBILE)
    batch = world.batch(world.vehicles(3, operator=Operator.CHINA_UNICOM))
    # when the checks run
    checks, _, _ = run(world, batch.batch_id)
    # then nothing is over the limit
    assert checks["cards_per_id"].verdict == PASSED


def test_a_vehicle_already_registered_fails_the_batch_for_good() -> None:
    # given one vehicle of the batch whose card was registered by its owner meanwhile
    world = World()
    vins = world.vehicles(2)
    from tests.unit.cards.world import holder

    (card,) = world.inventory.cards_of_vehicle(vins[1])
    world.lifecycle.submit_registration(card.iccid, holder(7), "owner")
    batch = world.batch(vins)
    # when the checks run
    checks, outcome, _ = run(world, batch.batch_id)
    # then the vehicles check fails with a final reason naming the vehicle's tail
    assert (checks["vehicles"].verdict, checks["vehicles"].reason_code) == (FAILED, "vehicles_not_owned")
    assert vins[1][-6:] in checks["vehicles"].detail_zh
    assert outcome == REJECTED


def test_a_deregistration_of_vehicles_not_registered_to_the_enterprise_fails() -> None:
    # given a de-registration batch of a vehicle nobody registered
    world = World()
    batch = world.batch(world.vehicles(1), kind=BatchKind.DEREGISTRATION)
    # when the checks run
    checks, outcome, _ = run(world, batch.batch_id)
    # then the vehicles check fails
    assert checks["vehicles"].reason_code == "vehicles_not_owned"
    assert outcome == REJECTED


def test_a_face_check_not_passed_fails() -> None:
    # given a flow whose face check only started
    from chalicelib.verification.domain.flows import CheckVerdict

    world = World()
    batch = world.batch(world.vehicles(1), flow=world.flow(face=CheckVerdict.STARTED))
    # when the checks run
    checks, _, _ = run(world, batch.batch_id)
    # then the face check fails
    assert checks["face"].verdict == FAILED


def test_a_vehicle_held_by_another_open_batch_fails() -> None:
    # given a batch one of whose vehicles another open batch holds
    world = World()
    vins = world.vehicles(2)
    batch = world.batch(vins)
    world.claims = {vins[0]: batch.batch_id, vins[1]: "fb_other"}
    # when the checks run
    checks, _, _ = run(world, batch.batch_id)
    # then the vehicles check names the other batch (its own claim is no problem)
    assert checks["vehicles"].reason_code == "vehicles_not_owned"
    assert "fb_other" in checks["vehicles"].detail_en
    assert vins[0][-6:] not in checks["vehicles"].detail_zh


def test_the_licence_name_compares_as_the_submit_compared_the_typed_one() -> None:
    from dataclasses import replace

    # given the licence's Latin letters read in capitals, the name typed (and the enterprise's) with
    # Chinese brackets and small letters: the submit, through normalise_company_name, took them as equal
    world = World()
    world.licence = licence(name="北京XINGHE车联科技有限公司(朝阳分公司)")
    world.enterprise = replace(world.enterprise, company_name="北京Xinghe车联科技有限公司（朝阳分公司）")
    batch = world.batch(world.vehicles(1), typed="北京Xinghe车联科技有限公司（朝阳分公司）")
    # when the checks run
    checks, _, _ = run(world, batch.batch_id)
    # then the checks do not refuse later what the submit accepted
    assert checks["company_name"].verdict == PASSED
