"""Names and addresses are real text: normalised once, refused with a field error when they are not,
in every identity model that takes them (the flow's typed identity, the delegation's owner)."""

from __future__ import annotations

import pytest

from chalicelib.kernel.errors import InvalidField
from chalicelib.kernel.names import TextKind, clean_optional, clean_text, under
from chalicelib.registration.domain.registrations import Delegation
from chalicelib.verification.domain.flows import TypedIdentity
from tests.unit.stories import refusal

NUMBER = "110101199003076632"


def identity(**fields: str | None) -> TypedIdentity:
    given: dict[str, str | None] = {"id_type": "resident_id", "id_number": NUMBER, "name": "张三"}
    return TypedIdentity.model_validate({**given, **fields})


# --------------------------------------------------------------------------- refused


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("   ", "name.empty"),
        ("\u3000\u3000", "name.empty"),  # ideographic spaces
        ("", "name.empty"),
        ("\u200b\u200b", "name.invisible"),  # zero-width spaces only
        ("张\u200b三", "name.invisible"),
        ("张\u200d三", "name.invisible"),  # zero-width joiner
        ("\ufeff张三", "name.invisible"),  # byte order mark
        ("张\u2060三", "name.invisible"),  # word joiner
        ("张\u00ad三", "name.invisible"),  # soft hyphen
        ("张\ue000三", "name.invisible"),  # private use
        ("\u202e三张", "name.bidi"),  # right-to-left override
        ("张\u2066三\u2069", "name.bidi"),  # isolates
        ("张\u200f三", "name.bidi"),  # right-to-left mark
        ("张\x00三", "name.control"),
        ("张\x1b三", "name.control"),
        ("张\u2028三", "name.control"),  # line separator
        ("<b>张三</b>", "name.markup"),
        ("张三&amp;", "name.markup"),
        ("＜张三＞", "name.markup"),  # full-width brackets fold to markup
        ('张"三', "name.markup"),
        ("张三1", "name.charset"),
        ("张三@", "name.charset"),
        ("·", "name.charset"),
        ("·张三", "name.charset"),
        ("阿卜杜拉··买买提", "name.charset"),
        ("王" * 65, "name.too_long"),
    ],
)
def test_a_name_that_is_not_real_text_is_refused_with_a_field_error(name: str, code: str) -> None:
    # when a name of spaces, invisible, bidi, control or markup characters is typed
    err = refusal(identity, name=name)
    # then it is refused on the name field, with Chinese and English messages that do not echo it
    assert isinstance(err, InvalidField)
    assert (err.code, err.field, err.status) == (code, "name", 422)
    assert err.message_zh
    assert err.message_en
    assert len(name.strip()) < 2 or name not in err.message_zh + err.message_en


@pytest.mark.parametrize(
    ("address", "code"),
    [
        ("北京市\u200b东城区", "address.invisible"),
        ("北京市\u202e东城区", "address.bidi"),
        ("<script>北京市</script>", "address.markup"),
        ("北京市\x07东城区", "address.control"),
        ("北" * 129, "address.too_long"),
    ],
)
def test_an_address_that_is_not_real_text_is_refused(address: str, code: str) -> None:
    err = refusal(identity, address=address)
    assert (err.code, err.field) == (code, "address")


def test_a_company_name_that_is_not_real_text_is_refused() -> None:
    err = refusal(identity, company_name="星河\u200b科技有限公司")
    assert (err.code, err.field) == ("company_name.invisible", "company_name")


# --------------------------------------------------------------------------- normalised


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("  张三 ", "张三"),
        ("张 三", "张三"),
        ("\u3000张三\u3000", "张三"),
        ("张\t三\n", "张三"),
        ("ＪＯＨＮ　ＳＭＩＴＨ", "JOHN SMITH"),  # full-width letters and space → NFKC
        ("John   Smith", "John Smith"),
        ("  O'Brien-Smith  ", "O'Brien-Smith"),
        ("阿卜杜拉·买买提", "阿卜杜拉·买买提"),  # minority names keep their middle dot
        ("阿卜杜拉 • 买买提", "阿卜杜拉·买买提"),
        ("阿卜杜拉・买买提", "阿卜杜拉·买买提"),
        ("阿卜杜拉.买买提", "阿卜杜拉·买买提"),
        ("José Müller", "José Müller"),
    ],
)
def test_a_name_is_normalised_once(typed: str, stored: str) -> None:
    assert identity(name=typed).name == stored


def test_normalising_twice_changes_nothing() -> None:
    once = identity(name="  阿卜杜拉 • 买买提 ", address=" 北京市  东城区 ")
    assert identity(name=once.name, address=once.address) == once


def test_an_address_of_spaces_is_no_address() -> None:
    # an optional field left blank is not stored as ""
    assert identity(address="   ").address is None
    assert identity(address=" 北京市　东城区 ").address == "北京市 东城区"


def test_a_company_identity_keeps_the_characters_of_a_company_name() -> None:
    company = TypedIdentity(id_type="uscc", id_number="91110000802100433B", name="星河（北京）科技有限公司")
    assert company.name == "星河(北京)科技有限公司"


# --------------------------------------------------------------------------- the delegation's owner


def test_the_delegations_owner_name_is_real_text_too() -> None:
    def delegation(name: str) -> Delegation:
        return Delegation(owner_id_type="resident_id", owner_id_number=NUMBER, owner_name=name)

    assert delegation(" 李 四 ").owner_name == "李四"
    err = refusal(delegation, "\u200b")
    assert (err.code, err.field) == ("name.invisible", "owner.name")


def test_an_error_moves_under_its_parent_field() -> None:
    err = refusal(identity, name="   ")
    assert isinstance(err, InvalidField)
    moved = under(err, "owner")
    assert (moved.code, moved.field, moved.message_en) == ("name.empty", "owner.name", err.message_en)


def test_clean_optional_and_clean_text_agree_on_given_text() -> None:
    assert clean_optional(TextKind.ADDRESS, None, field="address") is None
    assert clean_optional(TextKind.ADDRESS, " 上海市 ", field="address") == clean_text(
        TextKind.ADDRESS, "上海市", field="address"
    )
