"""``cheka demo-letter`` draws an authorization letter (授权委托书) the local OCR engine reads back: both
names and the VIN, as the delegation step checks them."""

from __future__ import annotations

import json
import random
from pathlib import Path

from click.testing import CliRunner

from chalicelib.cli.main import main
from chalicelib.local.synthetic import make_resident_id, make_vin
from tests.synthetic_documents import require_cjk_font


def run(*args: str) -> tuple[int, dict[str, object]]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, json.loads(result.output)


def test_the_drawn_letter_names_the_owner_the_trustee_and_the_car(tmp_path: Path) -> None:
    require_cjk_font()
    from chalicelib.adapters.ocr.rapidocr import RapidOcrEngine
    from chalicelib.verification.domain.ocr import check_letter, parse_authorization_letter

    owner_id, trustee_id = make_resident_id(random.Random(31)), make_resident_id(random.Random(32))
    vin = make_vin(random.Random(33))
    out = tmp_path / "letter.jpg"
    args = ["--owner-name", "阿卜杜拉·买买提", "--owner-id", owner_id, "--trustee-name", "王小明"]
    code, doc = run("demo-letter", *args, "--trustee-id", trustee_id, "--vin", vin, "--out", str(out))
    assert code == 0, doc
    assert doc["file"] == str(out)
    letter = parse_authorization_letter(RapidOcrEngine().read(out.read_bytes()))
    assert (letter.owner_name, letter.trustee_name, letter.vin) == ("阿卜杜拉·买买提", "王小明", vin)
    assert (letter.owner_id_number, letter.trustee_id_number) == (owner_id, trustee_id)
    assert check_letter(letter, owner_name="阿卜杜拉·买买提", vin=vin, owner_id_number=owner_id) == []


def test_a_letter_for_an_invalid_vin_is_not_drawn(tmp_path: Path) -> None:
    require_cjk_font()
    out = tmp_path / "letter.jpg"
    owner_id, trustee_id = make_resident_id(random.Random(31)), make_resident_id(random.Random(32))
    code, doc = run(
        "demo-letter",
        *("--owner-name", "李四", "--owner-id", owner_id, "--trustee-name", "王小明"),
        *("--trustee-id", trustee_id, "--vin", "LBV8PX404GECXXS9A", "--out", str(out)),
    )
    assert code == 2
    error = doc["error"]
    assert isinstance(error, dict)
    assert (error["code"], error["field"]) == ("vin.check_digit", "vin")
    assert not out.exists()
