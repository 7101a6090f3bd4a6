"""The one clock: records in UTC, calendar rules (per-person quotas) on China's days, which turn at
16:00 UTC (China is UTC+8 all year)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from chalicelib.kernel.clock import CHINA, china_day, end_of_china_day, utc_now

_LAST_INSTANT_OF_2_MARCH = datetime(2026, 3, 2, 15, 59, 59, 999_999, tzinfo=UTC)
_FIRST_INSTANT_OF_3_MARCH = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)


def test_utc_now_is_an_aware_utc_time() -> None:
    # when
    now = utc_now()
    # then
    assert now.utcoffset() == timedelta(0)
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)


def test_china_is_eight_hours_ahead_of_utc_in_winter_and_summer() -> None:
    for moment in (datetime(2026, 1, 15, tzinfo=UTC), datetime(2026, 7, 15, tzinfo=UTC)):
        assert moment.astimezone(CHINA).utcoffset() == timedelta(hours=8)


def test_the_china_day_turns_at_16_00_utc() -> None:
    # given the last microsecond before 16:00 UTC and 16:00 UTC itself
    # when each is read as a China day
    before, at = china_day(_LAST_INSTANT_OF_2_MARCH), china_day(_FIRST_INSTANT_OF_3_MARCH)
    # then they fall on consecutive China days, though both are 2 March in UTC
    assert (before, at) == (date(2026, 3, 2), date(2026, 3, 3))


def test_a_utc_morning_is_the_same_china_day() -> None:
    assert china_day(datetime(2026, 3, 2, 0, 0, tzinfo=UTC)) == date(2026, 3, 2)


def test_a_time_given_in_china_is_read_on_its_own_calendar() -> None:
    # given 00:30 on 3 March in China (16:30 UTC on 2 March)
    moment = datetime(2026, 3, 3, 0, 30, tzinfo=CHINA)
    # then its China day is 3 March
    assert china_day(moment) == date(2026, 3, 3)


@pytest.mark.parametrize(
    ("now", "reset"),
    [
        (datetime(2026, 3, 2, 2, 0, tzinfo=UTC), datetime(2026, 3, 2, 16, 0, tzinfo=UTC)),
        (_LAST_INSTANT_OF_2_MARCH, datetime(2026, 3, 2, 16, 0, tzinfo=UTC)),
        (_FIRST_INSTANT_OF_3_MARCH, datetime(2026, 3, 3, 16, 0, tzinfo=UTC)),
        (datetime(2026, 12, 31, 20, 0, tzinfo=UTC), datetime(2027, 1, 1, 16, 0, tzinfo=UTC)),
    ],
)
def test_the_end_of_the_china_day_is_the_next_16_00_utc(now: datetime, reset: datetime) -> None:
    # when
    end = end_of_china_day(now)
    # then it is the first instant of the next China day, in UTC
    assert end == reset
    assert end.tzinfo is UTC
    assert china_day(end) == china_day(now) + timedelta(days=1)
