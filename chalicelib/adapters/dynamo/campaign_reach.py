"""The backfill campaigns' opt-outs and call list on DynamoDB: ``campaign-opt-outs`` (one item per phone,
by keyed hash: the opt-out in force, the latest opt-in, the newest changes in ``history``; beside them one
``reply#<digest>`` item per reply callback handled lately, deleted by TTL) and ``campaign-calls``
(one item per campaign, wave and card, the contact phone as sealed text, every outcome kept in the item's
``outcomes``; an entry's first outcome and its wave's ``called`` count are one transaction)."""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pynamodb.exceptions import DeleteError, PutError, TransactWriteError, UpdateError
from pynamodb.expressions.condition import size
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamo.agents import decode_cursor, encode_cursor
from chalicelib.adapters.dynamo.base import utc_aware
from chalicelib.adapters.dynamo.campaign_sends import CALLS_PART, campaign_wave_key
from chalicelib.adapters.dynamo.inventory import RETRYABLE, TRANSACT_ATTEMPTS
from chalicelib.adapters.dynamo.models_campaigns import (
    CampaignCallModel,
    CampaignOptOutModel,
    CampaignWaveModel,
)
from chalicelib.adapters.dynamo.once import new_token
from chalicelib.campaigns.domain import CallEntry, CallOutcome, CallReason, OptOut
from chalicelib.campaigns.ports import HISTORY_KEEP, CallList, OptOutChange, OptOuts
from chalicelib.campaigns.reach import call_not_found
from chalicelib.kernel.errors import BadRequest

_CONDITION_FAILED = "ConditionalCheckFailedException"
#: Items one query of the call list reads at most (a filter on open entries drops some of them).
_QUERY_PAGE = 200
#: The key prefix of a handled reply callback's item in ``campaign-opt-outs`` (a phone's key is a bare
#: hex hash: the two never meet).
REPLY_GUARD_PREFIX = "reply#"


def _condition_failed(err: Exception) -> bool:
    return getattr(err, "cause_response_code", None) == _CONDITION_FAILED


def call_key(wave: int, iccid: str) -> str:
    """The call list's range key: the wave first (two digits), so one wave's entries are one range."""
    return f"{wave:02d}#{iccid}"


def _change(change: str, at: datetime, via: str | None = None, campaign_id: str | None = None) -> str:
    """One line of an opt-out record's history (JSON)."""
    record = {"change": change, "at": at.isoformat(), "via": via, "campaign_id": campaign_id}
    return json.dumps({k: v for k, v in record.items() if v is not None}, separators=(",", ":"))


def reply_guard_key(digest: str) -> str:
    """The key of a handled reply callback's item."""
    return REPLY_GUARD_PREFIX + digest


def _trim_history(item: CampaignOptOutModel) -> None:
    """Drop the oldest lines of ``item``'s history (as just stored) past ``HISTORY_KEEP``, on condition
    that it still holds as many lines as read (another change in between: its own write trims). Best
    effort: a trim that fails is made by the phone's next change."""
    model = CampaignOptOutModel
    length = len(item.history or [])
    if length <= HISTORY_KEEP:
        return
    actions: list[Any] = [model.history[i].remove() for i in range(length - HISTORY_KEEP)]
    unchanged = size(model.history) == length  # type: ignore[no-untyped-call]
    try:
        model(item.phone_hash).update(actions=actions, condition=unchanged)
    except UpdateError as err:
        if not _condition_failed(err):
            raise


class DynamoOptOuts(OptOuts):
    """One item per phone: a conditional update moves it between opted out and opted in (the item is
    never deleted, so the latest opt-in is there to tell an older reply it comes too late). Its history
    keeps the newest ``HISTORY_KEEP`` lines, trimmed by a second conditional update."""

    def opt_out(self, record: OptOut, *, yields_to: datetime | None = None) -> OptOutChange:
        model = CampaignOptOutModel
        actions: list[Any] = [
            model.at.set(record.at),
            model.via.set(record.via),
            model.campaign_id.set(record.campaign_id) if record.campaign_id else model.campaign_id.remove(),
            model.opted_out.set(True),
            model.history.set(
                (model.history | []).append([_change("opt_out", record.at, record.via, record.campaign_id)])
            ),
        ]
        opted_in = model.opted_out == False  # noqa: E712 (a condition on the stored value)
        if yields_to is not None:
            opted_in &= model.opted_in_at <= yields_to
        item = model(record.phone_hash)
        try:
            item.update(actions=actions, condition=model.phone_hash.does_not_exist() | opted_in)
        except UpdateError as err:
            if not _condition_failed(err):
                raise
            current = model.get(record.phone_hash, consistent_read=True)
            return OptOutChange.SUPERSEDED if current.opted_out is False else OptOutChange.ALREADY
        _trim_history(item)
        return OptOutChange.RECORDED

    def opted_out(self, phone_hashes: Iterable[str]) -> set[str]:
        wanted = sorted(set(phone_hashes))
        if not wanted:
            return set()
        # BatchGetItem, 100 keys a request (pynamodb splits and retries the unprocessed keys).
        return {
            item.phone_hash for item in CampaignOptOutModel.batch_get(wanted) if item.opted_out is not False
        }

    def opt_in(self, phone_hash: str, at: datetime) -> bool:
        model = CampaignOptOutModel
        actions: list[Any] = [
            model.opted_out.set(False),
            model.opted_in_at.set(at),
            model.history.set((model.history | []).append([_change("opt_in", at)])),
        ]
        opted_out = model.opted_out.does_not_exist() | (model.opted_out == True)  # noqa: E712
        item = model(phone_hash)
        try:
            item.update(actions=actions, condition=model.phone_hash.exists() & opted_out)
        except UpdateError as err:
            if _condition_failed(err):
                return False
            raise
        _trim_history(item)
        return True

    def claim_reply(self, digest: str, at: datetime, until: datetime) -> bool:
        """One conditional write: the item is new, or one whose time is up that TTL has not deleted yet
        (TTL deletes within days, not at the second)."""
        model = CampaignOptOutModel
        now = int(at.timestamp())
        try:
            model(reply_guard_key(digest)).update(
                actions=[model.expires_epoch.set(int(until.timestamp()))],
                condition=model.phone_hash.does_not_exist() | (model.expires_epoch < now),
            )
        except UpdateError as err:
            if _condition_failed(err):
                return False
            raise
        return True

    def release_reply(self, digest: str) -> None:
        model = CampaignOptOutModel
        try:
            model(reply_guard_key(digest)).delete(condition=model.expires_epoch.exists())
        except DeleteError as err:
            if not _condition_failed(err):
                raise


def _entry(item: CampaignCallModel) -> CallEntry:
    return CallEntry(
        campaign_id=item.campaign_id,
        wave=int(item.wave),
        iccid=item.iccid,
        vin=item.vin,
        reason=CallReason(item.reason),
        created_at=utc_aware(item.created_at),
        contact_phone_sealed=item.contact_phone,
        outcome=CallOutcome(item.outcome) if item.outcome else None,
        outcome_at=utc_aware(item.outcome_at) if item.outcome_at else None,
        outcome_by=item.outcome_by,
        note=item.note,
    )


def _cursor_of(start: dict[str, Any], campaign_id: str, prefix: str) -> bool:
    """Whether a decoded cursor is a key of this campaign's call list within the range queried."""
    key = start.get("call_key")
    return (
        set(start) == {"campaign_id", "call_key"}
        and start["campaign_id"] == {"S": campaign_id}
        and isinstance(key, dict)
        and isinstance(key.get("S"), str)
        and key["S"].startswith(prefix)
    )


def _bad_cursor() -> BadRequest:
    return BadRequest("request.cursor", "分页游标无效", "The page cursor is invalid", field="cursor")


class DynamoCallList(CallList):
    def add(self, entry: CallEntry) -> bool:
        item = CampaignCallModel(
            entry.campaign_id,
            call_key(entry.wave, entry.iccid),
            wave=entry.wave,
            iccid=entry.iccid,
            vin=entry.vin,
            reason=entry.reason.value,
            created_at=entry.created_at,
            contact_phone=entry.contact_phone_sealed,
        )
        try:
            item.save(condition=CampaignCallModel.call_key.does_not_exist())
        except PutError as err:
            if _condition_failed(err):
                return False
            raise
        return True

    def page(
        self, campaign_id: str, *, wave: int | None, open_only: bool, cursor: str | None, limit: int
    ) -> tuple[list[CallEntry], str | None]:
        prefix = f"{wave:02d}#" if wave is not None else ""
        start = decode_cursor(cursor)
        if start is not None and not _cursor_of(start, campaign_id, prefix):
            raise _bad_cursor()  # another campaign's (or wave's) page, or no page of ours
        range_condition = CampaignCallModel.call_key.startswith(prefix) if wave is not None else None
        filter_condition = CampaignCallModel.outcome.does_not_exist() if open_only else None
        items = iter(
            CampaignCallModel.query(
                campaign_id,
                range_condition,
                filter_condition,
                page_size=_QUERY_PAGE if open_only else min(limit + 1, _QUERY_PAGE),
                last_evaluated_key=start,
            )
        )
        found: list[CallEntry] = []
        for item in items:
            found.append(_entry(item))
            if len(found) == limit:
                if next(items, None) is None:  # the page ends the list: no cursor
                    return found, None
                key = {"campaign_id": {"S": item.campaign_id}, "call_key": {"S": item.call_key}}
                return found, encode_cursor(key)
        return found, None

    def get(self, campaign_id: str, wave: int, iccid: str) -> CallEntry | None:
        try:
            return _entry(CampaignCallModel.get(campaign_id, call_key(wave, iccid), consistent_read=True))
        except CampaignCallModel.DoesNotExist:
            return None

    def record_outcome(
        self,
        entry: CallEntry,
        outcome: CallOutcome,
        by: str,
        at: datetime,
        note: str | None,
    ) -> tuple[CallEntry, bool]:
        """The first outcome is one transaction: the entry's update conditional on no outcome yet, and
        ``ADD called 1`` on its wave's counters. When that condition fails (another outcome came first)
        the outcome is a plain update, counted nowhere."""
        record = json.dumps(
            {"outcome": outcome.value, "at": at.isoformat(), "by": by, "note": note},
            ensure_ascii=False,
            separators=(",", ":"),
        )
        model = CampaignCallModel
        actions: list[Any] = [
            model.outcome.set(outcome.value),
            model.outcome_at.set(at),
            model.outcome_by.set(by),
            model.outcomes.set((model.outcomes | []).append([record])),
            model.note.set(note) if note else model.note.remove(),
        ]
        key = (entry.campaign_id, call_key(entry.wave, entry.iccid))
        recorded = dataclasses.replace(entry, outcome=outcome, outcome_at=at, outcome_by=by, note=note)
        if self._first_outcome(entry, actions):
            return recorded, True
        item = model(*key)
        try:
            item.update(actions=actions, condition=model.call_key.exists())
        except UpdateError as err:
            if _condition_failed(err):
                raise call_not_found(entry.campaign_id, entry.wave) from err
            raise
        return _entry(item), False

    def _first_outcome(self, entry: CallEntry, actions: list[Any]) -> bool:
        """Write ``actions`` with the wave's ``called`` count if the entry has no outcome yet (False: it
        has one, or is not on the list). A transaction cancelled by another in flight on the same items
        is tried again (``TRANSACT_ATTEMPTS``), then either it commits or its condition fails. The count
        is on the wave's ``calls`` item, which only these transactions write: one in flight never holds
        the ``stats`` item the sender's and planner's plain updates write (they would be refused)."""
        model = CampaignCallModel
        first = model.call_key.exists() & model.outcome.does_not_exist()
        calls = CampaignWaveModel(
            campaign_wave=campaign_wave_key(entry.campaign_id, entry.wave), part=CALLS_PART
        )
        for attempt in range(TRANSACT_ATTEMPTS):
            try:
                # The token makes botocore's retry of a transaction that landed with its reply lost
                # a success in DynamoDB, not a refusal by its own first outcome.
                with TransactWrite(
                    connection=model._get_connection().connection, client_request_token=new_token()
                ) as tx:
                    tx.update(
                        model(entry.campaign_id, call_key(entry.wave, entry.iccid)),
                        actions=actions,
                        condition=first,
                        add_version_condition=False,
                    )
                    tx.update(calls, actions=[CampaignWaveModel.called.add(1)], add_version_condition=False)
                return True
            except TransactWriteError as exc:
                reasons = exc.cancellation_reasons or []
                if reasons and reasons[0] is not None and reasons[0].code == "ConditionalCheckFailed":
                    return False
                codes = {r.code for r in reasons if r is not None}
                if codes and codes <= RETRYABLE and attempt + 1 < TRANSACT_ATTEMPTS:
                    time.sleep(random.uniform(0, 0.05 * 2**attempt))
                    continue
                raise
        raise AssertionError("unreachable: the last attempt returns or raises")
