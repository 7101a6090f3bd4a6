"""Reading the VIN off a 行驶证 or a purchase invoice (机动车销售统一发票) from OCR lines."""

from __future__ import annotations

import random

from chalicelib.local.synthetic import make_vin
from chalicelib.verification.domain.ocr import parse_vehicle_document
from chalicelib.verification.domain.readings import TextLine

VIN = make_vin(random.Random(3))


def lines(*texts: str) -> list[TextLine]:
    return [TextLine(text=t, confidence=0.97) for t in texts]


def wrong_check_digit(vin: str) -> str:
    return vin[:8] + ("1" if vin[8] != "1" else "2") + vin[9:]


def test_the_vin_after_its_label_on_a_vehicle_licence_is_read_with_the_plate() -> None:
    doc = parse_vehicle_document(
        lines("中华人民共和国机动车行驶证", "号牌号码 京A D1234", "车辆识别代号", VIN, "发动机号码 E12345678")
    )
    assert (doc.vin, doc.plate) == (VIN, "京AD1234")
    assert doc.confidences["vin"] == 0.97


def test_an_invoice_names_it_the_frame_number() -> None:
    doc = parse_vehicle_document(lines("机动车销售统一发票", "车辆类型 轿车", "车架号码 " + VIN, "价税合计"))
    assert doc.vin == VIN


def test_letters_a_vin_never_holds_are_read_as_the_digits_they_resemble() -> None:
    read = VIN.replace("0", "O").replace("1", "I")
    assert read != VIN
    assert parse_vehicle_document(lines("车辆识别代号" + read)).vin == VIN


def test_a_run_of_17_characters_whose_check_digit_fails_is_not_a_vin() -> None:
    doc = parse_vehicle_document(lines("车辆识别代号" + wrong_check_digit(VIN), "发动机号码E12345678"))
    assert doc.vin is None


def test_the_labelled_vin_wins_over_another_one_printed_before_it() -> None:
    other = make_vin(random.Random(4))
    doc = parse_vehicle_document(lines("备注 " + other, "车辆识别代号 " + VIN))
    assert doc.vin == VIN


def test_without_a_label_any_valid_vin_is_taken() -> None:
    assert parse_vehicle_document(lines("某某文件", VIN)).vin == VIN
