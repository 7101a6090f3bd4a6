"""The operator's answers applied to the card (SPEC §6, 第十四条): a card is ``registered`` only once its
operator accepted it, with the functions the operator opened; a refusal frees the one-ID slot and keeps
its reason for the user; 抽查 (第十条) is written to the card's history.

An answer is applied once (by ``callback_id``) and only to the card's current push: an answer to an
older push still settles its record but leaves the card alone.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from chalicelib.cards.commit import Ledger, Moves, cleared, releases
from chalicelib.cards.domain.inventory import Card, CardState
from chalicelib.cards.domain.lifecycle import CardLifecycle, LifecycleEvent, PushKind, transferred_reason
from chalicelib.cards.views import CallbackResult
from chalicelib.core.observability import logger
from chalicelib.kernel.errors import Conflict
from chalicelib.operators.domain.messages import CallbackOutcome, OperatorCallback
from chalicelib.operators.domain.outbox import (
    CallbackNote,
    CardWrite,
    CounterMove,
    DuplicateCallback,
    OutboxCommit,
    OutboxRecord,
    OutboxStatus,
    RecordDecision,
    SeenCallback,
    opened_functions,
)

#: Attempts at applying one callback when the card moved meanwhile (another callback, an admin).
CALLBACK_ATTEMPTS = 3


class Answers:
    def __init__(self, ledger: Ledger):
        self._ledger = ledger

    def apply_callback(self, callback: OperatorCallback) -> CallbackResult:
        """Apply the operator's answer once (by ``callback_id``), and only to the card's current push."""
        for attempt in range(CALLBACK_ATTEMPTS):
            try:
                return self._apply(callback)
            except DuplicateCallback:
                return _result(callback, CallbackNote.DUPLICATE)
            except Conflict as err:
                if err.code != "card.changed" or attempt + 1 == CALLBACK_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _apply(self, cb: OperatorCallback) -> CallbackResult:
        store = self._ledger.store
        if store.callback_seen(cb.callback_id):
            return _result(cb, CallbackNote.DUPLICATE)
        at = self._ledger.clock()
        record = store.get(cb.message_id)
        card = self._ledger.inventory.get_card(cb.iccid)
        if record is None or card is None or record.iccid != cb.iccid or record.operator != cb.operator:
            return self._note_only(cb, CallbackNote.UNKNOWN, at, card, None)
        if cb.outcome is CallbackOutcome.SPOT_CHECK:
            return self._spot_check(cb, card, at)
        life = store.lifecycle(card.iccid)
        if life.message_id != record.record_id:
            return self._note_only(cb, CallbackNote.STALE, at, card, record)
        if not life.awaiting:
            return self._note_only(cb, CallbackNote.ALREADY_DECIDED, at, card, record)
        decided = _decide(cb, card, life, record, at)
        if decided is None:
            return self._note_only(cb, CallbackNote.ALREADY_DECIDED, at, card, record)
        write, counters = decided
        self._ledger.commit(
            OutboxCommit(
                cards=(write,),
                counters=tuple(counters),
                callback=SeenCallback(cb, CallbackNote.APPLIED, at),
                decision=_decision(cb, record.record_id, at),
            )
        )
        return _result(cb, CallbackNote.APPLIED, write.after.state)

    def _spot_check(self, cb: OperatorCallback, card: Card, at: datetime) -> CallbackResult:
        """抽查 (第十条): recorded for the OEM in the card's history; the registration is unchanged."""
        moves = Moves(card, f"operator:{cb.operator.value}", at)
        moves.step(LifecycleEvent.SPOT_CHECK, card.state, f"message {cb.message_id}: {_reason_text(cb)}")
        write = moves.write(card.holder_id, None, functions=card.functions)
        self._ledger.store.commit(
            OutboxCommit(cards=(write,), callback=SeenCallback(cb, CallbackNote.RECORDED, at))
        )
        return _result(cb, CallbackNote.RECORDED, card.state)

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
        self._ledger.store.commit(OutboxCommit(callback=SeenCallback(cb, note, at), decision=decision))
        logger.info("operator callback not applied", extra={"note": note.value, "message_id": cb.message_id})
        return _result(cb, note, card.state if card else None)


def _decide(
    cb: OperatorCallback, card: Card, life: CardLifecycle, record: OutboxRecord, at: datetime
) -> tuple[CardWrite, list[CounterMove]] | None:
    """What the answer to the card's current push does to it; None when the card is no longer where
    that push left it (the answer then changes nothing)."""
    moves = Moves(card, f"operator:{cb.operator.value}", at)
    accepted = cb.outcome is CallbackOutcome.ACCEPTED
    decided = life.model_copy(update={"awaiting": False, "updated_at": at})
    if not accepted:
        decided = decided.model_copy(
            update={"reason_code": cb.reason_code, "reason_zh": cb.reason_zh, "reason_en": cb.reason_en}
        )
    opened = opened_functions(record.message.functions, cb.functions)
    kind = record.kind
    if kind is PushKind.REGISTER and card.state is CardState.PENDING:
        if accepted:
            moves.step(LifecycleEvent.REGISTRATION_ACCEPTED, CardState.REGISTERED)
            return moves.write(card.holder_id, decided, functions=opened), []
        moves.step(LifecycleEvent.REGISTRATION_REJECTED, CardState.UNREGISTERED, _reason_text(cb))
        return moves.write(None, cleared(decided, at)), releases(decided, card.operator)
    if kind is PushKind.TRANSFER and card.state is CardState.REGISTERED:
        transfer_ended = {"pending_holder_id": None, "pending_holder_id_hash": None, "pending_counted": False}
        if accepted:
            # The seller's service ends here: the entry names both parties (retention, 第十八条).
            ended = transferred_reason(card.holder_id, life.pending_holder_id)
            moves.step(LifecycleEvent.TRANSFERRED, CardState.REGISTERED, ended)
            counters = releases(decided.model_copy(update={"pending_counted": False}), card.operator)
            new_life = decided.model_copy(
                update={
                    "holder_id_hash": life.pending_holder_id_hash,
                    "holder_counted": life.pending_counted,
                    **transfer_ended,
                }
            )
            return moves.write(life.pending_holder_id, new_life, functions=opened), counters
        moves.step(LifecycleEvent.TRANSFER_REJECTED, CardState.REGISTERED, _reason_text(cb))
        counters = releases(decided.model_copy(update={"holder_counted": False}), card.operator)
        new_life = decided.model_copy(update=transfer_ended)
        write = moves.write(card.holder_id, new_life, functions=card.functions)
        if life.pending_holder_id:  # the refused buyer's materials follow the retention rule too
            write = replace(write, ended_claims=(life.pending_holder_id,))
        return write, counters
    if kind is PushKind.DEREGISTER and card.state is CardState.REGISTERED:
        # 实名注销 requested: done when the operator says so; refused, the card stays registered.
        if accepted:
            reason = "电信企业已确认注销 / the operator accepted the de-registration"
            moves.step(LifecycleEvent.DEREGISTERED, CardState.DEREGISTERED, reason)
            moves.step(LifecycleEvent.EMERGENCY_ONLY, CardState.UNREGISTERED, reason)
            moves.step(LifecycleEvent.DEREGISTRATION_CONFIRMED, CardState.UNREGISTERED)
            return moves.write(None, cleared(decided, at)), releases(decided, card.operator)
        moves.step(LifecycleEvent.DEREGISTRATION_REFUSED, CardState.REGISTERED, _reason_text(cb))
        return moves.write(card.holder_id, decided, functions=card.functions), []
    if kind is PushKind.DEREGISTER:
        if accepted:
            moves.step(LifecycleEvent.DEREGISTRATION_CONFIRMED, card.state)
        else:
            # The operator keeps the card open: the OEM has to follow up (reconciliation shows it too).
            moves.step(LifecycleEvent.DEREGISTRATION_REFUSED, card.state, _reason_text(cb))
        return moves.write(card.holder_id, decided, functions=card.functions), []
    return None


def _result(cb: OperatorCallback, note: CallbackNote, state: CardState | None = None) -> CallbackResult:
    return CallbackResult(
        callback_id=cb.callback_id, message_id=cb.message_id, iccid=cb.iccid, note=note, state=state
    )


def _reason_text(cb: OperatorCallback) -> str:
    words = " / ".join(w for w in (cb.reason_zh, cb.reason_en) if w) or "电信企业未说明原因 / no reason given"
    return f"{words} [{cb.reason_code}]" if cb.reason_code else words


def _decision(cb: OperatorCallback, record_id: str, at: datetime) -> RecordDecision:
    accepted = cb.outcome is CallbackOutcome.ACCEPTED
    return RecordDecision(
        record_id=record_id,
        status=OutboxStatus.ACCEPTED if accepted else OutboxStatus.REJECTED,
        reason=None if accepted else _reason_text(cb),
        at=at,
    )
