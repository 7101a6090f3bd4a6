"""The outbox store on DynamoDB (pynamodb), and the SQS queue that wakes the dispatcher.

``commit`` is one ``TransactWriteItems``: each card moved (guarded by the version and state it was read
at, as the inventory repository guards its transitions), its history entries, its lifecycle item, the
outbox records, the cards-per-ID counts (an increment conditional on the limit), the callback id and the
decided record. Either everything is written or nothing is.

Records are claimed with a conditional update (pending, due, unclaimed) before each push, so a message
delivered twice pushes once; a claim is a lease, so a dispatcher that dies mid-push only delays it.

One module, over 400 lines, on purpose: the commit, the claims and the callback memory write the same
items under the same conditions, and splitting them would scatter one table's invariants.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import time
import uuid
import zlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamo.inventory import (
    RETRYABLE,
    TRANSACT_ATTEMPTS,
    _changed,
    backfill_action,
    event_item,
)
from chalicelib.adapters.dynamo.models import CardHistoryModel, CardModel
from chalicelib.adapters.dynamo.models_outbox import (
    OPEN_STATUS_SHARDS,
    CallbackSeenModel,
    CardLifecycleModel,
    CardsPerIdModel,
    OutboxModel,
)
from chalicelib.cards.domain.inventory import CardState
from chalicelib.cards.domain.lifecycle import CardLifecycle, PushKind, Retirement
from chalicelib.cards.domain.limits import cards_per_id_exceeded
from chalicelib.core.settings import Settings
from chalicelib.kernel.clock import utc_now
from chalicelib.kernel.crypto import FieldCipher, SealedFields
from chalicelib.kernel.errors import BadRequest
from chalicelib.kernel.operators import Operator
from chalicelib.operators.domain.messages import PushMessage
from chalicelib.operators.domain.outbox import (
    CALLBACK_MEMORY_DAYS,
    FINAL_RECORD_RETENTION_DAYS,
    CardWrite,
    Claim,
    CounterMove,
    DuplicateCallback,
    OutboxCommit,
    OutboxPage,
    OutboxRecord,
    OutboxStatus,
    OutboxSummary,
    SeenCallback,
)
from chalicelib.operators.ports import OutboxStore, PushQueue

#: A delayed message may arrive a little before the record's due time (clocks differ): still take it.
CLAIM_EARLY_TOLERANCE = timedelta(seconds=1)
_ERROR_CHARS = 500
_CONDITION_FAILED = "ConditionalCheckFailed"
_ACTIVE = (CardState.PENDING, CardState.REGISTERED)

OUTBOX_QUEUE = "outbox"
OUTBOX_DEAD_LETTER_QUEUE = "outbox-dlq"


def queue_name(settings: Settings, short: str) -> str:
    """``<prefix>-<stage>-<short>``, as every resource of the stage is named."""
    return f"{settings.resource_prefix}-{settings.stage}-{short}"


# -------------------------------------------------------------------------------------- conversions


def _shard(record_id: str) -> int:
    return zlib.crc32(record_id.encode()) % OPEN_STATUS_SHARDS


def _open_key(status: OutboxStatus, record_id: str) -> str:
    return f"{status.value}#{_shard(record_id)}"


def _epoch_after(at: datetime, days: int) -> int:
    return int(at.timestamp()) + days * 86_400


def _summary(m: OutboxModel) -> OutboxSummary:
    status = OutboxStatus(m.status)
    return OutboxSummary(
        record_id=m.record_id,
        kind=PushKind(m.kind),
        iccid=m.iccid,
        operator=Operator(m.operator),
        status=status,
        attempts=int(m.attempts or 0),
        next_attempt_at=m.next_attempt_at,
        sweep_at=m.status_at if status is OutboxStatus.PENDING else None,
        claim_until=m.claim_until,
        created_at=m.created_at,
        updated_at=m.updated_at,
        last_error=m.last_error,
        operator_ref=m.operator_ref,
        decided_at=m.decided_at,
        reason=m.reason,
    )


def _lifecycle(m: CardLifecycleModel) -> CardLifecycle:
    return CardLifecycle(
        iccid=m.iccid,
        message_id=m.message_id,
        message_kind=PushKind(m.message_kind) if m.message_kind else None,
        awaiting=bool(m.awaiting),
        holder_id_hash=m.holder_id_hash,
        holder_counted=bool(m.holder_counted),
        pending_holder_id=m.pending_holder_id,
        pending_holder_id_hash=m.pending_holder_id_hash,
        pending_counted=bool(m.pending_counted),
        retired=Retirement(m.retired) if m.retired else None,
        retired_at=m.retired_at,
        reason_code=m.reason_code,
        reason_zh=m.reason_zh,
        reason_en=m.reason_en,
        updated_at=m.updated_at,
    )


def _lifecycle_item(life: CardLifecycle, write: CardWrite, at: datetime) -> CardLifecycleModel:
    card = write.after
    active = card.state in _ACTIVE and life.retired is None
    return CardLifecycleModel(
        life.iccid,
        card_version=card.version,
        message_id=life.message_id,
        message_kind=life.message_kind.value if life.message_kind else None,
        awaiting=life.awaiting,
        holder_id_hash=life.holder_id_hash,
        holder_counted=life.holder_counted,
        pending_holder_id=life.pending_holder_id,
        pending_holder_id_hash=life.pending_holder_id_hash,
        pending_counted=life.pending_counted,
        retired=life.retired.value if life.retired else None,
        retired_at=life.retired_at,
        reason_code=life.reason_code,
        reason_zh=life.reason_zh,
        reason_en=life.reason_en,
        active_operator=card.operator.value if active else None,
        updated_at=life.updated_at or at,
    )


def _card_actions(write: CardWrite, at: datetime) -> list[Action]:
    card = write.after
    actions: list[Action] = [
        CardModel.state.set(card.state.value),
        CardModel.functions.set([f.value for f in card.functions]),
        CardModel.version.set(card.version),
        CardModel.updated_at.set(card.updated_at or at),
        CardModel.holder_id.set(card.holder_id) if card.holder_id else CardModel.holder_id.remove(),
        backfill_action(card, retired=write.lifecycle is not None and write.lifecycle.retired is not None),
    ]
    if card.vin != write.before.vin:
        actions.append(CardModel.vin.set(card.vin))
    return actions


def _card_guard(write: CardWrite) -> Condition:
    """The inventory repository's guard: the card is still at the version and state it was read at."""
    before = write.before
    guard: Condition = (CardModel.version == before.version) & (CardModel.state == before.state.value)
    return guard


def _counter_id(move: CounterMove) -> str:
    return f"{move.id_hash}#{move.operator.value}"


def _seen_item(seen: SeenCallback) -> CallbackSeenModel:
    cb = seen.callback
    return CallbackSeenModel(
        cb.callback_id,
        message_id=cb.message_id,
        iccid=cb.iccid,
        outcome=cb.outcome.value,
        note=seen.note.value,
        received_at=seen.at,
        expires_epoch=_epoch_after(seen.at, CALLBACK_MEMORY_DAYS),
    )


def _condition_failed(exc: UpdateError) -> bool:
    return exc.cause_response_code == f"{_CONDITION_FAILED}Exception"


def _encode_cursor(doc: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        doc = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad_cursor() from exc
    if not isinstance(doc, dict):
        raise _bad_cursor()
    return doc


def _bad_cursor() -> BadRequest:
    return BadRequest(
        "cursor.invalid", "分页游标无效", "The cursor is not one this list returned", field="cursor"
    )


# ---------------------------------------------------------------------------------------- the store


class DynamoOutboxStore(OutboxStore):
    def __init__(self, cipher: FieldCipher):
        self._cipher = cipher

    # -- records <-> items ---------------------------------------------------------------------------

    @staticmethod
    def _context(record_id: str) -> str:
        return f"outbox|{record_id}"

    def _record_item(self, r: OutboxRecord) -> OutboxModel:
        holder = r.message.holder
        sealed = (
            self._cipher.seal(self._context(r.record_id), {"holder": holder.model_dump_json()})
            if holder is not None
            else None
        )
        return OutboxModel(
            r.record_id,
            status=r.status.value,
            kind=r.kind.value,
            iccid=r.iccid,
            operator=r.operator.value,
            attempts=r.attempts,
            next_attempt_at=r.next_attempt_at,
            created_at=r.created_at,
            updated_at=r.updated_at,
            message_json=r.message.model_dump_json(exclude={"holder"}),
            data_key=sealed.data_key if sealed else None,
            holder_enc=sealed.values["holder"] if sealed else None,
            open_status=_open_key(r.status, r.record_id) if r.status is OutboxStatus.PENDING else None,
            status_at=r.sweep_at if r.status is OutboxStatus.PENDING else None,
        )

    def record_item(self, r: OutboxRecord) -> OutboxModel:
        """The item ``commit`` writes for ``r`` (its holder sealed): for a context that commits a push
        with items of its own in one transaction (actual users)."""
        return self._record_item(r)

    def _record(self, m: OutboxModel) -> OutboxRecord:
        doc: dict[str, Any] = json.loads(m.message_json)
        doc["holder"] = None
        if m.holder_enc is not None and m.data_key is not None:
            opened = self._cipher.open(
                self._context(m.record_id), SealedFields(m.data_key, {"holder": m.holder_enc})
            )
            doc["holder"] = json.loads(opened["holder"])
        return OutboxRecord(**_summary(m).model_dump(), message=PushMessage.model_validate(doc))

    # -- the one transaction -------------------------------------------------------------------------

    def commit(self, change: OutboxCommit) -> None:
        at = utc_now()
        puts: list[tuple[str, Model, Condition | None]] = []
        updates: list[tuple[str, Model, list[Action], Condition | None]] = []
        for write in change.cards:
            label = f"card:{write.before.iccid}"
            updates.append(
                (label, CardModel(write.before.iccid), _card_actions(write, at), _card_guard(write))
            )
            puts += [(label, event_item(e), CardHistoryModel.seq.does_not_exist()) for e in write.events]
            if write.lifecycle is not None:
                puts.append(("lifecycle", _lifecycle_item(write.lifecycle, write, at), None))
        puts += [
            ("record", self._record_item(r), OutboxModel.record_id.does_not_exist()) for r in change.records
        ]
        if change.callback is not None:
            puts.append(
                ("callback", _seen_item(change.callback), CallbackSeenModel.callback_id.does_not_exist())
            )
        for move in change.counters:
            condition: Condition | None = None
            if move.limit is not None:
                condition = CardsPerIdModel.active.does_not_exist() | (CardsPerIdModel.active < move.limit)
            label = f"limit:{move.operator.value}" if move.limit is not None else "counter"
            actions: list[Action] = [
                CardsPerIdModel.active.add(move.delta),
                CardsPerIdModel.updated_at.set(at),
            ]
            updates.append((label, CardsPerIdModel(_counter_id(move)), actions, condition))
        if change.decision is not None:
            d = change.decision
            decided: list[Action] = [
                OutboxModel.status.set(d.status.value),
                OutboxModel.decided_at.set(d.at),
                OutboxModel.updated_at.set(d.at),
                OutboxModel.reason.set(d.reason) if d.reason else OutboxModel.reason.remove(),
                OutboxModel.open_status.remove(),
                OutboxModel.status_at.remove(),
                OutboxModel.claim_token.remove(),
                OutboxModel.claim_until.remove(),
                OutboxModel.expires_epoch.set(_epoch_after(d.at, FINAL_RECORD_RETENTION_DAYS)),
            ]
            updates.append(("decision", OutboxModel(d.record_id), decided, OutboxModel.record_id.exists()))
        # TransactWrite sends its puts before its updates: the cancellation reasons follow that order.
        labels = [p[0] for p in puts] + [u[0] for u in updates]
        self._transact(puts, updates, labels)

    def _transact(
        self,
        puts: list[tuple[str, Model, Condition | None]],
        updates: list[tuple[str, Model, list[Action], Condition | None]],
        labels: list[str],
    ) -> None:
        for attempt in range(TRANSACT_ATTEMPTS):
            try:
                with TransactWrite(connection=CardModel._get_connection().connection) as tx:
                    for _, item, condition in puts:
                        tx.save(item, condition=condition)
                    for _, item, actions, condition in updates:
                        tx.update(item, actions=actions, condition=condition, add_version_condition=False)
                return
            except TransactWriteError as exc:
                reasons = exc.cancellation_reasons
                codes = {r.code for r in reasons if r is not None}
                if codes and codes <= RETRYABLE and attempt + 1 < TRANSACT_ATTEMPTS:
                    # Another transaction was in flight on one of the items: retry, then it commits or loses.
                    time.sleep(random.uniform(0, 0.05 * 2**attempt))
                    continue
                failed = [
                    labels[i] for i, r in enumerate(reasons) if r is not None and r.code == _CONDITION_FAILED
                ]
                if not failed and codes and codes <= RETRYABLE:
                    failed = [label for label in labels if label.startswith("card:")]
                for label in failed:
                    if label.startswith("card:"):
                        raise _changed(label.removeprefix("card:")) from exc
                for label in failed:
                    if label.startswith("limit:"):
                        raise cards_per_id_exceeded(Operator(label.removeprefix("limit:"))) from exc
                    if label == "callback":
                        raise DuplicateCallback from exc
                raise

    # -- lifecycle and counts ------------------------------------------------------------------------

    def lifecycle(self, iccid: str) -> CardLifecycle:
        try:
            return _lifecycle(CardLifecycleModel.get(iccid, consistent_read=True))
        except CardLifecycleModel.DoesNotExist:
            return CardLifecycle(iccid=iccid)

    def lifecycles(self, iccids: Sequence[str]) -> dict[str, CardLifecycle]:
        found = {m.iccid: _lifecycle(m) for m in CardLifecycleModel.batch_get(list(dict.fromkeys(iccids)))}
        return {i: found.get(i) or CardLifecycle(iccid=i) for i in iccids}

    def active_cards(
        self, operator: Operator, cursor: str | None, limit: int
    ) -> tuple[list[str], str | None]:
        start = _decode_cursor(cursor).get("k") if cursor else None
        if not (start is None or isinstance(start, dict)):
            raise _bad_cursor()
        result = CardLifecycleModel.by_operator.query(operator.value, limit=limit, last_evaluated_key=start)
        iccids = [m.iccid for m in result]
        last = result.last_evaluated_key
        return iccids, _encode_cursor({"k": last}) if last else None

    def cards_per_id(self, id_hash: str, operator: Operator) -> int:
        try:
            item = CardsPerIdModel.get(f"{id_hash}#{operator.value}", consistent_read=True)
        except CardsPerIdModel.DoesNotExist:
            return 0
        return int(item.active)

    def callback_seen(self, callback_id: str) -> bool:
        try:
            CallbackSeenModel.get(callback_id, consistent_read=True)
        except CallbackSeenModel.DoesNotExist:
            return False
        return True

    # -- records -------------------------------------------------------------------------------------

    def get(self, record_id: str) -> OutboxRecord | None:
        try:
            return self._record(OutboxModel.get(record_id, consistent_read=True))
        except OutboxModel.DoesNotExist:
            return None

    def _conditional_update(
        self, record_id: str, actions: list[Action], condition: Condition
    ) -> OutboxModel | None:
        item = OutboxModel(record_id)
        try:
            item.update(actions=actions, condition=condition)
        except UpdateError as exc:
            if _condition_failed(exc):
                return None
            raise
        return item

    def claim(self, record_id: str, now: datetime, lease_until: datetime, sweep_at: datetime) -> Claim | None:
        token = uuid.uuid4().hex
        condition = (
            (OutboxModel.status == OutboxStatus.PENDING.value)
            & (OutboxModel.next_attempt_at <= now + CLAIM_EARLY_TOLERANCE)
            & (OutboxModel.claim_until.does_not_exist() | (OutboxModel.claim_until <= now))
        )
        actions: list[Action] = [
            OutboxModel.attempts.add(1),
            OutboxModel.claim_token.set(token),
            OutboxModel.claim_until.set(lease_until),
            OutboxModel.status_at.set(sweep_at),
            OutboxModel.updated_at.set(now),
        ]
        item = self._conditional_update(record_id, actions, condition)
        return Claim(self._record(item), token) if item is not None else None

    @staticmethod
    def _held(claim: Claim) -> Condition:
        held: Condition = (OutboxModel.claim_token == claim.token) & (
            OutboxModel.status == OutboxStatus.PENDING.value
        )
        return held

    def settle(
        self,
        claim: Claim,
        status: OutboxStatus,
        now: datetime,
        *,
        note: str | None = None,
        operator_ref: str | None = None,
    ) -> bool:
        if status not in (OutboxStatus.SENT, OutboxStatus.DEAD, OutboxStatus.SUPERSEDED):
            raise ValueError(f"an attempt ends sent, dead or superseded, not {status}")
        record_id = claim.record.record_id
        actions: list[Action] = [
            OutboxModel.status.set(status.value),
            OutboxModel.updated_at.set(now),
            OutboxModel.claim_token.remove(),
            OutboxModel.claim_until.remove(),
        ]
        if status is OutboxStatus.SUPERSEDED:
            actions += [
                OutboxModel.open_status.remove(),
                OutboxModel.status_at.remove(),
                OutboxModel.decided_at.set(now),
                OutboxModel.expires_epoch.set(_epoch_after(now, FINAL_RECORD_RETENTION_DAYS)),
            ]
            if note:
                actions.append(OutboxModel.reason.set(note[:_ERROR_CHARS]))
        else:
            actions += [
                OutboxModel.open_status.set(_open_key(status, record_id)),
                OutboxModel.status_at.set(now),
            ]
            if note:
                actions.append(OutboxModel.last_error.set(note[:_ERROR_CHARS]))
        if operator_ref:
            actions.append(OutboxModel.operator_ref.set(operator_ref))
        return self._conditional_update(record_id, actions, self._held(claim)) is not None

    def mark_retry(
        self, claim: Claim, next_attempt_at: datetime, sweep_at: datetime, error: str, now: datetime
    ) -> bool:
        actions: list[Action] = [
            OutboxModel.next_attempt_at.set(next_attempt_at),
            OutboxModel.status_at.set(sweep_at),
            OutboxModel.last_error.set(error[:_ERROR_CHARS]),
            OutboxModel.updated_at.set(now),
            OutboxModel.claim_token.remove(),
            OutboxModel.claim_until.remove(),
        ]
        return self._conditional_update(claim.record.record_id, actions, self._held(claim)) is not None

    def mark_waiting(self, claim: Claim, until: datetime, reason: str, now: datetime) -> bool:
        actions: list[Action] = [
            OutboxModel.attempts.add(-1),  # the claim's attempt is given back: nothing was sent
            OutboxModel.next_attempt_at.set(until),
            OutboxModel.status_at.set(until),
            OutboxModel.last_error.set(reason[:_ERROR_CHARS]),
            OutboxModel.updated_at.set(now),
            OutboxModel.claim_token.remove(),
            OutboxModel.claim_until.remove(),
        ]
        return self._conditional_update(claim.record.record_id, actions, self._held(claim)) is not None

    def due(self, now: datetime, limit: int) -> list[OutboxSummary]:
        found: list[OutboxSummary] = []
        for shard in range(OPEN_STATUS_SHARDS):
            if len(found) >= limit:
                break
            query = OutboxModel.by_open_status.query(
                f"{OutboxStatus.PENDING.value}#{shard}",
                OutboxModel.status_at <= now,
                limit=limit - len(found),
            )
            found += [_summary(m) for m in query]
        return found

    def rearm(self, record_id: str, seen_sweep_at: datetime, sweep_at: datetime) -> bool:
        condition = (OutboxModel.status == OutboxStatus.PENDING.value) & (
            OutboxModel.status_at == seen_sweep_at
        )
        return (
            self._conditional_update(record_id, [OutboxModel.status_at.set(sweep_at)], condition) is not None
        )

    def revive(self, record_id: str, now: datetime, sweep_at: datetime) -> OutboxSummary | None:
        actions: list[Action] = [
            OutboxModel.status.set(OutboxStatus.PENDING.value),
            OutboxModel.attempts.set(0),
            OutboxModel.next_attempt_at.set(now),
            OutboxModel.open_status.set(_open_key(OutboxStatus.PENDING, record_id)),
            OutboxModel.status_at.set(sweep_at),
            OutboxModel.updated_at.set(now),
        ]
        item = self._conditional_update(record_id, actions, OutboxModel.status == OutboxStatus.DEAD.value)
        return _summary(item) if item is not None else None

    def sent_before(self, before: datetime, limit: int, cursor: str | None) -> OutboxPage:
        return self._open_page(OutboxStatus.SENT, limit, cursor, OutboxModel.status_at <= before)

    def reopen_sent(
        self,
        record_id: str,
        status: OutboxStatus,
        now: datetime,
        note: str,
        *,
        sweep_at: datetime | None = None,
    ) -> OutboxSummary | None:
        actions: list[Action] = [
            OutboxModel.status.set(status.value),
            OutboxModel.open_status.set(_open_key(status, record_id)),
            OutboxModel.last_error.set(note[:_ERROR_CHARS]),
            OutboxModel.updated_at.set(now),
        ]
        if status is OutboxStatus.PENDING:
            actions += [
                OutboxModel.attempts.set(0),
                OutboxModel.next_attempt_at.set(now),
                OutboxModel.status_at.set(sweep_at or now),
            ]
        elif status is OutboxStatus.DEAD:
            actions.append(OutboxModel.status_at.set(now))
        else:
            raise ValueError(f"a sent record reopens pending or dead, not {status}")
        item = self._conditional_update(record_id, actions, OutboxModel.status == OutboxStatus.SENT.value)
        return _summary(item) if item is not None else None

    def page(self, status: OutboxStatus, limit: int, cursor: str | None) -> OutboxPage:
        return self._open_page(status, limit, cursor, None)

    def _open_page(
        self, status: OutboxStatus, limit: int, cursor: str | None, range_condition: Condition | None
    ) -> OutboxPage:
        shard: int = 0
        start: dict[str, Any] | None = None
        if cursor:
            doc = _decode_cursor(cursor)
            raw_shard, start = doc.get("s"), doc.get("k")
            if not isinstance(raw_shard, int) or not 0 <= raw_shard < OPEN_STATUS_SHARDS:
                raise _bad_cursor()
            if doc.get("t") != status.value or not (start is None or isinstance(start, dict)):
                raise _bad_cursor()
            shard = raw_shard
        items: list[OutboxSummary] = []
        while shard < OPEN_STATUS_SHARDS and len(items) < limit:
            result = OutboxModel.by_open_status.query(
                f"{status.value}#{shard}",
                range_condition,
                limit=limit - len(items),
                last_evaluated_key=start,
            )
            items += [_summary(m) for m in result]
            start = result.last_evaluated_key
            if start is None:
                shard += 1
        if shard >= OPEN_STATUS_SHARDS:
            return OutboxPage(items=items, cursor=None)
        return OutboxPage(items=items, cursor=_encode_cursor({"t": status.value, "s": shard, "k": start}))

    def count(self, status: OutboxStatus) -> int:
        return sum(
            OutboxModel.by_open_status.count(f"{status.value}#{shard}") for shard in range(OPEN_STATUS_SHARDS)
        )


# ------------------------------------------------------------------------------------------- the queue


class SqsPushQueue(PushQueue):
    """A standard SQS queue (per-message delays need a standard queue; the claim makes order moot)."""

    #: SQS's longest message delay.
    MAX_DELAY_SECONDS = 900

    def __init__(self, sqs: Any, name: str):
        self._sqs = sqs
        self._name = name
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            self._url = str(self._sqs.get_queue_url(QueueName=self._name)["QueueUrl"])
        return self._url

    def send_message(self, body: str, delay_seconds: int = 0) -> None:
        delay = max(0, min(self.MAX_DELAY_SECONDS, delay_seconds))
        self._sqs.send_message(QueueUrl=self.url, MessageBody=body, DelaySeconds=delay)

    def acknowledge(self, receipt_handles: Sequence[str]) -> None:
        handles = list(receipt_handles)
        for start in range(0, len(handles), 10):
            entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles[start : start + 10])]
            self._sqs.delete_message_batch(QueueUrl=self.url, Entries=entries)
