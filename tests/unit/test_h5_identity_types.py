"""The H5 client's identity step offers every personal identity document the platform registers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import chalicelib
from chalicelib.kernel.errors import InvalidField
from chalicelib.kernel.personal import IdType
from chalicelib.kernel.validators import validate

H5 = Path(chalicelib.__file__).parent / "web" / "h5" / "index.html"

#: A valid number of each type (synthetic), as a person would type it.
SAMPLES = {
    IdType.RESIDENT_ID: "11010519491231002X",
    IdType.PASSPORT: "E12345678",
}


def offered() -> list[str]:
    html = H5.read_text(encoding="utf-8")
    select = re.search(r'<select id="id-type".*?</select>', html, re.S)
    assert select is not None
    return re.findall(r'<option value="([a-z_]+)"', select.group(0))


def test_the_identity_step_offers_every_personal_document_type_and_only_those() -> None:
    assert sorted(offered()) == sorted(t.value for t in IdType if t is not IdType.USCC)
    assert offered()[0] == IdType.RESIDENT_ID.value  # the default, first


def test_every_offered_type_has_a_validator_that_refuses_an_empty_number() -> None:
    for kind in offered():
        with pytest.raises(InvalidField):
            validate(kind, "", field="id_number")
    for kind, number in SAMPLES.items():
        assert validate(kind.value, number, field="id_number").value == number
