"""The card lifecycle after submission: registration pushed and answered, de-registration, transfer,
scrap, part replacement, and reconciliation with the operator (SPEC §6).

Every change is one transaction with its history and, when the operator must hear of it, its outbox
record (第八条(三)/第九条(三)): the push follows from the record, never from the request. A card is
``registered`` only once the operator accepted it, with the functions the operator opened (第十四条);
one ID holds at most 10 active cards per operator (第十一条), counted in the same transaction.

第十三条: a transfer (过户) ends the old holder's registration when the operator accepts the new one,
and until then the card stays registered to the old holder; scrap (报废) and part replacement
(更换零部件) end the registration at once and retire the card, which can never be registered again.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from chalicelib.cards.domain import (
    Card,
    CardEvent,
    CardFunction,
    CardState,
    Vehicle,
    check_transition,
    functions_for,
)
from chalicelib.cards.ports import InventoryRepository
from chalicelib.core.observability import logger
from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.crypto import KeyedHasher
from chalicelib.kernel.errors import Conflict, InvalidField, NotFound
from chalicelib.kernel.operators import Operator
from chalicelib.kernel.personal import Party, PartyKind, id_lookup_value
from chalicelib.operators.domain.messages import (
    CallbackOutcome,
    HolderKind,
    OperatorCallback,
    OperatorCardRecord,
    OperatorCardState,
    PushCard,
    PushHolder,
    PushKind,
    PushMessage,
    PushVehicle,
)
from chalicelib.operators.domain.outbox import (
    CARDS_PER_ID_LIMIT,
    CallbackNote,
    CardLifecycle,
    CardWrite,
    CounterMove,
    DuplicateCallback,
    LifecycleEvent,
    OutboxCommit,
    OutboxRecord,
    OutboxStatus,
    RecordDecision,
    Retirement,
    RetryPolicy,
    SeenCallback,
    counts_toward_limit,
    opened_functions,
    requested_functions,
)
from chalicelib.operators.ports import OperatorDirectory, OutboxStore, PushQueue

#: Attempts at applying one callback when the card moved meanwhile (another callback, an admin).
CALLBACK_ATTEMPTS = 3


def new_record_id() -> str:
    return uuid.uuid4().hex


class Holder(BaseModel):
    """Who a card is to be registered to: the party, the facts pushed, and the keyed hash of the ID
    (the one-ID count's key; the ID itself is never stored in clear)."""

    model_config = ConfigDict(frozen=True)

    party_id: str
    facts: PushHolder
    id_hash: str


def holder_from_party(party: Party, hasher: KeyedHasher, responsible: Party | None = None) -> Holder:
    """A verified party as a holder; an enterprise's cards go under its responsible person (第九条(二))."""
    enterprise = party.kind is PartyKind.ENTERPRISE
    if enterprise and responsible is None:
        raise InvalidField(
            "holder.responsible_required",
            "单位用户须指定车辆负责人",
            "An enterprise holder needs its responsible person",
            field="responsible_id",
        )
    facts = PushHolder(
        kind=HolderKind.ENTERPRISE if enterprise else HolderKind.INDIVIDUAL,
        name=party.name,
        id_type=party.id_type.value,
        id_number=party.id_number,
        address=party.address,
        phone=party.phone,
        id_valid_until=None
        if party.id_permanent or not party.id_valid_until
        else party.id_valid_until.isoformat(),
        responsible_name=responsible.name if enterprise and responsible else None,
        responsible_id_type=responsible.id_type.value if enterprise and responsible else None,
        responsible_id_number=responsible.id_number if enterprise and responsible else None,
    )
    digest = hasher.digest(id_lookup_value(party.id_type, party.id_number))
    return Holder(party_id=party.party_id, facts=facts, id_hash=digest)


class CardOutcome(BaseModel):
    """A card after a lifecycle step, and the push it caused (if any)."""

    iccid: str
    vin: str
    state: CardState
    functions: list[CardFunction]
    version: int
    record_id: str | None = None
    events: list[str]
    retired: Retirement | None = None


class ScrapResult(BaseModel):
    vin: str
    cards: list[CardOutcome]
    already_retired: list[str]


class SwapResult(BaseModel):
    vin: str
    old: CardOutcome
    new: CardOutcome


class CallbackResult(BaseModel):
    callback_id: str
    message_id: str
    iccid: str
    note: CallbackNote
    state: CardState | None = None


class Refusal(BaseModel):
    """The operator's last refusal, as the user reads it."""

    code: str | None
    message_zh: str | None
    message_en: str | None


class CardStatus(BaseModel):
    card: Card
    lifecycle: CardLifecycle
    last_refusal: Refusal | None
    history: list[CardEvent]


class DriftKind(StrEnum):
    UNKNOWN_CARD = "unknown_card"  # the operator lists a card the platform does not have
    OTHER_OPERATOR = "other_operator"  # the platform has the card under another operator
    STATE = "state"  # registered on one side only
    HOLDER = "holder"  # registered to somebody else
    FUNCTIONS_EXCEED = "functions_exceed"  # more open than the state allows (第十四条)
    MISSING_AT_OPERATOR = "missing_at_operator"  # registered on the platform, not listed by the operator


class Drift(BaseModel):
    iccid: str
    kind: DriftKind
    platform: str | None = None
    operator: str | None = None


class ReconcileReport(BaseModel):
    operator: Operator
    listed: int = 0
    in_sync: int = 0
    in_flight: int = 0  # a push awaits its answer: either side may be right for now
    drift_count: int = 0
    by_kind: dict[str, int] = {}
    drifts: list[Drift] = []
    truncated: bool = False


def _not_found_card() -> NotFound:
    return NotFound("card.not_found", "未找到该车联网卡", "No card with this ICCID", field="iccid")


def _retired(card: Card, life: CardLifecycle) -> Conflict:
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


def _reason_text(cb: OperatorCallback) -> str:
    words = " / ".join(w for w in (cb.reason_zh, cb.reason_en) if w) or "电信企业未说明原因 / no reason given"
    return f"{words} [{cb.reason_code}]" if cb.reason_code else words


class _Moves:
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


def _outcome(write: CardWrite, record_id: str | None) -> CardOutcome:
    card = write.after
    return CardOutcome(
        iccid=card.iccid,
        vin=card.vin,
        state=card.state,
        functions=card.functions,
        version=card.version,
        record_id=record_id,
        events=[e.event for e in write.events],
        retired=write.lifecycle.retired if write.lifecycle else None,
    )


def _cleared(life: CardLifecycle, at: datetime) -> CardLifecycle:
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


def _releases(life: CardLifecycle, operator: Operator) -> list[CounterMove]:
    moves = []
    if life.holder_counted and life.holder_id_hash:
        moves.append(CounterMove(life.holder_id_hash, operator, -1))
    if life.pending_counted and life.pending_holder_id_hash:
        moves.append(CounterMove(life.pending_holder_id_hash, operator, -1))
    return moves


class Lifecycle:
    """The lifecycle use cases; dependencies passed in (ports), time from ``clock``."""

    def __init__(
        self,
        inventory: InventoryRepository,
        store: OutboxStore,
        queue: PushQueue,
        *,
        policy: RetryPolicy | None = None,
        clock: Clock = utc_now,
        new_id: Callable[[], str] = new_record_id,
    ):
        self._inventory = inventory
        self._store = store
        self._queue = queue
        self._policy = policy or RetryPolicy()
        self._clock = clock
        self._new_id = new_id

    # -- reads ---------------------------------------------------------------------------------------

    def _card(self, iccid: str) -> Card:
        card = self._inventory.get_card(iccid)
        if card is None:
            raise _not_found_card()
        return card

    def _vehicle(self, vin: str) -> Vehicle:
        vehicle = self._inventory.get_vehicle(vin)
        if vehicle is None:
            raise NotFound("vehicle.not_found", "未找到该车辆", "No vehicle with this VIN", field="vin")
        return vehicle

    def status(self, iccid: str) -> CardStatus:
        card = self._card(iccid)
        life = self._store.lifecycle(iccid)
        refusal = None
        if life.reason_code or life.reason_zh or life.reason_en:
            refusal = Refusal(code=life.reason_code, message_zh=life.reason_zh, message_en=life.reason_en)
        return CardStatus(
            card=card, lifecycle=life, last_refusal=refusal, history=self._inventory.history(iccid)
        )

    # -- pushes --------------------------------------------------------------------------------------

    def _record(
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
            functions=requested_functions(kind),
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

    def _enqueue(self, records: Sequence[OutboxRecord]) -> None:
        """Wake the dispatcher. Best effort: the records are committed, the sweeper enqueues any missed."""
        for record in records:
            try:
                self._queue.send_message(json.dumps({"record_id": record.record_id}))
            except Exception:
                logger.warning(
                    "outbox enqueue failed; the sweeper will push it", extra={"record": record.record_id}
                )

    def _commit(self, change: OutboxCommit) -> None:
        self._store.commit(change)
        self._enqueue(change.records)

    # -- registration --------------------------------------------------------------------------------

    def submit_registration(self, iccid: str, holder: Holder, actor: str) -> CardOutcome:
        """实名登记 submitted for one card (see ``submit_registrations``)."""
        return self.submit_registrations((iccid,), holder, actor)[0]

    def _check_registrable(self, card: Card, life: CardLifecycle) -> None:
        if life.retired is not None:
            raise _retired(card, life)
        if card.state is CardState.PENDING:
            raise Conflict(
                "registration.pending",
                "该车联网卡的实名登记正在办理中",
                "A registration of this card is already in progress",
                field="iccid",
            )
        if card.state is CardState.REGISTERED:
            raise Conflict(
                "registration.already_registered",
                "该车联网卡已实名登记；更换车主请办理过户",
                "The card is already registered; a new owner needs a transfer",
                field="iccid",
            )
        if life.awaiting and life.message_kind is PushKind.DEREGISTER:
            raise Conflict(
                "registration.deregistration_in_progress",
                "上一次注销仍在电信企业处理中，请稍后再试",
                "The previous de-registration is still with the operator; try again later",
                field="iccid",
            )

    def submit_registrations(self, iccids: Sequence[str], holder: Holder, actor: str) -> list[CardOutcome]:
        """实名登记 submitted: every card goes ``pending`` and its registration is pushed (第八条(三)), all
        in one transaction (a vehicle with two cards never ends half registered).

        The one-ID limit (第十一条) is counted in the same transaction: of two submissions racing for the
        last slot, exactly one passes. A card already pending or registered is refused.
        """
        if not iccids or len(set(iccids)) != len(iccids):
            raise InvalidField(
                "registration.cards", "车联网卡列表无效", "No or repeated cards", field="iccid"
            )
        at = self._clock()
        counted = counts_toward_limit(holder.facts.kind)
        writes: list[CardWrite] = []
        records: list[OutboxRecord] = []
        per_operator: Counter[Operator] = Counter()
        for iccid in iccids:
            card = self._card(iccid)
            life = self._store.lifecycle(iccid)
            self._check_registrable(card, life)
            moves = _Moves(card, actor, at)
            moves.step(LifecycleEvent.REGISTRATION_SUBMITTED, CardState.PENDING)
            record = self._record(
                PushKind.REGISTER,
                card,
                self._vehicle(card.vin),
                at,
                holder=holder.facts,
                previous_holder_id_hash=None,
                holder_id_hash=holder.id_hash,
            )
            new_life = _cleared(life, at).model_copy(
                update={
                    "message_id": record.record_id,
                    "message_kind": PushKind.REGISTER,
                    "awaiting": True,
                    "holder_id_hash": holder.id_hash,
                    "holder_counted": counted,
                    "reason_code": None,
                    "reason_zh": None,
                    "reason_en": None,
                }
            )
            writes.append(moves.write(holder.party_id, new_life))
            records.append(record)
            per_operator[card.operator] += 1
        # One counter item per operator, raised by the cards it gains: ``limit`` refuses the increment
        # unless ``active < limit``, so ``n`` new cards need ``active <= LIMIT - n``.
        counters = (
            tuple(
                CounterMove(holder.id_hash, operator, n, limit=CARDS_PER_ID_LIMIT - n + 1)
                for operator, n in per_operator.items()
            )
            if counted
            else ()
        )
        self._commit(OutboxCommit(cards=tuple(writes), records=tuple(records), counters=counters))
        return [_outcome(w, r.record_id) for w, r in zip(writes, records, strict=True)]

    # -- the operator's answers ----------------------------------------------------------------------

    def apply_callback(self, callback: OperatorCallback) -> CallbackResult:
        """Apply the operator's answer once (by ``callback_id``), and only to the card's current push."""
        for attempt in range(CALLBACK_ATTEMPTS):
            try:
                return self._apply(callback)
            except DuplicateCallback:
                return self._result(callback, CallbackNote.DUPLICATE)
            except Conflict as err:
                if err.code != "card.changed" or attempt + 1 == CALLBACK_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _result(
        self, cb: OperatorCallback, note: CallbackNote, state: CardState | None = None
    ) -> CallbackResult:
        return CallbackResult(
            callback_id=cb.callback_id, message_id=cb.message_id, iccid=cb.iccid, note=note, state=state
        )

    def _note_only(
        self,
        cb: OperatorCallback,
        note: CallbackNote,
        at: datetime,
        card: Card | None,
        record: OutboxRecord | None,
    ) -> CallbackResult:
        """Remember the callback without touching the card; a stale answer still settles its record."""
        decision = None
        if (
            note is CallbackNote.STALE
            and record is not None
            and record.status not in (OutboxStatus.ACCEPTED, OutboxStatus.REJECTED, OutboxStatus.SUPERSEDED)
        ):
            decision = _decision(cb, record.record_id, at)
        self._store.commit(OutboxCommit(callback=SeenCallback(cb, note, at), decision=decision))
        logger.info("operator callback not applied", extra={"note": note.value, "message_id": cb.message_id})
        return self._result(cb, note, card.state if card else None)

    def _apply(self, cb: OperatorCallback) -> CallbackResult:
        if self._store.callback_seen(cb.callback_id):
            return self._result(cb, CallbackNote.DUPLICATE)
        at = self._clock()
        record = self._store.get(cb.message_id)
        card = self._inventory.get_card(cb.iccid)
        if record is None or card is None or record.iccid != cb.iccid or record.operator != cb.operator:
            return self._note_only(cb, CallbackNote.UNKNOWN, at, card, None)
        life = self._store.lifecycle(card.iccid)
        moves = _Moves(card, f"operator:{cb.operator.value}", at)
        seen = SeenCallback(cb, CallbackNote.APPLIED, at)

        if cb.outcome is CallbackOutcome.SPOT_CHECK:
            # 抽查 (第十条): recorded for the OEM in the card's history; the registration is unchanged.
            moves.step(LifecycleEvent.SPOT_CHECK, card.state, f"message {cb.message_id}: {_reason_text(cb)}")
            write = moves.write(card.holder_id, None, functions=card.functions)
            self._store.commit(
                OutboxCommit(cards=(write,), callback=SeenCallback(cb, CallbackNote.RECORDED, at))
            )
            return self._result(cb, CallbackNote.RECORDED, card.state)
        if life.message_id != record.record_id:
            return self._note_only(cb, CallbackNote.STALE, at, card, record)
        if not life.awaiting:
            return self._note_only(cb, CallbackNote.ALREADY_DECIDED, at, card, record)

        accepted = cb.outcome is CallbackOutcome.ACCEPTED
        decided = life.model_copy(update={"awaiting": False, "updated_at": at})
        if not accepted:
            decided = decided.model_copy(
                update={"reason_code": cb.reason_code, "reason_zh": cb.reason_zh, "reason_en": cb.reason_en}
            )
        counters: list[CounterMove] = []
        opened = opened_functions(record.message.functions, cb.functions)
        kind = record.kind
        if kind is PushKind.REGISTER and card.state is CardState.PENDING:
            if accepted:
                moves.step(LifecycleEvent.REGISTRATION_ACCEPTED, CardState.REGISTERED)
                write = moves.write(card.holder_id, decided, functions=opened)
            else:
                moves.step(LifecycleEvent.REGISTRATION_REJECTED, CardState.UNREGISTERED, _reason_text(cb))
                counters = _releases(decided, card.operator)
                write = moves.write(None, _cleared(decided, at))
        elif kind is PushKind.TRANSFER and card.state is CardState.REGISTERED:
            if accepted:
                moves.step(LifecycleEvent.TRANSFERRED, CardState.REGISTERED)
                counters = _releases(decided.model_copy(update={"pending_counted": False}), card.operator)
                new_life = decided.model_copy(
                    update={
                        "holder_id_hash": life.pending_holder_id_hash,
                        "holder_counted": life.pending_counted,
                        "pending_holder_id": None,
                        "pending_holder_id_hash": None,
                        "pending_counted": False,
                    }
                )
                write = moves.write(life.pending_holder_id, new_life, functions=opened)
            else:
                moves.step(LifecycleEvent.TRANSFER_REJECTED, CardState.REGISTERED, _reason_text(cb))
                counters = _releases(decided.model_copy(update={"holder_counted": False}), card.operator)
                new_life = decided.model_copy(
                    update={
                        "pending_holder_id": None,
                        "pending_holder_id_hash": None,
                        "pending_counted": False,
                    }
                )
                write = moves.write(card.holder_id, new_life, functions=card.functions)
        elif kind is PushKind.DEREGISTER:
            if accepted:
                moves.step(LifecycleEvent.DEREGISTRATION_CONFIRMED, card.state)
            else:
                # The operator keeps the card open: the OEM has to follow up (reconciliation shows it too).
                moves.step(LifecycleEvent.DEREGISTRATION_REFUSED, card.state, _reason_text(cb))
            write = moves.write(card.holder_id, decided, functions=card.functions)
        else:
            return self._note_only(cb, CallbackNote.ALREADY_DECIDED, at, card, record)
        self._store.commit(
            OutboxCommit(
                cards=(write,),
                counters=tuple(counters),
                callback=seen,
                decision=_decision(cb, record.record_id, at),
            )
        )
        return self._result(cb, CallbackNote.APPLIED, write.after.state)

    # -- ending a registration -----------------------------------------------------------------------

    def _end(
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
        at = self._clock()
        moves = _Moves(card, actor, at)
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
            record = self._record(
                PushKind.DEREGISTER,
                card,
                vehicle,
                at,
                holder=None,
                previous_holder_id_hash=life.holder_id_hash,
            )
        new_life = _cleared(life, at)
        if record is not None:
            new_life = new_life.model_copy(
                update={"message_id": record.record_id, "message_kind": PushKind.DEREGISTER, "awaiting": True}
            )
        if retire is not None:
            new_life = new_life.model_copy(update={"retired": retire, "retired_at": at})
        return moves.write(None, new_life), record, _releases(life, card.operator)

    def deregister(self, iccid: str, actor: str, reason: str) -> CardOutcome:
        """实名注销: registered → deregistered → unregistered (emergency only), pushed; the ID slot freed."""
        card = self._card(iccid)
        check_transition(iccid, card.state, CardState.DEREGISTERED)
        life = self._store.lifecycle(iccid)
        write, record, counters = self._end(card, life, self._vehicle(card.vin), actor, reason, None)
        self._commit(
            OutboxCommit(cards=(write,), records=(record,) if record else (), counters=tuple(counters))
        )
        return _outcome(write, record.record_id if record else None)

    # -- transfer ------------------------------------------------------------------------------------

    def transfer(self, iccid: str, holder: Holder, actor: str) -> CardOutcome:
        """过户: the new holder's registration is pushed; the card stays registered to the old holder,
        with the transfer noted, until the operator accepts it (then the old registration ends)."""
        card = self._card(iccid)
        life = self._store.lifecycle(iccid)
        if life.retired is not None:
            raise _retired(card, life)
        if card.state is not CardState.REGISTERED:
            raise Conflict(
                "card.not_registered",
                "只有已实名登记的车联网卡可以办理过户",
                "Only a registered card can be transferred",
                field="iccid",
                details={"iccid": iccid, "state": card.state.value},
            )
        if life.awaiting or life.pending_holder_id is not None:
            raise Conflict(
                "transfer.pending",
                "该车联网卡有正在办理的业务，请等待电信企业处理完成",
                "The card has a change in progress with the operator; wait for its answer",
                field="iccid",
            )
        if card.holder_id == holder.party_id or life.holder_id_hash == holder.id_hash:
            raise InvalidField(
                "transfer.same_holder",
                "新车主与原车主相同",
                "The new holder is the current holder",
                field="holder_id",
            )
        vehicle = self._vehicle(card.vin)
        at = self._clock()
        moves = _Moves(card, actor, at)
        moves.step(LifecycleEvent.TRANSFER_REQUESTED, CardState.REGISTERED, f"to party {holder.party_id}")
        record = self._record(
            PushKind.TRANSFER,
            card,
            vehicle,
            at,
            holder=holder.facts,
            previous_holder_id_hash=life.holder_id_hash,
            holder_id_hash=holder.id_hash,
        )
        counted = counts_toward_limit(holder.facts.kind)
        new_life = life.model_copy(
            update={
                "message_id": record.record_id,
                "message_kind": PushKind.TRANSFER,
                "awaiting": True,
                "pending_holder_id": holder.party_id,
                "pending_holder_id_hash": holder.id_hash,
                "pending_counted": counted,
                "reason_code": None,
                "reason_zh": None,
                "reason_en": None,
                "updated_at": at,
            }
        )
        write = moves.write(card.holder_id, new_life, functions=card.functions)
        counters = (
            (CounterMove(holder.id_hash, card.operator, +1, limit=CARDS_PER_ID_LIMIT),) if counted else ()
        )
        self._commit(OutboxCommit(cards=(write,), records=(record,), counters=counters))
        return _outcome(write, record.record_id)

    # -- scrap and part replacement ------------------------------------------------------------------

    def scrap(self, vin: str, actor: str) -> ScrapResult:
        """报废: every card of the vehicle de-registered (pushed where a registration existed) and retired.

        One transaction per card; running it again finishes a scrap that stopped half way.
        """
        vehicle = self._vehicle(vin)
        cards = self._inventory.cards_of_vehicle(vin)
        lives = self._store.lifecycles([c.iccid for c in cards])
        done: list[CardOutcome] = []
        already: list[str] = []
        for card in cards:
            life = lives[card.iccid]
            if life.retired is not None:
                already.append(card.iccid)
                continue
            write, record, counters = self._end(card, life, vehicle, actor, "报废 scrap", Retirement.SCRAPPED)
            self._commit(
                OutboxCommit(cards=(write,), records=(record,) if record else (), counters=tuple(counters))
            )
            done.append(_outcome(write, record.record_id if record else None))
        return ScrapResult(vin=vin, cards=done, already_retired=already)

    def swap(self, vin: str, old_iccid: str, new_iccid: str, actor: str) -> SwapResult:
        """更换零部件: the old card's registration ends and it is retired; the new card takes the vehicle,
        unregistered (emergency only) until somebody registers it. Both in one transaction."""
        if old_iccid == new_iccid:
            raise InvalidField(
                "swap.same_card", "新旧卡片编码相同", "The old and new ICCIDs are the same", field="new_iccid"
            )
        vehicle = self._vehicle(vin)
        old = self._card(old_iccid)
        new = self._inventory.get_card(new_iccid)
        if new is None:
            raise NotFound(
                "card.not_found",
                "未找到新的车联网卡，请先导入库存",
                "No card with the new ICCID: import it into the inventory first",
                field="new_iccid",
            )
        if old.vin != vin:
            raise Conflict(
                "swap.card_not_on_vehicle",
                "旧车联网卡不属于该车辆",
                "The old card is not on this vehicle",
                field="old_iccid",
                details={"iccid": old_iccid},
            )
        on_vehicle = self._inventory.cards_of_vehicle(vin)
        lives = self._store.lifecycles([old_iccid, new_iccid, *(c.iccid for c in on_vehicle)])
        if any(lives[c.iccid].retired is Retirement.SCRAPPED for c in on_vehicle):
            raise Conflict(
                "vehicle.scrapped",
                "该车辆已报废",
                "The vehicle was scrapped",
                field="vin",
                details={"vin": vin},
            )
        for card in (old, new):
            if lives[card.iccid].retired is not None:
                raise _retired(card, lives[card.iccid])
        if new.state is not CardState.UNREGISTERED or lives[new_iccid].awaiting:
            raise Conflict(
                "swap.new_card_in_use",
                "新车联网卡已登记或正在办理业务，不能装到该车辆",
                "The new card is registered or has a change in progress: it cannot be fitted",
                field="new_iccid",
                details={"iccid": new_iccid, "state": new.state.value},
            )
        old_write, record, counters = self._end(
            old,
            lives[old_iccid],
            vehicle,
            actor,
            f"更换零部件 swap: replaced by {new_iccid}",
            Retirement.SWAPPED_OUT,
        )
        moved = f", moved from vehicle {new.vin}" if new.vin != vin else ""
        moves = _Moves(new, actor, self._clock())
        moves.step(LifecycleEvent.SWAPPED_IN, CardState.UNREGISTERED, f"swap: replaces {old_iccid}{moved}")
        new_write = moves.write(None, None, vin=vin)
        self._commit(
            OutboxCommit(
                cards=(old_write, new_write), records=(record,) if record else (), counters=tuple(counters)
            )
        )
        return SwapResult(
            vin=vin,
            old=_outcome(old_write, record.record_id if record else None),
            new=_outcome(new_write, None),
        )

    # -- reconciliation ------------------------------------------------------------------------------

    def reconcile(
        self,
        operator: Operator,
        directory: OperatorDirectory,
        *,
        page_limit: int = 1000,
        max_drifts: int = 1000,
    ) -> ReconcileReport:
        """Compare what the operator lists with what the platform believes, card by card.

        Pages through the operator's listing (batch reads per page), then through the platform's active
        cards of that operator (a sparse index, never a scan) to find those the operator lacks.
        """
        report = ReconcileReport(operator=operator)
        kinds: Counter[str] = Counter()
        drifts: list[Drift] = []
        listed: set[str] = set()

        def note(found: list[Drift]) -> None:
            for d in found:
                kinds[d.kind.value] += 1
                if len(drifts) < max_drifts:
                    drifts.append(d)

        cursor: str | None = None
        while True:
            page, cursor = directory.listing(operator, cursor)
            iccids = [r.iccid for r in page]
            listed.update(iccids)
            cards = self._inventory.get_cards(iccids)
            lives = self._store.lifecycles(iccids)
            for rec in page:
                report.listed += 1
                life = lives[rec.iccid]
                found = _compare(operator, rec, cards.get(rec.iccid), life)
                note(found)
                if life.awaiting:
                    report.in_flight += 1
                elif not found:
                    report.in_sync += 1
            if cursor is None:
                break
        active_cursor: str | None = None
        while True:
            iccids, active_cursor = self._store.active_cards(operator, active_cursor, page_limit)
            missing = [i for i in iccids if i not in listed]
            cards = self._inventory.get_cards(missing) if missing else {}
            lives = self._store.lifecycles(missing) if missing else {}
            for iccid in missing:
                card = cards.get(iccid)
                if card is not None and card.state is CardState.REGISTERED and not lives[iccid].awaiting:
                    note([Drift(iccid=iccid, kind=DriftKind.MISSING_AT_OPERATOR, platform=card.state.value)])
            if active_cursor is None:
                break
        report.drift_count = sum(kinds.values())
        report.by_kind = dict(kinds)
        report.drifts = drifts
        report.truncated = report.drift_count > len(drifts)
        return report


def _compare(
    operator: Operator, rec: OperatorCardRecord, card: Card | None, life: CardLifecycle
) -> list[Drift]:
    """How one card the operator lists differs from the platform's view of it."""
    theirs = rec.state.value
    if card is None:
        return [Drift(iccid=rec.iccid, kind=DriftKind.UNKNOWN_CARD, operator=theirs)]
    if card.operator is not operator:
        return [
            Drift(
                iccid=rec.iccid,
                kind=DriftKind.OTHER_OPERATOR,
                platform=card.operator.value,
                operator=operator,
            )
        ]
    found = []
    if not life.awaiting:  # while a push awaits its answer, either side may be right for now
        ours_active = card.state is CardState.REGISTERED
        if (rec.state is OperatorCardState.REGISTERED) != ours_active:
            found.append(
                Drift(iccid=rec.iccid, kind=DriftKind.STATE, platform=card.state.value, operator=theirs)
            )
        elif ours_active and life.holder_id_hash and rec.holder_id_hash != life.holder_id_hash:
            found.append(Drift(iccid=rec.iccid, kind=DriftKind.HOLDER))
    # 第十四条: never more open than the state allows (in flight: what registration would open).
    widest = CardState.REGISTERED if life.awaiting else card.state
    allowed = {f.value for f in functions_for(widest)}
    extra = sorted({f.value for f in rec.functions} - allowed)
    if extra:
        found.append(
            Drift(
                iccid=rec.iccid,
                kind=DriftKind.FUNCTIONS_EXCEED,
                platform=",".join(sorted(allowed)),
                operator=",".join(extra),
            )
        )
    return found


def _decision(cb: OperatorCallback, record_id: str, at: datetime) -> RecordDecision:
    accepted = cb.outcome is CallbackOutcome.ACCEPTED
    return RecordDecision(
        record_id=record_id,
        status=OutboxStatus.ACCEPTED if accepted else OutboxStatus.REJECTED,
        reason=None if accepted else _reason_text(cb),
        at=at,
    )
