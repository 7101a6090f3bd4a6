"""The local OCR engine (rapidocr-onnxruntime) on synthetic ID cards and a business licence."""

from __future__ import annotations

import importlib.util
from datetime import date
from pathlib import Path

import pytest

from chalicelib.kernel.errors import InvalidField
from chalicelib.verification.domain.ocr import (
    MISMATCH,
    TypedDetails,
    cross_check,
    parse_business_licence,
    parse_id_back,
    parse_id_front,
)
from chalicelib.verification.ports import OcrEngine
from tests import synthetic_documents as docs
from tests.face_photos import FACES

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("rapidocr_onnxruntime") is None, reason="rapidocr-onnxruntime not installed"
)


@pytest.fixture(scope="module")
def engine() -> OcrEngine:
    docs.require_cjk_font()
    from chalicelib.adapters.ocr.rapidocr import RapidOcrEngine

    return RapidOcrEngine()


def _portrait() -> Path | None:
    photo = FACES / "obama_1.jpg"
    return photo if photo.is_file() else None


def test_front_reads_every_field(engine: OcrEngine) -> None:
    # Given a synthetic ID card front with a portrait, photographed as a JPEG
    image = docs.id_front(portrait=_portrait(), fmt="JPEG")
    # When it is read and parsed
    front = parse_id_front(engine.read(image))
    # Then the name and number are exact, and so are the other fields
    assert front.name == docs.PERSON_NAME
    assert front.id_number == docs.PERSON_ID_NUMBER
    assert (front.sex, front.ethnicity) == ("男", "汉")
    assert front.birth_date == docs.PERSON_BIRTH_DATE
    assert front.address == docs.PERSON_ADDRESS
    assert min(front.confidences.values()) > 0.8


def test_front_photographed_large_is_downscaled_and_still_read(engine: OcrEngine) -> None:
    front = parse_id_front(engine.read(docs.id_front(scale=3.5, fmt="JPEG")))
    assert front.name == docs.PERSON_NAME
    assert front.id_number == docs.PERSON_ID_NUMBER


def test_back_reads_authority_and_validity(engine: OcrEngine) -> None:
    back = parse_id_back(engine.read(docs.id_back(valid_from=date(2015, 6, 1), valid_until=date(2035, 6, 1))))
    assert back.authority == "北京市公安局东城分局"
    assert (back.valid_from, back.valid_until, back.permanent) == (date(2015, 6, 1), date(2035, 6, 1), False)


def test_back_valid_for_life(engine: OcrEngine) -> None:
    back = parse_id_back(engine.read(docs.id_back(authority="上海市公安局浦东分局", valid_until=None)))
    assert back.authority == "上海市公安局浦东分局"
    assert back.valid_from == date(2015, 6, 1)
    assert back.permanent is True
    assert back.valid_until is None


def test_licence_reads_code_and_name(engine: OcrEngine) -> None:
    licence = parse_business_licence(engine.read(docs.business_licence()))
    assert licence.uscc == docs.COMPANY["uscc"]
    assert licence.name == docs.COMPANY["name"]
    assert licence.legal_representative == docs.COMPANY["legal_representative"]
    assert licence.address == docs.COMPANY["address"]
    assert (
        cross_check(licence, TypedDetails(uscc=docs.COMPANY["uscc"], company_name=docs.COMPANY["name"])) == []
    )


def test_card_whose_number_differs_from_the_typed_one_is_a_mismatch(engine: OcrEngine) -> None:
    # Given a card printed with one (valid) number, and the user typing another valid number
    front = parse_id_front(engine.read(docs.id_front(id_number="110101199003076640")))
    # When the reading is checked against what was typed
    mismatches = cross_check(front, TypedDetails(name=docs.PERSON_NAME, id_number=docs.PERSON_ID_NUMBER))
    # Then exactly the ID number is explained as a mismatch
    assert [(m.field, m.code) for m in mismatches] == [("id_number", MISMATCH)]
    assert docs.PERSON_ID_NUMBER not in mismatches[0].message_zh


def test_a_file_that_is_not_an_image_is_refused(engine: OcrEngine) -> None:
    with pytest.raises(InvalidField) as refused:
        engine.read(b"this is a text file renamed .jpg")
    assert refused.value.field == "file"


def test_cli_masks_personal_fields_unless_revealed(aws: None, tmp_path: Path, engine: OcrEngine) -> None:
    import json

    from click.testing import CliRunner

    from chalicelib.cli.ocr import ocr

    card = tmp_path / "front.png"
    card.write_bytes(docs.id_front())
    masked = CliRunner().invoke(ocr, ["id-front", str(card)])
    assert masked.exit_code == 0, masked.output
    document = json.loads(masked.output)["document"]
    assert document["id_number"] == "1101**********6632"
    assert document["name"] == "王**"
    # (a reveal gives its reason and is recorded in the read log: tests/integration/test_read_log.py)
    shown = CliRunner().invoke(ocr, ["id-front", str(card), "--reveal", "--reason", "check the sample"])
    revealed = json.loads(shown.output)["document"]
    assert revealed["id_number"] == docs.PERSON_ID_NUMBER
    (tmp_path / "notes.jpg").write_text("not a photo")
    refused = CliRunner().invoke(ocr, ["licence", str(tmp_path / "notes.jpg")])
    assert refused.exit_code == 2
    assert json.loads(refused.output)["error"]["field"] == "file"
