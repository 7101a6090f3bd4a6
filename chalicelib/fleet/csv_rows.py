"""Vehicles given to a batch as text: one VIN, VINs pasted one per line (or separated by commas, spaces
or semicolons), or a CSV file's text (a header row is optional; with one, the ``vin`` column is read —
``VIN``, ``车架号`` and ``车辆识别代号`` are taken as its name too).

Every row is told apart with its line number: a row that is not a VIN (wrong length, characters or check
digit) or repeats an earlier one is refused; the good rows go on to the batch's own checks."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

from chalicelib.kernel.errors import DomainError, InvalidField

#: Names a header may give the VIN column.
VIN_HEADERS = frozenset({"vin", "车架号", "车辆识别代号", "车辆识别号", "车辆识别代码"})

#: The most rows one text may carry (a batch holds at most 500 vehicles: the rest are surplus).
MAX_ROWS = 2000

_SEPARATORS = re.compile(r"[\s,;，；、]+")


@dataclass(frozen=True)
class VinRow:
    """One row of the text: its line (1-based), the VIN as normalised (or as given when it is not one)
    and, when refused, why."""

    line: int
    vin: str
    error: DomainError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def refused(self, error: DomainError) -> VinRow:
        return VinRow(self.line, self.vin, error)


def duplicate_row(first_line: int) -> InvalidField:
    return InvalidField(
        "fleet.duplicate_row",
        f"与第 {first_line} 行的车架号重复",
        f"Repeats the VIN of line {first_line}",
        field="vin",
        details={"first_line": first_line},
    )


def too_many_rows() -> InvalidField:
    return InvalidField(
        "fleet.too_many_rows",
        f"一次最多导入 {MAX_ROWS} 行",
        f"At most {MAX_ROWS} rows at a time",
        field="csv",
    )


def _cells(text: str) -> list[tuple[int, list[str]]]:
    """The non-empty lines of ``text`` as CSV cells, with their line numbers."""
    rows: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    for cells in reader:
        line = reader.line_num
        cleaned = [c.strip() for c in cells]
        if any(cleaned):
            rows.append((line, cleaned))
    return rows


def parse_csv(text: str) -> list[VinRow]:
    """The rows of a CSV text (or a VIN per line): each with its line number; the header row, when there
    is one, is not a row. A text with more than ``MAX_ROWS`` rows is refused whole."""
    rows = _cells(text)
    column = 0
    if rows:
        header = [c.casefold() for c in rows[0][1]]
        named = [i for i, c in enumerate(header) if c in VIN_HEADERS]
        if named:
            column = named[0]
            rows = rows[1:]
    if len(rows) > MAX_ROWS:
        raise too_many_rows()
    given = [(line, cells[column] if column < len(cells) else "") for line, cells in rows]
    return check_rows(given)


def parse_pasted(vins: list[str]) -> list[VinRow]:
    """VINs given as a list (each entry may hold several, pasted with separators): rows numbered from 1
    in the order given."""
    given: list[tuple[int, str]] = []
    for entry in vins:
        for part in _SEPARATORS.split(entry):
            if part:
                given.append((len(given) + 1, part))
    if len(given) > MAX_ROWS:
        raise too_many_rows()
    return check_rows(given)


def check_rows(given: list[tuple[int, str]]) -> list[VinRow]:
    """Each ``(line, text)`` checked as a VIN (length, characters, check digit) and against the rows
    before it (a repeat is refused, naming the first line)."""
    from chalicelib.kernel.validators import validate  # the validators: not at a cold start

    seen: dict[str, int] = {}
    rows: list[VinRow] = []
    for line, text in given:
        try:
            vin = validate("vin", text, field="vin").value
        except InvalidField as err:
            rows.append(VinRow(line, text.strip().upper(), err))
            continue
        first = seen.get(vin)
        if first is not None:
            rows.append(VinRow(line, vin, duplicate_row(first)))
            continue
        seen[vin] = line
        rows.append(VinRow(line, vin))
    return rows
