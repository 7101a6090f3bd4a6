"""Opens of one owner decided one at a time, so that a burst of them cannot overshoot the owner's limit.

What an owner holds open is read on an owner index, which a burst of opens all read before any of them
is written. So each open first takes the owner's turn: the item ``opens#<scope>#<owner>`` (table
``attempts``) carries a version, moved on by one conditional update per open, and the ids opened in the
last ``RECENT_SECONDS`` (written before the index shows them, or not yet written at all). An open that
loses the turn to another reads again, now counting the winner's id; one that finds the owner at the
limit is refused. An id whose create then failed counts as open until it leaves the recent list.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from pynamodb.exceptions import DoesNotExist, UpdateError

from chalicelib.adapters.dynamo.models import AttemptCounterModel

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

    def _take_turn(self, key: str, version: int, recent: dict[str, int], now: datetime) -> bool:
        condition = (
            AttemptCounterModel.tally.does_not_exist()
            if version == 0
            else AttemptCounterModel.tally == version
        )
        try:
            AttemptCounterModel(key).update(
                actions=[
                    AttemptCounterModel.tally.set(version + 1),
                    AttemptCounterModel.recent.set(json.dumps(recent, separators=(",", ":"))),
                    AttemptCounterModel.expires_epoch.set(_epoch(now) + _KEEP_SECONDS),
                ],
                condition=condition,
            )
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def create_if_room(
        self, owner: str, new_id: str, limit: int, now: datetime, held: Held, create: Callable[[], None]
    ) -> bool:
        """Run ``create`` (of ``new_id``) unless ``owner`` holds ``limit`` open ones; False when refused."""
        key = self._key(owner)
        for _ in range(_MAX_TURNS):
            version, recent = self._read(key, now)
            seen, still_open = held()
            if len(still_open) + len(set(recent) - seen) >= limit:
                return False
            recent[new_id] = _epoch(now)
            if self._take_turn(key, version, recent, now):
                create()
                return True
        return False
