"""``cheka campaign``: backfill campaigns (补登记) from the command line, on the stage's store directly
(the embedded AWS locally): define one, list them, preview or show a plan with its China times and the
targets it would reach now, run a wave by hand, pause, resume, stop, and a campaign's progress. Every
command prints JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from chalicelib.cli.output import print_json

if TYPE_CHECKING:
    from chalicelib.campaigns.domain import Wave
    from chalicelib.campaigns.service import Campaigns

_ACTOR = "cli"


def _campaigns() -> Campaigns:
    from chalicelib.core import deps

    return deps.campaigns()


def _days(text: str) -> list[int]:
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError as exc:
        raise click.BadParameter("days before the deadline, comma-separated: 60,30,7,1") from exc


def _quiet(text: str | None) -> tuple[str | None, str | None]:
    if text is None:
        return None, None
    start, sep, end = text.partition("-")
    if not sep:
        raise click.BadParameter("quiet hours are START-END, China time: 21:00-08:00")
    return start.strip(), end.strip()


def _wave_row(wave: Wave) -> dict[str, Any]:
    from chalicelib.campaigns.service import china_time

    return {
        "wave": wave.index,
        "days_before": wave.days_before,
        "at_china": china_time(wave.scheduled_at),
        "scheduled_at": wave.scheduled_at.isoformat(),
        "status": wave.status.value,
        "deferred": wave.deferred,
    }


@click.group()
def campaign() -> None:
    """Backfill campaigns (补登记, 第二十二条): waves of reminders to cards in service, not registered."""


@campaign.command("create")
@click.option("--name", required=True)
@click.option("--deadline", required=True, help="YYYY-MM-DD, China date.")
@click.option("--waves", "waves", default="60,30,7,1", show_default=True, help="Days before the deadline.")
@click.option(
    "--template", required=True, help="The SMS: {vin_tail} and {link} required, {deadline} optional."
)
@click.option("--channels", default="sms,call", show_default=True)
@click.option("--rate", "rate", type=int, default=50, show_default=True, help="Messages per second.")
@click.option("--send-time", default="10:00", show_default=True, help="HH:MM, China time.")
@click.option("--quiet", default=None, help="Quiet hours START-END, China time (default 21:00-08:00).")
@click.option("--attribution-days", type=int, default=14, show_default=True)
def create(
    name: str,
    deadline: str,
    waves: str,
    template: str,
    channels: str,
    rate: int,
    send_time: str,
    quiet: str | None,
    attribution_days: int,
) -> None:
    """Define a campaign; its waves still ahead are scheduled at once."""
    from chalicelib.campaigns.service import CampaignDraft, campaign_view

    start, end = _quiet(quiet)
    draft = CampaignDraft(
        name=name,
        deadline=deadline,
        waves=_days(waves),
        template=template,
        channels=[c.strip() for c in channels.split(",") if c.strip()],
        rate_per_second=rate,
        send_time=send_time,
        quiet_start=start,
        quiet_end=end,
        attribution_days=attribution_days,
    )
    print_json(campaign_view(_campaigns().create(draft, by=_ACTOR)))


@campaign.command("list")
@click.option("--limit", type=click.IntRange(1, 100), default=50, show_default=True)
@click.option("--cursor", default=None)
def list_campaigns(limit: int, cursor: str | None) -> None:
    """The campaigns, newest first (one JSON object a line, then the next cursor if any)."""
    found, next_cursor = _campaigns().list(cursor, limit)
    for c in found:
        print_json(
            {
                "campaign_id": c.campaign_id,
                "name": c.name,
                "deadline": c.deadline.isoformat(),
                "status": c.status.value,
                "current_wave": c.current_wave,
                "waves": len(c.waves),
            },
            indent=None,
        )
    if next_cursor:
        print_json({"next_cursor": next_cursor}, indent=None)


@campaign.command("plan")
@click.argument("campaign_id", required=False)
@click.option("--deadline", default=None, help="Preview without a campaign: YYYY-MM-DD, China date.")
@click.option("--waves", "waves", default="60,30,7,1", show_default=True)
@click.option("--send-time", default="10:00", show_default=True)
@click.option("--quiet", default=None, help="START-END, China time (default 21:00-08:00).")
def plan(
    campaign_id: str | None, deadline: str | None, waves: str, send_time: str, quiet: str | None
) -> None:
    """The waves with their China times (a campaign's, or a preview from --deadline) and the targets
    the backfill index holds now."""
    from datetime import date, time

    from chalicelib.campaigns.domain import QuietHours
    from chalicelib.campaigns.rules import plan_waves

    service = _campaigns()
    head: dict[str, str | None]
    if campaign_id is not None:
        found = service.get(campaign_id)
        rows, head = found.waves, {"campaign_id": found.campaign_id, "deadline": found.deadline.isoformat()}
    elif deadline is not None:
        start, end = _quiet(quiet)
        try:
            hours = (
                QuietHours()
                if start is None or end is None
                else QuietHours(time.fromisoformat(start), time.fromisoformat(end))
            )
            at = time.fromisoformat(send_time)
            day = date.fromisoformat(deadline)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from exc
        rows = plan_waves(day, _days(waves), at, hours, datetime.now(UTC))
        head = {"campaign_id": None, "deadline": day.isoformat()}
    else:
        raise click.UsageError("name a campaign, or give --deadline to preview a plan")
    shards = service.target_count()
    print_json({**head, "waves": [_wave_row(w) for w in rows], "targets": sum(shards.values())})


@campaign.command("run-wave")
@click.argument("campaign_id")
@click.argument("wave", type=int)
def run_wave(campaign_id: str, wave: int) -> None:
    """Start WAVE of the campaign now, off its schedule (a missed wave too)."""
    from chalicelib.campaigns.service import campaign_view

    print_json(campaign_view(_campaigns().run_wave(campaign_id, wave)))


@campaign.command("pause")
@click.argument("campaign_id")
def pause(campaign_id: str) -> None:
    """Pause: nothing more is planned or sent until resumed."""
    from chalicelib.campaigns.service import campaign_view

    print_json(campaign_view(_campaigns().pause(campaign_id)))


@campaign.command("resume")
@click.argument("campaign_id")
def resume(campaign_id: str) -> None:
    """Resume a paused campaign (a running wave continues where its planning stopped)."""
    from chalicelib.campaigns.service import campaign_view

    print_json(campaign_view(_campaigns().resume(campaign_id)))


@campaign.command("stop")
@click.argument("campaign_id")
def stop(campaign_id: str) -> None:
    """Stop for good: waves not started are cancelled with their schedules."""
    from chalicelib.campaigns.service import campaign_view

    print_json(campaign_view(_campaigns().stop(campaign_id)))


@campaign.command("status")
@click.argument("campaign_id")
def status(campaign_id: str) -> None:
    """The campaign's status, its waves in China time and each wave's counters with the totals."""
    from chalicelib.campaigns.service import progress_view

    service = _campaigns()
    found = service.get(campaign_id)
    progress = progress_view(service.progress(campaign_id))
    by_wave = {row["wave"]: row for row in progress["waves"]}
    print_json(
        {
            "campaign_id": found.campaign_id,
            "name": found.name,
            "status": found.status.value,
            "deadline": found.deadline.isoformat(),
            "current_wave": found.current_wave,
            "waves": [{**_wave_row(w), **by_wave.get(w.index, {})} for w in found.waves],
            "totals": progress["totals"],
        }
    )
