"""What every card lifecycle use case shares: reading a card with its bookkeeping, writing its history
entries against the state machine, building the outbox record of a push, ending a registration, and
committing a change with its records in one transaction, then waking the dispatcher (第八条(三)/第九条(三):
the push follows from the record, never from the request).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from chalicelib.cards.domain.inventory import (
    Card,
    CardEvent,
    CardFunction,
    CardState,
    Vehicle,
    card_not_found,
    check_transition,
    functions_for,
    needed_functions,
    vehicle_not_found,
)
from chalicelib.cards.domain.lifecycle import CardLifecycle, LifecycleEvent, PushKind, Retirement
from chalicelib.cards.ports import InventoryRepository
from chalicelib.cards.views import CardOutcome
from chalicelib.core.observability import logger
from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.errors import Conflict
from chalicelib.kernel.operators import Operator
from chalicelib.operators.domain.messages import PushCard, PushHolder, PushMessage, PushVehicle
from chalicelib.operators.domain.outbox import (
    CardWrite,
    CounterMove,
    OutboxCommit,
    OutboxRecord,
    OutboxStatus,
    RetryPolicy,
    requested_functions,
)
from chalicelib.operators.ports import OutboxStore, PushQueue


def new_record_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class ServiceEnd:
    """第十八条: the service of a card to its holder ended (de-registration accepted, transfer accepted:
    the old holder's, registration refused, scrap, part replacement): that holder's materials are kept
    for the retention period from ``at``, then purged."""

    iccid: str
    party_id: str
    at: datetime
    event: str


def service_ends(change: OutboxCommit) -> list[ServiceEnd]:
    """The holders whose service ``change`` ends: a card that referred to a party and no longer does, and
    a claim that ends without the party ever holding the card (a refused transfer's buyer)."""
    ends = []
    for write in change.cards:
        before, after = write.before.holder_id, write.after.holder_id
        event = write.events[-1].event if write.events else "ended"
        at = write.after.updated_at or utc_now()
        if before and before != after:
            ends.append(ServiceEnd(write.before.iccid, before, at, event))
        ends.extend(ServiceEnd(write.before.iccid, p, at, event) for p in write.ended_claims if p != after)
    return ends


class Ledger:
    """The cards, their bookkeeping and their pushes, as the use cases read and change them."""

    def __init__(
        self,
        inventory: InventoryRepository,
        store: OutboxStore,
        queue: PushQueue,
        *,
        policy: RetryPolicy | None = None,
        clock: Clock = utc_now,
        new_id: Callable[[], str] = new_record_id,
        default_functions: Sequence[CardFunction] | None = None,
        on_service_end: Callable[[Sequence[ServiceEnd]], None] | None = None,
    ):
        self.inventory = inventory
        #: Told of every service end before its change commits (retention, 第十八条): an end recorded
        #: for a change that then fails is harmless, the purge finds the party still referred to.
        self._on_service_end = on_service_end
        #: The OEM's default functions beside emergency, for vehicles whose model names none (第十四条).
        self.default_functions = (
            list(default_functions)
            if default_functions is not None
            else requested_functions(PushKind.REGISTER)
        )
        self.store = store
        self.clock = clock
        self._queue = queue
        self._policy = policy or RetryPolicy()
        self._new_id = new_id

    def card(self, iccid: str) -> Card:
        card = self.inventory.get_card(iccid)
        if card is None:
            raise card_not_found()
        return card

    def vehicle(self, vin: str) -> Vehicle:
        vehicle = self.inventory.get_vehicle(vin)
        if vehicle is None:
            raise vehicle_not_found()
        return vehicle

    def record(
        self,
        kind: PushKind,
        card: Card,
        vehicle: Vehicle,
        at: datetime,
        *,
        holder: PushHolder | None,
        previous_holder_id_hash: str | None,
        holder_id_hash: str | None = None,
    ) -> OutboxRecord:
        """The outbox record of one push, due now; its id is the message's idempotency key."""
        record_id = self._new_id()
        message = PushMessage(
            message_id=record_id,
            kind=kind,
            card=PushCard(iccid=card.iccid, msisdn=card.msisdn, operator=card.operator),
            vehicle=PushVehicle(
                vin=vehicle.vin,
                engine_no=vehicle.engine_no,
                brand=vehicle.brand,
                model=vehicle.model,
                colour=vehicle.colour,
            ),
            holder=holder,
            previous_holder_id_hash=previous_holder_id_hash,
            holder_id_hash=holder_id_hash,
            functions=needed_functions(vehicle.functions, self.default_functions)
            if kind in (PushKind.REGISTER, PushKind.TRANSFER)
            else requested_functions(kind),
            created_at=at,
        )
        return OutboxRecord(
            record_id=record_id,
            kind=kind,
            iccid=card.iccid,
            operator=card.operator,
            status=OutboxStatus.PENDING,
            next_attempt_at=at,
            sweep_at=at + timedelta(seconds=self._policy.sweep_grace_seconds),
            created_at=at,
            updated_at=at,
            message=message,
        )

    def commit(self, change: OutboxCommit) -> None:
        """Write ``change`` in one transaction, then wake the dispatcher for its records."""
        ends = service_ends(change) if self._on_service_end is not None else []
        if ends and self._on_service_end is not None:
            self._on_service_end(ends)
        self.store.commit(change)
        self._enqueue(change.records)

    def _enqueue(self, records: Sequence[OutboxRecord]) -> None:
        """Best effort: the records are committed, the sweeper enqueues any missed."""
        for record in records:
            try:
                self._queue.send_message(json.dumps({"record_id": record.record_id}))
            except Exception:
                logger.warning(
                    "outbox enqueue failed; the sweeper will push it", extra={"record": record.record_id}
                )

    def end(
        self,
        card: Card,
        life: CardLifecycle,
        vehicle: Vehicle,
        actor: str,
        reason: str,
        retire: Retirement | None,
    ) -> tuple[CardWrite, OutboxRecord | None, list[CounterMove]]:
        """End whatever registration the card has (registered or in progress), back to emergency-only;
        the operator is told unless there was nothing to end. ``retire`` marks it never to be registered."""
        at = self.clock()
        moves = Moves(card, actor, at)
        final = {
            None: LifecycleEvent.EMERGENCY_ONLY,
            Retirement.SCRAPPED: LifecycleEvent.SCRAPPED,
            Retirement.SWAPPED_OUT: LifecycleEvent.SWAPPED_OUT,
        }[retire]
        ends_binding = card.state in (CardState.REGISTERED, CardState.PENDING)
        if card.state is CardState.REGISTERED:
            moves.step(LifecycleEvent.DEREGISTERED, CardState.DEREGISTERED, reason)
        moves.step(final, CardState.UNREGISTERED, reason)
        record = None
        if ends_binding:
            record = self.record(
                PushKind.DEREGISTER,
                card,
                vehicle,
                at,
                holder=None,
                previous_holder_id_hash=life.holder_id_hash,
            )
        new_life = cleared(life, at)
        if record is not None:
            new_life = new_life.model_copy(
                update={"message_id": record.record_id, "message_kind": PushKind.DEREGISTER, "awaiting": True}
            )
        if retire is not None:
            new_life = new_life.model_copy(update={"retired": retire, "retired_at": at})
        return moves.write(None, new_life), record, releases(life, card.operator)


class Moves:
    """The history entries of one card change, each checked against the state machine."""

    def __init__(self, card: Card, actor: str, at: datetime):
        self.card = card
        self.actor = actor
        self.at = at
        self.state = card.state
        self.events: list[CardEvent] = []

    def step(self, name: LifecycleEvent, target: CardState, reason: str | None = None) -> None:
        if target is not self.state:
            check_transition(self.card.iccid, self.state, target)
        self.events.append(
            CardEvent(
                iccid=self.card.iccid,
                seq=self.card.version + len(self.events) + 1,
                at=self.at,
                event=name.value,
                from_state=self.state,
                to_state=target,
                actor=self.actor,
                reason=reason,
            )
        )
        self.state = target

    def write(
        self,
        holder_id: str | None,
        lifecycle: CardLifecycle | None,
        *,
        functions: list[CardFunction] | None = None,
        vin: str | None = None,
    ) -> CardWrite:
        after = self.card.model_copy(
            update={
                "state": self.state,
                "functions": functions if functions is not None else functions_for(self.state),
                "version": self.card.version + len(self.events),
                "holder_id": holder_id,
                "vin": vin or self.card.vin,
                "updated_at": self.at,
            }
        )
        return CardWrite(before=self.card, after=after, events=tuple(self.events), lifecycle=lifecycle)


def outcome(write: CardWrite, record: OutboxRecord | None) -> CardOutcome:
    """The card after ``write``, and the push it caused."""
    card = write.after
    return CardOutcome(
        iccid=card.iccid,
        vin=card.vin,
        state=card.state,
        functions=card.functions,
        version=card.version,
        record_id=record.record_id if record else None,
        events=[e.event for e in write.events],
        retired=write.lifecycle.retired if write.lifecycle else None,
    )


def cleared(life: CardLifecycle, at: datetime) -> CardLifecycle:
    """No holder, no transfer in progress: what ending a registration leaves."""
    return life.model_copy(
        update={
            "holder_id_hash": None,
            "holder_counted": False,
            "pending_holder_id": None,
            "pending_holder_id_hash": None,
            "pending_counted": False,
            "updated_at": at,
        }
    )


def releases(life: CardLifecycle, operator: Operator) -> list[CounterMove]:
    """The one-ID slots the card holds (its holder's, a pending transfer's), given back."""
    moves = []
    if life.holder_counted and life.holder_id_hash:
        moves.append(CounterMove(life.holder_id_hash, operator, -1))
    if life.pending_counted and life.pending_holder_id_hash:
        moves.append(CounterMove(life.pending_holder_id_hash, operator, -1))
    return moves


def retired(card: Card, life: CardLifecycle) -> Conflict:
    """A scrapped or swapped-out card asked to be registered again."""
    assert life.retired is not None
    scrapped = life.retired is Retirement.SCRAPPED
    return Conflict(
        f"card.{life.retired.value}",
        "车辆已报废，该车联网卡不能再办理登记"
        if scrapped
        else "该车联网卡已随零部件更换停用，不能再办理登记",
        "The vehicle was scrapped: its card cannot be registered again"
        if scrapped
        else "The card was replaced with its part: it cannot be registered again",
        field="iccid",
        details={"iccid": card.iccid},
    )
