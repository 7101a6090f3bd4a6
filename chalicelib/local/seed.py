"""Demo data: a small inventory, and a few cards registered to synthetic people (masked in views).

The demo registrations go the real way: submitted through the card lifecycle, which commits each with
its outbox record; the worker pushes them to the (sandbox) operator, whose acceptance registers them a
moment after ``make run`` starts. Until then they are ``pending``, with their holder.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from chalicelib.cards.domain.inventory import CardState
from chalicelib.cards.holders import holder_from_party
from chalicelib.cards.inventory import ImportReport, import_inventory
from chalicelib.cards.lifecycle import Lifecycle
from chalicelib.cards.ports import InventoryRepository, PartyRepository
from chalicelib.kernel.crypto import KeyedHasher
from chalicelib.kernel.personal import IdType, Party
from chalicelib.local.synthetic import inventory_rows, make_mobile, make_resident_id

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


def seed(
    inventory: InventoryRepository,
    parties: PartyRepository,
    lifecycle: Lifecycle,
    hasher: KeyedHasher,
    *,
    vehicles: int = 50,
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
    return SeedResult(
        report=report, registered_vins=registered, first_vin=rows[0][1]["vin"], open_vins=open_vins
    )


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
