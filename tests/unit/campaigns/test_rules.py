"""The campaign's pure rules: wave times in China time, quiet hours, the message and its template."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from chalicelib.campaigns.domain import OPT_OUT_SUFFIX, QuietHours, WaveStatus
from chalicelib.campaigns.rules import (
    in_quiet_hours,
    plan_waves,
    quiet_hours_end,
    render_message,
    validate_template,
    vin_tail,
)
from chalicelib.kernel.errors import InvalidField

QUIET = QuietHours()
LINK = "https://h5.example.cn/r"
VIN = "LSVAB4BR8EN123456"
NOW = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)


def test_waves_60_30_7_1_before_the_deadline_run_at_ten_china_time_in_time_order() -> None:
    waves = plan_waves(date(2026, 6, 30), [1, 60, 7, 30], time(10, 0), QUIET, NOW)
    assert [w.days_before for w in waves] == [60, 30, 7, 1]
    assert [w.index for w in waves] == [1, 2, 3, 4]
    assert waves[0].scheduled_at == datetime(2026, 5, 1, 2, 0, tzinfo=UTC)  # 10:00 China
    assert waves[3].scheduled_at == datetime(2026, 6, 29, 2, 0, tzinfo=UTC)
    assert all(w.status is WaveStatus.SCHEDULED and not w.deferred for w in waves)


def test_a_send_time_of_22_30_is_deferred_to_08_00_china_the_next_day() -> None:
    (wave,) = plan_waves(date(2026, 6, 30), [7], time(22, 30), QUIET, NOW)
    assert wave.deferred
    assert wave.scheduled_at == datetime(2026, 6, 24, 0, 0, tzinfo=UTC)  # 06-24 08:00 China


def test_a_send_time_after_midnight_inside_quiet_hours_moves_to_eight_the_same_day() -> None:
    (wave,) = plan_waves(date(2026, 6, 30), [7], time(2, 0), QUIET, NOW)
    assert wave.deferred
    assert wave.scheduled_at == datetime(2026, 6, 23, 0, 0, tzinfo=UTC)


def test_waves_whose_time_has_passed_are_missed_and_later_ones_scheduled() -> None:
    now = datetime(2026, 6, 10, 0, 0, tzinfo=UTC)
    waves = plan_waves(date(2026, 6, 30), [60, 30, 7, 1], time(10, 0), QUIET, now)
    assert [w.status for w in waves] == [
        WaveStatus.MISSED,
        WaveStatus.MISSED,
        WaveStatus.SCHEDULED,
        WaveStatus.SCHEDULED,
    ]


@pytest.mark.parametrize(
    ("utc", "quiet"),
    [
        (datetime(2026, 3, 1, 13, 0, tzinfo=UTC), True),  # 21:00 China: start included
        (datetime(2026, 3, 1, 18, 0, tzinfo=UTC), True),  # 02:00 China, across midnight
        (datetime(2026, 3, 1, 23, 59, tzinfo=UTC), True),  # 07:59 China
        (datetime(2026, 3, 2, 0, 0, tzinfo=UTC), False),  # 08:00 China: end excluded
        (datetime(2026, 3, 1, 12, 59, tzinfo=UTC), False),  # 20:59 China
        # China keeps no daylight saving: the same hours hold in summer.
        (datetime(2026, 7, 1, 13, 30, tzinfo=UTC), True),
        (datetime(2026, 7, 1, 2, 0, tzinfo=UTC), False),
    ],
)
def test_quiet_hours_cross_midnight_in_china_time_all_year(utc: datetime, quiet: bool) -> None:
    assert in_quiet_hours(utc, QUIET) is quiet


def test_the_end_of_quiet_hours_is_the_next_eight_o_clock_china() -> None:
    evening = datetime(2026, 3, 1, 14, 0, tzinfo=UTC)  # 22:00 China
    night = datetime(2026, 3, 1, 19, 0, tzinfo=UTC)  # 03:00 China, the next day
    assert quiet_hours_end(evening, QUIET) == datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
    assert quiet_hours_end(night, QUIET) == datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


def test_quiet_hours_within_one_day_and_none_when_start_equals_end() -> None:
    lunch = QuietHours(start=time(12, 0), end=time(14, 0))
    assert in_quiet_hours(datetime(2026, 3, 1, 4, 30, tzinfo=UTC), lunch)  # 12:30 China
    assert not in_quiet_hours(datetime(2026, 3, 1, 13, 30, tzinfo=UTC), lunch)
    assert not in_quiet_hours(NOW, QuietHours(start=time(8, 0), end=time(8, 0)))


def test_the_message_shows_only_the_vins_last_six_and_ends_with_the_opt_out_suffix() -> None:
    text = render_message(
        "尾号{vin_tail}的车辆请于{deadline}前登记：{link}",
        vin=VIN,
        link=LINK,
        deadline=date(2026, 6, 30),
    )
    assert text == f"尾号123456的车辆请于2026年6月30日前登记：{LINK}{OPT_OUT_SUFFIX}"
    assert VIN not in text
    assert VIN[:11] not in text
    assert vin_tail(" lsvab4br8en123456 ") == "123456"


@pytest.mark.parametrize(
    ("template", "code"),
    [
        ("尾号{vin_tail}的车辆请尽快登记", "campaign.template_no_link"),
        ("您的车辆请尽快登记 {link}", "campaign.template_no_vin"),
        ("尾号{vin_tail}请登记 {link} {name}", "campaign.template_unknown_placeholder"),
        ("尾号{vin_tail}请登记 {link} {", "campaign.template_unknown_placeholder"),
        ("尾号{vin_tail}请登记" + "车" * 120 + "{link}", "campaign.template_too_long"),
    ],
)
def test_a_bad_template_is_refused_on_the_template_field_with_its_own_code(template: str, code: str) -> None:
    with pytest.raises(InvalidField) as refused:
        validate_template(template, link=LINK, max_chars=134)
    assert refused.value.code == code
    assert refused.value.field == "template"


def test_a_template_is_measured_with_a_full_vin_the_widest_deadline_the_link_and_the_suffix() -> None:
    template = "尾号{vin_tail}请于{deadline}前登记{link}"
    # 尾号 + six + 请于 + 2099年12月31日 + 前登记 + the link + the suffix
    length = 2 + 6 + 2 + 11 + 3 + len(LINK) + len(OPT_OUT_SUFFIX)
    validate_template(template, link=LINK, max_chars=length)
    with pytest.raises(InvalidField) as refused:
        validate_template(template, link=LINK, max_chars=length - 1)
    assert refused.value.details["length"] == length
