"""The review deadline of a fleet case, in working days of China time (工作日, Asia/Shanghai).

A working day is a weekday that is not a statutory holiday, or a weekend day made a working day by the
State Council's adjustment (调休). Working time runs only on working days, whole days from midnight to
midnight China time: a case submitted on Friday at 15:00 with one working day is due on Monday at 15:00,
one submitted on a Saturday is due at the end of Monday. The reminder falls at a fraction
(``fleet_review_remind_fraction``) of the same working time.

The calendar is the ``holidays`` library's Chinese one (holidays and 调休 working days as published),
imported on first use: the cold start of a request that needs no deadline does not pay for it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from chalicelib.kernel.clock import CHINA

if TYPE_CHECKING:
    from chalicelib.core.settings import Settings

DAY = timedelta(days=1)
#: Days looked at before giving up (a calendar with no working day in a year is broken).
_MAX_DAYS = 366


class WorkingCalendar(ABC):
    """Answers whether a day (China time) is a working day."""

    @abstractmethod
    def is_working_day(self, day: date) -> bool: ...


class ChinaWorkingCalendar(WorkingCalendar):
    """Mainland China: weekends and statutory holidays off, 调休 weekend working days on."""

    def __init__(self) -> None:
        self._calendar: Any = None

    def is_working_day(self, day: date) -> bool:
        if self._calendar is None:
            import holidays

            self._calendar = holidays.country_holidays("CN")
        return bool(self._calendar.is_working_day(day))


@lru_cache(maxsize=1)
def china_calendar() -> ChinaWorkingCalendar:
    return ChinaWorkingCalendar()


def add_working_time(start: datetime, working: timedelta, calendar: WorkingCalendar) -> datetime:
    """The instant ``working`` of working time after ``start`` (an aware datetime), counted in China
    time on the calendar's working days only; returned in UTC."""
    local = start.astimezone(CHINA)
    day = local.date()
    midnight = datetime(day.year, day.month, day.day, tzinfo=CHINA)
    offset = local - midnight  # how far into its day ``start`` is
    remaining = working
    for _ in range(_MAX_DAYS * 10):
        if calendar.is_working_day(day):
            left_today = DAY - offset
            if remaining <= left_today:
                return (midnight + offset + remaining).astimezone(start.tzinfo or CHINA)
            remaining -= left_today
        day += DAY
        midnight = datetime(day.year, day.month, day.day, tzinfo=CHINA)
        offset = timedelta(0)
    raise ValueError("the working calendar has no working day in ten years")


@dataclass(frozen=True)
class ReviewWindow:
    """When a reviewer is reminded of an undecided case and when it escalates to a lead."""

    remind_at: datetime
    deadline_at: datetime

    def seconds_from(self, now: datetime) -> tuple[int, int]:
        """Seconds from ``now`` to the reminder and from ``now`` to the deadline (the workflow waits the
        first, then the difference), the deadline at least a second after the reminder."""
        remind = max(1, int((self.remind_at - now).total_seconds()))
        escalate = max(remind + 1, int((self.deadline_at - now).total_seconds()))
        return remind, escalate


def review_window(
    now: datetime,
    *,
    working_days: float,
    remind_fraction: float,
    calendar: WorkingCalendar,
    remind_seconds: int | None = None,
    deadline_seconds: int | None = None,
) -> ReviewWindow:
    """The reminder and deadline of a case opened at ``now``: ``working_days`` of working time, the
    reminder at ``remind_fraction`` of it; ``remind_seconds``/``deadline_seconds`` (test stages) give
    them in plain seconds from ``now`` instead."""
    if deadline_seconds is not None:
        deadline = now + timedelta(seconds=deadline_seconds)
        remind = now + timedelta(
            seconds=remind_seconds if remind_seconds is not None else deadline_seconds / 2
        )
        return ReviewWindow(remind_at=min(remind, deadline), deadline_at=deadline)
    working = timedelta(days=working_days)
    deadline = add_working_time(now, working, calendar)
    if remind_seconds is not None:
        remind = now + timedelta(seconds=remind_seconds)
    else:
        remind = add_working_time(now, working * remind_fraction, calendar)
    return ReviewWindow(remind_at=min(remind, deadline), deadline_at=deadline)


def window_from_settings(
    now: datetime, settings: Settings, calendar: WorkingCalendar | None = None
) -> ReviewWindow:
    """``review_window`` with the stage's settings (``fleet_review_*``)."""
    return review_window(
        now,
        working_days=settings.fleet_review_working_days,
        remind_fraction=settings.fleet_review_remind_fraction,
        calendar=calendar or china_calendar(),
        remind_seconds=settings.fleet_review_remind_seconds,
        deadline_seconds=settings.fleet_review_deadline_seconds,
    )
