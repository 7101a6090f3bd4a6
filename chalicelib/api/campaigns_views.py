"""The models of the backfill campaign routes (``chalicelib.api.campaigns``), loaded on their first use:
a cold start builds none of them and imports no campaign code."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictInt

from chalicelib.api.models import ApiModel, PageQuery
from chalicelib.campaigns.service import CampaignDraft


class QuietHoursBody(ApiModel):
    start: str = Field(default="21:00", max_length=5, description="HH:MM, China time")
    end: str = Field(default="08:00", max_length=5, description="HH:MM, China time")


class CampaignCreateBody(ApiModel):
    name: str = Field(max_length=200)
    deadline: str = Field(max_length=10, description="YYYY-MM-DD: the China date cards must be registered by")
    waves: Annotated[
        list[StrictInt], Field(max_length=50, description="days before the deadline, e.g. 60, 30, 7, 1")
    ]
    template: str = Field(
        max_length=2000,
        description="the SMS: {vin_tail} and {link} required, {deadline} optional; the opt-out text is added",
    )
    channels: list[str] = Field(default=["sms"], max_length=5, description="sms, and call (the call list)")
    rate_per_second: StrictInt = Field(description="messages per second, 1 to the stage's campaign_max_rate")
    send_time: str = Field(default="10:00", max_length=5, description="HH:MM, China time, of each wave")
    quiet_hours: QuietHoursBody | None = None
    attribution_days: StrictInt = Field(default=14, description="a registration within this many days counts")

    def draft(self) -> CampaignDraft:
        return CampaignDraft(
            name=self.name,
            deadline=self.deadline,
            waves=list(self.waves),
            template=self.template,
            channels=list(self.channels),
            rate_per_second=self.rate_per_second,
            send_time=self.send_time,
            quiet_start=self.quiet_hours.start if self.quiet_hours else None,
            quiet_end=self.quiet_hours.end if self.quiet_hours else None,
            attribution_days=self.attribution_days,
        )


class QuietHoursView(ApiModel):
    start: str
    end: str


class WaveView(ApiModel):
    index: int
    days_before: int
    scheduled_at: str = Field(description="ISO 8601, UTC")
    status: str = Field(description="scheduled | running | planned | missed | cancelled")
    deferred: bool = Field(description="its time fell in quiet hours and was moved to their end")
    started_at: str | None
    planned_at: str | None


class CampaignView(ApiModel):
    campaign_id: str
    name: str
    deadline: str
    status: str = Field(description="active | paused | stopped | completed")
    channels: list[str]
    rate_per_second: int
    send_time: str
    quiet_hours: QuietHoursView
    attribution_days: int
    template: str
    current_wave: int
    waves: list[WaveView]
    created_at: str
    created_by: str


class CampaignList(ApiModel):
    campaigns: list[CampaignView]
    next_cursor: str | None


class CampaignListQuery(PageQuery):
    pass


class WaveCounters(ApiModel):
    targeted: int
    sent: int
    skipped: dict[str, int] = Field(description="skip reason → count")
    failed: int
    called: int
    registered: int
    deferred: int


class WaveProgressView(WaveCounters):
    wave: int
    status: str


class CampaignProgressView(ApiModel):
    campaign_id: str
    waves: list[WaveProgressView]
    totals: WaveCounters


class TargetCountView(ApiModel):
    targets: int = Field(description="cards in service and not registered, now")
    shards: dict[str, int]
