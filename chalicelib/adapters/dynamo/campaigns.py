"""The ``campaigns`` table: one item per backfill campaign, written whole and conditionally on the
version read (``campaign.changed`` when someone else moved it), listed newest first through the
``by-created`` index."""

from __future__ import annotations

import json
from datetime import date, datetime, time
from typing import Any

from pynamodb.exceptions import PutError

from chalicelib.adapters.dynamo.agents import decode_cursor, encode_cursor
from chalicelib.adapters.dynamo.base import utc_aware
from chalicelib.adapters.dynamo.models_campaigns import CAMPAIGN_LISTING, CampaignModel
from chalicelib.campaigns.domain import (
    Campaign,
    CampaignStatus,
    Channel,
    QuietHours,
    Wave,
    WaveStatus,
)
from chalicelib.campaigns.errors import campaign_changed, campaign_exists
from chalicelib.campaigns.ports import CampaignStore
from chalicelib.kernel.errors import BadRequest

_CONDITION_FAILED = "ConditionalCheckFailedException"


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _at(text: str | None) -> datetime | None:
    return utc_aware(datetime.fromisoformat(text)) if text else None


def waves_json(waves: tuple[Wave, ...]) -> str:
    return json.dumps(
        [
            {
                "index": w.index,
                "days_before": w.days_before,
                "scheduled_at": w.scheduled_at.isoformat(),
                "status": w.status.value,
                "deferred": w.deferred,
                "started_at": _iso(w.started_at),
                "planned_at": _iso(w.planned_at),
            }
            for w in waves
        ]
    )


def waves_of(text: str) -> tuple[Wave, ...]:
    out: list[Wave] = []
    for raw in json.loads(text):
        scheduled = _at(raw["scheduled_at"])
        assert scheduled is not None
        out.append(
            Wave(
                index=int(raw["index"]),
                days_before=int(raw["days_before"]),
                scheduled_at=scheduled,
                status=WaveStatus(raw["status"]),
                deferred=bool(raw.get("deferred")),
                started_at=_at(raw.get("started_at")),
                planned_at=_at(raw.get("planned_at")),
            )
        )
    return tuple(out)


def _hhmm(t: time) -> str:
    return t.strftime("%H:%M")


def _listing_key(start: dict[str, Any]) -> bool:
    """Whether a decoded cursor is a key the newest-first listing returns (a forged one would reach the
    store and fail there)."""
    return (
        set(start) == {"campaign_id", "listing", "created_at"}
        and start["listing"] == {"S": CAMPAIGN_LISTING}
        and all(isinstance(v, dict) and set(v) == {"S"} and isinstance(v["S"], str) for v in start.values())
    )


class DynamoCampaignStore(CampaignStore):
    @staticmethod
    def _item(campaign: Campaign, version: int) -> CampaignModel:
        return CampaignModel(
            campaign.campaign_id,
            listing=CAMPAIGN_LISTING,
            name=campaign.name,
            deadline=campaign.deadline.isoformat(),
            waves=waves_json(campaign.waves),
            template=campaign.template,
            channels=[c.value for c in campaign.channels],
            rate_per_second=campaign.rate_per_second,
            quiet_start=_hhmm(campaign.quiet_hours.start),
            quiet_end=_hhmm(campaign.quiet_hours.end),
            send_time=_hhmm(campaign.send_time),
            attribution_days=campaign.attribution_days,
            status=campaign.status.value,
            current_wave=campaign.current_wave,
            created_by=campaign.created_by,
            created_at=campaign.created_at,
            updated_at=campaign.updated_at,
            version=version,
        )

    @staticmethod
    def _campaign(item: CampaignModel) -> Campaign:
        return Campaign(
            campaign_id=item.campaign_id,
            name=item.name,
            deadline=date.fromisoformat(item.deadline),
            waves=waves_of(item.waves),
            template=item.template,
            channels=tuple(Channel(c) for c in item.channels or ()),
            rate_per_second=int(item.rate_per_second),
            quiet_hours=QuietHours(
                start=time.fromisoformat(item.quiet_start), end=time.fromisoformat(item.quiet_end)
            ),
            send_time=time.fromisoformat(item.send_time),
            attribution_days=int(item.attribution_days),
            status=CampaignStatus(item.status),
            created_by=item.created_by,
            created_at=utc_aware(item.created_at),
            updated_at=utc_aware(item.updated_at),
            current_wave=int(item.current_wave or 0),
            version=int(item.version),
        )

    def create(self, campaign: Campaign) -> None:
        try:
            self._item(campaign, campaign.version).save(condition=CampaignModel.campaign_id.does_not_exist())
        except PutError as err:
            if err.cause_response_code == _CONDITION_FAILED:
                raise campaign_exists(campaign.campaign_id) from err
            raise

    def get(self, campaign_id: str) -> Campaign | None:
        try:
            return self._campaign(CampaignModel.get(campaign_id, consistent_read=True))
        except CampaignModel.DoesNotExist:
            return None

    def list(self, cursor: str | None = None, limit: int = 50) -> tuple[list[Campaign], str | None]:
        start = decode_cursor(cursor)
        if start is not None and not _listing_key(start):
            raise BadRequest("request.cursor", "分页游标无效", "The page cursor is invalid", field="cursor")
        result = CampaignModel.by_created.query(
            CAMPAIGN_LISTING,
            scan_index_forward=False,
            limit=limit,
            last_evaluated_key=start,
        )
        found = [self._campaign(item) for item in result]
        key: dict[str, Any] | None = result.last_evaluated_key
        return found, encode_cursor(key)

    def save(self, campaign: Campaign) -> Campaign:
        saved_version = campaign.version + 1
        try:
            self._item(campaign, saved_version).save(condition=CampaignModel.version == campaign.version)
        except PutError as err:
            if err.cause_response_code == _CONDITION_FAILED:
                raise campaign_changed(campaign.campaign_id) from err
            raise
        return self._campaign(self._item(campaign, saved_version))
