"""委托登记 (第十二条) over fakes: the owner's ID card and the authorization letter are read, the letter
names the owner, a trustee and this car, and the owner confirms with a code sent to their own phone
before the registration can go on to be submitted."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from chalicelib.registration.domain.registrations import (
    DelegationConfirmation,
    Possession,
    PossessionMethod,
    RegistrationKind,
    Step,
)
from chalicelib.sms.domain import SmsPurpose
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import (
    CheckName,
    CheckVerdict,
    FlowPurpose,
    FlowStatus,
    TypedIdentity,
)
from chalicelib.verification.domain.readings import TextLine
from tests.fakes.authority import FakeAuthority, FakeAuthorityWithoutPhoneCheck, FakeCitizen
from tests.unit.registration.world import ME, NAME, NUMBER, OTHER_NUMBER, PHONE, World
from tests.unit.stories import refusal
from tests.unit.verification.world import id_front_lines

REG = RegistrationKind.REGISTRATION
OWNER_PHONE = "13700001111"
OWNER_NAME = "李四"
LETTER = b"letter photo"
OWNER_ID = b"owner id photo"
OWNER_ID_BACK = b"owner id back photo"
#: What OCR reads on the back of the owner's ID card: valid until 2031-05-01.
OWNER_BACK_LINES = [
    TextLine(text=t, confidence=0.99)
    for t in ("签发机关上海市公安局浦东分局", "有效期限2011.05.01-2031.05.01")
]


@pytest.fixture
def world() -> World:
    return World()


def letter_lines(
    vin: str, owner: str = OWNER_NAME, trustee: str = NAME, owner_number: str = OTHER_NUMBER
) -> list[TextLine]:
    """What OCR reads on an authorization letter (the layout ``local.documents`` draws)."""
    texts = (
        "授权委托书",
        f"委托人：{owner}",
        f"身份证号码：{owner_number}",
        f"受托人：{trustee}",
        f"身份证号码：{NUMBER}",
        f"车辆识别代号（VIN）：{vin}",
        "本人因故不能亲自办理，现委托上述受托人代为办理该车辆车联网卡的实名登记手续。",
        f"委托人（签字）：{owner}",
        "日期：2026年1月5日",
    )
    return [TextLine(text=t, confidence=0.99) for t in texts]


def owner_identity(name: str = OWNER_NAME) -> TypedIdentity:
    return TypedIdentity(id_type="resident_id", id_number=OTHER_NUMBER, name=name, address="上海市")


def at_delegation(world: World, vin: str | None = None) -> tuple[str, str]:
    """A delegated registration whose vehicle is confirmed, phone verified and possession shown: the
    delegation is due. Returns the registration's and the flow's ids."""
    reg_id = world.start(vin or world.vins[0], delegated=True)
    world.service.confirm_vehicle(reg_id, ME)
    flow_id = world.verify_phone(reg_id)
    reg = world.registrations.get(reg_id)
    assert reg is not None
    if Step.POSSESSION in reg.steps:
        proved = Possession(method=PossessionMethod.SALES_PHONE, proved_at=world.clock())
        world.registrations.save(reg.model_copy(update={"possession": proved, "version": reg.version + 1}))
    assert world.service.get(reg_id, ME, REG).step is Step.DELEGATION
    return reg_id, flow_id


def with_photos(world: World, flow_id: str, vin: str, **letter: str) -> None:
    """The letter and the owner's ID card uploaded, each read as given."""
    world.upload(flow_id, "authorization_letter", LETTER)
    world.upload(flow_id, "owner_id_front", OWNER_ID)
    world.upload(flow_id, "owner_id_back", OWNER_ID_BACK)
    world.ocr.readings[OWNER_ID_BACK] = OWNER_BACK_LINES
    world.ocr.readings[LETTER] = letter_lines(vin, **letter)
    world.ocr.readings[OWNER_ID] = [
        TextLine(text=t, confidence=0.99) for t in id_front_lines(OTHER_NUMBER, "李四")
    ]


def delegated(world: World) -> tuple[str, str]:
    """The delegation given with a letter that names the owner, the trustee and the car."""
    reg_id, flow_id = at_delegation(world)
    with_photos(world, flow_id, world.vins[0])
    world.service.delegate(reg_id, ME, owner_identity(), OWNER_PHONE)
    return reg_id, flow_id


def confirmed(world: World) -> tuple[str, str]:
    reg_id, flow_id = delegated(world)
    world.service.send_delegation_code(reg_id, ME)
    world.service.confirm_delegation(reg_id, ME, world.sms.last_code(OWNER_PHONE))
    return reg_id, flow_id


# --------------------------------------------------------------------------- the delegation step


def test_a_delegation_without_the_owners_address_is_refused_on_it(world: World) -> None:
    # given a delegated registration with the letter and the owner's ID card uploaded
    reg_id, flow_id = at_delegation(world)
    with_photos(world, flow_id, world.vins[0])
    # when the owner is given without an address (第五条: the holder is registered with it)
    owner = owner_identity().model_copy(update={"address": None})
    err = refusal(world.service.delegate, reg_id, ME, owner, OWNER_PHONE)
    # then it is refused on the owner's address, and the delegation is still due
    assert (err.code, err.field) == ("identity.address_required", "owner.address")
    assert world.service.get(reg_id, ME, REG).step is Step.DELEGATION


def test_a_delegation_needs_the_letter_and_the_owners_id_then_waits_for_the_owner(world: World) -> None:
    # given a delegated registration at its delegation step
    reg_id, flow_id = at_delegation(world)
    owner = owner_identity()
    # when the owner is given without the letter, then without the owner's ID card
    err = refusal(world.service.delegate, reg_id, ME, owner, OWNER_PHONE)
    assert (err.code, err.field) == ("delegation.letter_missing", "authorization_letter")
    world.upload(flow_id, "authorization_letter", LETTER)
    err = refusal(world.service.delegate, reg_id, ME, owner, OWNER_PHONE)
    assert (err.code, err.field) == ("delegation.owner_id_missing", "owner_id_front")
    # and once both photos are in the flow and read
    with_photos(world, flow_id, world.vins[0])
    view = world.service.delegate(reg_id, ME, owner, OWNER_PHONE)
    # then the delegation is recorded, masked, but the step stays until the owner confirms it
    assert view.step is Step.DELEGATION
    assert view.delegation is not None
    assert (view.delegation.letter, view.delegation.owner_id_photo) == (True, True)
    assert view.delegation.confirmed is False
    assert view.delegation.owner_phone_masked is not None
    assert OWNER_PHONE not in view.model_dump_json()
    assert OTHER_NUMBER not in view.model_dump_json()


def test_the_owner_confirms_with_the_code_sent_to_their_own_phone_then_the_trustee_goes_on(
    world: World,
) -> None:
    # given a delegation recorded with the owner's phone
    reg_id, flow_id = delegated(world)
    # when the trustee asks for the owner's code
    world.service.send_delegation_code(reg_id, ME)
    # then it goes to the owner's phone, saying what it confirms
    text = world.sms.texts_to(OWNER_PHONE)[-1]
    assert "委托他人办理" in text
    # and a wrong code does not confirm
    wrong = "000000" if world.sms.last_code(OWNER_PHONE) != "000000" else "111111"
    assert refusal(world.service.confirm_delegation, reg_id, ME, wrong).code == "sms.code_wrong"
    assert world.service.get(reg_id, ME, REG).step is Step.DELEGATION
    # when the owner's code is given
    view = world.service.confirm_delegation(reg_id, ME, world.sms.last_code(OWNER_PHONE))
    # then the delegation is confirmed by SMS and the trustee proves their own identity next
    assert view.step is Step.IDENTITY
    assert view.delegation is not None
    assert (view.delegation.confirmed, view.delegation.confirmed_by) == (True, "sms")
    checked = [e for e in world.evidence.entries(flow_id) if e.kind is EvidenceKind.SMS_CHECKED]
    assert checked[-1].public["purpose"] == "delegation_confirm"


def test_a_code_of_another_purpose_to_the_owners_phone_does_not_confirm(world: World) -> None:
    reg_id, _ = delegated(world)
    world.codes.send(OWNER_PHONE, SmsPurpose.OWNER_PHONE, caller=ME)
    err = refusal(world.service.confirm_delegation, reg_id, ME, world.sms.last_code(OWNER_PHONE))
    assert err.code == "sms.no_code"
    assert world.service.get(reg_id, ME, REG).step is Step.DELEGATION


def test_the_trustees_own_verified_phone_is_refused_as_the_owners(world: World) -> None:
    reg_id, flow_id = at_delegation(world)
    with_photos(world, flow_id, world.vins[0])
    err = refusal(world.service.delegate, reg_id, ME, owner_identity(), PHONE)
    assert (err.code, err.field, err.status) == ("delegation.owner_phone_is_trustees", "owner_phone", 422)
    reg = world.registrations.get(reg_id)
    assert reg is not None
    assert reg.delegation is None


def test_no_code_is_sent_before_the_delegation_names_the_owners_phone(world: World) -> None:
    reg_id, _ = at_delegation(world)
    err = refusal(world.service.send_delegation_code, reg_id, ME)
    assert (err.code, err.status) == ("delegation.not_given", 409)
    assert world.sms.sent[-1][0] == PHONE  # only the trustee's own phone code was ever sent


def test_a_delegation_the_owner_never_confirmed_cannot_be_submitted(world: World) -> None:
    # given a delegation recorded but never confirmed, and the trustee verified
    reg_id, flow_id = delegated(world)
    world.verify_person(flow_id)
    # when the trustee tries to consent and submit
    view = world.service.get(reg_id, ME, REG)
    # then the delegation is still the step due, and neither runs ahead of it
    assert view.step is Step.DELEGATION
    err = refusal(world.consent, reg_id)
    assert (err.code, err.status) == ("registration.step_out_of_order", 409)
    err = refusal(world.service.submit, reg_id, ME)
    assert (err.code, err.status) == ("registration.step_out_of_order", 409)
    assert world.cards(world.vins[0])[0].state.value == "unregistered"


def test_a_confirmed_delegation_is_submitted_with_the_owner_as_holder(world: World) -> None:
    reg_id, flow_id = confirmed(world)
    world.verify_person(flow_id)
    world.consent(reg_id)
    view = world.service.submit(reg_id, ME)
    assert view.step is Step.PENDING
    card = world.cards(world.vins[0])[0]
    assert card.holder_id is not None
    holder = world.parties.get(card.holder_id)
    assert holder is not None
    assert (holder.id_number, holder.name) == (OTHER_NUMBER, OWNER_NAME)


def test_the_owners_id_validity_is_read_from_its_back_kept_and_pushed(world: World) -> None:
    # given a confirmed delegation whose owner's ID back reads valid until 2031-05-01
    reg_id, flow_id = confirmed(world)
    world.verify_person(flow_id)
    world.consent(reg_id)
    # when it is submitted
    world.service.submit(reg_id, ME)
    # then the owner (the holder) is kept and pushed with that validity, not as 长期
    card = world.cards(world.vins[0])[0]
    holder = world.parties.get(card.holder_id or "")
    assert holder is not None
    assert (holder.id_valid_until, holder.id_permanent) == (date(2031, 5, 1), False)
    (pushed,) = world.outbox.records.values()
    assert pushed.message.holder is not None
    assert pushed.message.holder.id_valid_until == "2031-05-01"


def test_a_delegation_whose_owner_id_has_expired_is_refused_and_nothing_kept(world: World) -> None:
    reg_id, flow_id = at_delegation(world)
    with_photos(world, flow_id, world.vins[0])
    world.ocr.readings[OWNER_ID_BACK] = [
        TextLine(text=t, confidence=0.99)
        for t in ("签发机关上海市公安局浦东分局", "有效期限2006.05.01-2016.05.01")
    ]
    err = refusal(world.service.delegate, reg_id, ME, owner_identity(), OWNER_PHONE)
    assert (err.code, err.status, err.field) == ("id_card.expired", 422, "owner_id_back")
    assert world.service.get(reg_id, ME, REG).delegation is None


def test_a_delegation_without_the_back_of_the_owners_id_card_is_refused(world: World) -> None:
    reg_id, flow_id = at_delegation(world)
    world.upload(flow_id, "authorization_letter", LETTER)
    world.upload(flow_id, "owner_id_front", OWNER_ID)
    err = refusal(world.service.delegate, reg_id, ME, owner_identity(), OWNER_PHONE)
    assert (err.code, err.field) == ("delegation.owner_id_back_missing", "owner_id_back")


def test_changing_the_owner_after_the_confirmation_needs_a_new_one(world: World) -> None:
    # given a confirmed delegation
    reg_id, _ = confirmed(world)
    # when the same delegation is given again, nothing changes
    view = world.service.delegate(reg_id, ME, owner_identity(), OWNER_PHONE)
    assert view.delegation is not None
    assert view.delegation.confirmed is True
    # when it is given with another owner's phone
    view = world.service.delegate(reg_id, ME, owner_identity(), "13700002222")
    # then the owner must confirm again
    assert view.delegation is not None
    assert view.delegation.confirmed is False
    assert view.step is Step.DELEGATION


# --------------------------------------------------------------------------- the letter


@pytest.mark.parametrize(
    ("letter", "field", "code"),
    [
        ({"owner": "赵六"}, "authorization_letter.owner_name", "ocr.mismatch"),
        ({"owner_number": NUMBER}, "authorization_letter.owner_id_number", "ocr.mismatch"),
        ({"trustee": ""}, "authorization_letter.trustee_name", "ocr.unreadable"),
    ],
)
def test_a_letter_that_does_not_name_the_owner_or_a_trustee_is_refused(
    world: World, letter: dict[str, str], field: str, code: str
) -> None:
    reg_id, flow_id = at_delegation(world)
    with_photos(world, flow_id, world.vins[0], **letter)
    err = refusal(world.service.delegate, reg_id, ME, owner_identity(), OWNER_PHONE)
    assert (err.code, err.field, err.status) == (code, field, 422)
    reg = world.registrations.get(reg_id)
    assert reg is not None
    assert reg.delegation is None
    crossed = [e for e in world.evidence.entries(flow_id) if e.kind is EvidenceKind.OCR_CROSS_CHECKED]
    assert crossed[-1].public["document"] == "authorization_letter"
    assert crossed[-1].public["agreed"] is False


def test_a_letter_whose_trustee_is_not_a_name_is_refused(world: World) -> None:
    reg_id, flow_id = at_delegation(world)
    with_photos(world, flow_id, world.vins[0], trustee="<b>王小明</b>")
    err = refusal(world.service.delegate, reg_id, ME, owner_identity(), OWNER_PHONE)
    assert (err.code, err.field) == ("name.markup", "authorization_letter.trustee_name")
    reg = world.registrations.get(reg_id)
    assert reg is not None
    assert reg.delegation is None


def test_a_letter_for_another_car_is_refused(world: World) -> None:
    reg_id, flow_id = at_delegation(world)
    with_photos(world, flow_id, world.vins[1])
    err = refusal(world.service.delegate, reg_id, ME, owner_identity(), OWNER_PHONE)
    assert (err.code, err.field) == ("ocr.mismatch", "authorization_letter.vin")
    reg = world.registrations.get(reg_id)
    assert reg is not None
    assert reg.delegation is None


def test_a_letter_authorizing_someone_else_sends_the_trustee_back_to_the_delegation(world: World) -> None:
    # given a confirmed delegation whose letter names another trustee
    reg_id, flow_id = at_delegation(world)
    with_photos(world, flow_id, world.vins[0], trustee="赵六")
    world.service.delegate(reg_id, ME, owner_identity(), OWNER_PHONE)
    world.service.send_delegation_code(reg_id, ME)
    view = world.service.confirm_delegation(reg_id, ME, world.sms.last_code(OWNER_PHONE))
    assert view.step is Step.IDENTITY
    # when the trustee's own identity is typed (王小明)
    world.verification.set_identity(
        flow_id, ME, TypedIdentity(id_type="resident_id", id_number=NUMBER, name=NAME)
    )
    # then the delegation is due again: the letter does not authorize this person
    view = world.service.get(reg_id, ME, REG)
    assert view.step is Step.DELEGATION
    assert view.delegation is not None
    assert view.delegation.trustee_named is False


def test_a_delegation_whose_owner_id_card_is_someone_elses_is_refused(world: World) -> None:
    reg_id, flow_id = at_delegation(world)
    with_photos(world, flow_id, world.vins[0])
    world.ocr.readings[OWNER_ID] = [TextLine(text=t, confidence=0.99) for t in id_front_lines(NUMBER, "李四")]
    err = refusal(world.service.delegate, reg_id, ME, owner_identity(), OWNER_PHONE)
    assert (err.code, err.field) == ("ocr.mismatch", "owner.id_number")
    assert world.service.get(reg_id, ME, REG).step is Step.DELEGATION


def test_a_delegation_is_locked_once_the_face_was_checked(world: World) -> None:
    reg_id, flow_id = confirmed(world)
    world.verify_person(flow_id)
    err = refusal(world.service.delegate, reg_id, ME, owner_identity("王五"), OWNER_PHONE)
    assert (err.code, err.status) == ("delegation.locked", 409)


def test_the_delegation_keeps_how_the_owner_confirmed(world: World) -> None:
    reg_id, _ = confirmed(world)
    reg = world.registrations.get(reg_id)
    assert reg is not None
    assert reg.delegation is not None
    assert reg.delegation.confirmed_by is DelegationConfirmation.SMS
    assert reg.delegation.trustee_name == NAME
    assert reg.delegation.owner_phone == OWNER_PHONE


# --------------------------------------------------------------------------- the owner's own face


def face_passed(world: World, flow_id: str, *, consented: bool = True) -> None:
    """The flow's face check passed (the verification context's own stories prove how), after the
    biometric consent given in it unless ``consented`` is False."""
    flow = world.flows.get(flow_id)
    assert flow is not None
    checks = {**flow.checks, CheckName.FACE: CheckVerdict.PASSED}
    if consented:
        checks[CheckName.BIOMETRIC_CONSENT] = CheckVerdict.PASSED
    world.flows.save(
        flow.model_copy(update={"status": FlowStatus.VERIFIED, "checks": checks, "version": flow.version + 1})
    )


def test_the_owner_confirms_with_their_own_face_check_in_a_flow_of_their_identity(world: World) -> None:
    # given a delegation recorded
    reg_id, flow_id = delegated(world)
    # when the owner's own check is opened
    view = world.service.open_owner_check(reg_id, ME)
    assert view.delegation is not None
    owner_flow_id = view.delegation.owner_flow_id
    assert owner_flow_id is not None
    # then it is a flow of the owner's identity, and asking again gives the same one
    owner_flow = world.flows.get(owner_flow_id)
    assert owner_flow is not None
    assert owner_flow.purpose is FlowPurpose.DELEGATION_OWNER
    assert owner_flow.identity is not None
    assert (owner_flow.identity.id_number, owner_flow.identity.name) == (OTHER_NUMBER, OWNER_NAME)
    again = world.service.open_owner_check(reg_id, ME)
    assert again.delegation is not None
    assert again.delegation.owner_flow_id == owner_flow_id
    # and before the owner's face passed, it does not confirm
    err = refusal(world.service.confirm_delegation_by_face, reg_id, ME)
    assert (err.code, err.status) == ("delegation.owner_face_missing", 409)
    # when the owner's face check passes
    face_passed(world, owner_flow_id)
    view = world.service.confirm_delegation_by_face(reg_id, ME)
    # then the delegation is confirmed by face and the trustee goes on
    assert view.step is Step.IDENTITY
    assert view.delegation is not None
    assert (view.delegation.confirmed, view.delegation.confirmed_by) == (True, "face")
    confirmed_entries = [
        e for e in world.evidence.entries(flow_id) if e.kind is EvidenceKind.DELEGATION_CONFIRMED
    ]
    assert confirmed_entries[-1].public == {"by": "face", "owner_flow_id": owner_flow_id}


def test_an_owners_face_check_without_their_biometric_consent_does_not_confirm_the_delegation(
    world: World,
) -> None:
    # given the owner's check opened, and a face verdict in it with no biometric consent given there
    reg_id, _ = delegated(world)
    view = world.service.open_owner_check(reg_id, ME)
    assert view.delegation is not None
    owner_flow_id = view.delegation.owner_flow_id
    assert owner_flow_id is not None
    face_passed(world, owner_flow_id, consented=False)
    # when it is offered as the owner's agreement
    err = refusal(world.service.confirm_delegation_by_face, reg_id, ME)
    # then it is refused as face processing without the consent, and the delegation stays unconfirmed
    assert (err.code, err.status) == ("consent.biometric_required", 409)
    shown = world.service.get(reg_id, ME, REG)
    assert shown.delegation is not None
    assert shown.delegation.confirmed is False


def test_a_face_check_of_someone_else_does_not_confirm_the_delegation(world: World) -> None:
    # given the owner's check opened, and its identity changed to the trustee's own before the face
    reg_id, _ = delegated(world)
    view = world.service.open_owner_check(reg_id, ME)
    assert view.delegation is not None
    owner_flow_id = view.delegation.owner_flow_id
    assert owner_flow_id is not None
    trustee = TypedIdentity(id_type="resident_id", id_number=NUMBER, name=NAME)
    world.verification.set_identity(owner_flow_id, ME, trustee)
    face_passed(world, owner_flow_id)
    # when that face check is offered as the owner's
    err = refusal(world.service.confirm_delegation_by_face, reg_id, ME)
    # then it is refused and the delegation stays unconfirmed
    assert (err.code, err.field, err.status) == ("delegation.owner_face_other_person", "owner.id_number", 422)
    assert world.service.get(reg_id, ME, REG).step is Step.DELEGATION


def test_a_face_confirmed_delegation_keeps_the_owners_check_as_evidence_when_submitted(world: World) -> None:
    reg_id, flow_id = delegated(world)
    view = world.service.open_owner_check(reg_id, ME)
    assert view.delegation is not None
    owner_flow_id = view.delegation.owner_flow_id
    assert owner_flow_id is not None
    face_passed(world, owner_flow_id)
    world.service.confirm_delegation_by_face(reg_id, ME)
    world.verify_person(flow_id)
    world.consent(reg_id)
    assert world.service.submit(reg_id, ME).step is Step.PENDING
    owner_flow = world.flows.get(owner_flow_id)
    assert owner_flow is not None
    assert owner_flow.expires_at > world.clock() + timedelta(days=365)


# --------------------------------------------------------------------------- the owner's phone (运营商三要素)

#: A phone the carrier holds in someone else's name.
STRANGERS_PHONE = "13655556666"


def owner_citizen(phone: str | None = OWNER_PHONE) -> FakeCitizen:
    """The delegated owner as the authority knows them, with the phone the carrier has in their name."""
    return FakeCitizen(name=OWNER_NAME, id_number=OTHER_NUMBER, phone=phone)


def phone_entries(world: World, flow_id: str) -> list[dict[str, object]]:
    return [
        e.public
        for e in world.evidence.entries(flow_id)
        if e.kind is EvidenceKind.AUTHORITY_CHECKED and e.public.get("check") == "phone_holder"
    ]


def giving_the_owner(world: World) -> tuple[str, str]:
    """At the delegation step with the letter and the owner's ID card read; the owner not given yet."""
    reg_id, flow_id = at_delegation(world)
    with_photos(world, flow_id, world.vins[0])
    return reg_id, flow_id


def test_an_owners_phone_the_carrier_holds_in_someone_elses_name_is_refused_and_nothing_is_kept() -> None:
    # given an authority whose carrier records hold the owner's phone, and another phone in another name
    world = World(authority=FakeAuthority(owner_citizen()))
    reg_id, flow_id = giving_the_owner(world)
    # when the trustee gives the owner with a phone that is not the owner's
    err = refusal(world.service.delegate, reg_id, ME, owner_identity(), STRANGERS_PHONE)
    # then it is refused on the owner's phone, nothing of the delegation is kept and no code can be sent
    assert (err.code, err.field, err.status) == ("delegation.phone_not_owners", "owner_phone", 422)
    assert err.message_zh
    assert err.message_en
    reg = world.registrations.get(reg_id)
    assert reg is not None
    assert reg.delegation is None
    assert refusal(world.service.send_delegation_code, reg_id, ME).code == "delegation.not_given"
    assert world.sms.texts_to(STRANGERS_PHONE) == []
    # and the check is in the evidence, without the phone, the name or the number
    [entry] = phone_entries(world, flow_id)
    assert (entry["result"], entry["subject"], entry["provider"]) == ("no_match", "owner", "fake-authority")
    assert all(secret not in str(entry) for secret in (STRANGERS_PHONE, OWNER_NAME, OTHER_NUMBER))


def test_an_owner_without_a_phone_on_record_is_refused_on_the_owners_phone() -> None:
    world = World(authority=FakeAuthority(owner_citizen(phone=None)))
    reg_id, flow_id = giving_the_owner(world)
    err = refusal(world.service.delegate, reg_id, ME, owner_identity(), OWNER_PHONE)
    assert (err.code, err.field) == ("delegation.phone_not_owners", "owner_phone")
    assert phone_entries(world, flow_id)[-1]["result"] == "not_found"


def test_the_owners_own_phone_passes_the_check_and_the_code_is_sent_to_it() -> None:
    # given the carrier holds the owner's phone in the owner's name
    world = World(authority=FakeAuthority(owner_citizen()))
    reg_id, flow_id = giving_the_owner(world)
    # when the owner is given with that phone and a code is asked for
    world.service.delegate(reg_id, ME, owner_identity(), OWNER_PHONE)
    world.service.send_delegation_code(reg_id, ME)
    # then the check passed and the code went to the owner's phone
    flow = world.flows.get(flow_id)
    assert flow is not None
    assert flow.checks[CheckName.AUTHORITY_OWNER_PHONE] is CheckVerdict.PASSED
    assert phone_entries(world, flow_id)[-1]["result"] == "match"
    assert world.sms.last_code(OWNER_PHONE)


def test_the_authority_down_with_retry_is_503_nothing_is_kept_and_no_code_is_sent() -> None:
    # given the owner's phone is theirs, and the authority goes down after the owner's identity passed
    authority = FakeAuthority(owner_citizen())
    authority.down_for = {"verify_phone_holder"}
    world = World(authority=authority, authority_unavailable="retry")
    reg_id, flow_id = giving_the_owner(world)
    # when the owner is given
    err = refusal(world.service.delegate, reg_id, ME, owner_identity(), OWNER_PHONE)
    # then it is 503 (ask again), nothing is kept and no code can be sent
    assert (err.code, err.status) == ("authority.unavailable", 503)
    assert "delegation" in err.details["retry"]
    assert authority.calls.count("verify_identity") == 1
    reg = world.registrations.get(reg_id)
    assert reg is not None
    assert reg.delegation is None
    assert refusal(world.service.send_delegation_code, reg_id, ME).code == "delegation.not_given"
    assert world.sms.texts_to(OWNER_PHONE) == []
    flow = world.flows.get(flow_id)
    assert flow is not None
    assert CheckName.AUTHORITY_OWNER_PHONE not in flow.checks
    assert phone_entries(world, flow_id)[-1]["result"] == "unavailable"


def test_the_authority_down_with_review_lets_the_owner_confirm_but_marks_the_phone_for_a_reviewer() -> None:
    # given the stage sends outages to review, and the authority is down
    authority = FakeAuthority(owner_citizen())
    authority.down = True
    world = World(authority=authority, authority_unavailable="review")
    reg_id, flow_id = giving_the_owner(world)
    # when the owner is given and confirms by SMS
    world.service.delegate(reg_id, ME, owner_identity(), OWNER_PHONE)
    world.service.send_delegation_code(reg_id, ME)
    world.service.confirm_delegation(reg_id, ME, world.sms.last_code(OWNER_PHONE))
    # then the confirmation went on, and the unchecked phone waits for a reviewer in the flow's checks
    flow = world.flows.get(flow_id)
    assert flow is not None
    assert flow.checks[CheckName.AUTHORITY_OWNER_PHONE] is CheckVerdict.IN_REVIEW
    entry = phone_entries(world, flow_id)[-1]
    assert (entry["result"], entry["policy"]) == ("unavailable", "review")


def test_a_provider_without_the_phone_check_skips_it_and_records_it_as_not_offered() -> None:
    world = World(authority=FakeAuthorityWithoutPhoneCheck(owner_citizen(phone=None)))
    reg_id, flow_id = giving_the_owner(world)
    world.service.delegate(reg_id, ME, owner_identity(), OWNER_PHONE)
    world.service.send_delegation_code(reg_id, ME)
    assert world.sms.last_code(OWNER_PHONE)
    flow = world.flows.get(flow_id)
    assert flow is not None
    assert CheckName.AUTHORITY_OWNER_PHONE not in flow.checks
    [entry] = phone_entries(world, flow_id)
    assert (entry["result"], entry["provider"]) == ("not_offered", "fake-authority")
