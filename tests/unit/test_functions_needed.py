"""最小必要 (第十四条): what a registration asks the operator to open, from the model's functions or the
OEM default, emergency always; the inventory column that carries them."""

from __future__ import annotations

import pytest

from chalicelib.cards.domain.inventory import CardFunction, needed_functions
from chalicelib.cards.inventory import import_inventory, parse_inventory
from tests.fakes.cards import FakeInventory

E, T, D = CardFunction.EMERGENCY, CardFunction.TELEMATICS, CardFunction.DATA


@pytest.mark.parametrize(
    ("model", "default", "asked"),
    [
        ((T,), [T, D], [E, T]),
        ((), [T, D], [E]),
        (None, [D], [E, D]),
        (None, [], [E]),
        ((D, T), [], [E, T, D]),
    ],
)
def test_needed_functions_are_the_models_or_the_oem_default_and_always_emergency(
    model: tuple[CardFunction, ...] | None, default: list[CardFunction], asked: list[CardFunction]
) -> None:
    assert needed_functions(model, default) == asked


HEADER = "vin,engine_no,brand,model,colour,iccid,msisdn,functions\n"
ROW = "LSVAU218XN2183294,E12345678,启航,QH-5,白,89860112345678901237,1460012345678,{}\n"


@pytest.mark.parametrize(
    ("cell", "stored"),
    [
        ("telematics", (T,)),
        ('"Data, telematics"', (T, D)),
        ("emergency", ()),
        ("", None),
    ],
)
def test_the_functions_column_is_stored_on_the_vehicle(
    cell: str, stored: tuple[CardFunction, ...] | None
) -> None:
    repo = FakeInventory()
    report = import_inventory(parse_inventory(HEADER + ROW.format(cell), "csv", max_rows=10), repo, actor="t")
    assert report.errors == []
    assert repo.vehicles["LSVAU218XN2183294"].functions == stored
