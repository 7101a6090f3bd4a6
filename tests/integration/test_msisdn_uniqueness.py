"""One MSISDN belongs to one card: an import giving a number another card holds is refused row by row,
and two imports racing for one number leave it with exactly one card (moto, pynamodb repositories)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import random
import threading
from collections.abc import Callable, Iterable
from typing import Any

from chalicelib.adapters.dynamo.inventory import DynamoInventoryRepository
from chalicelib.cards.inventory import COLUMNS, import_inventory
from chalicelib.core import deps
from chalicelib.kernel.operators import Operator
from chalicelib.local.synthetic import make_iccid, make_msisdn, make_vin

CSV = {"Content-Type": "text/csv"}
Auth = Callable[..., dict[str, str]]


def body(resp: Any) -> Any:
    return json.loads(resp.body)


def row(rng: random.Random, *, msisdn: str | None = None, vin: str | None = None) -> dict[str, str]:
    """A valid inventory row of one China Unicom card (a new VIN unless given)."""
    return {
        "vin": vin or make_vin(rng),
        "engine_no": f"E{rng.randrange(10**8, 10**9)}",
        "brand": "启航",
        "model": "QH-5",
        "colour": "白",
        "iccid": make_iccid(rng, Operator.CHINA_UNICOM),
        "msisdn": msisdn or make_msisdn(rng, Operator.CHINA_UNICOM),
    }


def csv_of(rows: Iterable[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def post(api: Any, auth: Auth, rows: Iterable[dict[str, str]]) -> Any:
    return api.http.post("/v1/admin/inventory/imports", headers=auth("admin", **CSV), body=csv_of(rows))


def test_second_import_giving_a_held_msisdn_to_another_card_is_refused_and_the_first_card_keeps_it(
    api: Any, auth: Auth
) -> None:
    rng = random.Random(1301)
    first = row(rng)
    # Given a card imported with its MSISDN
    assert body(post(api, auth, [first]))["cards_created"] == 1
    # When a second import gives that MSISDN to another card, beside a good row
    thief = row(rng, msisdn=first["msisdn"])
    good = row(rng)
    resp = post(api, auth, [good, thief])
    report = body(resp)
    # Then the thief's row (line 3) is refused with its reason and the good row goes in
    assert resp.status_code == 200, resp.body
    assert (report["cards_created"], report["rejected_rows"]) == (1, 1)
    [error] = report["errors"]
    assert (error["row"], error["field"], error["code"]) == (3, "msisdn", "inventory.msisdn_taken")
    assert first["iccid"] in error["message_en"]
    assert first["msisdn"][-4:] in error["message_zh"]
    repo = deps.inventory_repo()
    assert repo.get_card(thief["iccid"]) is None
    assert repo.get_vehicle(thief["vin"]) is None  # its only row was refused
    assert repo.get_card(good["iccid"]) is not None
    # And the first card keeps the number: the look-up answers that one card
    found = api.http.get(f"/v1/cards?msisdn={first['msisdn']}", headers=auth("auditor"))
    assert found.status_code == 200
    assert body(found)["iccid"] == first["iccid"]


def test_reimporting_a_card_with_its_own_msisdn_is_not_an_error(api: Any, auth: Auth) -> None:
    rng = random.Random(1302)
    rows = [row(rng), row(rng)]
    post(api, auth, rows)
    report = body(post(api, auth, rows))
    assert (report["errors"], report["cards_unchanged"]) == ([], 2)


def test_a_card_cannot_take_a_held_number_and_a_number_change_frees_the_old_one(api: Any, auth: Auth) -> None:
    rng = random.Random(1303)
    a, b = row(rng), row(rng)
    post(api, auth, [a, b])
    # When card B's row asks for A's number, B keeps its own
    report = body(post(api, auth, [{**b, "msisdn": a["msisdn"]}]))
    assert [e["code"] for e in report["errors"]] == ["inventory.msisdn_taken"]
    repo = deps.inventory_repo()
    card_b = repo.get_card(b["iccid"])
    assert card_b is not None
    assert card_b.msisdn == b["msisdn"]
    # When A moves to a new number, its old one is free: B may then take it
    new_number = make_msisdn(rng, Operator.CHINA_UNICOM)
    assert body(post(api, auth, [{**a, "msisdn": new_number}]))["cards_updated"] == 1
    assert body(post(api, auth, [{**b, "msisdn": a["msisdn"]}]))["cards_updated"] == 1
    assert (
        body(api.http.get(f"/v1/cards?msisdn={a['msisdn']}", headers=auth("auditor")))["iccid"] == b["iccid"]
    )
    assert (
        body(api.http.get(f"/v1/cards?msisdn={new_number}", headers=auth("auditor")))["iccid"] == a["iccid"]
    )
    assert repo.msisdn_holders([a["msisdn"], new_number, b["msisdn"]]) == {
        a["msisdn"]: b["iccid"],
        new_number: a["iccid"],
    }


class BarrierRepo(DynamoInventoryRepository):
    """Both imports read the number as free before either claims it: the claim alone must decide."""

    def __init__(self, barrier: threading.Barrier) -> None:
        self._barrier = barrier

    def msisdn_holders(self, msisdns: Iterable[str]) -> dict[str, str]:
        found = super().msisdn_holders(msisdns)
        if not self._barrier.broken:
            with contextlib.suppress(threading.BrokenBarrierError):
                self._barrier.wait(timeout=5)
        return found


def _import_into(reports: list[Any], i: int, rows: list[dict[str, str]], repo: BarrierRepo) -> None:
    reports[i] = import_inventory(list(enumerate(rows, start=2)), repo, actor="import")


def test_concurrent_imports_of_two_cards_with_one_msisdn_leave_exactly_one_owner(aws: None) -> None:
    deps.inventory_repo()  # models bound to the stage
    for round_ in range(4):
        rng = random.Random(1310 + round_)
        number = make_msisdn(rng, Operator.CHINA_UNICOM)
        rivals = [row(rng, msisdn=number), row(rng, msisdn=number)]
        others = [row(rng), row(rng)]  # each import also claims a number of its own, in the same write
        barrier = threading.Barrier(2)
        reports: list[Any] = [None, None]
        threads = [
            threading.Thread(
                target=_import_into, args=(reports, i, [others[i], rivals[i]], BarrierRepo(barrier))
            )
            for i in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(e.code for r in reports for e in r.errors)
        assert codes == ["inventory.msisdn_taken"]
        assert sum(r.cards_created for r in reports) == 3
        assert [e.row for r in reports for e in r.errors] == [3]
        repo = deps.inventory_repo()
        written = [r for r in rivals if repo.get_card(r["iccid"]) is not None]
        assert len(written) == 1
        owner = repo.card_by_msisdn(number)
        assert owner is not None
        assert owner.iccid == written[0]["iccid"]
        assert repo.msisdn_holders([number]) == {number: written[0]["iccid"]}
        assert repo.msisdn_holders([o["msisdn"] for o in others]) == {o["msisdn"]: o["iccid"] for o in others}
