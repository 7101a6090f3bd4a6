"""Vehicles and their IoT cards (第五条: vehicle and card facts; 第十四条: emergency-only until
registered)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.kernel.errors import Conflict, NotFound
from chalicelib.kernel.operators import Operator


class CardState(StrEnum):
    """State of a card's real-name registration (实名登记状态)."""

    UNREGISTERED = "unregistered"  # emergency functions only (第十四条)
    PENDING = "pending"  # submitted, awaiting the operator or a review
    REGISTERED = "registered"  # minimal necessary functions opened (第八条(三))
    DEREGISTERED = "deregistered"  # registration ended (注销, transfer, scrap, swap)


#: Legal moves of the card state machine. Everything else is refused.
TRANSITIONS: dict[CardState, frozenset[CardState]] = {
    CardState.UNREGISTERED: frozenset({CardState.PENDING}),
    CardState.PENDING: frozenset({CardState.REGISTERED, CardState.UNREGISTERED}),
    CardState.REGISTERED: frozenset({CardState.DEREGISTERED}),
    CardState.DEREGISTERED: frozenset({CardState.UNREGISTERED}),
}


class CardFunction(StrEnum):
    EMERGENCY = "emergency"  # 紧急呼叫: always available (第十四条)
    TELEMATICS = "telematics"  # vehicle data link to the OEM
    DATA = "data"  # in-car internet services


def functions_for(state: CardState) -> list[CardFunction]:
    """The functions a card may have open in ``state``: minimal necessary ones once registered."""
    if state is CardState.REGISTERED:
        return [CardFunction.EMERGENCY, CardFunction.TELEMATICS, CardFunction.DATA]
    return [CardFunction.EMERGENCY]


def needed_functions(
    vehicle_functions: Sequence[CardFunction] | None, default: Sequence[CardFunction]
) -> list[CardFunction]:
    """What a registration asks the operator to open (最小必要, 第十四条): emergency always, and the
    functions the vehicle's model needs (from the inventory), or the OEM's default when it names none."""
    wanted = {CardFunction.EMERGENCY, *(default if vehicle_functions is None else vehicle_functions)}
    return [f for f in CardFunction if f in wanted]


def check_transition(iccid: str, current: CardState, target: CardState) -> None:
    if target not in TRANSITIONS[current]:
        raise Conflict(
            "card.illegal_transition",
            f"车联网卡状态不能从 {current.value} 变为 {target.value}",
            f"A card cannot go from {current.value} to {target.value}",
            field="state",
            details={"iccid": iccid, "from": current.value, "to": target.value},
        )


def vehicle_not_found() -> NotFound:
    return NotFound(
        "vehicle.not_found", "未找到该车辆，请核对车辆识别代号", "No vehicle with this VIN", field="vin"
    )


def card_not_found(field: str = "iccid") -> NotFound:
    """No card with the ICCID given in ``field`` (a card must be imported into the inventory first)."""
    return NotFound("card.not_found", "未找到该车联网卡", "No card with this ICCID", field=field)


class Vehicle(BaseModel):
    """A vehicle of the OEM's inventory (车辆信息: VIN, engine number, brand, model, colour)."""

    model_config = ConfigDict(frozen=True)

    vin: str
    engine_no: str
    brand: str
    model: str
    colour: str
    production_date: date | None = None
    dealer_code: str | None = None
    #: Keyed hash of the sales / in-service record's contact phone (销售记录联系电话): a person whose
    #: verified phone has this hash shows they hold the car.
    owner_phone_hash: str | None = Field(default=None, repr=False)
    #: The functions the model needs beside emergency (inventory column ``functions``); ``None``: the
    #: OEM default (``CHEKA_DEFAULT_FUNCTIONS``).
    functions: tuple[CardFunction, ...] | None = None

    def facts(self) -> tuple[object, ...]:
        return (
            self.engine_no,
            self.brand,
            self.model,
            self.colour,
            self.production_date,
            self.dealer_code,
            self.owner_phone_hash,
            self.functions,
        )


class Card(BaseModel):
    """An IoT SIM built into a vehicle (车联网卡: ICCID, MSISDN, operator)."""

    model_config = ConfigDict(frozen=True)

    iccid: str
    msisdn: str
    operator: Operator
    vin: str
    state: CardState = CardState.UNREGISTERED
    functions: list[CardFunction] = Field(default_factory=lambda: [CardFunction.EMERGENCY])
    version: int = 1
    holder_id: str | None = None
    updated_at: datetime | None = None
    #: The day the vehicle went into use (the OEM's in-service feed); ``None``: not known to be in use.
    #: A card in use and not registered is a backfill target (补登记, 第二十二条).
    in_service_since: date | None = None


class CardEvent(BaseModel):
    """One entry of a card's history; ``seq`` equals the card version it produced."""

    model_config = ConfigDict(frozen=True)

    iccid: str
    seq: int
    at: datetime
    event: str  # imported, facts_updated, transition
    from_state: CardState | None = None
    to_state: CardState
    actor: str
    reason: str | None = None


#: The backfill index (cards index ``by-backfill``) is split into this many shards, so a wave's planners
#: read it in parallel and no index partition grows with the fleet.
BACKFILL_SHARDS = 16
BACKFILL_SHARD_NAMES: tuple[str, ...] = tuple(f"{i:02d}" for i in range(BACKFILL_SHARDS))
#: The states of a card that a backfill campaign reminds about: never registered, or its registration
#: ended while the car stays in use. A pending card is being registered and is not reminded.
BACKFILL_STATES = frozenset({CardState.UNREGISTERED, CardState.DEREGISTERED})


def backfill_shard_of(iccid: str) -> str:
    """The card's shard of the backfill index ("00".."15"), stable for an ICCID."""
    digest = hashlib.sha256(iccid.encode("utf-8")).digest()
    return BACKFILL_SHARD_NAMES[int.from_bytes(digest[:4], "big") % BACKFILL_SHARDS]


def backfill_shard(card: Card) -> str | None:
    """The shard under which the card is in the backfill index, or ``None`` when it is not a target: it
    is in the index only while it is in service and in a ``BACKFILL_STATES`` state."""
    if card.in_service_since is None or card.state not in BACKFILL_STATES:
        return None
    return backfill_shard_of(card.iccid)
