"""The ``cheka`` command line against the embedded AWS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from chalicelib.cli.main import main
from chalicelib.local.sandbox_authority import SandboxAuthority


def run(*args: str) -> tuple[int, object]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, json.loads(result.output) if result.output.strip().startswith(
        "{"
    ) else result.output


@pytest.mark.parametrize(
    ("kind", "value", "valid", "code", "operator"),
    [
        ("resident_id", "11010519491231002X", True, None, None),
        ("resident_id", "110105194912310021", False, "resident_id.check_char", None),
        ("iccid", "89860112345678901237", True, None, "china_unicom"),
        ("msisdn", "1440012345678", True, None, "china_mobile"),
        ("vin", "KNEJC524585810962", False, "vin.check_digit", None),
        ("uscc", "91350100M000100Y43", True, None, None),
    ],
)
def test_validate(kind: str, value: str, valid: bool, code: str | None, operator: str | None) -> None:
    exit_code, doc = run("validate", kind, value)
    assert isinstance(doc, dict)
    assert (doc["valid"], doc["code"], doc["operator"]) == (valid, code, operator)
    assert doc["message_en"] if not valid else True
    assert exit_code == (0 if valid else 1)


def test_seed_import_and_show(aws: None, tmp_path: Path) -> None:
    # Given the demo seed and a generated 100-vehicle CSV
    code, seeded = run("seed", "--vehicles", "5")
    assert code == 0
    assert isinstance(seeded, dict)
    assert len(seeded["registered_vins"]) == 3
    csv_file = tmp_path / "inventory.csv"
    run("demo-csv", "--vehicles", "100", "--out", str(csv_file))
    # When it is imported twice
    code, first = run("import-inventory", str(csv_file))
    _, second = run("import-inventory", str(csv_file))
    # Then the second import changes nothing, and a seeded registered vehicle shows masked data
    assert code == 0
    assert isinstance(first, dict)
    assert isinstance(second, dict)
    assert (first["cards_created"], second["cards_created"], second["cards_unchanged"]) == (100, 0, 100)
    _, shown = run("vehicle", seeded["registered_vins"][0])
    assert isinstance(shown, dict)
    holder = shown["cards"][0]["holder"]
    assert holder["masked"] is True
    assert "*" in holder["id_number"]
    # And re-seeding changes nothing
    _, again = run("seed", "--vehicles", "5")
    assert isinstance(again, dict)
    assert again["report"]["cards_created"] == 0


def test_import_refuses_a_bad_file(aws: None, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("vin,colour\nX,Y\n", encoding="utf-8")
    code, doc = run("import-inventory", str(bad))
    assert code == 2
    assert isinstance(doc, dict)
    assert doc["error"]["code"] == "import.missing_column"


def test_token_issue_roles_are_checked() -> None:
    result = CliRunner().invoke(main, ["token", "issue", "--subject", "x", "--role", "superuser"])
    assert result.exit_code != 0
    assert "roles are" in result.output


def test_demo_id_card_draws_a_card_the_ocr_reads_as_the_identity_it_prints(tmp_path: Path) -> None:
    from PIL import Image

    from tests.face_photos import FACES
    from tests.synthetic_documents import require_cjk_font

    require_cjk_font()
    portrait = FACES / "obama_1.jpg"
    if not portrait.is_file():
        pytest.skip(f"face photos not found at {FACES}")
    result = CliRunner().invoke(
        main, ["demo-id-card", "--portrait", str(portrait), "--out", str(tmp_path), "--no-register"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    front, back = (Path(p) for p in doc["files"])
    with Image.open(front) as image:
        assert image.format == "JPEG"
        assert image.width >= 1000
    assert back.is_file()
    from chalicelib.core import deps
    from chalicelib.verification.domain.ocr import parse_id_front

    reading = parse_id_front(deps.ocr_engine().read(front.read_bytes()))
    assert reading.id_number == doc["type in"]["id_number"]
    assert reading.name == doc["type in"]["name"]


def test_demo_id_card_invents_a_new_identity_each_time_and_registers_it_unless_told_not_to(
    tmp_path: Path, identity_authority: SandboxAuthority
) -> None:
    from chalicelib.adapters.authority.sandbox import SandboxIdentityAuthority
    from chalicelib.core import deps
    from chalicelib.verification.domain.authority import AuthorityResult
    from tests.face_photos import CARD_PORTRAIT, FACES
    from tests.synthetic_documents import require_cjk_font

    require_cjk_font()
    portrait = FACES / CARD_PORTRAIT
    if not portrait.is_file():
        pytest.skip(f"face photos not found at {FACES}")
    deps.reset()  # the stage's settings: the sandbox authority of the test session
    people = []
    for n, extra in enumerate(([], [], ["--no-register"])):
        code, doc = run("demo-id-card", "--portrait", str(portrait), "--out", str(tmp_path / str(n)), *extra)
        assert code == 0, doc
        assert isinstance(doc, dict)
        people.append(doc["type in"])
    assert len({p["id_number"] for p in people}) == 3
    assert len({p["name"] for p in people}) >= 2
    authority = SandboxIdentityAuthority(identity_authority.url)
    answers = [authority.verify_identity(p["name"], "resident_id", p["id_number"]).result for p in people]
    assert answers == [AuthorityResult.MATCH, AuthorityResult.MATCH, AuthorityResult.NOT_FOUND]


def test_authority_register_and_demo_id_card_give_the_citizen_the_phone_a_carrier_holds(
    tmp_path: Path, identity_authority: SandboxAuthority
) -> None:
    import random

    from chalicelib.adapters.authority.sandbox import SandboxIdentityAuthority
    from chalicelib.core import deps
    from chalicelib.local.synthetic import make_resident_id
    from chalicelib.verification.domain.authority import AuthorityResult
    from tests.face_photos import CARD_PORTRAIT, FACES
    from tests.synthetic_documents import require_cjk_font

    deps.reset()  # the stage's settings: the sandbox authority of the test session
    authority = SandboxIdentityAuthority(identity_authority.url)
    # `cheka authority register --phone` (a number no other test uses: the sandbox is the session's)
    number = make_resident_id(random.Random(4242))
    code, doc = run(
        "authority", "register", "--name", "赵六", "--id-number", number, "--phone", "13700009999"
    )
    assert code == 0, doc
    assert authority.verify_phone_holder("赵六", "resident_id", number, "13700009999").result is (
        AuthorityResult.MATCH
    )
    assert authority.verify_phone_holder("赵六", "resident_id", number, "13700001111").result is (
        AuthorityResult.NO_MATCH
    )
    # `cheka demo-id-card --phone`
    require_cjk_font()
    portrait = FACES / CARD_PORTRAIT
    if not portrait.is_file():
        pytest.skip(f"face photos not found at {FACES}")
    code, doc = run(
        "demo-id-card", "--portrait", str(portrait), "--out", str(tmp_path), "--phone", "13700008888"
    )
    assert code == 0, doc
    assert isinstance(doc, dict)
    person = doc["type in"]
    answer = authority.verify_phone_holder(person["name"], "resident_id", person["id_number"], "13700008888")
    assert answer.result is AuthorityResult.MATCH
