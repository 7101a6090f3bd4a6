"""The in-service feed's rules (补登记 targets), with in-memory fakes: which card is a target and under
which shard, how a feed file's rows are read and refused, and what an import writes."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from cryptography.exceptions import InvalidTag

from chalicelib.campaigns.domain import InServiceFacts
from chalicelib.campaigns.in_service import InServiceImport, InServiceReport, parse_in_service
from chalicelib.cards.domain.inventory import (
    BACKFILL_SHARD_NAMES,
    BACKFILL_SHARDS,
    BACKFILL_STATES,
    Card,
    CardState,
    Vehicle,
    backfill_shard,
    backfill_shard_of,
)
from chalicelib.cards.inventory import ImportFormat
from chalicelib.kernel.crypto import TextSealer
from chalicelib.kernel.errors import BadRequest, PayloadTooLarge
from chalicelib.kernel.operators import Operator
from tests.fakes.campaign_targets import FakeBackfillTargets, FakeInServiceCards
from tests.fakes.cards import FakeInventory, put_card_state
from tests.fakes.crypto import FakeCipher, FakeHasher

NOW = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
VIN = "LSVAU218XN2183294"
ICCID = "89860112345678901237"
ICCID_2 = "89860112345678901245"
OTHER_VIN = "LSVAU2189N2000001"
OTHER_ICCID = "89860112345678901252"
PHONE = "13800138000"


def card(iccid: str, vin: str = VIN, state: CardState = CardState.UNREGISTERED) -> Card:
    return Card(
        iccid=iccid, msisdn="14600" + iccid[-8:], operator=Operator.CHINA_UNICOM, vin=vin, state=state
    )


def vehicle(
    vin: str = VIN, *, production: date | None = date(2025, 3, 1), dealer: str | None = None
) -> Vehicle:
    return Vehicle(
        vin=vin,
        engine_no="E12345678",
        brand="启航",
        model="QH-5",
        colour="白",
        production_date=production,
        dealer_code=dealer,
    )


class World:
    """An inventory of two vehicles (two cards on the first, one on the second) and the import over it."""

    def __init__(self) -> None:
        self.inventory = FakeInventory()
        self.inventory.put_new(
            [vehicle(), vehicle(OTHER_VIN, dealer="D100")],
            [card(ICCID), card(ICCID_2), card(OTHER_ICCID, OTHER_VIN)],
            [],
        )
        self.cards = FakeInServiceCards(self.inventory)
        self.hasher = FakeHasher()
        self.sealer = TextSealer(FakeCipher())
        self.dealers = {"D100", "D200"}
        self.dealer_checks: list[str] = []
        self.retired: set[str] = set()
        self.service = InServiceImport(
            self.inventory,
            self.cards,
            phone_hash=self.hasher.digest,
            seal=self.sealer.seal,
            known_dealer=self._known,
            retired=lambda iccids: self.retired & set(iccids),
            clock=lambda: NOW,
        )

    def _known(self, code: str) -> bool:
        self.dealer_checks.append(code)
        return code in self.dealers

    def run(self, text: str, fmt: ImportFormat = "csv") -> InServiceReport:
        return self.service.run(parse_in_service(text, fmt, max_rows=100), actor="ops")


@pytest.fixture
def world() -> World:
    return World()


# -- the target rule and its shards ---------------------------------------------------------------------


def test_the_shard_of_an_iccid_is_stable_two_digits_and_spreads_over_all_shards() -> None:
    iccids = [f"8986{n:016d}" for n in range(2000)]
    shards = [backfill_shard_of(i) for i in iccids]
    assert shards == [backfill_shard_of(i) for i in iccids]
    assert set(shards) == set(BACKFILL_SHARD_NAMES)
    assert tuple(f"{i:02d}" for i in range(BACKFILL_SHARDS)) == BACKFILL_SHARD_NAMES
    assert max(shards.count(s) for s in BACKFILL_SHARD_NAMES) < 2000 / BACKFILL_SHARDS * 1.5


@pytest.mark.parametrize("state", list(CardState))
def test_a_card_is_in_the_index_only_in_service_and_unregistered_or_deregistered(state: CardState) -> None:
    in_service = card(ICCID, state=state).model_copy(update={"in_service_since": date(2025, 5, 1)})
    assert backfill_shard(card(ICCID, state=state)) is None
    expected = backfill_shard_of(ICCID) if state in BACKFILL_STATES else None
    assert backfill_shard(in_service) == expected
    assert (state in BACKFILL_STATES) == (state in (CardState.UNREGISTERED, CardState.DEREGISTERED))


def test_the_fake_index_pages_a_shard_and_drops_a_card_registered_since() -> None:
    index = FakeBackfillTargets()
    shard = backfill_shard_of(ICCID)
    same_shard = [f"8986{n:016d}" for n in range(400) if backfill_shard_of(f"8986{n:016d}") == shard][:5]
    for iccid in same_shard:
        index.put(iccid, phone_hash="h")
    first, cursor = index.page(shard, None, 3)
    second, end = index.page(shard, cursor, 3)
    assert [t.iccid for t in first + second] == sorted(same_shard)
    assert end is None
    index.set_state(same_shard[0], CardState.PENDING)
    assert same_shard[0] not in {t.iccid for t in index.indexed(shard)}
    assert index.current([same_shard[0]])[same_shard[0]].state == "pending"  # type: ignore[union-attr]
    with pytest.raises(BadRequest):
        index.page("00" if shard != "00" else "01", cursor, 3)


# -- the file -------------------------------------------------------------------------------------------


def test_a_file_naming_neither_iccid_nor_vin_is_refused_whole() -> None:
    with pytest.raises(BadRequest) as info:
        parse_in_service("in_service_since,contact_phone\n2025-05-01,13800138000\n", "csv", max_rows=10)
    assert info.value.code == "in_service.card_column"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("iccid,colour\n" + ICCID + ",白\n", "import.unknown_column"),
        ("iccid,contact_phone\n" + ICCID + ",13800138000\n", "import.missing_column"),
        ("", "import.empty"),
    ],
)
def test_file_problems_refuse_it_whole(world: World, text: str, code: str) -> None:
    with pytest.raises(BadRequest) as info:
        world.run(text)
    assert info.value.code == code
    assert world.cards.marks == 0


def test_more_rows_than_the_limit_are_refused() -> None:
    rows = "".join(f"{ICCID},2025-05-01\n" for _ in range(4))
    with pytest.raises(PayloadTooLarge):
        parse_in_service("iccid,in_service_since\n" + rows, "csv", max_rows=3)


def test_a_gb18030_file_with_aliases_is_read() -> None:
    text = f"ICCID,In_Service_Date,phone,dealer\n{ICCID},2025-05-01,{PHONE},启航一店\n"
    rows = parse_in_service(text.encode("gb18030"), "csv", max_rows=10)
    assert rows == [
        (
            2,
            {
                "iccid": ICCID,
                "in_service_since": "2025-05-01",
                "contact_phone": PHONE,
                "dealer_code": "启航一店",
            },
        )
    ]


# -- rows -----------------------------------------------------------------------------------------------


def test_rows_are_refused_one_by_one_and_good_rows_import(world: World) -> None:
    text = (
        "iccid,vin,in_service_since,contact_phone,dealer_code\n"
        f"{ICCID},,2025-05-01,{PHONE},\n"  # 2: good
        f"{ICCID_2},{VIN},2025-05-01,,\n"  # 3: both
        ",,2025-05-01,,\n"  # 4: neither
        f"{ICCID_2},,2025-02-30,,\n"  # 5: no such day
        f"{ICCID_2},,2026-06-02,,\n"  # 6: future (China today is 2026-06-01)
        f"{ICCID_2},,2025-02-01,,\n"  # 7: before production (2025-03-01)
        f"{ICCID_2},,2025-05-01,1234,\n"  # 8: not a mobile
        f"{ICCID_2},,2025-05-01,,D 1\n"  # 9: dealer code format
        f"{ICCID_2},,2025-05-01,,D999\n"  # 10: unknown dealer
        "89860112345678901260,,2025-05-01,,\n"  # 11: unknown card
        ",LSVAU2181N2183294,2025-05-01,,\n"  # 12: a VIN with a wrong check digit
        f"{ICCID},,2025-05-02,,\n"  # 13: the card of row 2 again
        f",{OTHER_VIN},2025-05-01,,D200\n"  # 14: the inventory names another dealer
    )
    report = world.run(text)
    codes = {(e.row, e.code) for e in report.errors}
    assert codes == {
        (3, "in_service.iccid_or_vin"),
        (4, "in_service.card_required"),
        (5, "in_service_since.invalid"),
        (6, "in_service_since.invalid"),
        (7, "in_service_since.before_production"),
        (8, "mobile.format"),
        (9, "dealer_code.format"),
        (10, "dealer.not_found"),
        (11, "card.not_found"),
        (12, "vin.check_digit"),
        (13, "in_service.duplicate_card"),
        (14, "in_service.dealer_mismatch"),
    }
    assert {e.field for e in report.errors if e.row == 8} == {"contact_phone"}
    assert (report.rows, report.rejected_rows, report.cards_marked) == (13, 12, 1)
    assert world.inventory.cards[ICCID].in_service_since == date(2025, 5, 1)
    assert world.inventory.cards[ICCID_2].in_service_since is None
    assert world.inventory.cards[OTHER_ICCID].in_service_since is None
    assert world.dealer_checks == ["D999", "D200"]  # each code looked up once, and only when well-formed


def test_a_vin_row_marks_every_card_of_the_vehicle_and_reimport_changes_nothing(world: World) -> None:
    text = f"vin,in_service_since,contact_phone\n{VIN},2025-05-01,{PHONE}\n"
    first = world.run(text)
    second = world.run(text)
    assert (first.cards_marked, first.cards_unchanged) == (2, 0)
    assert (second.cards_marked, second.cards_updated, second.cards_unchanged) == (0, 0, 2)
    assert world.cards.marks == 2
    facts = world.cards.facts[ICCID]
    assert facts.contact_phone_hash == world.hasher.digest(PHONE)
    assert facts.contact_phone_sealed is not None
    assert PHONE not in facts.contact_phone_sealed
    assert world.sealer.open(facts.contact_phone_sealed) == PHONE
    history = world.inventory.history(ICCID)
    assert [(e.event, e.seq, e.actor) for e in history] == [("facts_updated", 2, "ops")]
    assert PHONE not in (history[0].reason or "")


def test_changed_facts_update_and_a_row_without_a_phone_keeps_the_known_one(world: World) -> None:
    world.run(f"iccid,in_service_since,contact_phone\n{ICCID},2025-05-01,{PHONE}\n")
    sealed = world.cards.facts[ICCID].contact_phone_sealed
    report = world.run(f"iccid,in_service_since\n{ICCID},2025-04-01\n")
    assert report.cards_updated == 1
    assert world.cards.facts[ICCID] == InServiceFacts(date(2025, 4, 1), world.hasher.digest(PHONE), sealed)
    again = world.run(f"iccid,in_service_since,contact_phone\n{ICCID},2025-04-01,13900139000\n")
    assert again.cards_updated == 1
    assert world.cards.facts[ICCID].contact_phone_hash == world.hasher.digest("13900139000")


def test_json_rows_import_and_a_missing_date_is_the_rows_error(world: World) -> None:
    doc = f'[{{"iccid": "{ICCID}", "in_service_since": "2025-05-01"}}, {{"vin": "{OTHER_VIN}"}}]'
    report = world.run(doc, "json")
    assert report.cards_marked == 1
    assert [(e.row, e.code) for e in report.errors] == [(2, "in_service_since.required")]


def test_a_dealer_code_fills_a_vehicle_that_names_none(world: World) -> None:
    world.run(f"iccid,in_service_since,dealer_code\n{ICCID},2025-05-01,D200\n")
    assert world.inventory.vehicles[VIN].dealer_code == "D200"
    assert world.inventory.cards[ICCID].in_service_since == date(2025, 5, 1)


def test_a_card_moved_meanwhile_is_read_again_once_then_the_row_fails(world: World) -> None:
    moves: list[str] = []

    def move_once(c: Card) -> None:
        if not moves:
            moves.append(c.iccid)
            put_card_state(world.inventory, c.iccid, CardState.PENDING, actor="owner", holder_id="p1")

    world.cards.before_mark = move_once
    report = world.run(f"iccid,in_service_since\n{ICCID},2025-05-01\n")
    assert (report.cards_marked, report.errors) == (1, [])
    marked = world.inventory.cards[ICCID]
    assert (marked.state, marked.in_service_since, marked.version) == (CardState.PENDING, date(2025, 5, 1), 3)

    def move_always(c: Card) -> None:
        now = world.inventory.cards[c.iccid].state
        back = CardState.UNREGISTERED if now is CardState.PENDING else CardState.PENDING
        put_card_state(world.inventory, c.iccid, back, actor="owner", holder_id="p2")

    world.cards.before_mark = move_always
    lost = world.run(f"iccid,in_service_since\n{ICCID_2},2025-05-01\n")
    assert [(e.row, e.code) for e in lost.errors] == [(2, "card.changed")]
    assert world.inventory.cards[ICCID_2].in_service_since is None


def test_imported_facts_make_the_index_a_pending_card_is_marked_but_not_a_target(world: World) -> None:
    put_card_state(world.inventory, OTHER_ICCID, CardState.PENDING, actor="owner", holder_id="p1")
    world.run(f"vin,in_service_since,contact_phone\n{VIN},2025-05-01,{PHONE}\n{OTHER_VIN},2025-05-01,\n")
    index = world.cards.targets()
    assert sorted(t.iccid for t in index.indexed()) == [ICCID, ICCID_2]
    from chalicelib.sms.domain import subject_for

    mine = index.of_owner(subject_for(world.hasher.digest(PHONE)))
    assert [t.iccid for t in mine] == [ICCID, ICCID_2]


def test_a_retired_card_is_refused_by_iccid_and_left_out_of_its_vehicles_row(world: World) -> None:
    world.retired = {ICCID}
    report = world.run(f"iccid,vin,in_service_since\n{ICCID},,2025-05-01\n,{VIN},2025-05-01\n")
    assert [(e.row, e.code) for e in report.errors] == [(2, "in_service.retired")]
    assert report.cards_marked == 1
    assert world.inventory.cards[ICCID].in_service_since is None
    assert world.inventory.cards[ICCID_2].in_service_since == date(2025, 5, 1)


def test_a_sealed_phone_is_text_that_opens_only_under_its_context() -> None:
    sealer = TextSealer(FakeCipher())
    sealed = sealer.seal(PHONE)
    assert PHONE not in sealed
    assert sealed != sealer.seal(PHONE)  # a fresh nonce each time: equal phones are not told apart
    assert sealer.open(sealed) == PHONE
    with pytest.raises(InvalidTag):
        sealer.open(sealed, context="another-record")
    with pytest.raises(ValueError, match="not a sealed text"):
        sealer.open("s2." + sealed.split(".", 1)[1])
