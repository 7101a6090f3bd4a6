"""The pure rules of a backfill campaign: when its waves run (China time, quiet hours respected), and
what its message says (the VIN's tail, the link, the deadline, how to opt out)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

from chalicelib.campaigns.domain import (
    DEADLINE_PLACEHOLDER,
    LINK_PLACEHOLDER,
    OPT_OUT_SUFFIX,
    VIN_TAIL_LENGTH,
    VIN_TAIL_PLACEHOLDER,
    QuietHours,
    Wave,
    WaveStatus,
)
from chalicelib.campaigns.errors import invalid
from chalicelib.kernel.clock import CHINA

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_KNOWN = frozenset(p.strip("{}") for p in (LINK_PLACEHOLDER, VIN_TAIL_PLACEHOLDER, DEADLINE_PLACEHOLDER))
#: The widest deadline a message can show: a template is measured with it.
_WIDEST_DEADLINE = date(2099, 12, 31)
_LONGEST_VIN = "L" * 17


def _china_time(at: datetime) -> time:
    return at.astimezone(CHINA).time().replace(tzinfo=None)


def in_quiet_hours(at: datetime, quiet: QuietHours) -> bool:
    """Whether ``at`` (aware) falls in the quiet hours, China time (start included, end excluded; a span
    whose start is after its end crosses midnight; equal start and end: no quiet hours)."""
    t = _china_time(at)
    if quiet.start == quiet.end:
        return False
    if quiet.start < quiet.end:
        return quiet.start <= t < quiet.end
    return t >= quiet.start or t < quiet.end


def quiet_hours_end(at: datetime, quiet: QuietHours) -> datetime:
    """The first end of quiet hours after ``at`` (UTC, aware)."""
    local = at.astimezone(CHINA)
    end = datetime.combine(local.date(), quiet.end, tzinfo=CHINA)
    if end <= local:
        end += timedelta(days=1)
    return end.astimezone(UTC)


def wave_time(deadline: date, days_before: int, send_time: time) -> datetime:
    """The wave's time as set: ``days_before`` days before the deadline at ``send_time`` China (UTC)."""
    day = deadline - timedelta(days=days_before)
    return datetime.combine(day, send_time, tzinfo=CHINA).astimezone(UTC)


def plan_waves(
    deadline: date,
    days_before: Sequence[int],
    send_time: time,
    quiet: QuietHours,
    now: datetime,
) -> tuple[Wave, ...]:
    """The campaign's waves in time order (index from 1): a time inside quiet hours moves to their end
    (``deferred``); a time already past at ``now`` is ``missed``."""
    waves: list[Wave] = []
    for index, before in enumerate(sorted(set(days_before), reverse=True), start=1):
        at = wave_time(deadline, before, send_time)
        deferred = in_quiet_hours(at, quiet)
        if deferred:
            at = quiet_hours_end(at, quiet)
        status = WaveStatus.MISSED if at <= now else WaveStatus.SCHEDULED
        waves.append(Wave(index, before, at, status=status, deferred=deferred))
    return tuple(waves)


def vin_tail(vin: str) -> str:
    """The last six characters of the VIN: all a message shows of it."""
    return vin.strip().upper()[-VIN_TAIL_LENGTH:]


def format_deadline(deadline: date) -> str:
    return f"{deadline.year}年{deadline.month}月{deadline.day}日"


def render_message(template: str, *, vin: str, link: str, deadline: date) -> str:
    """The SMS a target receives: the template filled in, the opt-out instructions appended."""
    text = (
        template.replace(VIN_TAIL_PLACEHOLDER, vin_tail(vin))
        .replace(LINK_PLACEHOLDER, link)
        .replace(DEADLINE_PLACEHOLDER, format_deadline(deadline))
    )
    return text + OPT_OUT_SUFFIX


def validate_template(template: str, *, link: str, max_chars: int) -> None:
    """Refuse a template that names an unknown placeholder, lacks the link or the VIN's tail, or whose
    message (a 17-character VIN, the widest deadline, the link and the opt-out suffix) is over
    ``max_chars``."""
    unknown = sorted({name for name in _PLACEHOLDER.findall(template) if name not in _KNOWN})
    if unknown or template.count("{") != template.count("}"):
        error = invalid(
            "template",
            "template_unknown_placeholder",
            "短信模板含有无法识别的占位符（可用：{link}、{vin_tail}、{deadline}）",
            "The template has an unknown placeholder (known: {link}, {vin_tail}, {deadline})",
        )
        error.details["placeholders"] = unknown
        raise error
    if LINK_PLACEHOLDER not in template:
        raise invalid(
            "template",
            "template_no_link",
            "短信模板必须包含登记链接 {link}",
            "The template must contain the registration link {link}",
        )
    if VIN_TAIL_PLACEHOLDER not in template:
        raise invalid(
            "template",
            "template_no_vin",
            "短信模板必须包含车架号后六位 {vin_tail}",
            "The template must contain the VIN's tail {vin_tail}",
        )
    longest = render_message(template, vin=_LONGEST_VIN, link=link, deadline=_WIDEST_DEADLINE)
    if len(longest) > max_chars:
        error = invalid(
            "template",
            "template_too_long",
            f"短信过长：{len(longest)} 字，上限 {max_chars} 字（含链接与退订提示）",
            f"The message is too long: {len(longest)} characters, at most {max_chars} "
            "(link and opt-out included)",
        )
        error.details.update({"length": len(longest), "max_chars": max_chars})
        raise error
