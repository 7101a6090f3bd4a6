"""Possession of the car (no squatting): a person shows they hold the car before anything is told of
it, by the sales record's phone, the head unit's code or a 行驶证 / purchase invoice photo; a car held
by someone else can be contested. Stories over fakes."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from chalicelib.local.synthetic import make_vin
from chalicelib.registration.domain.registrations import PossessionMethod, RegistrationKind, Step
from chalicelib.registration.possession import PossessionChecks, PossessionPolicy
from chalicelib.registration.views import RegistrationView
from chalicelib.sms.domain import SmsPurpose
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import ReviewReason
from tests.unit.registration.world import ME, PHONE, SOMEONE, World
from tests.unit.stories import refusal

REG = RegistrationKind.REGISTRATION
HEAD_UNIT = PossessionMethod.HEAD_UNIT
DOCUMENT = PossessionMethod.VEHICLE_DOCUMENT
SALES_PHONE = PossessionMethod.SALES_PHONE
#: A phone that is no vehicle's sales record phone.
MY_OTHER_PHONE = "13700001111"


@pytest.fixture
def world() -> World:
    return World()


def at_possession(world: World, vin: str, owner: str = ME, *, delegated: bool = False) -> str:
    """A registration of ``vin`` with its vehicle confirmed and a phone verified that is not the sales
    record's: possession is due."""
    reg_id = world.start(vin, owner, delegated=delegated)
    world.service.confirm_vehicle(reg_id, owner)
    world.codes.send(MY_OTHER_PHONE, SmsPurpose.OWNER_PHONE, caller=owner)
    view = world.service.verify_phone(reg_id, owner, MY_OTHER_PHONE, world.sms.last_code(MY_OTHER_PHONE))
    assert view.step is Step.POSSESSION
    return reg_id


def pending_under_someone(world: World, vin: str) -> None:
    """``vin``'s cards submitted by someone else, awaiting the operator."""
    world.service.submit(world.ready_to_submit(vin, SOMEONE), SOMEONE)


def licence_lines(vin: str) -> tuple[str, ...]:
    """What OCR reads on a 行驶证 of ``vin``."""
    return (
        "中华人民共和国机动车行驶证",
        "号牌号码京A12345车辆类型小型轿车",
        "所有人王小明",
        "住址北京市东城区景山前街4号",
        "品牌型号比亚迪BYD7150",
        "车辆识别代号" + vin,
        "发动机号码E12345678",
        "注册日期2025-03-01发证日期2025-03-01",
    )


def flow_of(world: World, reg_id: str) -> str:
    view = world.service.get(reg_id, ME, REG)
    assert view.flow_id is not None
    return view.flow_id


# --------------------------------------------------------------------------- nothing told before


def test_unknown_registered_pending_and_free_vins_start_alike_without_reading_the_inventory(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a vehicle registered under someone, one pending under someone, a free one and an unknown VIN
    world.registered(world.vins[0], SOMEONE)
    pending_under_someone(world, world.vins[1])
    unknown = make_vin(random.Random(99))
    assert unknown not in world.vins

    # when I start registering each, with the inventory unreachable (its reads would take time)
    def unreachable(*_: object) -> None:
        raise AssertionError("start read the inventory")

    monkeypatch.setattr(world.inventory, "get_vehicle", unreachable)
    monkeypatch.setattr(world.inventory, "cards_of_vehicle", unreachable)
    views = [
        world.service.start(ME, REG, vin) for vin in (world.vins[0], world.vins[1], world.vins[2], unknown)
    ]

    # then each is opened the same way, and none tells anything of the vehicle but the VIN I typed
    def shape(view: RegistrationView) -> dict[str, object]:
        return view.model_dump(exclude={"registration_id", "created_at", "expires_at", "vehicle"})

    assert all(created for _, created in views)
    assert all(shape(v) == shape(views[0][0]) for v, _ in views)
    assert {(v.vehicle.brand, v.vehicle.model, v.vehicle.colour) for v, _ in views} == {("", "", "")}
    assert views[0][0].step is Step.CONFIRM_VEHICLE


def test_before_possession_the_registration_shows_no_vehicle_facts_nor_cards(world: World) -> None:
    reg_id = at_possession(world, world.vins[0])
    view = world.service.get(reg_id, ME, REG)
    assert (view.vehicle.brand, view.cards, view.possession) == ("", [], None)


# --------------------------------------------------------------------------- sales phone


def test_the_sales_record_phone_shows_possession_by_itself_at_the_phone_step(world: World) -> None:
    reg_id = world.start(world.vins[0])
    world.service.confirm_vehicle(reg_id, ME)
    world.codes.send(PHONE, SmsPurpose.OWNER_PHONE, caller=ME)
    view = world.service.verify_phone(reg_id, ME, PHONE, world.sms.last_code(PHONE))
    assert view.step is Step.IDENTITY
    assert view.possession is not None
    assert (view.possession.method, view.possession.proved) == (SALES_PHONE, True)
    assert view.vehicle.brand != ""
    assert [c.state.value for c in view.cards] == ["unregistered"]
    kinds = [e.kind for e in world.evidence.entries(flow_of(world, reg_id))]
    assert EvidenceKind.POSSESSION_CHECKED in kinds


def test_a_phone_that_is_not_the_sales_records_is_refused_and_changes_nothing(world: World) -> None:
    reg_id = at_possession(world, world.vins[0])
    before = world.registrations.get(reg_id)
    err = refusal(world.service.prove_possession, reg_id, ME, SALES_PHONE)
    assert (err.code, err.status, err.field) == ("possession.phone_mismatch", 422, "phone")
    assert world.registrations.get(reg_id) == before


def test_without_sales_phones_the_phone_step_leaves_possession_due() -> None:
    world = World(sales_phone=None)
    reg_id = world.start(world.vins[0])
    world.service.confirm_vehicle(reg_id, ME)
    flow_id = world.verify_phone(reg_id)
    assert world.service.get(reg_id, ME, REG).step is Step.POSSESSION
    assert (
        refusal(world.service.prove_possession, reg_id, ME, SALES_PHONE).code == "possession.phone_mismatch"
    )
    assert flow_id


# --------------------------------------------------------------------------- head unit


def test_the_code_the_head_unit_shows_proves_possession_and_reveals_the_cards(world: World) -> None:
    # given possession due, and a code sent to the car's head unit
    reg_id = at_possession(world, world.vins[0])
    sent = world.service.send_head_unit_code(reg_id, ME)
    assert sent.expires_at == world.clock() + timedelta(minutes=5)
    # when I type the code the head unit shows
    code = world.vehicles.last_code(world.vins[0])
    view = world.service.prove_possession(reg_id, ME, HEAD_UNIT, code=code)
    # then possession is shown, the free cards are the registration's and identity is next
    assert view.step is Step.IDENTITY
    assert view.possession is not None
    assert view.possession.method is HEAD_UNIT
    assert [c.state.value for c in view.cards] == ["unregistered"]


def test_the_head_unit_code_is_kept_only_as_a_keyed_hash(world: World) -> None:
    reg_id = at_possession(world, world.vins[0])
    world.service.send_head_unit_code(reg_id, ME)
    code = world.vehicles.last_code(world.vins[0])
    reg = world.registrations.get(reg_id)
    assert reg is not None
    assert reg.possession is not None
    assert reg.possession.head_unit is not None
    assert code not in reg.model_dump_json()


def test_someone_without_the_car_cannot_guess_the_head_unit_code(world: World) -> None:
    # given a code on the head unit of a car I do not hold
    reg_id = at_possession(world, world.vins[0])
    world.service.send_head_unit_code(reg_id, ME)
    code = world.vehicles.last_code(world.vins[0])
    wrong = "000000" if code != "000000" else "111111"
    # when I guess, up to the limit
    for left in (4, 3, 2, 1, 0):
        err = refusal(world.service.prove_possession, reg_id, ME, HEAD_UNIT, code=wrong)
        assert (err.code, err.status, err.field) == ("possession.code_wrong", 422, "code")
        assert err.details["tries_left"] == left
    # then even the right code is refused now, and possession is still due
    err = refusal(world.service.prove_possession, reg_id, ME, HEAD_UNIT, code=code)
    assert (err.code, err.status) == ("possession.too_many_tries", 429)
    assert world.service.get(reg_id, ME, REG).step is Step.POSSESSION


def test_an_expired_head_unit_code_is_refused(world: World) -> None:
    reg_id = at_possession(world, world.vins[0])
    world.service.send_head_unit_code(reg_id, ME)
    code = world.vehicles.last_code(world.vins[0])
    world.clock.advance(minutes=6)
    err = refusal(world.service.prove_possession, reg_id, ME, HEAD_UNIT, code=code)
    assert (err.code, err.field) == ("possession.code_expired", "code")


def test_head_unit_codes_are_spaced_and_limited(world: World) -> None:
    reg_id = at_possession(world, world.vins[0])
    world.service.send_head_unit_code(reg_id, ME)
    err = refusal(world.service.send_head_unit_code, reg_id, ME)
    assert (err.code, err.status) == ("possession.code_too_soon", 429)
    for _ in range(4):
        world.clock.advance(seconds=61)
        world.service.send_head_unit_code(reg_id, ME)
    world.clock.advance(seconds=61)
    assert refusal(world.service.send_head_unit_code, reg_id, ME).code == "possession.too_many_codes"
    assert len(world.vehicles.shown[world.vins[0]]) == 5


def test_a_head_unit_code_for_an_unknown_vin_is_answered_like_any_other(world: World) -> None:
    unknown = make_vin(random.Random(99))
    known = at_possession(world, world.vins[0])
    stranger = at_possession(world, unknown)
    assert world.service.send_head_unit_code(known, ME) == world.service.send_head_unit_code(stranger, ME)


def test_a_code_before_any_was_sent_is_refused(world: World) -> None:
    reg_id = at_possession(world, world.vins[0])
    err = refusal(world.service.prove_possession, reg_id, ME, HEAD_UNIT, code="123456")
    assert err.code == "possession.code_not_sent"


# --------------------------------------------------------------------------- 行驶证 / invoice


@pytest.mark.parametrize("kind", [DocumentKind.VEHICLE_LICENCE, DocumentKind.PURCHASE_INVOICE])
def test_a_vehicle_document_whose_vin_matches_proves_possession(world: World, kind: DocumentKind) -> None:
    reg_id = at_possession(world, world.vins[0])
    world.upload(flow_of(world, reg_id), kind.value)
    world.ocr.say(*licence_lines(world.vins[0]))
    view = world.service.prove_possession(reg_id, ME, DOCUMENT, document=kind)
    assert view.step is Step.IDENTITY
    entries = world.evidence.entries(flow_of(world, reg_id))
    assert EvidenceKind.OCR_READ in [e.kind for e in entries]


def test_a_vehicle_licence_of_another_car_is_refused(world: World) -> None:
    reg_id = at_possession(world, world.vins[0])
    world.upload(flow_of(world, reg_id), "vehicle_licence")
    world.ocr.say(*licence_lines(world.vins[1]))
    err = refusal(world.service.prove_possession, reg_id, ME, DOCUMENT, document=DocumentKind.VEHICLE_LICENCE)
    assert (err.code, err.status, err.field) == ("possession.vin_mismatch", 422, "vehicle_licence")
    assert world.service.get(reg_id, ME, REG).step is Step.POSSESSION


def test_a_photo_without_a_readable_vin_is_refused(world: World) -> None:
    reg_id = at_possession(world, world.vins[0])
    world.upload(flow_of(world, reg_id), "vehicle_licence")
    world.ocr.say("中华人民共和国机动车行驶证", "车辆识别代号LGB4G7YV0RD6Y1RU")
    err = refusal(world.service.prove_possession, reg_id, ME, DOCUMENT, document=DocumentKind.VEHICLE_LICENCE)
    assert err.code == "possession.vin_unreadable"


def test_an_id_card_photo_is_no_vehicle_document(world: World) -> None:
    reg_id = at_possession(world, world.vins[0])
    err = refusal(world.service.prove_possession, reg_id, ME, DOCUMENT, document=DocumentKind.ID_FRONT)
    assert (err.code, err.field) == ("possession.document_kind", "document")


def test_a_vehicle_document_of_an_unknown_vin_tells_only_after_the_proof(world: World) -> None:
    unknown = make_vin(random.Random(99))
    reg_id = at_possession(world, unknown)
    world.upload(flow_of(world, reg_id), "vehicle_licence")
    world.ocr.say(*licence_lines(unknown))
    err = refusal(world.service.prove_possession, reg_id, ME, DOCUMENT, document=DocumentKind.VEHICLE_LICENCE)
    assert (err.code, err.status) == ("vehicle.not_found", 404)


# --------------------------------------------------------------------------- order and settings


def test_nothing_after_possession_runs_before_it(world: World) -> None:
    reg_id = at_possession(world, world.vins[0])
    world.verify_person(flow_of(world, reg_id))
    err = refusal(world.consent, reg_id)
    assert (err.code, err.details["step"]) == ("registration.step_out_of_order", "possession")
    err = refusal(world.service.submit, reg_id, ME)
    assert err.details["step"] == "possession"


def test_possession_is_due_before_the_delegation_and_the_trustee_can_show_it(world: World) -> None:
    reg_id = at_possession(world, world.vins[0], delegated=True)
    world.service.send_head_unit_code(reg_id, ME)
    view = world.service.prove_possession(reg_id, ME, HEAD_UNIT, code=world.vehicles.last_code(world.vins[0]))
    assert view.steps.index(Step.POSSESSION) < view.steps.index(Step.DELEGATION)
    assert view.step is Step.DELEGATION


def test_a_method_the_oem_did_not_enable_is_refused(world: World) -> None:
    reg_id = at_possession(world, world.vins[0])
    only_documents = PossessionChecks(
        world.service.registrations,
        world.service.views,
        world.inventory,
        world.verification,
        world.vehicles,
        world.hasher,
        policy=PossessionPolicy(methods=frozenset({DOCUMENT})),
        clock=world.clock,
    )
    err = refusal(only_documents.send_head_unit_code, reg_id, ME)
    assert (err.code, err.field) == ("possession.method_disabled", "method")
    assert world.vins[0] not in world.vehicles.shown


# --------------------------------------------------------------------------- contest


def test_the_holder_of_a_car_pending_under_someone_else_can_contest_it(world: World) -> None:
    # given the car's cards pending under someone else
    pending_under_someone(world, world.vins[0])
    # when I show I hold it by its head unit
    reg_id = at_possession(world, world.vins[0])
    world.service.send_head_unit_code(reg_id, ME)
    code = world.vehicles.last_code(world.vins[0])
    err = refusal(world.service.prove_possession, reg_id, ME, HEAD_UNIT, code=code)
    # then I am told it is claimed, and may contest
    assert (err.code, err.status, err.details["contestable"]) == ("possession.vehicle_claimed", 409, True)
    view = world.service.get(reg_id, ME, REG)
    assert view.step is Step.POSSESSION
    assert view.possession is not None
    assert (view.possession.proved, view.possession.claimed_by_other) == (True, True)
    # when I contest
    view = world.service.contest(reg_id, ME)
    # then a review case is opened for a reviewer, recorded in the registration and the evidence
    assert view.possession is not None
    case_id = view.possession.contest_case_id
    assert case_id is not None
    case, _ = world.verification.review_case(case_id)
    assert case.reason is ReviewReason.POSSESSION_CONTESTED
    assert case.summary["registration_id"] == reg_id
    assert case.summary["card_states"] == ["pending"]
    assert EvidenceKind.POSSESSION_CONTESTED in [
        e.kind for e in world.evidence.entries(flow_of(world, reg_id))
    ]
    # and contesting again finds the same case; the other person's cards are untouched
    assert world.service.contest(reg_id, ME).possession == view.possession
    assert [c.state.value for c in world.cards(world.vins[0])] == ["pending"]


def test_a_registered_car_can_be_contested_by_its_holder(world: World) -> None:
    world.registered(world.vins[0], SOMEONE)
    reg_id = at_possession(world, world.vins[0])
    world.upload(flow_of(world, reg_id), "vehicle_licence")
    world.ocr.say(*licence_lines(world.vins[0]))
    err = refusal(world.service.prove_possession, reg_id, ME, DOCUMENT, document=DocumentKind.VEHICLE_LICENCE)
    assert err.code == "possession.vehicle_claimed"
    view = world.service.contest(reg_id, ME)
    assert view.possession is not None
    assert view.possession.contest_case_id is not None


def test_no_contest_without_showing_possession_first(world: World) -> None:
    pending_under_someone(world, world.vins[0])
    reg_id = at_possession(world, world.vins[0])
    err = refusal(world.service.contest, reg_id, ME)
    assert (err.code, err.status) == ("possession.not_proved", 409)


def test_a_free_car_has_nothing_to_contest(world: World) -> None:
    reg_id = world.start(world.vins[0])
    world.service.confirm_vehicle(reg_id, ME)
    world.verify_phone(reg_id)
    err = refusal(world.service.contest, reg_id, ME)
    assert (err.code, err.status) == ("possession.nothing_to_contest", 409)
