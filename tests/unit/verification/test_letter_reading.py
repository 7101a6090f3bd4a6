"""Reading an authorization letter (授权委托书) from OCR lines, and checking it against the delegation:
the owner, a trustee and the car's VIN must be on it."""

from __future__ import annotations

import random

from chalicelib.local.synthetic import make_vin
from chalicelib.verification.domain.ocr import check_letter, parse_authorization_letter
from chalicelib.verification.domain.readings import TextLine

VIN = "LBV8PX404GECXXS9E"
OWNER_NUMBER = "110105198712102611"
TRUSTEE_NUMBER = "110101199003076632"
SENTENCE = (
    "本人因故不能亲自办理，现委托上述受托人代为办理",
    "该车辆车联网卡的实名登记手续。受托人在办理过程",
    "中提交的资料和签署的文件，本人均予以承认。",
)


def lines(*texts: str) -> list[TextLine]:
    return [TextLine(text=t, confidence=0.98) for t in texts]


def drawn_letter(trustee_row: str = "受托人：王小明", vin: str = VIN) -> list[TextLine]:
    """The lines the local OCR engine reads on ``local.documents.authorization_letter``."""
    return lines(
        "授权委托书",
        "委托人：李四",
        f"身份证号码：{OWNER_NUMBER}",
        trustee_row,
        f"身份证号码：{TRUSTEE_NUMBER}",
        f"车辆识别代号（VIN）：{vin}",
        *SENTENCE,
        "委托人（签字）：李四",
        "日期：2026年1月5日",
    )


def test_the_drawn_letter_is_read_field_by_field() -> None:
    letter = parse_authorization_letter(drawn_letter())
    assert (letter.owner_name, letter.owner_id_number) == ("李四", OWNER_NUMBER)
    assert (letter.trustee_name, letter.trustee_id_number) == ("王小明", TRUSTEE_NUMBER)
    assert letter.vin == VIN
    assert letter.signed_on is not None
    assert letter.signed_on.isoformat() == "2026-01-05"
    assert set(letter.confidences) >= {"owner_name", "trustee_name", "vin"}
    assert check_letter(letter, owner_name="李四", vin=VIN, owner_id_number=OWNER_NUMBER) == []


def test_split_labels_and_look_alike_letters_in_the_vin_are_read_too() -> None:
    # an engine that splits a label from its value, and reads the VIN's 0 as O
    letter = parse_authorization_letter(
        lines(
            "授权委托书", "委托人:", "李四", "受托人:", "王小明", "车架号:", VIN.replace("0", "O"), *SENTENCE
        )
    )
    assert (letter.owner_name, letter.trustee_name, letter.vin) == ("李四", "王小明", VIN)


def test_a_letter_without_a_trustee_row_names_no_trustee() -> None:
    # the sentence speaks of 受托人, but no one is named as such
    letter = parse_authorization_letter(drawn_letter(trustee_row="以下空白"))
    assert letter.trustee_name is None
    problems = check_letter(letter, owner_name="李四", vin=VIN)
    assert [(p.field, p.code) for p in problems] == [("authorization_letter.trustee_name", "ocr.unreadable")]


def test_a_letter_for_another_car_or_another_owner_is_not_this_delegations() -> None:
    letter = parse_authorization_letter(drawn_letter())
    other_vin = make_vin(random.Random(1))
    problems = check_letter(letter, owner_name="赵六", vin=other_vin)
    assert [(p.field, p.code) for p in problems] == [
        ("authorization_letter.owner_name", "ocr.mismatch"),
        ("authorization_letter.vin", "ocr.mismatch"),
    ]
    # the messages say which part differs, never the values
    for problem in problems:
        assert "李四" not in problem.message_zh + problem.message_en
        assert VIN not in problem.message_zh + problem.message_en


def test_the_trustee_when_known_must_be_the_one_named() -> None:
    letter = parse_authorization_letter(drawn_letter())
    assert check_letter(letter, owner_name="李四", vin=VIN, trustee_name="王小明") == []
    problems = check_letter(letter, owner_name="李四", vin=VIN, trustee_name="赵六")
    assert [p.field for p in problems] == ["authorization_letter.trustee_name"]


def test_an_unreadable_page_names_nobody() -> None:
    letter = parse_authorization_letter(lines("授权委托书", *SENTENCE))
    problems = check_letter(letter, owner_name="李四", vin=VIN)
    assert {p.code for p in problems} == {"ocr.unreadable"}
    assert [p.field for p in problems] == [
        "authorization_letter.owner_name",
        "authorization_letter.trustee_name",
        "authorization_letter.vin",
    ]
