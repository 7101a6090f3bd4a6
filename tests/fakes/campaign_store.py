"""In-memory fakes of the campaign store and of the wave scheduler."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from chalicelib.campaigns.domain import Campaign
from chalicelib.campaigns.errors import campaign_changed, campaign_exists
from chalicelib.campaigns.ports import CampaignQueue, CampaignStore, WaveScheduler


class FakeCampaignStore(CampaignStore):
    """Campaigns in a dict; a save refuses a stale version like the table's condition does."""

    def __init__(self) -> None:
        self.campaigns: dict[str, Campaign] = {}
        self._lock = threading.Lock()

    def create(self, campaign: Campaign) -> None:
        with self._lock:
            if campaign.campaign_id in self.campaigns:
                raise campaign_exists(campaign.campaign_id)
            self.campaigns[campaign.campaign_id] = campaign

    def get(self, campaign_id: str) -> Campaign | None:
        return self.campaigns.get(campaign_id)

    def list(self, cursor: str | None = None, limit: int = 50) -> tuple[list[Campaign], str | None]:
        ordered = sorted(self.campaigns.values(), key=lambda c: (c.created_at, c.campaign_id), reverse=True)
        start = 0
        if cursor is not None:
            ids = [c.campaign_id for c in ordered]
            start = ids.index(cursor) + 1 if cursor in ids else len(ids)
        page = ordered[start : start + limit]
        more = start + limit < len(ordered)
        return page, (page[-1].campaign_id if more and page else None)

    def save(self, campaign: Campaign) -> Campaign:
        with self._lock:
            stored = self.campaigns.get(campaign.campaign_id)
            if stored is None or stored.version != campaign.version:
                raise campaign_changed(campaign.campaign_id)
            saved = dataclasses.replace(campaign, version=campaign.version + 1)
            self.campaigns[campaign.campaign_id] = saved
            return saved


class FakeWaveScheduler(WaveScheduler):
    """Schedules by name; ``due(now)`` says which would have fired (the local worker's job)."""

    def __init__(self) -> None:
        self.schedules: dict[str, tuple[str, int, datetime]] = {}
        self.cancelled: list[str] = []

    @staticmethod
    def name_of(campaign_id: str, wave: int) -> str:
        return f"{campaign_id}-w{wave:02d}"

    def schedule(self, campaign_id: str, wave: int, at: datetime) -> str:
        name = self.name_of(campaign_id, wave)
        self.schedules[name] = (campaign_id, wave, at)
        return name

    def cancel(self, campaign_id: str, wave: int) -> None:
        name = self.name_of(campaign_id, wave)
        if self.schedules.pop(name, None) is not None:
            self.cancelled.append(name)

    def due(self, now: datetime) -> list[tuple[str, int]]:
        """The (campaign, wave) pairs whose time has come, removed as EventBridge removes them."""
        fired = sorted((at, cid, wave) for cid, wave, at in self.schedules.values() if at <= now)
        for _, cid, wave in fired:
            self.schedules.pop(self.name_of(cid, wave), None)
        return [(cid, wave) for _, cid, wave in fired]


class RecordingQueue(CampaignQueue):
    """A campaign queue that keeps what was sent (bodies in order, with their delays)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.delays: list[int] = []
        self.deferred: list[tuple[str, int]] = []

    def send(self, body: Mapping[str, Any], delay_seconds: int = 0) -> None:
        self.sent.append(dict(body))
        self.delays.append(delay_seconds)

    def send_batch(self, bodies: Sequence[Mapping[str, Any]]) -> None:
        for body in bodies:
            self.send(body)

    def defer(self, receipt_handle: str, seconds: int) -> None:
        self.deferred.append((receipt_handle, seconds))
