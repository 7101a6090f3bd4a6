"""Demo data: a small inventory, and a few cards registered to synthetic people (masked in views).

The demo registrations go the real way: submitted through the card lifecycle, which commits each with
its outbox record; the worker pushes them to the (sandbox) operator, whose acceptance registers them a
moment after ``make run`` starts. Until then they are ``pending``, with their holder.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

from chalicelib.cards.domain.inventory import CardState
from chalicelib.cards.holders import holder_from_party
from chalicelib.cards.inventory import ImportReport, import_inventory
from chalicelib.cards.lifecycle import Lifecycle
from chalicelib.cards.ports import InventoryRepository, PartyRepository
from chalicelib.kernel.crypto import KeyedHasher
from chalicelib.kernel.personal import IdType, Party
from chalicelib.local.synthetic import inventory_rows, make_mobile, make_resident_id

if TYPE_CHECKING:
    from chalicelib.campaigns.in_service import InServiceImport

DEMO_PEOPLE = (
    ("张伟", "北京市朝阳区建国路 88 号"),
    ("李娜", "上海市浦东新区世纪大道 100 号"),
    ("王芳", "广州市天河区体育西路 1 号"),
)


@dataclass
class SeedResult:
    report: ImportReport
    registered_vins: list[str]
    first_vin: str
    #: Vehicles whose cards are still unregistered: the ones to try the owner's registration with.
    open_vins: list[str]
    #: Vehicles in service and unregistered (补登记 targets), the first ones with ``DEMO_OWNER_PHONE``.
    backfill_vins: list[str] = field(default_factory=list)


def seed(
    inventory: InventoryRepository,
    parties: PartyRepository,
    lifecycle: Lifecycle,
    hasher: KeyedHasher,
    *,
    vehicles: int = 50,
    in_service: InServiceImport | None = None,
) -> SeedResult:
    rows = [(i + 2, row) for i, row in enumerate(inventory_rows(vehicles, seed=2026))]
    report = import_inventory(rows, inventory, actor="seed")
    rng = random.Random(2026)
    registered = []
    for (name, address), (_, row) in zip(DEMO_PEOPLE, rows, strict=False):
        card = inventory.get_card(row["iccid"])
        if card is None or card.state is not CardState.UNREGISTERED:
            registered.append(row["vin"])
            continue
        person = Party(
            id_type=IdType.RESIDENT_ID,
            id_number=make_resident_id(rng),
            name=name,
            address=address,
            phone=make_mobile(rng),
        )
        parties.put(person)
        lifecycle.submit_registration(card.iccid, holder_from_party(person, hasher), actor="seed")
        registered.append(row["vin"])
    open_vins: list[str] = []
    for _, row in rows:
        card = inventory.get_card(row["iccid"])
        if len(open_vins) < 5 and card is not None and card.state is CardState.UNREGISTERED:
            open_vins.append(row["vin"])
    backfill = _in_service(in_service, [row for _, row in rows]) if in_service is not None else []
    return SeedResult(
        report=report,
        registered_vins=registered,
        first_vin=rows[0][1]["vin"],
        open_vins=open_vins,
        backfill_vins=backfill,
    )


#: The phone the demo owner signs in to the H5 with (any phone signs in; the codes are in the SMS drop):
#: the in-service feed names it as the contact of the first backfill vehicles, so "我的车辆" shows them.
DEMO_OWNER_PHONE = "15800158000"
#: Seeded vehicles put in service (after the ``DEMO_LOOKAHEAD`` the landing page offers for registration),
#: and how many of them are the demo owner's; the last one has no contact phone (the call list's case).
BACKFILL_VEHICLES = 8
DEMO_OWNER_VEHICLES = 2


def _in_service(service: InServiceImport, rows: list[dict[str, str]]) -> list[str]:
    """Import an in-service feed for some seeded vehicles (idempotent: re-seeding changes nothing)."""
    rng = random.Random(2027)
    today = date.today()
    feed: list[tuple[int, dict[str, str]]] = []
    for n, row in enumerate(rows[DEMO_LOOKAHEAD : DEMO_LOOKAHEAD + BACKFILL_VEHICLES]):
        phone = make_mobile(rng)
        produced = date.fromisoformat(row["production_date"]) if row.get("production_date") else None
        if produced is not None and produced > today:
            continue
        since = min(today, (produced or date(2025, 1, 1)) + timedelta(days=14 + n))
        if n < DEMO_OWNER_VEHICLES:
            phone = DEMO_OWNER_PHONE
        elif n == BACKFILL_VEHICLES - 1:
            phone = ""
        feed.append(
            (
                len(feed) + 2,
                {"vin": row["vin"], "in_service_since": since.isoformat(), "contact_phone": phone},
            )
        )
    if not feed:
        return []
    report = service.run(feed, actor="seed")
    refused = {e.row for e in report.errors}
    return [row["vin"] for number, row in feed if number not in refused]


#: The seed's first vehicles the landing page looks at for demo VINs (the seed makes them in this order).
DEMO_LOOKAHEAD = 20


def demo_vehicles(inventory: InventoryRepository, *, limit: int = 5) -> dict[str, list[str]]:
    """The seeded vehicles as they stand now: ``open_vins`` (unregistered: to try the registration with)
    and ``registered_vins`` (pending or registered), at most ``limit`` each; empty lists before a seed."""
    rows = list(inventory_rows(DEMO_LOOKAHEAD, seed=2026))
    cards = inventory.get_cards([row["iccid"] for row in rows])
    open_vins: list[str] = []
    registered: list[str] = []
    for row in rows:
        card = cards.get(row["iccid"])
        if card is None or card.vin != row["vin"]:
            continue
        # Every card now on the car counts: a part swap leaves the seeded card retired on the VIN beside
        # the card fitted in its place.
        states = {c.state for c in inventory.cards_of_vehicle(row["vin"])} or {card.state}
        if states == {CardState.UNREGISTERED} and len(open_vins) < limit:
            open_vins.append(row["vin"])
        elif states & {CardState.PENDING, CardState.REGISTERED} and len(registered) < limit:
            registered.append(row["vin"])
    return {"open_vins": open_vins, "registered_vins": registered}
