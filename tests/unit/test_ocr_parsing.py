"""Parsing OCR text lines into ID cards and business licences, and the cross-check with typed values."""

from __future__ import annotations

from datetime import date

import pytest

from chalicelib.verification.domain.ocr import (
    MISMATCH,
    UNREADABLE,
    TypedDetails,
    cross_check,
    parse_business_licence,
    parse_id_back,
    parse_id_front,
)
from chalicelib.verification.domain.readings import BusinessLicence, IdFront, TextLine

NUMBER = "110101199003076632"


def line(text: str, confidence: float = 0.99, *, x: float | None = None, y: float | None = None) -> TextLine:
    if x is None or y is None:
        return TextLine(text=text, confidence=confidence)
    box = ((x, y), (x + 20 * len(text), y), (x + 20 * len(text), y + 30), (x, y + 30))
    return TextLine(text=text, confidence=confidence, box=box)


def test_id_front_with_labels_and_values_in_separate_lines() -> None:
    # Given an engine that returns every label and value as its own line
    lines = [
        line("姓名"),
        line("王小明", 0.97),
        line("性别"),
        line("男"),
        line("民族"),
        line("汉"),
        line("出生"),
        line("1990年3月7日"),
        line("住址"),
        line("北京市东城区景山前街4号"),
        line("院2号楼301室", 0.91),
        line("公民身份号码"),
        line(NUMBER),
    ]
    # When the front is parsed
    front = parse_id_front(lines)
    # Then every field is read, and the address joins its two lines with the lower confidence
    assert front.name == "王小明"
    assert front.sex == "男"
    assert front.ethnicity == "汉"
    assert front.birth_date == date(1990, 3, 7)
    assert front.address == "北京市东城区景山前街4号院2号楼301室"
    assert front.id_number == NUMBER
    assert front.confidences["name"] == pytest.approx(0.97)
    assert front.confidences["address"] == pytest.approx(0.91)


def test_id_front_with_merged_labels_spaces_and_full_width_digits() -> None:
    # Given lines that merge labels with values (and two fields into one), with spaces and a colon
    lines = [
        line("姓 名：王小明"),
        line("性别男 民族汉"),
        line("出生 1990 年 3 月 7 日"),
        line("住址北京市东城区景山前街4号院2号楼301室"),
        line("公民身份号码 １１０１０１１９９００３０７６６３２"),
    ]
    front = parse_id_front(lines)
    assert (front.name, front.sex, front.ethnicity) == ("王小明", "男", "汉")
    assert front.birth_date == date(1990, 3, 7)
    assert front.address == "北京市东城区景山前街4号院2号楼301室"
    assert front.id_number == NUMBER


def test_id_front_puts_boxed_lines_in_reading_order_and_joins_a_split_label() -> None:
    # Given boxes returned out of order, with 姓 and 名 read as two boxes on the name's row
    lines = [
        line(NUMBER, x=260, y=440),
        line("名", x=90, y=52),
        line("公民身份号码", x=50, y=445),
        line("王小明", x=150, y=48),
        line("姓", x=50, y=50),
    ]
    front = parse_id_front(lines)
    assert front.name == "王小明"
    assert front.id_number == NUMBER


def test_id_front_fixes_letters_read_for_digits_in_the_number() -> None:
    front = parse_id_front([line("公民身份号码"), line("11O1O1199003076632")])
    assert front.id_number == NUMBER


def test_id_front_without_labels_still_finds_the_number_and_leaves_the_rest_empty() -> None:
    front = parse_id_front([line("某某"), line(f"号{NUMBER}")])
    assert front.id_number == NUMBER
    assert front.name is None
    assert front.birth_date is None
    assert "name" not in front.confidences


def test_id_back_with_an_end_date() -> None:
    back = parse_id_back(
        [
            line("中华人民共和国"),
            line("居民身份证"),
            line("签发机关"),
            line("北京市公安局东城分局"),
            line("有效期限"),
            line("2015.06.01-2035.06.01"),
        ]
    )
    assert back.authority == "北京市公安局东城分局"
    assert (back.valid_from, back.valid_until, back.permanent) == (date(2015, 6, 1), date(2035, 6, 1), False)


def test_id_back_valid_for_life_is_permanent() -> None:
    # Given 长期 and a label merged with its value, the dash read as 一
    back = parse_id_back([line("签发机关北京市公安局东城分局"), line("有效期限2015.06.01一长期", 0.88)])
    assert back.authority == "北京市公安局东城分局"
    assert back.valid_from == date(2015, 6, 1)
    assert back.valid_until is None
    assert back.permanent is True
    assert back.confidences["permanent"] == pytest.approx(0.88)


def test_business_licence_fields_end_at_the_next_label() -> None:
    lines = [
        line("营业执照"),
        line("统一社会信用代码"),
        line("91110000802100433B"),
        line("名称北京星河车联科技有限公司"),
        line("类型"),
        line("有限责任公司（自然人投资或控股）"),
        line("法定代表人"),
        line("李建国"),
        line("注册资本"),
        line("人民币壹仟万元整"),
        line("住所"),
        line("北京市海淀区中关村大街27号8层801"),
        line("经营范围"),
        line("技术开发"),
    ]
    licence = parse_business_licence(lines)
    assert licence.uscc == "91110000802100433B"
    assert licence.name == "北京星河车联科技有限公司"
    assert licence.type == "有限责任公司(自然人投资或控股)"
    assert licence.legal_representative == "李建国"
    assert licence.address == "北京市海淀区中关村大街27号8层801"


def test_business_licence_with_a_responsible_person_and_business_premises() -> None:
    licence = parse_business_licence(
        [line("统一社会信用代码91110000802100433B"), line("负责人李建国"), line("经营场所北京市海淀区")]
    )
    assert licence.legal_representative == "李建国"
    assert licence.address == "北京市海淀区"


def test_cross_check_agrees_after_normalisation() -> None:
    # Given typed values with spaces, lower-case x and full-width characters
    front = IdFront(name="阿依古丽·买买提", id_number="11010519491231002X")
    typed = TypedDetails(name="阿依古丽・买买提", id_number="110105 19491231 002x")
    assert cross_check(front, typed) == []


def test_cross_check_explains_a_different_id_number_without_the_values() -> None:
    front = IdFront(name="王小明", id_number=NUMBER)
    typed = TypedDetails(name="王小明", id_number="110101199003076640")
    [mismatch] = cross_check(front, typed)
    assert mismatch.field == "id_number"
    assert mismatch.code == MISMATCH
    assert mismatch.details == {"positions": [17, 18]}
    assert "公民身份号码" in mismatch.message_zh
    assert "ID number" in mismatch.message_en
    for message in (mismatch.message_zh, mismatch.message_en):
        assert NUMBER not in message
        assert "110101199003076640" not in message
    error = mismatch.to_error()
    assert (error.code, error.field, error.status) == (MISMATCH, "id_number", 422)


def test_cross_check_reports_each_field_and_unread_ones() -> None:
    front = IdFront(name="王小明", id_number=None)
    [name, number] = cross_check(front, TypedDetails(name="王晓明", id_number=NUMBER))
    assert (name.field, name.code) == ("name", MISMATCH)
    assert "王" not in name.message_zh
    assert (number.field, number.code) == ("id_number", UNREADABLE)


def test_cross_check_of_a_licence_compares_code_and_company_name() -> None:
    licence = BusinessLicence(uscc="91110000802100433B", name="北京星河车联科技有限公司")
    assert (
        cross_check(licence, TypedDetails(uscc="91110000802100433b", company_name="北京星河车联科技有限公司"))
        == []
    )
    mismatches = cross_check(
        licence, TypedDetails(uscc="91110000MA01234567", company_name="北京星河车联科技（集团）有限公司")
    )
    assert [m.field for m in mismatches] == ["uscc", "company_name"]
    assert all(m.code == MISMATCH for m in mismatches)


def test_cross_check_ignores_fields_not_typed() -> None:
    assert cross_check(IdFront(), TypedDetails()) == []
