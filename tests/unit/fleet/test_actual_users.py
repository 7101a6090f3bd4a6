"""实际使用人 (第九条(四)) rules: periods never overlap, a change ends the user of the moment, dates are
bounded, personal fields are masked; the service pushes a change only to operators that want it, and the
push's wire form carries the user encrypted and the period in clear."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from chalicelib.cards.domain.inventory import Card, CardFunction, CardState, Vehicle
from chalicelib.cards.domain.lifecycle import CardLifecycle, PushKind
from chalicelib.fleet.actual_users import ActualUsers, ActualUserStore, wanting_operators
from chalicelib.fleet.actual_users_domain import (
    ActualUser,
    ActualUserInput,
    PushState,
    changed,
    check_end,
    plan_change,
)
from chalicelib.kernel.errors import Conflict, DomainError, InvalidField, NotFound
from chalicelib.kernel.operators import Operator
from chalicelib.kernel.personal import IdType, id_lookup_value
from chalicelib.operators import wire
from chalicelib.operators.domain.outbox import OutboxRecord, OutboxStatus
from chalicelib.operators.keys import generate_operator_keys
from tests.fakes.cards import FakeInventory
from tests.fakes.crypto import FakeHasher
from tests.fakes.operators import FakeOutboxStore, FakePushQueue

TODAY = date(2025, 6, 10)
NOW = datetime(2025, 6, 10, 4, 0, tzinfo=UTC)  # 12:00 in China
USCC = "91310000MA1FL0000N"
OTHER_USCC = "91110108MA0000000A"
ICCID = "89860012345678901234"
VIN = "JHMCM56557C404453"


def _user(record_id: str, valid_from: date, valid_to: date | None = None, **kw: object) -> ActualUser:
    values: dict[str, object] = {
        "iccid": ICCID,
        "record_id": record_id,
        "uscc": USCC,
        "name": "张三丰",
        "id_type": IdType.RESIDENT_ID,
        "id_number": "11010519491231002X",
        "phone": "13800138000",
        "valid_from": valid_from,
        "valid_to": valid_to,
        "created_at": NOW,
        "created_by": "acct-legal",
        "id_hash": "h",
    }
    values.update(kw)
    return ActualUser(**values)  # type: ignore[arg-type]


def _wanted(valid_from: date, valid_to: date | None = None, name: str = "李四") -> ActualUserInput:
    return ActualUserInput(
        name=name,
        id_type=IdType.RESIDENT_ID,
        id_number="11010519491231002X",
        phone="13912345678",
        valid_from=valid_from,
        valid_to=valid_to,
    )


def _code(err: pytest.ExceptionInfo[DomainError]) -> tuple[str, str | None]:
    assert err.value.message_zh
    assert err.value.message_en
    return err.value.code, err.value.field


# -- the period rules -----------------------------------------------------------------------------------


def test_a_first_user_ends_nobody_and_a_change_ends_the_open_user_on_the_new_start() -> None:
    assert plan_change([], _wanted(TODAY), TODAY) is None
    open_user = _user("au_1", TODAY - timedelta(days=30))
    assert plan_change([open_user], _wanted(TODAY), TODAY) == open_user


def test_a_user_with_a_planned_end_after_the_new_start_is_ended_on_the_new_start() -> None:
    planned = _user("au_1", TODAY - timedelta(days=30), TODAY + timedelta(days=20))
    assert plan_change([planned], _wanted(TODAY), TODAY) == planned


def test_a_new_period_after_a_closed_one_leaves_a_gap_and_ends_nobody() -> None:
    closed = _user("au_1", TODAY - timedelta(days=30), TODAY - timedelta(days=10))
    assert plan_change([closed], _wanted(TODAY - timedelta(days=5)), TODAY) is None


@pytest.mark.parametrize(
    ("valid_from", "valid_to"),
    [
        (date(2025, 5, 1), None),  # the open user's own start: the change would leave it no day
        (date(2025, 4, 20), date(2025, 5, 5)),  # backdated into the closed user's period
        (date(2025, 3, 1), date(2025, 4, 2)),  # reaching into the first user's period
    ],
)
def test_periods_that_overlap_a_recorded_user_are_refused_as_a_field_error(
    valid_from: date, valid_to: date | None
) -> None:
    first = _user("au_1", date(2025, 4, 1), date(2025, 5, 1))
    second = _user("au_2", date(2025, 5, 1))
    with pytest.raises(InvalidField) as err:
        plan_change([second, first], _wanted(valid_from, valid_to), TODAY)
    assert _code(err) == ("actual_user.period_overlaps", "valid_from")


def test_a_start_more_than_a_day_ahead_is_refused_and_tomorrow_is_not() -> None:
    assert plan_change([], _wanted(TODAY + timedelta(days=1)), TODAY) is None
    with pytest.raises(InvalidField) as err:
        plan_change([], _wanted(TODAY + timedelta(days=2)), TODAY)
    assert _code(err) == ("actual_user.from_too_far_ahead", "valid_from")


@pytest.mark.parametrize("days", [0, -3])
def test_an_end_not_after_the_start_is_refused(days: int) -> None:
    with pytest.raises(InvalidField) as err:
        plan_change([], _wanted(TODAY, TODAY + timedelta(days=days)), TODAY)
    assert _code(err) == ("actual_user.period_reversed", "valid_to")


def test_ending_checks_the_record_is_open_and_the_end_follows_the_start() -> None:
    open_user = _user("au_1", TODAY - timedelta(days=3))
    check_end(open_user, TODAY, TODAY)
    with pytest.raises(InvalidField) as reversed_err:
        check_end(open_user, TODAY - timedelta(days=3), TODAY)
    assert _code(reversed_err) == ("actual_user.period_reversed", "valid_to")
    with pytest.raises(InvalidField) as ahead:
        check_end(open_user, TODAY + timedelta(days=2), TODAY)
    assert _code(ahead) == ("actual_user.to_too_far_ahead", "valid_to")
    with pytest.raises(Conflict) as done:
        check_end(replace(open_user, valid_to=TODAY - timedelta(days=1)), TODAY, TODAY)
    assert done.value.code == "actual_user.already_ended"


def test_masking_hides_name_id_and_phone_but_keeps_their_ends() -> None:
    masked = _user("au_1", TODAY).masked()
    assert masked == {"name": "张**", "id_number": "1101**********002X", "phone": "138****8000"}
    assert _user("au_1", TODAY).current_on(TODAY)
    assert not _user("au_1", TODAY, TODAY + timedelta(days=1)).current_on(TODAY + timedelta(days=1))


# -- the service with fakes -----------------------------------------------------------------------------


class MemoryStore(ActualUserStore):
    """The records in memory, with the head version guard of the real store."""

    def __init__(self, cards: Sequence[Card] = ()) -> None:
        self.items: dict[str, dict[str, ActualUser]] = {}
        self.heads: dict[str, int] = {}
        self.pushes: list[OutboxRecord] = []
        self.cards = list(cards)

    def records(self, iccid: str) -> tuple[list[ActualUser], int]:
        kept = sorted(self.items.get(iccid, {}).values(), key=lambda r: r.valid_from, reverse=True)
        return kept, self.heads.get(iccid, 0)

    def commit(
        self, iccid: str, head_version: int, written: Sequence[ActualUser], pushes: Sequence[OutboxRecord]
    ) -> None:
        if self.heads.get(iccid, 0) != head_version:
            raise changed()
        self.heads[iccid] = head_version + 1
        for record in written:
            self.items.setdefault(iccid, {})[record.record_id] = record
        self.pushes.extend(pushes)

    def settle(self, record: ActualUser, state: PushState, reason: str | None) -> None:
        self.items[record.iccid][record.record_id] = replace(record, push_state=state, push_reason=reason)

    def holder_cards(
        self, holder_id_hash: str, limit: int, cursor: str | None
    ) -> tuple[list[Card], str | None]:
        return self.cards[:limit], None


class World:
    def __init__(self, wanting: Collection[Operator]) -> None:
        self.hasher = FakeHasher()
        self.inventory = FakeInventory()
        self.outbox = FakeOutboxStore(self.inventory)
        self.queue = FakePushQueue()
        self.inventory.vehicles[VIN] = Vehicle(
            vin=VIN, engine_no="K20A123", brand="红旗", model="H9", colour="黑"
        )
        card = Card(
            iccid=ICCID,
            msisdn="1440012345678",
            operator=Operator.CHINA_MOBILE,
            vin=VIN,
            state=CardState.REGISTERED,
            functions=[CardFunction.EMERGENCY, CardFunction.TELEMATICS],
            holder_id="fe-fb_" + "0" * 24,  # the enterprise party of the batch that registered it
        )
        self.inventory.cards[ICCID] = card
        self.enterprise_hash = self.hasher.digest(id_lookup_value(IdType.USCC, USCC))
        self.outbox.lives[ICCID] = CardLifecycle(
            iccid=ICCID, holder_id_hash=self.enterprise_hash, message_id="reg-push-1"
        )
        self.store = MemoryStore([card])
        self.clock = NOW
        self.service = ActualUsers(
            self.store,
            self.inventory,
            self.outbox,
            self.queue,
            self.hasher,
            wanting=wanting,
            clock=lambda: self.clock,
        )


def test_a_change_ends_the_user_of_the_moment_and_is_pushed_to_an_operator_that_wants_it() -> None:
    world = World(wanting_operators(["china_mobile", "not_an_operator"]))
    first = world.service.record(USCC, "acct-legal", ICCID, _wanted(TODAY - timedelta(days=10), name="张三"))
    second = world.service.record(USCC, "acct-agent", ICCID, _wanted(TODAY))
    history = world.service.history(USCC, ICCID)
    assert [r.record_id for r in history] == [second.record_id, first.record_id]  # newest first
    assert (history[1].valid_to, history[1].ended_by) == (TODAY, "acct-agent")
    assert history[0].valid_to is None
    assert [r.push_state for r in history] == [PushState.PENDING, PushState.PENDING]
    # Each change is one outbox record, woken on the queue; the second names the record it ends
    assert [p.kind for p in world.store.pushes] == [PushKind.ACTUAL_USER, PushKind.ACTUAL_USER]
    pushed = world.store.pushes[-1].message
    assert pushed.actual_user is not None
    assert (pushed.actual_user.record_ref, pushed.actual_user.ended_ref) == (
        second.record_id,
        first.record_id,
    )
    assert pushed.holder is not None
    assert pushed.holder.name == "李四"
    assert pushed.holder_id_hash == world.enterprise_hash  # the card's registration, unchanged
    assert [json.loads(body)["record_id"] for body, _ in world.queue.sent] == [
        p.record_id for p in world.store.pushes
    ]
    # The operator's answer settles the outbox record; the actual user shows it once read again
    world.outbox.records = {p.record_id: p for p in world.store.pushes}
    accepted = world.outbox.records[second.push_record_id or ""]
    world.outbox.records[accepted.record_id] = accepted.model_copy(update={"status": OutboxStatus.ACCEPTED})
    assert world.service.history(USCC, ICCID)[0].push_state is PushState.ACCEPTED
    assert world.store.items[ICCID][second.record_id].push_state is PushState.ACCEPTED


def test_an_operator_that_does_not_want_actual_users_gets_nothing() -> None:
    world = World(wanting_operators(["china_unicom"]))
    recorded = world.service.record(USCC, "acct-legal", ICCID, _wanted(TODAY))
    assert recorded.push_state is PushState.NOT_WANTED
    assert (world.store.pushes, world.queue.sent) == ([], [])
    ended = world.service.end(USCC, "acct-legal", ICCID, recorded.record_id, TODAY + timedelta(days=1))
    assert (ended.valid_to, ended.push_state) == (TODAY + timedelta(days=1), PushState.NOT_WANTED)
    assert world.store.pushes == []


def test_a_card_of_another_enterprise_or_not_held_is_unknown_and_nothing_is_written() -> None:
    world = World({Operator.CHINA_MOBILE})
    for uscc, iccid in ((OTHER_USCC, ICCID), (USCC, "89860000000000000000")):
        with pytest.raises(NotFound) as err:
            world.service.record(uscc, "acct", iccid, _wanted(TODAY))
        assert err.value.code == "card.not_found"
        with pytest.raises(NotFound):
            world.service.history(uscc, iccid)
    world.inventory.cards[ICCID] = world.inventory.cards[ICCID].model_copy(
        update={"state": CardState.UNREGISTERED}
    )
    with pytest.raises(NotFound):
        world.service.record(USCC, "acct", ICCID, _wanted(TODAY))
    assert (world.store.items, world.store.pushes) == ({}, [])


def test_the_enterprise_vehicles_show_each_card_with_its_batch_and_todays_user() -> None:
    world = World({Operator.CHINA_MOBILE})
    world.service.record(USCC, "acct-legal", ICCID, _wanted(TODAY - timedelta(days=2)))
    (entry,), cursor = world.service.vehicles(USCC, 20, None)
    assert cursor is None
    assert (entry.card.iccid, entry.vehicle and entry.vehicle.vin, entry.batch_id) == (
        ICCID,
        VIN,
        "fb_" + "0" * 24,
    )
    assert entry.actual_user is not None
    assert entry.actual_user.name == "李四"


def test_the_push_of_an_actual_user_round_trips_the_wire_with_the_user_encrypted() -> None:
    world = World({Operator.CHINA_MOBILE})
    world.service.record(USCC, "acct-legal", ICCID, _wanted(TODAY, TODAY + timedelta(days=30)))
    message = world.store.pushes[0].message
    keys = generate_operator_keys(Operator.CHINA_MOBILE)
    body = wire.encode_push_body(message, keys)
    doc = json.loads(body)
    assert doc["msgType"] == "ACTUAL_USER_CHANGE"
    assert doc["bizContent"]["actualUser"]["validFrom"] == TODAY.isoformat()
    assert "李四" not in body.decode()
    assert "11010519491231002X" not in body.decode()
    assert wire.decode_push(body, keys) == message
    # A register push carries no actualUser, and an ACTUAL_USER_CHANGE without one is malformed
    assert (
        "actualUser"
        not in json.loads(
            wire.encode_push_body(
                message.model_copy(update={"kind": PushKind.REGISTER, "actual_user": None}), keys
            )
        )["bizContent"]
    )
    del doc["bizContent"]["actualUser"]
    with pytest.raises(wire.WireError):
        wire.decode_push(json.dumps(doc).encode(), keys)
