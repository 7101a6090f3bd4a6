"""The OEM's in-service feed (在用车辆信息): which vehicles are in use since when, with the sales record's
contact phone and, optionally, the selling dealer. A card in service and not registered is a backfill
target (补登记, 第二十二条); the import writes the facts on the card and the backfill index follows.

Like the inventory import, it is idempotent (the same facts change nothing), reports invalid rows one by
one (row, field, code, messages) while the valid rows are imported, and refuses a file whose problems are
the file's (format, columns, size) without writing anything. Rows name a card by ``iccid`` or every card
of a vehicle by ``vin``. Contact phones are kept sealed, with their keyed hash (the hash an owner's login
gives) and the subject of whoever signs in with them; a row without a phone keeps the one known.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date

from pydantic import BaseModel

from chalicelib.campaigns.domain import InServiceFacts
from chalicelib.campaigns.ports import InServiceCards
from chalicelib.cards.domain.inventory import Card, CardEvent, Vehicle, card_not_found, vehicle_not_found
from chalicelib.cards.inventory import (
    CHUNK,
    FileColumns,
    ImportFormat,
    PhoneHash,
    RowError,
    parse_inventory,
)
from chalicelib.cards.ports import InventoryRepository
from chalicelib.kernel.clock import Clock, china_day, utc_now
from chalicelib.kernel.errors import BadRequest, Conflict, DomainError, InvalidField, NotFound
from chalicelib.kernel.validators import validate

COLUMNS = ("iccid", "vin", "in_service_since", "contact_phone", "dealer_code")

ALIASES = {
    "in_service": "in_service_since",
    "in_service_date": "in_service_since",
    "since": "in_service_since",
    "phone": "contact_phone",
    "owner_phone": "contact_phone",
    "sales_phone": "contact_phone",
    "dealer": "dealer_code",
}

IN_SERVICE_FILE = FileColumns(COLUMNS, ("in_service_since",), ALIASES)

_DEALER = re.compile(r"^[A-Za-z0-9_\-]{1,32}$")

#: Tries of one card's guarded write: a card that moved between the read and the write is read again
#: once; a second loss is the row's error.
WRITE_TRIES = 2


class InServiceReport(BaseModel):
    """What an in-service import did: cards newly in service, cards whose facts changed, cards already
    as the file says, and the rows refused with their errors."""

    rows: int = 0
    cards_marked: int = 0
    cards_updated: int = 0
    cards_unchanged: int = 0
    rejected_rows: int = 0
    errors: list[RowError] = []


@dataclass
class _Row:
    number: int
    iccid: str | None
    vin: str | None
    since: date
    phone: str | None  # clear, validated; sealed only when written
    dealer: str | None
    cards: list[Card] = field(default_factory=list)


def _error(number: int, err: DomainError) -> RowError:
    return RowError(
        row=number, field=err.field, code=err.code, message_zh=err.message_zh, message_en=err.message_en
    )


def parse_in_service(
    data: bytes | str, fmt: ImportFormat, *, max_rows: int
) -> list[tuple[int, dict[str, str]]]:
    """The file's rows (the inventory's parsing: UTF-8 or GB18030, CSV or JSON, at most ``max_rows``);
    a file naming cards by neither ``iccid`` nor ``vin`` is refused whole."""
    rows = parse_inventory(data, fmt, max_rows=max_rows, spec=IN_SERVICE_FILE)
    if not any("iccid" in row or "vin" in row for _, row in rows):
        raise BadRequest(
            "in_service.card_column",
            "文件须有 iccid（卡片编码）或 vin（车辆识别代号）列",
            "The file needs an iccid or a vin column",
            field="iccid",
        )
    return rows


def _since(raw: dict[str, str], today: date) -> date:
    text = raw.get("in_service_since", "")
    if not text:
        raise InvalidField(
            "in_service_since.required",
            "投入使用日期不能为空",
            "in_service_since is required",
            field="in_service_since",
        )
    try:
        since = date.fromisoformat(text)
    except ValueError:
        since = None
    if since is None or len(text) != 10 or since > today:
        raise InvalidField(
            "in_service_since.invalid",
            "投入使用日期应为不晚于今天的 YYYY-MM-DD 日期",
            "in_service_since must be a YYYY-MM-DD date not in the future",
            field="in_service_since",
        )
    return since


def parse_row(number: int, raw: dict[str, str], today: date) -> _Row:
    """One row's facts, checked on their own (the store is not read): a card by ``iccid`` or a vehicle by
    ``vin`` (one of them), the in-service date, a mainland mobile, a dealer code's format."""
    iccid_text, vin_text = raw.get("iccid", ""), raw.get("vin", "")
    if iccid_text and vin_text:
        raise InvalidField(
            "in_service.iccid_or_vin",
            "每行只能填写卡片编码或车辆识别代号之一",
            "Give either iccid or vin in a row, not both",
            field="iccid",
        )
    if not iccid_text and not vin_text:
        raise InvalidField(
            "in_service.card_required",
            "请填写卡片编码或车辆识别代号",
            "Give the card's iccid or the vehicle's vin",
            field="iccid",
        )
    iccid = validate("iccid", iccid_text, field="iccid").value if iccid_text else None
    vin = validate("vin", vin_text, field="vin").value if vin_text else None
    since = _since(raw, today)
    phone_text = raw.get("contact_phone", "")
    phone = validate("mobile", phone_text, field="contact_phone").value if phone_text else None
    dealer = raw.get("dealer_code") or None
    if dealer and not _DEALER.match(dealer):
        raise InvalidField(
            "dealer_code.format",
            "经销商代码应为 1–32 位字母、数字、下划线或连字符",
            "The dealer code must be 1-32 letters, digits, underscores or hyphens",
            field="dealer_code",
        )
    return _Row(number, iccid, vin, since, phone, dealer)


def _before_production(production: date) -> InvalidField:
    return InvalidField(
        "in_service_since.before_production",
        f"投入使用日期早于车辆生产日期（{production.isoformat()}）",
        f"in_service_since is before the vehicle's production date ({production.isoformat()})",
        field="in_service_since",
    )


def _dealer_unknown() -> NotFound:
    return NotFound(
        "dealer.not_found",
        "库存中没有该经销商代码的车辆，请核对经销商代码",
        "No vehicle of the inventory names this dealer code",
        field="dealer_code",
    )


def _dealer_mismatch(stored: str) -> Conflict:
    return Conflict(
        "in_service.dealer_mismatch",
        f"库存记录该车由经销商 {stored} 销售，与在用信息不一致",
        f"The inventory says dealer {stored} sold this vehicle; the feed names another",
        field="dealer_code",
    )


def _duplicate_card(iccid: str, first_row: int) -> InvalidField:
    return InvalidField(
        "in_service.duplicate_card",
        f"卡片 {iccid[-6:]} 已在第 {first_row} 行出现",
        f"The card ending {iccid[-6:]} is already in row {first_row}",
        field="iccid",
    )


def _no_cards() -> NotFound:
    return NotFound(
        "in_service.no_cards", "该车辆没有车联网卡", "The vehicle has no card in the inventory", field="vin"
    )


def _retired() -> Conflict:
    return Conflict(
        "in_service.retired",
        "该车联网卡已随车辆报废或更换零部件退出使用",
        "The card is retired (its vehicle scrapped, or the part replaced)",
        field="iccid",
    )


def _chunks(rows: Sequence[_Row], size: int) -> Iterator[Sequence[_Row]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


class InServiceImport:
    """Imports the in-service feed onto the inventory's cards (``POST /v1/inventory/in-service``,
    ``cheka inventory in-service``)."""

    def __init__(
        self,
        inventory: InventoryRepository,
        cards: InServiceCards,
        *,
        phone_hash: PhoneHash,
        seal: Callable[[str], str],
        known_dealer: Callable[[str], bool],
        retired: Callable[[Sequence[str]], set[str]] = lambda iccids: set(),
        clock: Clock = utc_now,
        chunk: int = CHUNK,
    ) -> None:
        self._inventory = inventory
        self._cards = cards
        self._phone_hash = phone_hash
        self._seal = seal
        self._known_dealer = known_dealer
        self._retired = retired
        self._clock = clock
        self._chunk = chunk

    def run(self, rows: Sequence[tuple[int, dict[str, str]]], *, actor: str) -> InServiceReport:
        report = InServiceReport(rows=len(rows))
        today = china_day(self._clock())
        parsed: list[_Row] = []
        for number, raw in rows:
            try:
                parsed.append(parse_row(number, raw, today))
            except DomainError as err:
                report.errors.append(_error(number, err))
        seen: dict[str, int] = {}  # ICCID -> the row that named it first
        dealers: dict[str, bool] = {}
        for chunk in _chunks(parsed, self._chunk):
            self._import_chunk(chunk, report, actor, seen, dealers)
        report.rejected_rows = len({e.row for e in report.errors})
        report.errors.sort(key=lambda e: e.row)
        return report

    # -- one chunk: batch reads, row checks against the store, guarded writes ----------------------------

    def _import_chunk(
        self,
        chunk: Sequence[_Row],
        report: InServiceReport,
        actor: str,
        seen: dict[str, int],
        dealers: dict[str, bool],
    ) -> None:
        by_vin = {r.vin: self._inventory.cards_of_vehicle(r.vin) for r in chunk if r.vin}
        iccids = {r.iccid for r in chunk if r.iccid} | {c.iccid for cs in by_vin.values() for c in cs}
        stored = self._cards.read(iccids)
        retired = self._retired(sorted(stored)) if stored else set()
        vins = {r.vin for r in chunk if r.vin} | {card.vin for card, _ in stored.values()}
        vehicles = self._inventory.get_vehicles(vins)
        fills: dict[str, Vehicle] = {}
        for row in chunk:
            try:
                self._check_row(row, by_vin, stored, retired, vehicles, seen, dealers, fills)
            except DomainError as err:
                report.errors.append(_error(row.number, err))
                continue
            for card in row.cards:
                seen[card.iccid] = row.number
        for vehicle in fills.values():
            self._inventory.update_vehicle(vehicle)
        for row in chunk:
            if not row.cards:
                continue
            phone_hash = self._phone_hash(row.phone) if row.phone else None
            for card in row.cards:
                try:
                    self._write_card(row, card, stored[card.iccid][1], phone_hash, report, actor)
                except DomainError as err:
                    report.errors.append(_error(row.number, err))

    def _check_row(
        self,
        row: _Row,
        by_vin: dict[str, list[Card]],
        stored: dict[str, tuple[Card, InServiceFacts | None]],
        retired: set[str],
        vehicles: dict[str, Vehicle],
        seen: dict[str, int],
        dealers: dict[str, bool],
        fills: dict[str, Vehicle],
    ) -> None:
        """Fill ``row.cards`` if the row holds against the store, or raise its error (nothing kept)."""
        if row.iccid is not None:
            if row.iccid not in stored:
                raise card_not_found()
            if row.iccid in retired:
                raise _retired()
            cards = [stored[row.iccid][0]]
        else:
            assert row.vin is not None
            if row.vin not in vehicles:
                raise vehicle_not_found()
            of_vehicle = [stored[c.iccid][0] for c in by_vin.get(row.vin, []) if c.iccid in stored]
            if not of_vehicle:
                raise _no_cards()
            cards = [c for c in of_vehicle if c.iccid not in retired]
            if not cards:
                raise _retired()
        for card in cards:
            if card.iccid in seen:
                raise _duplicate_card(card.iccid, seen[card.iccid])
        vehicle = vehicles.get(cards[0].vin)
        if vehicle is not None and vehicle.production_date and row.since < vehicle.production_date:
            raise _before_production(vehicle.production_date)
        if row.dealer is not None:
            if row.dealer not in dealers:
                dealers[row.dealer] = self._known_dealer(row.dealer)
            if not dealers[row.dealer]:
                raise _dealer_unknown()
            if vehicle is not None and vehicle.dealer_code and vehicle.dealer_code != row.dealer:
                raise _dealer_mismatch(vehicle.dealer_code)
            filled = fills.get(vehicle.vin) if vehicle is not None else None
            if filled is not None and filled.dealer_code != row.dealer:
                raise _dealer_mismatch(filled.dealer_code or "")
            if vehicle is not None and not vehicle.dealer_code and filled is None:
                # The vehicle was sold through this dealer: its accounts see it from now on (第二十条).
                fills[vehicle.vin] = vehicle.model_copy(update={"dealer_code": row.dealer})
        row.cards = cards

    def _write_card(
        self,
        row: _Row,
        card: Card,
        old: InServiceFacts | None,
        phone_hash: str | None,
        report: InServiceReport,
        actor: str,
    ) -> None:
        """Write the row's facts on one card unless it has them already; a card that moved meanwhile is
        read again and written once more."""
        for attempt in range(WRITE_TRIES):
            keeps_phone = phone_hash is None or (old is not None and old.contact_phone_hash == phone_hash)
            if old is not None and old.in_service_since == row.since and keeps_phone:
                report.cards_unchanged += 1
                return
            if phone_hash is not None and row.phone is not None and not keeps_phone:
                facts = InServiceFacts(row.since, phone_hash, self._seal(row.phone))
            elif old is not None:
                facts = InServiceFacts(row.since, old.contact_phone_hash, old.contact_phone_sealed)
            else:
                facts = InServiceFacts(row.since)
            changes = [f"in_service_since {row.since.isoformat()}"]
            if not keeps_phone:
                changes.append("contact phone")
            event = CardEvent(
                iccid=card.iccid,
                seq=card.version + 1,
                at=self._clock(),
                event="facts_updated",
                from_state=card.state,
                to_state=card.state,
                actor=actor,
                reason="in service: " + ", ".join(changes),
            )
            try:
                self._cards.mark(card, facts, event)
            except Conflict as err:
                if err.code != "card.changed" or attempt + 1 == WRITE_TRIES:
                    raise
                again = self._cards.read([card.iccid]).get(card.iccid)
                if again is None:
                    raise card_not_found() from err
                card, old = again
                continue
            if old is None:
                report.cards_marked += 1
            else:
                report.cards_updated += 1
            return
