"""``cheka ocr``: read an ID card or a business licence photo and print the parsed fields as JSON.

Personal fields (name, birth date, address, ID number, legal representative) are masked unless
``--reveal`` is given with ``--reason``: the read in clear is then recorded in the read log (查阅日志)
under the operator running the command (``cli:<user>``), the file by its SHA-256, before anything is
printed. A licence's code and company name are public register data and shown as read.
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


_reveal_option = click.option(
    "--reveal", is_flag=True, help="Show personal fields unmasked (needs --reason; recorded in the read log)."
)
_reason_option = click.option(
    "--reason",
    default=None,
    help="Why the fields are read in clear (4–200 characters, no phone or ID numbers).",
)


def _engine() -> OcrEngine:
    from chalicelib.adapters.ocr.rapidocr import RapidOcrEngine

    return RapidOcrEngine()


def _run(
    file: Path,
    parse: Callable[[Sequence[TextLine]], BaseModel],
    masked: Sequence[str],
    reveal: bool,
    reason: str | None = None,
    command: str = "",
) -> None:
    if reveal and reason is None:
        raise click.UsageError("--reveal needs --reason: every read in clear is recorded with its reason")
    if reason is not None:
        from chalicelib.audit.domain import reason_text

        try:
            reason = reason_text(reason)
        except DomainError as err:
            fail(err)
    engine = _engine()
    content = file.read_bytes()
    try:
        document = parse(engine.read(content))
    except DomainError as err:
        fail(err)
    fields: dict[str, Any] = document.model_dump(mode="json")
    if reveal and reason is not None:
        _record(content, [name for name in masked if fields.get(name)], reason, command)
    if not reveal:
        for name in masked:
            if fields.get(name):
                fields[name] = _MASKS[name](str(fields[name]))
    doc = {"document": fields, "engine": engine.name, "version": engine.version}
    print_json(doc)


def _record(content: bytes, shown: Sequence[str], reason: str, command: str) -> None:
    """Record the read in clear under the operator running the command, before anything is printed."""
    if not shown:
        return
    import getpass
    import hashlib
    import uuid

    from chalicelib.audit.domain import RecordKind
    from chalicelib.core import deps
    from chalicelib.core.auth import Principal

    operator = Principal(subject=f"cli:{getpass.getuser()}", roles=frozenset(), token_id="cli", issuer="cli")
    try:
        deps.read_log().record(
            operator,
            RecordKind.DOCUMENT_FILE,
            hashlib.sha256(content).hexdigest(),
            [f"document.{name}" for name in shown],
            reason,
            route=f"cli: cheka ocr {command}",
            correlation_id=uuid.uuid4().hex,
        )
    except DomainError as err:
        fail(err, exit_code=1)


@click.group()
def ocr() -> None:
    """Document OCR (证件识别): ID card front and back, business licence."""


@ocr.command("id-front")
@_file_argument
@_reveal_option
@_reason_option
def id_front(file: Path, reveal: bool, reason: str | None) -> None:
    """居民身份证人像面: name, sex, ethnicity, birth date, address, ID number."""
    from chalicelib.verification.domain.ocr import parse_id_front

    _run(file, parse_id_front, ("name", "birth_date", "address", "id_number"), reveal, reason, "id-front")


@ocr.command("id-back")
@_file_argument
@_reveal_option
@_reason_option
def id_back(file: Path, reveal: bool, reason: str | None) -> None:
    """居民身份证国徽面: issuing authority and validity (长期 → permanent)."""
    from chalicelib.verification.domain.ocr import parse_id_back

    _run(file, parse_id_back, (), reveal, reason, "id-back")


@ocr.command("licence")
@_file_argument
@_reveal_option
@_reason_option
def licence(file: Path, reveal: bool, reason: str | None) -> None:
    """营业执照: unified social credit code, name, type, legal representative, address."""
    from chalicelib.verification.domain.ocr import parse_business_licence

    _run(file, parse_business_licence, ("legal_representative",), reveal, reason, "licence")
