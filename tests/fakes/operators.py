"""In-memory fakes of the operators context's ports: the outbox store, the push queue, the gateway, the
directory, the key source and a nonce memory.

``FakeOutboxStore`` shares the cards with a ``FakeInventory``, as the real store shares the inventory
table: a commit writes the cards, their history, the lifecycle bookkeeping, the records, the counts and
the seen callback all or nothing, checking the same conditions in the same order (a card that moved,
then a full count, then a callback seen before).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from chalicelib.cards.domain.inventory import CardState
from chalicelib.cards.domain.lifecycle import CardLifecycle
from chalicelib.cards.domain.limits import cards_per_id_exceeded
from chalicelib.kernel.errors import Conflict
from chalicelib.kernel.operators import Operator
from chalicelib.operators.domain.messages import (
    OperatorCardRecord,
    OperatorNotConfigured,
    OperatorRefused,
    OperatorUnavailable,
    PushMessage,
    PushReceipt,
)
from chalicelib.operators.domain.outbox import (
    Claim,
    DuplicateCallback,
    OutboxCommit,
    OutboxPage,
    OutboxRecord,
    OutboxStatus,
    OutboxSummary,
    SeenCallback,
)
from chalicelib.operators.keys import OperatorKeys, OperatorKeysUnavailable
from chalicelib.operators.ports import (
    OperatorDirectory,
    OperatorGateway,
    OperatorKeySource,
    OutboxStore,
    PushQueue,
)
from tests.fakes.cards import FakeInventory

#: As the real store: a delayed message may arrive a little before its record is due.
CLAIM_EARLY_TOLERANCE = timedelta(seconds=1)

_ACTIVE = (CardState.PENDING, CardState.REGISTERED)


def _summary(record: OutboxRecord) -> OutboxSummary:
    return OutboxSummary.model_validate(record.model_dump(exclude={"message"}))


class FakeOutboxStore(OutboxStore):
    def __init__(self, inventory: FakeInventory) -> None:
        self.inventory = inventory
        self.records: dict[str, OutboxRecord] = {}
        self.lives: dict[str, CardLifecycle] = {}
        self.counts: dict[tuple[str, Operator], int] = {}
        self.seen: dict[str, SeenCallback] = {}
        self.commits: list[OutboxCommit] = []
        self._active: dict[str, Operator] = {}
        self._tokens: dict[str, str] = {}

    # -- the one transaction -------------------------------------------------------------------------

    def commit(self, change: OutboxCommit) -> None:
        self._check(change)
        for write in change.cards:
            card = write.after
            self.inventory.cards[card.iccid] = card
            self.inventory.events.setdefault(card.iccid, []).extend(write.events)
            self.inventory.writes += 1 + len(write.events)
            if write.lifecycle is not None:
                self.lives[card.iccid] = write.lifecycle
                if card.state in _ACTIVE and write.lifecycle.retired is None:
                    self._active[card.iccid] = card.operator
                else:
                    self._active.pop(card.iccid, None)
        for record in change.records:
            self.records[record.record_id] = record
        if change.callback is not None:
            self.seen[change.callback.callback.callback_id] = change.callback
        for move in change.counters:
            key = (move.id_hash, move.operator)
            self.counts[key] = self.counts.get(key, 0) + move.delta
        if change.decision is not None:
            d = change.decision
            self._tokens.pop(d.record_id, None)
            self.records[d.record_id] = self.records[d.record_id].model_copy(
                update={
                    "status": d.status,
                    "decided_at": d.at,
                    "updated_at": d.at,
                    "reason": d.reason,
                    "sweep_at": None,
                    "claim_until": None,
                }
            )
        self.commits.append(change)

    def _check(self, change: OutboxCommit) -> None:
        for write in change.cards:
            before = write.before
            stored = self.inventory.cards.get(before.iccid)
            seqs = {e.seq for e in self.inventory.events.get(before.iccid, [])}
            if (
                stored is None
                or (stored.version, stored.state) != (before.version, before.state)
                or any(e.seq in seqs for e in write.events)
            ):
                raise Conflict(
                    "card.changed",
                    "车联网卡已被其他操作修改，请刷新后重试",
                    "The card was changed by another operation; reload and try again",
                    field="iccid",
                    details={"iccid": before.iccid},
                )
        for move in change.counters:
            if move.limit is not None and self.counts.get((move.id_hash, move.operator), 0) >= move.limit:
                raise cards_per_id_exceeded(move.operator)
        if change.callback is not None and change.callback.callback.callback_id in self.seen:
            raise DuplicateCallback
        for record in change.records:
            if record.record_id in self.records:
                raise AssertionError(f"outbox record {record.record_id} written twice")
        if change.decision is not None and change.decision.record_id not in self.records:
            raise AssertionError(f"decision for a missing record {change.decision.record_id}")

    # -- lifecycle and counts ------------------------------------------------------------------------

    def lifecycle(self, iccid: str) -> CardLifecycle:
        return self.lives.get(iccid) or CardLifecycle(iccid=iccid)

    def lifecycles(self, iccids: Sequence[str]) -> dict[str, CardLifecycle]:
        return {i: self.lifecycle(i) for i in iccids}

    def active_cards(
        self, operator: Operator, cursor: str | None, limit: int
    ) -> tuple[list[str], str | None]:
        iccids = sorted(
            i for i, op in self._active.items() if op is operator and (cursor is None or i > cursor)
        )
        page = iccids[:limit]
        return page, page[-1] if len(iccids) > limit else None

    def cards_per_id(self, id_hash: str, operator: Operator) -> int:
        return self.counts.get((id_hash, operator), 0)

    def callback_seen(self, callback_id: str) -> bool:
        return callback_id in self.seen

    # -- records -------------------------------------------------------------------------------------

    def get(self, record_id: str) -> OutboxRecord | None:
        return self.records.get(record_id)

    def claim(self, record_id: str, now: datetime, lease_until: datetime, sweep_at: datetime) -> Claim | None:
        record = self.records.get(record_id)
        if (
            record is None
            or record.status is not OutboxStatus.PENDING
            or record.next_attempt_at > now + CLAIM_EARLY_TOLERANCE
            or (record.claim_until is not None and record.claim_until > now)
        ):
            return None
        token = uuid.uuid4().hex
        claimed = record.model_copy(
            update={
                "attempts": record.attempts + 1,
                "claim_until": lease_until,
                "sweep_at": sweep_at,
                "updated_at": now,
            }
        )
        self.records[record_id] = claimed
        self._tokens[record_id] = token
        return Claim(claimed, token)

    def _held(self, claim: Claim) -> OutboxRecord | None:
        record_id = claim.record.record_id
        record = self.records.get(record_id)
        if record is None or record.status is not OutboxStatus.PENDING:
            return None
        return record if self._tokens.get(record_id) == claim.token else None

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
        record = self._held(claim)
        if record is None:
            return False
        update: dict[str, object] = {
            "status": status,
            "updated_at": now,
            "claim_until": None,
            "sweep_at": None,
        }
        if status is OutboxStatus.SUPERSEDED:
            update |= {"decided_at": now, **({"reason": note} if note else {})}
        elif note:
            update["last_error"] = note
        if operator_ref:
            update["operator_ref"] = operator_ref
        self.records[record.record_id] = record.model_copy(update=update)
        del self._tokens[record.record_id]
        return True

    def mark_retry(
        self, claim: Claim, next_attempt_at: datetime, sweep_at: datetime, error: str, now: datetime
    ) -> bool:
        record = self._held(claim)
        if record is None:
            return False
        self.records[record.record_id] = record.model_copy(
            update={
                "next_attempt_at": next_attempt_at,
                "sweep_at": sweep_at,
                "last_error": error,
                "updated_at": now,
                "claim_until": None,
            }
        )
        del self._tokens[record.record_id]
        return True

    def mark_waiting(self, claim: Claim, until: datetime, reason: str, now: datetime) -> bool:
        record = self._held(claim)
        if record is None:
            return False
        self.records[record.record_id] = record.model_copy(
            update={
                "attempts": record.attempts - 1,
                "next_attempt_at": until,
                "sweep_at": until,
                "last_error": reason,
                "updated_at": now,
                "claim_until": None,
            }
        )
        del self._tokens[record.record_id]
        return True

    def due(self, now: datetime, limit: int) -> list[OutboxSummary]:
        pending = (
            r
            for r in self.records.values()
            if r.status is OutboxStatus.PENDING and r.sweep_at is not None and r.sweep_at <= now
        )
        return [_summary(r) for r in sorted(pending, key=lambda r: r.record_id)][:limit]

    def rearm(self, record_id: str, seen_sweep_at: datetime, sweep_at: datetime) -> bool:
        record = self.records.get(record_id)
        if record is None or record.status is not OutboxStatus.PENDING or record.sweep_at != seen_sweep_at:
            return False
        self.records[record_id] = record.model_copy(update={"sweep_at": sweep_at})
        return True

    def revive(self, record_id: str, now: datetime, sweep_at: datetime) -> OutboxSummary | None:
        record = self.records.get(record_id)
        if record is None or record.status is not OutboxStatus.DEAD:
            return None
        revived = record.model_copy(
            update={
                "status": OutboxStatus.PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "sweep_at": sweep_at,
                "updated_at": now,
            }
        )
        self.records[record_id] = revived
        return _summary(revived)

    def page(self, status: OutboxStatus, limit: int, cursor: str | None) -> OutboxPage:
        ids = sorted(
            i for i, r in self.records.items() if r.status is status and (cursor is None or i > cursor)
        )
        items = [_summary(self.records[i]) for i in ids[:limit]]
        return OutboxPage(items=items, cursor=ids[limit - 1] if len(ids) > limit else None)

    def count(self, status: OutboxStatus) -> int:
        return sum(1 for r in self.records.values() if r.status is status)

    # -- for the tests -------------------------------------------------------------------------------

    def of_card(self, iccid: str) -> list[OutboxRecord]:
        """The card's records, oldest first."""
        return sorted((r for r in self.records.values() if r.iccid == iccid), key=lambda r: r.created_at)


class FakePushQueue(PushQueue):
    """Remembers what was sent (body, delay); ``broken`` makes every send fail."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []
        self.acknowledged: list[str] = []
        self.broken = False

    def send_message(self, body: str, delay_seconds: int = 0) -> None:
        if self.broken:
            raise ConnectionError("queue unreachable")
        self.sent.append((body, delay_seconds))

    def acknowledge(self, receipt_handles: Sequence[str]) -> None:
        self.acknowledged.extend(receipt_handles)

    def record_ids(self) -> list[str]:
        """The record ids of the messages sent, in order."""
        return [str(json.loads(body)["record_id"]) for body, _ in self.sent]


class FakeOperatorGateway(OperatorGateway):
    """Accepts every push (idempotent on ``message_id``) unless told to refuse or to be unavailable."""

    def __init__(self) -> None:
        self.pushed: list[PushMessage] = []
        self.attempts = 0
        self._refusal: tuple[str, str] | None = None
        self._outages: int | None = 0
        self._missing: str | None = None

    def be_unconfigured(self, missing: str = "url") -> None:
        """The stage lacks this operator's ``missing`` setting ("url", "keys"): pushes wait."""
        self._missing = missing

    def refuse(self, code: str = "malformed", message: str = "refused by the fake") -> None:
        self._refusal = (code, message)

    def be_unavailable(self, times: int | None = None) -> None:
        """Fail the next ``times`` pushes as unavailable (every push until ``recover`` when None)."""
        self._outages = times

    def recover(self) -> None:
        self._outages = 0
        self._refusal = None
        self._missing = None

    def push(self, message: PushMessage) -> PushReceipt:
        self.attempts += 1
        if self._missing is not None:
            raise OperatorNotConfigured(message.card.operator, self._missing)
        if self._outages is None or self._outages > 0:
            if self._outages is not None:
                self._outages -= 1
            raise OperatorUnavailable("operator unavailable (fake)")
        if self._refusal is not None:
            raise OperatorRefused(*self._refusal)
        duplicate = any(m.message_id == message.message_id for m in self.pushed)
        if not duplicate:
            self.pushed.append(message)
        return PushReceipt(
            message_id=message.message_id, operator_ref=f"ref-{message.message_id}", duplicate=duplicate
        )


class FakeOperatorDirectory(OperatorDirectory):
    """What each operator lists, paged by ``page_size``."""

    def __init__(self, page_size: int = 2) -> None:
        self.records: dict[Operator, list[OperatorCardRecord]] = {}
        self.page_size = page_size

    def holds(self, *records: OperatorCardRecord) -> None:
        for r in records:
            self.records.setdefault(r.operator, []).append(r)

    def listing(self, operator: Operator, cursor: str | None) -> tuple[list[OperatorCardRecord], str | None]:
        ordered = sorted(self.records.get(operator, []), key=lambda r: r.iccid)
        start = int(cursor) if cursor else 0
        page = ordered[start : start + self.page_size]
        end = start + self.page_size
        return page, str(end) if end < len(ordered) else None


class FakeNonces:
    """A nonce memory: answers whether a value was seen before, and remembers it."""

    def __init__(self) -> None:
        self.values: set[str] = set()

    def __call__(self, value: str) -> bool:
        if value in self.values:
            return True
        self.values.add(value)
        return False


class StaticKeySource(OperatorKeySource):
    """Keys held in memory."""

    def __init__(self, keys: Iterable[OperatorKeys]) -> None:
        self._keys = {k.operator: k for k in keys}

    def current(self, operator: Operator) -> OperatorKeys:
        try:
            return self._keys[operator]
        except KeyError:
            raise OperatorKeysUnavailable(f"no keys for {operator.value}") from None
