"""One MSISDN belongs to one card: the import's refusal and claims, against the in-memory fakes."""

from __future__ import annotations

import random
from collections.abc import Iterable

from chalicelib.cards.inventory import import_inventory
from chalicelib.kernel.operators import Operator
from chalicelib.local.synthetic import make_iccid, make_msisdn, make_vin
from tests.fakes.cards import FakeInventory


def row(rng: random.Random, msisdn: str | None = None) -> dict[str, str]:
    return {
        "vin": make_vin(rng),
        "engine_no": "E12345678",
        "brand": "启航",
        "model": "QH-5",
        "colour": "白",
        "iccid": make_iccid(rng, Operator.CHINA_MOBILE),
        "msisdn": msisdn or make_msisdn(rng, Operator.CHINA_MOBILE),
    }


def test_a_row_giving_a_held_msisdn_to_another_card_is_refused_and_good_rows_go_in() -> None:
    rng = random.Random(5)
    repo = FakeInventory()
    first = row(rng)
    assert import_inventory([(2, first)], repo, actor="t").errors == []
    good, thief = row(rng), row(rng, first["msisdn"])
    report = import_inventory([(2, good), (3, thief)], repo, actor="t")
    assert [(e.row, e.field, e.code) for e in report.errors] == [(3, "msisdn", "inventory.msisdn_taken")]
    assert report.errors[0].message_zh
    assert first["iccid"] in report.errors[0].message_en
    assert (report.cards_created, report.rejected_rows) == (1, 1)
    assert thief["iccid"] not in repo.cards
    assert thief["vin"] not in repo.vehicles
    found = repo.card_by_msisdn(first["msisdn"])
    assert found is not None
    assert found.iccid == first["iccid"]


def test_every_imported_card_holds_its_number_and_a_reimport_claims_nothing_new() -> None:
    rng = random.Random(6)
    repo = FakeInventory()
    rows = [(i + 2, row(rng)) for i in range(5)]
    import_inventory(rows, repo, actor="t")
    assert repo.msisdns == {r["msisdn"]: r["iccid"] for _, r in rows}
    report = import_inventory(rows, repo, actor="t")
    assert (report.errors, report.cards_unchanged) == ([], 5)


def test_a_claim_lost_to_a_concurrent_import_refuses_the_row() -> None:
    rng = random.Random(7)
    mine = row(rng)
    rival_iccid = make_iccid(rng, Operator.CHINA_MOBILE)

    class Racing(FakeInventory):
        def msisdn_holders(self, msisdns: Iterable[str]) -> dict[str, str]:
            found = super().msisdn_holders(msisdns)
            self.msisdns.setdefault(mine["msisdn"], rival_iccid)  # the rival claims right after the read
            return found

    repo = Racing()
    report = import_inventory([(2, mine)], repo, actor="t")
    assert [e.code for e in report.errors] == ["inventory.msisdn_taken"]
    assert rival_iccid in report.errors[0].message_en
    assert mine["iccid"] not in repo.cards
