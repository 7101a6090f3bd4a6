"""The card lifecycle on the embedded AWS (moto): registration answered by the operator, the one-ID
limit, de-registration, transfer, scrap, part replacement and reconciliation, history kept throughout.

The helpers here (a clock the test moves, a fake operator, inventory and holders) are shared with the
dispatch and API tests of the lifecycle.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.adapters.dynamo.outbox import (
    OUTBOX_DEAD_LETTER_QUEUE,
    OUTBOX_QUEUE,
    DynamoOutboxStore,
    SqsPushQueue,
    queue_name,
)
from chalicelib.cards.domain.inventory import Card, CardFunction, CardState
from chalicelib.cards.domain.lifecycle import PushKind, Retirement
from chalicelib.cards.domain.limits import HolderKind
from chalicelib.cards.holders import Holder, holder_from_party
from chalicelib.cards.inventory import import_inventory
from chalicelib.cards.lifecycle import Lifecycle
from chalicelib.cards.views import DriftKind
from chalicelib.core import deps
from chalicelib.core.aws import client
from chalicelib.core.settings import get_settings
from chalicelib.kernel.errors import Conflict, DomainError, InvalidField, NotFound
from chalicelib.kernel.operators import Operator
from chalicelib.kernel.personal import IdType, Party, PartyKind
from chalicelib.local.synthetic import make_iccid, make_msisdn, make_resident_id, make_vin
from chalicelib.operators.dispatch import Dispatcher, DispatchOutcome
from chalicelib.operators.domain.messages import (
    CallbackOutcome,
    OperatorCallback,
    OperatorCardRecord,
    OperatorCardState,
    OperatorRefused,
    OperatorUnavailable,
    PushMessage,
    PushReceipt,
)
from chalicelib.operators.domain.outbox import CallbackNote, OutboxStatus, RetryPolicy
from chalicelib.operators.ports import OperatorDirectory, OperatorGateway

# ------------------------------------------------------------------------------------- shared helpers


class Clock:
    """Time the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class FakeOperator(OperatorGateway):
    """An operator that records what reaches it; down for the first ``unavailable`` pushes, or refusing
    every request when ``refuse`` is set. Idempotent on ``message_id``, as the contract requires."""

    def __init__(self, *, unavailable: int = 0, refuse: bool = False) -> None:
        self.unavailable = unavailable
        self.refuse = refuse
        self.calls = 0
        self.received: dict[str, PushMessage] = {}
        self.during_push: Any = None  # a hook run inside push (to redeliver meanwhile)

    def push(self, message: PushMessage) -> PushReceipt:
        self.calls += 1
        if self.during_push is not None:
            hook, self.during_push = self.during_push, None
            hook()
        if self.refuse:
            raise OperatorRefused("signature.invalid", "bad signature")
        if self.unavailable > 0:
            self.unavailable -= 1
            raise OperatorUnavailable("503 Service Unavailable")
        duplicate = message.message_id in self.received
        self.received.setdefault(message.message_id, message)
        return PushReceipt(
            message_id=message.message_id, operator_ref=f"op-{message.message_id[:8]}", duplicate=duplicate
        )


class RecordingQueue(SqsPushQueue):
    """The SQS adapter, remembering each send's delay (moto hides delayed messages until they are due)."""

    def __init__(self, sqs: Any, name: str) -> None:
        super().__init__(sqs, name)
        self.sent: list[tuple[str, int]] = []

    def send_message(self, body: str, delay_seconds: int = 0) -> None:
        self.sent.append((json.loads(body)["record_id"], delay_seconds))
        super().send_message(body, delay_seconds)


@dataclass
class World:
    clock: Clock
    store: DynamoOutboxStore
    queue: RecordingQueue
    dead_letters: SqsPushQueue
    operator: FakeOperator
    lifecycle: Lifecycle
    dispatcher: Dispatcher
    policy: RetryPolicy


def create_queues() -> None:
    """The outbox queues, if the stage's bootstrap did not make them."""
    sqs = client("sqs")
    for short in (OUTBOX_QUEUE, OUTBOX_DEAD_LETTER_QUEUE):
        name = queue_name(get_settings(), short)
        try:
            sqs.get_queue_url(QueueName=name)
        except sqs.exceptions.QueueDoesNotExist:
            sqs.create_queue(QueueName=name)


def make_world(policy: RetryPolicy | None = None, rng: random.Random | None = None) -> World:
    create_queues()
    settings = get_settings()
    policy = policy or RetryPolicy()
    clock = Clock()
    inventory = deps.inventory_repo()
    store = DynamoOutboxStore(deps.field_cipher())
    queue = RecordingQueue(client("sqs"), queue_name(settings, OUTBOX_QUEUE))
    dead_letters = SqsPushQueue(client("sqs"), queue_name(settings, OUTBOX_DEAD_LETTER_QUEUE))
    operator = FakeOperator()
    return World(
        clock=clock,
        store=store,
        queue=queue,
        dead_letters=dead_letters,
        operator=operator,
        lifecycle=Lifecycle(inventory, store, queue, policy=policy, clock=clock),
        dispatcher=Dispatcher(
            store, operator, queue, dead_letters=dead_letters, policy=policy, clock=clock, rng=rng
        ),
        policy=policy,
    )


def import_cards(operator: Operator, count: int, *, seed: int, cards_per_vehicle: int = 1) -> list[Card]:
    """``count`` vehicles with their cards of ``operator`` in the inventory."""
    rng = random.Random(seed)
    rows: list[tuple[int, dict[str, str]]] = []
    for _ in range(count):
        vehicle = {"vin": make_vin(rng), "engine_no": f"E{rng.randrange(10**8, 10**9)}"}
        for _ in range(cards_per_vehicle):
            row = {
                **vehicle,
                "brand": "启航",
                "model": "QH-5",
                "colour": "白",
                "iccid": make_iccid(rng, operator),
                "msisdn": make_msisdn(rng, operator),
            }
            rows.append((len(rows) + 2, row))
    report = import_inventory(rows, deps.inventory_repo(), actor="import")
    assert report.errors == [], report.errors
    cards = deps.inventory_repo().get_cards([r["iccid"] for _, r in rows])
    return [cards[r["iccid"]] for _, r in rows]


def person(seed: int, name: str = "张三") -> Holder:
    """A verified individual, stored as a party."""
    rng = random.Random(seed)
    party = Party(
        id_type=IdType.RESIDENT_ID,
        id_number=make_resident_id(rng),
        name=name,
        address="北京市朝阳区建国路 88 号",
        phone="13812345678",
    )
    deps.party_repo().put(party)
    return holder_from_party(party, deps.keyed_hasher())


def enterprise(seed: int) -> Holder:
    company = Party(
        kind=PartyKind.ENTERPRISE,
        id_type=IdType.USCC,
        id_number="91350100M000100Y43",
        name="启航物流有限公司",
    )
    deps.party_repo().put(company)
    responsible = Party(
        id_type=IdType.RESIDENT_ID, id_number=make_resident_id(random.Random(seed)), name="李四"
    )
    deps.party_repo().put(responsible)
    return holder_from_party(company, deps.keyed_hasher(), responsible)


def answer(
    record_id: str,
    card: Card,
    outcome: CallbackOutcome,
    *,
    callback_id: str | None = None,
    reason: tuple[str, str, str] | None = None,
    functions: Sequence[CardFunction] = (),
) -> OperatorCallback:
    code, zh, en = reason or (None, None, None)
    return OperatorCallback(
        callback_id=callback_id or uuid.uuid4().hex,
        message_id=record_id,
        operator=card.operator,
        iccid=card.iccid,
        outcome=outcome,
        reason_code=code,
        reason_zh=zh,
        reason_en=en,
        functions=list(functions),
        decided_at=datetime.now(UTC),
    )


def receive_all(queue: SqsPushQueue) -> list[dict[str, Any]]:
    """Every visible message (each stays invisible afterwards, for the queue's visibility timeout)."""
    sqs = client("sqs")
    found: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=queue.url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return found
        found += got


def drain(world: World) -> int:
    """Run the dispatcher over everything in the queue, as the worker or Lambda would."""
    handled = 0
    while messages := receive_all(world.queue):
        world.dispatcher.handle_received(messages)
        handled += len(messages)
    return handled


def register(world: World, card: Card, holder: Holder, **answer_kw: Any) -> str:
    """Submit, push and accept a registration; returns the record id."""
    outcome = world.lifecycle.submit_registration(card.iccid, holder, "owner:u1")
    assert outcome.record_id is not None
    drain(world)
    world.lifecycle.apply_callback(answer(outcome.record_id, card, CallbackOutcome.ACCEPTED, **answer_kw))
    return outcome.record_id


def card_now(iccid: str) -> Card:
    card = deps.inventory_repo().get_card(iccid)
    assert card is not None
    return card


def events(iccid: str) -> list[str]:
    return [e.event for e in deps.inventory_repo().history(iccid)]


@pytest.fixture
def world(aws: None) -> World:
    return make_world()


# ------------------------------------------------------------------------------------- registration


def test_a_card_is_registered_only_when_the_operator_accepts(world: World) -> None:
    # Given an unregistered card and a verified owner
    (card,) = import_cards(Operator.CHINA_UNICOM, 1, seed=1)
    owner = person(1)
    # When the owner submits the registration
    submitted = world.lifecycle.submit_registration(card.iccid, owner, "owner:u1")
    # Then the card is pending (still emergency-only), the push is recorded with the holder sealed
    assert submitted.state is CardState.PENDING
    assert card_now(card.iccid).functions == [CardFunction.EMERGENCY]
    assert card_now(card.iccid).holder_id == owner.party_id
    assert submitted.record_id is not None
    raw = client("dynamodb").get_item(
        TableName=get_settings().table_name("outbox"), Key={"record_id": {"S": submitted.record_id}}
    )["Item"]
    assert "张三" not in json.dumps(raw, ensure_ascii=False, default=str)
    assert owner.facts.id_number not in json.dumps(raw, default=str)
    assert world.store.cards_per_id(owner.id_hash, card.operator) == 1
    # When the dispatcher pushes it
    assert drain(world) == 1
    pushed = world.operator.received[submitted.record_id]
    assert pushed.kind is PushKind.REGISTER
    assert pushed.holder == owner.facts  # unsealed for the operator
    assert pushed.functions == [CardFunction.EMERGENCY, CardFunction.TELEMATICS, CardFunction.DATA]
    assert card_now(card.iccid).state is CardState.PENDING
    record = world.store.get(submitted.record_id)
    assert record is not None
    assert record.status is OutboxStatus.SENT
    # When the operator accepts, opening telematics only
    result = world.lifecycle.apply_callback(
        answer(
            submitted.record_id,
            card,
            CallbackOutcome.ACCEPTED,
            functions=[CardFunction.EMERGENCY, CardFunction.TELEMATICS],
        )
    )
    # Then the card is registered with exactly the functions opened, and history tells the story
    assert result.note is CallbackNote.APPLIED
    now = card_now(card.iccid)
    assert now.state is CardState.REGISTERED
    assert now.functions == [CardFunction.EMERGENCY, CardFunction.TELEMATICS]
    assert events(card.iccid) == ["imported", "registration_submitted", "registration_accepted"]
    decided = world.store.get(submitted.record_id)
    assert decided is not None
    assert decided.status is OutboxStatus.ACCEPTED
    # And a registered card cannot be registered again (only transferred)
    with pytest.raises(Conflict) as info:
        world.lifecycle.submit_registration(card.iccid, person(2), "owner:u2")
    assert info.value.code == "registration.already_registered"


def test_a_rejection_returns_the_card_with_the_reason_kept_and_frees_the_slot(world: World) -> None:
    (card,) = import_cards(Operator.CHINA_MOBILE, 1, seed=2)
    owner = person(3)
    submitted = world.lifecycle.submit_registration(card.iccid, owner, "owner:u1")
    assert submitted.record_id is not None
    drain(world)
    # When the operator rejects it (its own one-ID check across every OEM)
    reason = ("cards_per_id_exceeded", "一证多卡超限，请到营业厅办理", "Too many cards for this ID")
    world.lifecycle.apply_callback(answer(submitted.record_id, card, CallbackOutcome.REJECTED, reason=reason))
    # Then the card is back to emergency-only, unbound, the reason readable by the user and in history
    now = card_now(card.iccid)
    assert (now.state, now.holder_id, now.functions) == (
        CardState.UNREGISTERED,
        None,
        [CardFunction.EMERGENCY],
    )
    status = world.lifecycle.status(card.iccid)
    assert status.last_refusal is not None
    assert status.last_refusal.code == "cards_per_id_exceeded"
    assert status.last_refusal.message_zh == "一证多卡超限，请到营业厅办理"
    last = status.history[-1]
    assert last.event == "registration_rejected"
    assert last.reason is not None
    assert "营业厅" in last.reason
    assert "cards_per_id_exceeded" in last.reason
    assert world.store.cards_per_id(owner.id_hash, card.operator) == 0
    # And it can be submitted again
    again = world.lifecycle.submit_registration(card.iccid, owner, "owner:u1")
    assert again.state is CardState.PENDING
    assert world.lifecycle.status(card.iccid).last_refusal is None


def test_duplicate_and_out_of_order_callbacks_change_nothing(world: World) -> None:
    (card,) = import_cards(Operator.CHINA_TELECOM, 1, seed=4)
    old_owner, new_owner = person(5), person(6, name="王五")
    submitted = world.lifecycle.submit_registration(card.iccid, old_owner, "owner:u1")
    assert submitted.record_id is not None
    drain(world)
    accepted = answer(submitted.record_id, card, CallbackOutcome.ACCEPTED, callback_id="cb-1")
    assert world.lifecycle.apply_callback(accepted).note is CallbackNote.APPLIED
    history = events(card.iccid)
    # When the operator sends the same callback again
    assert world.lifecycle.apply_callback(accepted).note is CallbackNote.DUPLICATE
    # Or a contradictory one for the same message under another id
    late = answer(submitted.record_id, card, CallbackOutcome.REJECTED, callback_id="cb-2")
    assert world.lifecycle.apply_callback(late).note is CallbackNote.ALREADY_DECIDED
    assert events(card.iccid) == history
    # Given a transfer in flight (the card's current message is now the transfer)
    transfer = world.lifecycle.transfer(card.iccid, new_owner, "admin:a1")
    assert transfer.record_id is not None
    drain(world)
    # When an answer to the older registration message arrives late
    stale = answer(submitted.record_id, card, CallbackOutcome.REJECTED, callback_id="cb-3")
    result = world.lifecycle.apply_callback(stale)
    # Then it is recorded and ignored: the card is still registered to the old owner
    assert result.note is CallbackNote.STALE
    assert card_now(card.iccid).state is CardState.REGISTERED
    assert card_now(card.iccid).holder_id == old_owner.party_id
    assert world.store.callback_seen("cb-3")
    # And the transfer's own answer applies
    done = world.lifecycle.apply_callback(answer(transfer.record_id, card, CallbackOutcome.ACCEPTED))
    assert done.note is CallbackNote.APPLIED
    assert card_now(card.iccid).holder_id == new_owner.party_id
    # And a callback for a message nobody sent is recorded, nothing else
    unknown = world.lifecycle.apply_callback(answer(uuid.uuid4().hex, card, CallbackOutcome.ACCEPTED))
    assert unknown.note is CallbackNote.UNKNOWN
    assert events(card.iccid)[-1] == "transferred"


def test_a_spot_check_is_recorded_in_the_history_for_the_oem(world: World) -> None:
    (card,) = import_cards(Operator.CHINA_UNICOM, 1, seed=7)
    record_id = register(world, card, person(8))
    before = card_now(card.iccid)
    result = world.lifecycle.apply_callback(
        answer(
            record_id, card, CallbackOutcome.SPOT_CHECK, reason=("spot_check", "抽查登记信息", "Spot check")
        )
    )
    assert result.note is CallbackNote.RECORDED
    after = card_now(card.iccid)
    assert (after.state, after.holder_id, after.functions) == (
        before.state,
        before.holder_id,
        before.functions,
    )
    last = deps.inventory_repo().history(card.iccid)[-1]
    assert last.event == "spot_check"
    assert last.actor == f"operator:{card.operator.value}"
    assert last.reason is not None
    assert record_id in last.reason


# ----------------------------------------------------------------------------------- one-ID limit


def test_the_eleventh_card_of_one_id_with_one_operator_is_refused(world: World) -> None:
    # Given one person and eleven China Unicom cards, plus one China Mobile card
    cards = import_cards(Operator.CHINA_UNICOM, 11, seed=9)
    (other,) = import_cards(Operator.CHINA_MOBILE, 1, seed=10)
    owner = person(11)
    for card in cards[:10]:
        world.lifecycle.submit_registration(card.iccid, owner, "owner:u1")
    # When the eleventh is submitted
    with pytest.raises(Conflict) as info:
        world.lifecycle.submit_registration(cards[10].iccid, owner, "owner:u1")
    # Then it is refused with a clear message sending the person to the operator's hall, nothing written
    err = info.value
    assert (err.code, err.status) == ("registration.cards_per_id_exceeded", 409)
    assert "营业厅" in err.message_zh
    assert "中国联通" in err.message_zh
    assert "business hall" in err.message_en
    assert card_now(cards[10].iccid).version == 1
    assert events(cards[10].iccid) == ["imported"]
    assert world.store.cards_per_id(owner.id_hash, Operator.CHINA_UNICOM) == 10
    assert world.store.count(OutboxStatus.PENDING) == 10
    # And the limit is per operator: the China Mobile card goes through
    assert world.lifecycle.submit_registration(other.iccid, owner, "owner:u1").state is CardState.PENDING


def test_enterprise_fleets_are_not_held_to_the_individual_limit(world: World) -> None:
    cards = import_cards(Operator.CHINA_TELECOM, 11, seed=12)
    company = enterprise(13)
    for card in cards:
        assert world.lifecycle.submit_registration(card.iccid, company, "agent:e1").state is CardState.PENDING
    assert world.store.cards_per_id(company.id_hash, Operator.CHINA_TELECOM) == 0
    drain(world)
    pushed = next(iter(world.operator.received.values()))
    assert pushed.holder is not None
    assert pushed.holder.kind is HolderKind.ENTERPRISE
    assert pushed.holder.responsible_name == "李四"


def test_two_concurrent_registrations_for_the_last_slot_one_passes(world: World) -> None:
    # Given an ID holding nine active cards
    cards = import_cards(Operator.CHINA_UNICOM, 11, seed=14)
    owner = person(15)
    for card in cards[:9]:
        world.lifecycle.submit_registration(card.iccid, owner, "owner:u1")
    # When the 10th and 11th are submitted at the same moment
    barrier = threading.Barrier(2)
    results: dict[str, str] = {}

    def submit(card: Card) -> None:
        barrier.wait()
        try:
            world.lifecycle.submit_registration(card.iccid, owner, "owner:u1")
            results[card.iccid] = "passed"
        except DomainError as err:
            results[card.iccid] = err.code

    threads = [threading.Thread(target=submit, args=(c,)) for c in cards[9:]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then exactly one passes, the other is refused by the limit, and the count is exactly ten
    assert sorted(results.values()) == ["passed", "registration.cards_per_id_exceeded"]
    assert world.store.cards_per_id(owner.id_hash, Operator.CHINA_UNICOM) == 10
    loser = next(i for i, r in results.items() if r != "passed")
    assert card_now(loser).state is CardState.UNREGISTERED
    assert events(loser) == ["imported"]
    assert world.store.count(OutboxStatus.PENDING) == 10


# ----------------------------------------------------------------------------------- de-registration


def test_deregistration_returns_the_card_to_emergency_only_and_frees_the_slot_once_accepted(
    world: World,
) -> None:
    (card,) = import_cards(Operator.CHINA_MOBILE, 1, seed=16)
    owner = person(17)
    register(world, card, owner)
    outcome = world.lifecycle.deregister(card.iccid, "owner:u1", "车辆出售 sold")
    # Until the operator answers, the card stays registered and its holder's slot counted
    assert (card_now(card.iccid).state, outcome.events) == (
        CardState.REGISTERED,
        ["deregistration_requested"],
    )
    assert world.store.cards_per_id(owner.id_hash, card.operator) == 1
    drain(world)
    assert outcome.record_id is not None
    pushed = world.operator.received[outcome.record_id]
    assert (pushed.kind, pushed.holder, pushed.previous_holder_id_hash) == (
        PushKind.DEREGISTER,
        None,
        owner.id_hash,
    )
    assert pushed.functions == [CardFunction.EMERGENCY]
    # A new registration waits for the operator's answer to the de-registration (order matters there)
    with pytest.raises(Conflict) as info:
        world.lifecycle.submit_registration(card.iccid, person(18), "owner:u2")
    assert info.value.code == "registration.already_registered"
    world.lifecycle.apply_callback(answer(outcome.record_id, card, CallbackOutcome.ACCEPTED))
    now = card_now(card.iccid)
    assert (now.state, now.holder_id, now.functions) == (
        CardState.UNREGISTERED,
        None,
        [CardFunction.EMERGENCY],
    )
    assert events(card.iccid)[-3:] == ["deregistered", "emergency_only", "deregistration_confirmed"]
    assert [e.to_state for e in deps.inventory_repo().history(card.iccid)[-3:]] == [
        CardState.DEREGISTERED,
        CardState.UNREGISTERED,
        CardState.UNREGISTERED,
    ]
    assert world.store.cards_per_id(owner.id_hash, card.operator) == 0
    assert world.lifecycle.submit_registration(card.iccid, person(18), "owner:u2").state is CardState.PENDING


def test_bad_requests_change_nothing(world: World) -> None:
    (card,) = import_cards(Operator.CHINA_UNICOM, 1, seed=19)
    owner = person(20)
    with pytest.raises(NotFound) as missing:
        world.lifecycle.submit_registration("89860112345678901245", owner, "owner:u1")
    assert (missing.value.code, missing.value.status) == ("card.not_found", 404)
    with pytest.raises(Conflict) as illegal:
        world.lifecycle.deregister(card.iccid, "owner:u1", "none")
    assert (illegal.value.code, illegal.value.status) == ("card.illegal_transition", 409)
    with pytest.raises(Conflict) as not_registered:
        world.lifecycle.transfer(card.iccid, owner, "admin:a1")
    assert not_registered.value.code == "card.not_registered"
    assert card_now(card.iccid).version == 1
    assert events(card.iccid) == ["imported"]
    assert world.store.count(OutboxStatus.PENDING) == 0
    assert world.queue.sent == []
    assert world.store.lifecycle(card.iccid).message_id is None


# ----------------------------------------------------------------------------------------- transfer


def test_transfer_keeps_the_old_holder_until_the_operator_accepts_the_new_one(world: World) -> None:
    (card,) = import_cards(Operator.CHINA_TELECOM, 1, seed=21)
    seller, buyer = person(22), person(23, name="赵六")
    register(world, card, seller)
    # When the card is transferred
    outcome = world.lifecycle.transfer(card.iccid, buyer, "admin:a1")
    # Then until the answer it stays registered to the seller, the transfer noted, both slots held
    now = card_now(card.iccid)
    assert (now.state, now.holder_id) == (CardState.REGISTERED, seller.party_id)
    life = world.store.lifecycle(card.iccid)
    assert (life.pending_holder_id, life.awaiting, life.message_kind) == (
        buyer.party_id,
        True,
        PushKind.TRANSFER,
    )
    assert world.store.cards_per_id(seller.id_hash, card.operator) == 1
    assert world.store.cards_per_id(buyer.id_hash, card.operator) == 1
    with pytest.raises(Conflict) as twice:
        world.lifecycle.transfer(card.iccid, person(24), "admin:a1")
    assert twice.value.code == "transfer.pending"
    drain(world)
    assert outcome.record_id is not None
    pushed = world.operator.received[outcome.record_id]
    assert (pushed.kind, pushed.holder, pushed.previous_holder_id_hash) == (
        PushKind.TRANSFER,
        buyer.facts,
        seller.id_hash,
    )
    # When the operator accepts: the buyer holds the card and the seller's slot is free
    world.lifecycle.apply_callback(answer(outcome.record_id, card, CallbackOutcome.ACCEPTED))
    now = card_now(card.iccid)
    assert (now.state, now.holder_id) == (CardState.REGISTERED, buyer.party_id)
    assert world.store.cards_per_id(seller.id_hash, card.operator) == 0
    assert world.store.cards_per_id(buyer.id_hash, card.operator) == 1
    assert events(card.iccid)[-2:] == ["transfer_requested", "transferred"]
    assert world.store.lifecycle(card.iccid).holder_id_hash == buyer.id_hash


def test_a_rejected_transfer_leaves_the_old_registration(world: World) -> None:
    (card,) = import_cards(Operator.CHINA_MOBILE, 1, seed=25)
    seller, buyer = person(26), person(27)
    register(world, card, seller)
    outcome = world.lifecycle.transfer(card.iccid, buyer, "admin:a1")
    assert outcome.record_id is not None
    drain(world)
    reason = ("blacklisted", "新车主在黑名单中", "The new holder is blacklisted")
    world.lifecycle.apply_callback(answer(outcome.record_id, card, CallbackOutcome.REJECTED, reason=reason))
    now = card_now(card.iccid)
    assert (now.state, now.holder_id) == (CardState.REGISTERED, seller.party_id)
    assert world.store.cards_per_id(buyer.id_hash, card.operator) == 0
    assert world.store.cards_per_id(seller.id_hash, card.operator) == 1
    assert events(card.iccid)[-1] == "transfer_rejected"
    refusal = world.lifecycle.status(card.iccid).last_refusal
    assert refusal is not None
    assert refusal.code == "blacklisted"


def test_transfer_to_the_current_holder_is_refused(world: World) -> None:
    (card,) = import_cards(Operator.CHINA_UNICOM, 1, seed=28)
    owner = person(29)
    register(world, card, owner)
    with pytest.raises(InvalidField) as info:
        world.lifecycle.transfer(card.iccid, owner, "admin:a1")
    assert (info.value.code, info.value.status) == ("transfer.same_holder", 422)


# ------------------------------------------------------------------------------- scrap and swap


def test_scrap_deregisters_every_card_of_the_vehicle_and_retires_them(world: World) -> None:
    # Given a vehicle with two cards: one registered, one unregistered
    first, second = import_cards(Operator.CHINA_UNICOM, 1, seed=30, cards_per_vehicle=2)
    owner = person(31)
    register(world, first, owner)
    sent_before = len(world.operator.received)
    # When the vehicle is scrapped
    result = world.lifecycle.scrap(first.vin, "admin:a1")
    # Then both cards are unregistered and retired; the registered one's end is pushed
    assert {c.iccid: c.events for c in result.cards} == {
        first.iccid: ["deregistered", "scrapped"],
        second.iccid: ["scrapped"],
    }
    assert all(c.retired is Retirement.SCRAPPED for c in result.cards)
    assert {c.iccid: c.record_id is not None for c in result.cards} == {
        first.iccid: True,
        second.iccid: False,
    }
    assert card_now(first.iccid).state is CardState.UNREGISTERED
    assert world.store.cards_per_id(owner.id_hash, first.operator) == 0
    drain(world)
    assert len(world.operator.received) == sent_before + 1
    # And neither card can ever be registered again
    for card in (first, second):
        with pytest.raises(Conflict) as info:
            world.lifecycle.submit_registration(card.iccid, person(32), "owner:u2")
        assert info.value.code == "card.scrapped"
    # And scrapping again changes nothing
    again = world.lifecycle.scrap(first.vin, "admin:a1")
    assert (again.cards, sorted(again.already_retired)) == ([], sorted([first.iccid, second.iccid]))
    assert events(second.iccid) == ["imported", "scrapped"]


def test_scrapping_a_pending_card_supersedes_its_unsent_registration(world: World) -> None:
    (card,) = import_cards(Operator.CHINA_MOBILE, 1, seed=33)
    owner = person(34)
    submitted = world.lifecycle.submit_registration(card.iccid, owner, "owner:u1")
    # When the vehicle is scrapped before the registration left
    result = world.lifecycle.scrap(card.vin, "admin:a1")
    drain(world)
    # Then only the de-registration reaches the operator; the registration is superseded
    (done,) = result.cards
    assert done.record_id is not None
    assert list(world.operator.received) == [done.record_id]
    assert submitted.record_id is not None
    register_record = world.store.get(submitted.record_id)
    assert register_record is not None
    assert register_record.status is OutboxStatus.SUPERSEDED
    assert world.store.cards_per_id(owner.id_hash, card.operator) == 0


def test_swap_retires_the_old_card_and_fits_the_new_one_unregistered(world: World) -> None:
    # Given a vehicle with a registered card, and a spare card recorded on another vehicle
    (old,) = import_cards(Operator.CHINA_TELECOM, 1, seed=35)
    (spare,) = import_cards(Operator.CHINA_TELECOM, 1, seed=36)
    owner = person(37)
    register(world, old, owner)
    # When the part is replaced
    result = world.lifecycle.swap(old.vin, old.iccid, spare.iccid, "admin:a1")
    # Then the old card is de-registered (pushed) and retired, the new one is on the vehicle, unregistered
    assert result.old.events == ["deregistered", "swapped_out"]
    assert result.old.retired is Retirement.SWAPPED_OUT
    assert result.old.record_id is not None
    fitted = card_now(spare.iccid)
    assert (fitted.vin, fitted.state, fitted.functions) == (
        old.vin,
        CardState.UNREGISTERED,
        [CardFunction.EMERGENCY],
    )
    assert events(spare.iccid) == ["imported", "swapped_in"]
    history = deps.inventory_repo().history(spare.iccid)
    assert history[-1].reason is not None
    assert old.iccid in history[-1].reason
    assert spare.iccid in {c.iccid for c in deps.inventory_repo().cards_of_vehicle(old.vin)}
    assert world.store.cards_per_id(owner.id_hash, old.operator) == 0
    drain(world)
    assert world.operator.received[result.old.record_id].kind is PushKind.DEREGISTER
    # And the old card cannot come back; the new one can be registered
    with pytest.raises(Conflict) as info:
        world.lifecycle.submit_registration(old.iccid, owner, "owner:u1")
    assert info.value.code == "card.swapped_out"
    assert world.lifecycle.submit_registration(spare.iccid, owner, "owner:u1").state is CardState.PENDING


def test_swap_refusals_change_nothing(world: World) -> None:
    (old,) = import_cards(Operator.CHINA_UNICOM, 1, seed=38)
    (busy,) = import_cards(Operator.CHINA_UNICOM, 1, seed=39)
    register(world, busy, person(40))
    version = card_now(old.iccid).version
    cases: list[tuple[str, str, str, type[DomainError], str]] = [
        (old.vin, old.iccid, old.iccid, InvalidField, "swap.same_card"),
        (old.vin, busy.iccid, old.iccid, Conflict, "swap.card_not_on_vehicle"),
        (old.vin, old.iccid, busy.iccid, Conflict, "swap.new_card_in_use"),
        (old.vin, old.iccid, "89860112345678901245", NotFound, "card.not_found"),
    ]
    for vin, out, fitted, kind, code in cases:
        with pytest.raises(kind) as info:
            world.lifecycle.swap(vin, out, fitted, "admin:a1")
        assert info.value.code == code
    assert card_now(old.iccid).version == version
    assert card_now(busy.iccid).vin == busy.vin
    assert world.store.lifecycle(old.iccid).retired is None


# ----------------------------------------------------------------------------------- reconciliation


class PagedDirectory(OperatorDirectory):
    """An operator's listing served two cards a page."""

    def __init__(self, records: list[OperatorCardRecord], page: int = 2) -> None:
        self.records = records
        self.page = page
        self.calls = 0

    def listing(self, operator: Operator, cursor: str | None) -> tuple[list[OperatorCardRecord], str | None]:
        self.calls += 1
        start = int(cursor or 0)
        end = start + self.page
        return self.records[start:end], (str(end) if end < len(self.records) else None)


def listed(
    iccid: str, state: OperatorCardState, holder: str | None, functions: list[CardFunction]
) -> OperatorCardRecord:
    return OperatorCardRecord(
        operator=Operator.CHINA_UNICOM,
        iccid=iccid,
        state=state,
        holder_id_hash=holder,
        functions=functions,
        updated_at=datetime.now(UTC),
    )


def test_reconcile_reports_drift_per_card(world: World) -> None:
    op = Operator.CHINA_UNICOM
    synced, unregistered_there, other_holder, missing, in_flight, idle = import_cards(op, 6, seed=41)
    owner = person(42)
    for card in (synced, unregistered_there, other_holder, missing):
        register(world, card, owner)
    world.lifecycle.submit_registration(in_flight.iccid, owner, "owner:u1")
    full = [CardFunction.EMERGENCY, CardFunction.TELEMATICS, CardFunction.DATA]
    on, off = OperatorCardState.REGISTERED, OperatorCardState.DEREGISTERED
    emergency = [CardFunction.EMERGENCY]
    directory = PagedDirectory(
        [
            listed(synced.iccid, on, owner.id_hash, full),
            listed(unregistered_there.iccid, off, None, emergency),
            listed(other_holder.iccid, on, "somebody-else", full),
            listed(in_flight.iccid, off, None, emergency),
            listed(idle.iccid, off, None, [CardFunction.EMERGENCY, CardFunction.DATA]),
            listed("89860112345678901237", on, "x", full),
        ]
    )
    report = world.lifecycle.reconcile(op, directory, page_limit=2)
    kinds = {(d.iccid, d.kind) for d in report.drifts}
    assert kinds == {
        (unregistered_there.iccid, DriftKind.STATE),
        (other_holder.iccid, DriftKind.HOLDER),
        (idle.iccid, DriftKind.FUNCTIONS_EXCEED),
        ("89860112345678901237", DriftKind.UNKNOWN_CARD),
        (missing.iccid, DriftKind.MISSING_AT_OPERATOR),
    }
    assert (report.listed, report.in_sync, report.in_flight, report.drift_count) == (6, 1, 1, 5)
    assert directory.calls == 3
    assert owner.id_hash not in json.dumps(report.model_dump(mode="json"))


@pytest.fixture
def fresh_policy_world(aws: None) -> World:
    return make_world(RetryPolicy(base_seconds=1, max_attempts=2))


def test_a_dead_registration_keeps_the_card_pending_until_retried(fresh_policy_world: World) -> None:
    world = fresh_policy_world
    world.operator.unavailable = 10
    (card,) = import_cards(Operator.CHINA_MOBILE, 1, seed=43)
    submitted = world.lifecycle.submit_registration(card.iccid, person(44), "owner:u1")
    assert submitted.record_id is not None
    assert world.dispatcher.dispatch(submitted.record_id) is DispatchOutcome.RETRY
    world.clock.advance(60)
    assert world.dispatcher.dispatch(submitted.record_id) is DispatchOutcome.DEAD
    assert card_now(card.iccid).state is CardState.PENDING
    assert world.lifecycle.status(card.iccid).lifecycle.awaiting
