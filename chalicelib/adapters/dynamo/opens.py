"""Opens of one owner decided one at a time, so that a burst of them cannot overshoot the owner's limit.

What an owner holds open is read on an owner index, which a burst of opens all read before any of them
is written. So each open first takes the owner's turn: the item ``opens#<scope>#<owner>`` (table
``attempts``) carries a version, moved on by one conditional update per open, and the ids opened in the
last ``RECENT_SECONDS`` (written before the index shows them, or not yet written at all). An open that
loses the turn to another reads again, now counting the winner's id; one that finds the owner at the
limit is refused. The turn and the create are one transaction: a create that fails (the store
throttled, a conflict) takes no turn and counts nothing, so a refused open leaves nothing behind.

The transaction carries a ``ClientRequestToken``: botocore's retry of one whose reply was lost is
answered as done by DynamoDB. A retry that met its own first attempt still committing is cancelled as a
conflict all the same; the read that follows then shows the open's own id (in the turn's recent ids, or
on the index), which is never counted against it: the open is answered as an item of that id existing,
and the caller's read-back finds it its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.expressions.condition import Condition
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamo.models import AttemptCounterModel
from chalicelib.adapters.dynamo.once import new_token

#: How long an id opened counts as open even when the owner index does not show it (index lag).
RECENT_SECONDS = 120
#: The turn item outlives the last open by this much, then TTL purges it.
_KEEP_SECONDS = 24 * 3600
#: Turns lost to other opens before this one gives up (the owner then had that many opens meanwhile).
_MAX_TURNS = 12

#: What the owner index shows now: every id of the owner it holds, and those still open.
Held = Callable[[], tuple[set[str], set[str]]]


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


@dataclass(frozen=True)
class Turn:
    """The owner's turn for one open as read (``OwnerOpens.turn``), taken in the caller's own
    transaction with the create and the writes that go with it (``take_in``)."""

    key: str
    version: int
    #: The ids opened lately, this open's included.
    recent: dict[str, int]
    now: datetime

    def take_in(self, tx: TransactWrite) -> None:
        """Move the turn on by one in ``tx``, refused if another open took it since it was read."""
        tx.update(
            AttemptCounterModel(self.key),
            actions=[
                AttemptCounterModel.tally.set(self.version + 1),
                AttemptCounterModel.recent.set(json.dumps(self.recent, separators=(",", ":"))),
                AttemptCounterModel.expires_epoch.set(_epoch(self.now) + _KEEP_SECONDS),
            ],
            condition=AttemptCounterModel.tally.does_not_exist()
            if self.version == 0
            else AttemptCounterModel.tally == self.version,
        )


class OwnerOpens:
    """The turn of one kind of open (``scope``: ``flows``, ``registrations``) per owner."""

    def __init__(self, scope: str) -> None:
        self._scope = scope

    def _key(self, owner: str) -> str:
        return f"opens#{self._scope}#{owner}"

    def _read(self, key: str, now: datetime) -> tuple[int, dict[str, int]]:
        try:
            item = AttemptCounterModel.get(key, consistent_read=True)
        except DoesNotExist:
            return 0, {}
        recent = json.loads(item.recent) if item.recent else {}
        since = _epoch(now) - RECENT_SECONDS
        return int(item.tally), {k: int(v) for k, v in recent.items() if int(v) >= since}

    def _take_turn_and_create(
        self, key: str, version: int, recent: dict[str, int], now: datetime, item: Model, condition: Condition
    ) -> bool | None:
        """``item`` put under ``condition`` and the turn taken, in one transaction: True when both
        landed, False when the turn was lost to another open, None when ``condition`` refused the put
        (nothing written either way). The token makes botocore's retry of a transaction that landed with
        its reply lost a success in DynamoDB."""
        turn = (
            AttemptCounterModel.tally.does_not_exist()
            if version == 0
            else AttemptCounterModel.tally == version
        )
        try:
            with TransactWrite(
                connection=AttemptCounterModel._get_connection().connection, client_request_token=new_token()
            ) as tx:
                tx.save(item, condition=condition)
                tx.update(
                    AttemptCounterModel(key),
                    actions=[
                        AttemptCounterModel.tally.set(version + 1),
                        AttemptCounterModel.recent.set(json.dumps(recent, separators=(",", ":"))),
                        AttemptCounterModel.expires_epoch.set(_epoch(now) + _KEEP_SECONDS),
                    ],
                    condition=turn,
                )
        except TransactWriteError as exc:
            # The reasons in the order sent: the create's (puts go first), then the turn's.
            reasons = [r.code if r is not None else None for r in exc.cancellation_reasons or []]
            if len(reasons) == 2 and reasons[0] == "ConditionalCheckFailed":
                return None  # an item of that id exists (the caller tells its own from another's)
            if "ConditionalCheckFailed" in reasons or "TransactionConflict" in reasons:
                return False  # the turn lost to another open of the owner (or one in flight): read again
            raise
        return True

    def turn(self, owner: str, new_id: str, limit: int, now: datetime, held: Held) -> Turn | None:
        """The owner's turn for opening ``new_id``, for a transaction of the caller's that creates it
        with other writes (``Turn.take_in``): None when ``owner`` holds ``limit`` open ones. A transaction
        refused for the turn (another open took it) asks for it again: the read then counts the winner.
        ``new_id`` itself is never counted against its own open."""
        version, recent = self._read(self._key(owner), now)
        seen, still_open = held()
        if len(still_open - {new_id}) + len(set(recent) - seen - {new_id}) >= limit:
            return None
        return Turn(self._key(owner), version, {**recent, new_id: _epoch(now)}, now)

    def create_if_room(
        self,
        owner: str,
        new_id: str,
        limit: int,
        now: datetime,
        held: Held,
        item: Model,
        condition: Condition,
    ) -> bool | None:
        """Put ``item`` (of ``new_id``, under ``condition``) unless ``owner`` holds ``limit`` open ones:
        True when put, False when refused for the limit, None when ``condition`` refused the put or a
        read shows ``new_id`` already (an earlier attempt of this open landed: the caller reads it back)."""
        key = self._key(owner)
        for _ in range(_MAX_TURNS):
            version, recent = self._read(key, now)
            seen, still_open = held()
            if new_id in recent or new_id in seen:
                return None  # this open's own transaction committed, its answer lost or cancelled late
            if len(still_open) + len(set(recent) - seen) >= limit:
                return False
            recent[new_id] = _epoch(now)
            taken = self._take_turn_and_create(key, version, recent, now, item, condition)
            if taken is not False:
                return taken
        return False
