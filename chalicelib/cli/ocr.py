"""``cheka ocr``: read an ID card or a business licence photo and print the parsed fields as JSON.

Personal fields (name, birth date, address, ID number, legal representative) are masked unless
``--reveal`` is given; a licence's code and company name are public register data and shown as read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel

from chalicelib.cli.output import fail, print_json
from chalicelib.kernel.errors import DomainError
from chalicelib.kernel.personal import mask_address, mask_id_number, mask_name
from chalicelib.verification.domain.readings import TextLine
from chalicelib.verification.ports import OcrEngine

_MASKS: dict[str, Callable[[str], str]] = {
    "name": mask_name,
    "legal_representative": mask_name,
    "address": mask_address,
    "id_number": mask_id_number,
    "birth_date": lambda _value: "****-**-**",
}


_file_argument = click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))


_reveal_option = click.option("--reveal", is_flag=True, help="Show personal fields unmasked.")


def _engine() -> OcrEngine:
    from chalicelib.adapters.ocr.rapidocr import RapidOcrEngine

    return RapidOcrEngine()


def _run(
    file: Path,
    parse: Callable[[Sequence[TextLine]], BaseModel],
    masked: Sequence[str],
    reveal: bool,
) -> None:
    engine = _engine()
    try:
        document = parse(engine.read(file.read_bytes()))
    except DomainError as err:
        fail(err)
    fields: dict[str, Any] = document.model_dump(mode="json")
    if not reveal:
        for name in masked:
            if fields.get(name):
                fields[name] = _MASKS[name](str(fields[name]))
    doc = {"document": fields, "engine": engine.name, "version": engine.version}
    print_json(doc)


@click.group()
def ocr() -> None:
    """Document OCR (证件识别): ID card front and back, business licence."""


@ocr.command("id-front")
@_file_argument
@_reveal_option
def id_front(file: Path, reveal: bool) -> None:
    """居民身份证人像面: name, sex, ethnicity, birth date, address, ID number."""
    from chalicelib.verification.domain.ocr import parse_id_front

    _run(file, parse_id_front, ("name", "birth_date", "address", "id_number"), reveal)


@ocr.command("id-back")
@_file_argument
@_reveal_option
def id_back(file: Path, reveal: bool) -> None:
    """居民身份证国徽面: issuing authority and validity (长期 → permanent)."""
    from chalicelib.verification.domain.ocr import parse_id_back

    _run(file, parse_id_back, (), reveal)


@ocr.command("licence")
@_file_argument
@_reveal_option
def licence(file: Path, reveal: bool) -> None:
    """营业执照: unified social credit code, name, type, legal representative, address."""
    from chalicelib.verification.domain.ocr import parse_business_licence

    _run(file, parse_business_licence, ("legal_representative",), reveal)
