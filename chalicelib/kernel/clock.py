"""The one clock: UTC now for records, China time for calendar rules (days, quotas)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


#: Days for the per-person quota are China's calendar days.
CHINA = ZoneInfo("Asia/Shanghai")


def china_day(now: datetime) -> date:
    return now.astimezone(CHINA).date()


def end_of_china_day(now: datetime) -> datetime:
    """The first instant of the next China day (when the per-person quota resets)."""
    day = china_day(now) + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=CHINA).astimezone(UTC)
