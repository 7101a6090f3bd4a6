"""Inventory import (第四条/第五条: the OEM records each vehicle's cards before sale) and card moves.

An import is idempotent: rows already in the store with the same facts change nothing; changed facts
are updated without touching a card's registration state; invalid rows are reported one by one
(row, field, code, messages) while the valid rows are imported. Problems with the file as a whole
(format, columns, size) refuse it entirely and write nothing.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel

from chalicelib.cards.domain.inventory import Card, CardEvent, CardFunction, Vehicle
from chalicelib.cards.ports import InventoryRepository
from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.errors import (
    BadRequest,
    Conflict,
    DomainError,
    InvalidField,
    PayloadTooLarge,
)
from chalicelib.kernel.validators import validate

ImportFormat = Literal["csv", "json"]


COLUMNS = (
    "vin",
    "engine_no",
    "brand",
    "model",
    "colour",
    "production_date",
    "dealer_code",
    "iccid",
    "msisdn",
    "owner_phone",
    "functions",
)


REQUIRED = ("vin", "engine_no", "brand", "model", "colour", "iccid", "msisdn")


ALIASES = {
    "color": "colour",
    "engine_number": "engine_no",
    "dealer": "dealer_code",
    "sales_phone": "owner_phone",
}


@dataclass(frozen=True)
class FileColumns:
    """The columns a CSV or JSON upload may carry, those it must, and other names accepted for them."""

    names: tuple[str, ...]
    required: tuple[str, ...]
    aliases: Mapping[str, str]


INVENTORY_FILE = FileColumns(COLUMNS, REQUIRED, ALIASES)


#: The keyed hash of a mainland mobile number (``sms.codes.SmsCodeService.phone_hash``): the sales
#: record's contact phone is kept only as this hash, to compare with a person's verified phone.
PhoneHash = Callable[[str], str]


#: Rows handled per batch: bounds memory and keeps batch reads at DynamoDB's sizes.
CHUNK = 2000


_ENGINE_NO = re.compile(r"^[A-Za-z0-9\-]{4,32}$")


_DEALER = re.compile(r"^[A-Za-z0-9_\-]{1,32}$")


class RowError(BaseModel):
    row: int
    field: str | None = None
    code: str
    message_zh: str
    message_en: str


class ImportReport(BaseModel):
    rows: int = 0
    vehicles_created: int = 0
    vehicles_updated: int = 0
    vehicles_unchanged: int = 0
    cards_created: int = 0
    cards_updated: int = 0
    cards_unchanged: int = 0
    rejected_rows: int = 0
    errors: list[RowError] = []


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data.lstrip("\ufeff")
    for encoding in ("utf-8-sig", "gb18030"):  # spreadsheets saved on Chinese Windows use GB18030
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise BadRequest(
        "import.encoding", "文件编码无法识别，请使用 UTF-8", "The file is not UTF-8 (or GB18030) text"
    )


def _column(name: str, spec: FileColumns = INVENTORY_FILE) -> str:
    key = name.strip().lower()
    return spec.aliases.get(key, key)


def _columns(
    names: Sequence[str], *, need_required: bool = True, spec: FileColumns = INVENTORY_FILE
) -> list[str]:
    cols = [_column(n, spec) for n in names]
    unknown = [c for c in cols if c not in spec.names]
    if unknown:
        raise BadRequest(
            "import.unknown_column",
            f"未知的列：{', '.join(unknown)}",
            f"Unknown column(s): {', '.join(unknown)}; expected {', '.join(spec.names)}",
            field=unknown[0],
        )
    missing = [c for c in spec.required if c not in cols] if need_required else []
    if missing:
        raise BadRequest(
            "import.missing_column",
            f"缺少必填列：{', '.join(missing)}",
            f"Missing required column(s): {', '.join(missing)}",
            field=missing[0],
        )
    return cols


def parse_inventory(
    data: bytes | str, fmt: ImportFormat, *, max_rows: int, spec: FileColumns = INVENTORY_FILE
) -> list[tuple[int, dict[str, str]]]:
    """Rows as ``(row number, {column: text})``; CSV rows are numbered as lines (header = 1). ``spec``:
    the file's columns (the inventory's by default; the in-service feed's is another)."""
    text = _decode(data)
    rows: list[tuple[int, dict[str, str]]] = []
    if fmt == "csv":
        reader = csv.reader(io.StringIO(text))
        header = next(reader, None)
        if not header:
            raise BadRequest("import.empty", "文件为空", "The file is empty")
        cols = _columns(header, spec=spec)
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            rows.append((reader.line_num, dict(zip(cols, (v.strip() for v in values), strict=False))))
            if len(rows) > max_rows:
                raise _too_many(max_rows)
    else:
        try:
            doc: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadRequest(
                "import.json", f"JSON 格式错误（第 {exc.lineno} 行）", f"Malformed JSON (line {exc.lineno})"
            ) from exc
        items = doc.get("rows") if isinstance(doc, dict) else doc
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise BadRequest(
                "import.json_shape",
                "JSON 须为对象数组",
                'JSON must be an array of objects (or {"rows": [...]})',
            )
        if len(items) > max_rows:
            raise _too_many(max_rows)
        cols_seen: set[str] = set()
        for i, item in enumerate(items, start=1):
            row = {_column(k, spec): "" if v is None else str(v).strip() for k, v in item.items()}
            cols_seen.update(row)
            rows.append((i, row))
        _columns(sorted(cols_seen), need_required=False, spec=spec)  # a missing value is a row error
    if not rows:
        raise BadRequest("import.empty", "文件没有数据行", "The file has no data rows")
    return rows


def _too_many(max_rows: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        "import.too_many_rows",
        f"单次导入最多 {max_rows} 行，请拆分文件",
        f"At most {max_rows} rows per import; split the file",
    )


@dataclass
class _Row:
    number: int
    vehicle: Vehicle
    card: Card


def _required(row: dict[str, str], name: str, zh: str) -> str:
    value = row.get(name, "")
    if not value:
        raise InvalidField(f"{name}.required", f"{zh}不能为空", f"{name} is required", field=name)
    return value


def _text(row: dict[str, str], name: str, zh: str, limit: int = 64) -> str:
    value = _required(row, name, zh)
    if len(value) > limit:
        raise InvalidField(
            f"{name}.too_long",
            f"{zh}最多 {limit} 个字符",
            f"{name} is longer than {limit} characters",
            field=name,
        )
    return value


def _owner_phone(row: dict[str, str], phone_hash: PhoneHash | None) -> str | None:
    """The sales record's contact phone (optional column ``owner_phone``) as its keyed hash."""
    raw = row.get("owner_phone") or ""
    if not raw:
        return None
    mobile = validate("mobile", raw, field="owner_phone").value
    if phone_hash is None:
        raise InvalidField(
            "owner_phone.unsupported",
            "此处导入不接受销售记录联系电话",
            "This import cannot keep the sales record's contact phone",
            field="owner_phone",
        )
    return phone_hash(mobile)


_FUNCTION_SEPARATORS = re.compile(r"[|;,\s]+")


def _functions(row: dict[str, str]) -> tuple[CardFunction, ...] | None:
    """The functions the vehicle's model needs beside emergency (optional column ``functions``: names
    separated by ``|``, ``;``, ``,`` or spaces; emergency is always opened). Empty: the OEM default."""
    raw = row.get("functions") or ""
    names = {n.lower() for n in _FUNCTION_SEPARATORS.split(raw) if n}
    if not names:
        return None
    known = {f.value for f in CardFunction}
    unknown = sorted(names - known)
    if unknown:
        raise InvalidField(
            "functions.unknown",
            f"未知的车联网卡功能：{', '.join(unknown)}（可选 {', '.join(sorted(known))}）",
            f"Unknown card function(s): {', '.join(unknown)}; expected {', '.join(sorted(known))}",
            field="functions",
        )
    return tuple(f for f in CardFunction if f.value in names and f is not CardFunction.EMERGENCY)


def msisdn_taken(msisdn: str, holder_iccid: str) -> Conflict:
    """A number already given to another card (one card per MSISDN): the row is refused."""
    return Conflict(
        "inventory.msisdn_taken",
        f"车联网卡号码尾号 {msisdn[-4:]} 已属于另一张卡（卡片编码 {holder_iccid}）；更换号码请先变更原卡",
        f"The MSISDN ending {msisdn[-4:]} belongs to another card ({holder_iccid}); change that card first",
        field="msisdn",
    )


def _parse_row(number: int, row: dict[str, str], today: date, phone_hash: PhoneHash | None = None) -> _Row:
    vin = validate("vin", _required(row, "vin", "车辆识别代号"), field="vin").value
    engine_no = _required(row, "engine_no", "发动机号码").upper()
    if not _ENGINE_NO.match(engine_no):
        raise InvalidField(
            "engine_no.format",
            "发动机号码应为 4–32 位字母、数字或连字符",
            "The engine number must be 4-32 letters, digits or hyphens",
            field="engine_no",
        )
    production: date | None = None
    if row.get("production_date"):
        try:
            production = date.fromisoformat(row["production_date"])
        except ValueError:
            production = None
        if production is None or production > today:
            raise InvalidField(
                "production_date.invalid",
                "生产日期应为不晚于今天的 YYYY-MM-DD 日期",
                "The production date must be a YYYY-MM-DD date not in the future",
                field="production_date",
            )
    dealer = row.get("dealer_code") or None
    if dealer and not _DEALER.match(dealer):
        raise InvalidField(
            "dealer_code.format",
            "经销商代码应为 1–32 位字母、数字、下划线或连字符",
            "The dealer code must be 1-32 letters, digits, underscores or hyphens",
            field="dealer_code",
        )
    vehicle = Vehicle(
        vin=vin,
        engine_no=engine_no,
        brand=_text(row, "brand", "品牌"),
        model=_text(row, "model", "车型"),
        colour=_text(row, "colour", "车身颜色", 32),
        production_date=production,
        dealer_code=dealer,
        owner_phone_hash=_owner_phone(row, phone_hash),
        functions=_functions(row),
    )
    iccid = validate("iccid", _required(row, "iccid", "卡片编码"), field="iccid")
    msisdn = validate("msisdn", _required(row, "msisdn", "车联网卡号码"), field="msisdn")
    if msisdn.operator is not None and msisdn.operator != iccid.operator:
        raise InvalidField(
            "card.operator_mismatch",
            "卡片编码与车联网卡号码不属于同一电信企业",
            f"The ICCID belongs to {iccid.operator} but the MSISDN to {msisdn.operator}",
            field="msisdn",
        )
    assert iccid.operator is not None
    card = Card(iccid=iccid.value, msisdn=msisdn.value, operator=iccid.operator, vin=vin)
    return _Row(number, vehicle, card)


def _row_error(number: int, err: DomainError) -> RowError:
    return RowError(
        row=number, field=err.field, code=err.code, message_zh=err.message_zh, message_en=err.message_en
    )


def _chunks(rows: Sequence[_Row], size: int) -> Iterator[Sequence[_Row]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


@dataclass
class _Plan:
    new_vehicles: dict[str, Vehicle] = field(default_factory=dict)
    changed_vehicles: dict[str, Vehicle] = field(default_factory=dict)
    new_cards: list[Card] = field(default_factory=list)
    changed_cards: list[tuple[Card, str]] = field(default_factory=list)


def import_inventory(
    rows: Sequence[tuple[int, dict[str, str]]],
    repo: InventoryRepository,
    *,
    actor: str,
    clock: Clock = utc_now,
    phone_hash: PhoneHash | None = None,
) -> ImportReport:
    """Validate every row, then write what is new or changed in batches. A row without ``owner_phone``
    (or ``functions``) keeps what an earlier import gave the vehicle. A row giving a card an MSISDN that
    another card holds is refused (``inventory.msisdn_taken``): each number is claimed for its card by
    a conditional write before the card is written, so concurrent imports leave it with one card."""
    report = ImportReport(rows=len(rows))
    today = clock().date()
    parsed: list[_Row] = []
    vehicles_in_file: dict[str, Vehicle] = {}
    iccids: set[str] = set()
    msisdns: dict[str, str] = {}
    for number, raw in rows:
        try:
            row = _parse_row(number, raw, today, phone_hash)
            first = vehicles_in_file.setdefault(row.vehicle.vin, row.vehicle)
            if first != row.vehicle:
                raise InvalidField(
                    "import.vehicle_mismatch",
                    "同一车辆识别代号的各行车辆信息不一致",
                    "Rows of the same VIN disagree on the vehicle's facts",
                    field="vin",
                )
            if row.card.iccid in iccids:
                raise InvalidField(
                    "import.duplicate_iccid",
                    "卡片编码在文件中重复",
                    "The ICCID appears twice in the file",
                    field="iccid",
                )
            if msisdns.get(row.card.msisdn, row.card.iccid) != row.card.iccid:
                raise InvalidField(
                    "import.duplicate_msisdn",
                    "车联网卡号码在文件中重复",
                    "The MSISDN appears twice in the file",
                    field="msisdn",
                )
        except DomainError as err:
            report.errors.append(_row_error(number, err))
            continue
        iccids.add(row.card.iccid)
        msisdns[row.card.msisdn] = row.card.iccid
        parsed.append(row)

    for chunk in _chunks(parsed, CHUNK):
        _import_chunk(chunk, repo, report, actor, clock)
    report.rejected_rows = len({e.row for e in report.errors})
    report.errors.sort(key=lambda e: e.row)
    return report


def _numbers_held(
    chunk: Sequence[_Row], existing_cards: dict[str, Card], repo: InventoryRepository, report: ImportReport
) -> list[_Row]:
    """The rows whose MSISDN is (now) held by their own card; the others are reported and dropped.

    Numbers not held yet are claimed for their cards (one conditional write each: of two imports
    racing for one number, one wins and the other's row is refused). A card moved to another vehicle
    keeps its refusal (``card.vin_conflict``) and claims nothing."""
    holders = repo.msisdn_holders({r.card.msisdn for r in chunk})
    kept: list[_Row] = []
    claims: dict[str, str] = {}
    for row in chunk:
        holder = holders.get(row.card.msisdn, row.card.iccid)
        if holder != row.card.iccid:
            report.errors.append(_row_error(row.number, msisdn_taken(row.card.msisdn, holder)))
            continue
        stored = existing_cards.get(row.card.iccid)
        if row.card.msisdn not in holders and (stored is None or stored.vin == row.card.vin):
            claims[row.card.msisdn] = row.card.iccid
        kept.append(row)
    lost = repo.claim_msisdns(claims) if claims else set()
    if not lost:
        return kept
    now_held = repo.msisdn_holders(lost)
    for row in kept:
        if row.card.msisdn in lost:
            holder = now_held.get(row.card.msisdn, "?")
            report.errors.append(_row_error(row.number, msisdn_taken(row.card.msisdn, holder)))
    return [r for r in kept if r.card.msisdn not in lost]


def _import_chunk(
    chunk: Sequence[_Row], repo: InventoryRepository, report: ImportReport, actor: str, clock: Clock
) -> None:
    existing_vehicles = repo.get_vehicles({r.vehicle.vin for r in chunk})
    existing_cards = repo.get_cards([r.card.iccid for r in chunk])
    chunk = _numbers_held(chunk, existing_cards, repo, report)
    plan = _Plan()
    for row in chunk:
        stored = existing_cards.get(row.card.iccid)
        if stored is not None and stored.vin != row.card.vin:
            report.errors.append(
                _row_error(
                    row.number,
                    Conflict(
                        "card.vin_conflict",
                        "该卡已属于另一辆车；换卡请使用更换零部件流程",
                        f"The card belongs to vehicle {stored.vin}; use a part replacement (swap) to move it",
                        field="iccid",
                    ),
                )
            )
            continue
        vin = row.vehicle.vin
        old = existing_vehicles.get(vin)
        if old is not None and row.vehicle.owner_phone_hash is None and old.owner_phone_hash:
            row.vehicle = row.vehicle.model_copy(update={"owner_phone_hash": old.owner_phone_hash})
        if old is not None and row.vehicle.functions is None and old.functions is not None:
            row.vehicle = row.vehicle.model_copy(update={"functions": old.functions})
        if old is None:
            plan.new_vehicles.setdefault(vin, row.vehicle)
        elif old != row.vehicle and vin not in plan.changed_vehicles:
            plan.changed_vehicles[vin] = row.vehicle
        if stored is None:
            plan.new_cards.append(row.card)
        elif stored.msisdn != row.card.msisdn:
            plan.changed_cards.append((stored, row.card.msisdn))
        else:
            report.cards_unchanged += 1

    at = clock()
    events = [
        CardEvent(iccid=c.iccid, seq=1, at=at, event="imported", to_state=c.state, actor=actor)
        for c in plan.new_cards
    ]
    repo.put_new(list(plan.new_vehicles.values()), plan.new_cards, events)
    for vehicle in plan.changed_vehicles.values():
        repo.update_vehicle(vehicle)
    for card, msisdn in plan.changed_cards:
        event = CardEvent(
            iccid=card.iccid,
            seq=card.version + 1,
            at=at,
            event="facts_updated",
            from_state=card.state,
            to_state=card.state,
            actor=actor,
            reason=f"msisdn {card.msisdn[-4:]} -> {msisdn[-4:]}",
        )
        repo.update_card_facts(card, msisdn, event)
    touched = {r.vehicle.vin for r in chunk}
    report.vehicles_created += len(plan.new_vehicles)
    report.vehicles_updated += len(plan.changed_vehicles)
    report.vehicles_unchanged += len((touched & existing_vehicles.keys()) - plan.changed_vehicles.keys())
    report.cards_created += len(plan.new_cards)
    report.cards_updated += len(plan.changed_cards)
