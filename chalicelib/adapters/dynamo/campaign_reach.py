"""The backfill campaigns' opt-outs and call list on DynamoDB: ``campaign-opt-outs`` (one item per phone,
by keyed hash; the first opt-out kept) and ``campaign-calls`` (one item per campaign, wave and card, the
contact phone as sealed text, every outcome kept in the item's ``outcomes``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pynamodb.exceptions import DeleteError, PutError, UpdateError

from chalicelib.adapters.dynamo.agents import decode_cursor, encode_cursor
from chalicelib.adapters.dynamo.base import utc_aware
from chalicelib.adapters.dynamo.models_campaigns import CampaignCallModel, CampaignOptOutModel
from chalicelib.campaigns.domain import CallEntry, CallOutcome, CallReason, OptOut
from chalicelib.campaigns.ports import CallList, OptOuts
from chalicelib.campaigns.reach import call_not_found
from chalicelib.kernel.errors import BadRequest

_CONDITION_FAILED = "ConditionalCheckFailedException"
#: Items one query of the call list reads at most (a filter on open entries drops some of them).
_QUERY_PAGE = 200


def _condition_failed(err: Exception) -> bool:
    return getattr(err, "cause_response_code", None) == _CONDITION_FAILED


def call_key(wave: int, iccid: str) -> str:
    """The call list's range key: the wave first (two digits), so one wave's entries are one range."""
    return f"{wave:02d}#{iccid}"


class DynamoOptOuts(OptOuts):
    def opt_out(self, record: OptOut) -> bool:
        item = CampaignOptOutModel(
            record.phone_hash, at=record.at, via=record.via, campaign_id=record.campaign_id
        )
        try:
            item.save(condition=CampaignOptOutModel.phone_hash.does_not_exist())
        except PutError as err:
            if _condition_failed(err):
                return False
            raise
        return True

    def opted_out(self, phone_hashes: Iterable[str]) -> set[str]:
        wanted = sorted(set(phone_hashes))
        if not wanted:
            return set()
        # BatchGetItem, 100 keys a request (pynamodb splits and retries the unprocessed keys).
        return {item.phone_hash for item in CampaignOptOutModel.batch_get(wanted)}

    def opt_in(self, phone_hash: str) -> bool:
        try:
            CampaignOptOutModel(phone_hash).delete(condition=CampaignOptOutModel.phone_hash.exists())
        except DeleteError as err:
            if _condition_failed(err):
                return False
            raise
        return True


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
    ) -> CallEntry:
        record = json.dumps(
            {"outcome": outcome.value, "at": at.isoformat(), "by": by, "note": note},
            ensure_ascii=False,
            separators=(",", ":"),
        )
        item = CampaignCallModel(entry.campaign_id, call_key(entry.wave, entry.iccid))
        actions: list[Any] = [
            CampaignCallModel.outcome.set(outcome.value),
            CampaignCallModel.outcome_at.set(at),
            CampaignCallModel.outcome_by.set(by),
            CampaignCallModel.outcomes.set((CampaignCallModel.outcomes | []).append([record])),
            CampaignCallModel.note.set(note) if note else CampaignCallModel.note.remove(),
        ]
        try:
            item.update(actions=actions, condition=CampaignCallModel.call_key.exists())
        except UpdateError as err:
            if _condition_failed(err):
                raise call_not_found(entry.campaign_id, entry.wave) from err
            raise
        return _entry(item)
