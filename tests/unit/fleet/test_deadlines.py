"""The review deadline in working days of China time, on the published calendar: weekends, statutory
holidays and the weekend days made working days (调休)."""

from __future__ import annotations

from datetime import datetime, timedelta

from chalicelib.fleet.deadlines import add_working_time, china_calendar, review_window
from chalicelib.kernel.clock import CHINA

ONE_DAY = timedelta(days=1)


def china(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=CHINA)


def due(start: datetime, days: float = 1) -> datetime:
    return add_working_time(start, timedelta(days=days), china_calendar()).astimezone(CHINA)


def test_a_friday_afternoon_case_is_due_on_monday_afternoon() -> None:
    assert due(china(2026, 3, 6, 15, 0)) == china(2026, 3, 9, 15, 0)


def test_a_case_opened_on_a_saturday_is_due_at_the_end_of_monday() -> None:
    assert due(china(2026, 3, 7, 10, 0)) == china(2026, 3, 10, 0, 0)


def test_the_national_day_holiday_does_not_count() -> None:
    # 2026: 1–7 October off (3 statutory days, a Sunday, and 5–7 October moved from weekends).
    assert due(china(2026, 9, 30, 10, 0)) == china(2026, 10, 8, 10, 0)


def test_a_weekend_day_made_a_working_day_counts() -> None:
    # Saturday 10 October 2026 is a working day (调休 for the National Day holiday).
    assert due(china(2026, 10, 9, 10, 0)) == china(2026, 10, 10, 10, 0)
    # Saturday 14 February 2026 is one too (the Spring Festival's).
    assert due(china(2026, 2, 13, 9, 30)) == china(2026, 2, 14, 9, 30)


def test_the_spring_festival_holiday_does_not_count() -> None:
    # 15–23 February 2026 are off: a case of Saturday the 14th (a working day) at 18:00 is due on the 24th.
    assert due(china(2026, 2, 14, 18, 0)) == china(2026, 2, 24, 18, 0)


def test_the_reminder_falls_at_its_fraction_of_the_working_time() -> None:
    start = china(2026, 9, 30, 10, 0)
    window = review_window(start, working_days=1, remind_fraction=0.5, calendar=china_calendar())
    assert window.remind_at.astimezone(CHINA) == china(2026, 9, 30, 22, 0)
    assert window.deadline_at.astimezone(CHINA) == china(2026, 10, 8, 10, 0)
    remind, escalate = window.seconds_from(start)
    assert remind == 12 * 3600
    assert escalate == int((china(2026, 10, 8, 10, 0) - start).total_seconds())


def test_two_working_days_span_the_weekend() -> None:
    assert due(china(2026, 3, 5, 8, 0), days=2) == china(2026, 3, 9, 8, 0)


def test_test_stages_give_the_reminder_and_the_deadline_in_seconds() -> None:
    start = china(2026, 10, 1, 10, 0)  # a holiday: ignored in plain seconds
    window = review_window(
        start,
        working_days=1,
        remind_fraction=0.5,
        calendar=china_calendar(),
        remind_seconds=2,
        deadline_seconds=5,
    )
    assert window.seconds_from(start) == (2, 5)
    only_deadline = review_window(
        start, working_days=1, remind_fraction=0.5, calendar=china_calendar(), deadline_seconds=4
    )
    assert only_deadline.seconds_from(start) == (2, 4)


def test_the_deadline_is_always_after_the_reminder() -> None:
    start = china(2026, 3, 2, 10, 0)
    window = review_window(
        start, working_days=1, remind_fraction=0.5, calendar=china_calendar(), remind_seconds=1
    )
    remind, escalate = window.seconds_from(start + ONE_DAY * 2)  # both already past
    assert remind == 1
    assert escalate == 2
