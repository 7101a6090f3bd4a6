"""Backfill campaigns (补登记, 第二十二条): define one (deadline, waves, message, channels, rate, quiet
hours), list them, pause, resume or stop one, start a wave now, read its progress per wave, and the
number of targets a campaign would reach.

Admins and operations write; auditors read. The rules are ``chalicelib.campaigns.service``'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib.api.http import Blueprint, Call, route
from chalicelib.core import deps, lazy
from chalicelib.core.auth import Role

if TYPE_CHECKING:
    from chalicelib.api import campaigns_views as views
    from chalicelib.campaigns import service
else:
    views = lazy.module("chalicelib.api.campaigns_views")
    service = lazy.module("chalicelib.campaigns.service")

bp = Blueprint(__name__)

WRITE_ROLES = frozenset({Role.ADMIN, Role.OPERATIONS})
READ_ROLES = frozenset({Role.ADMIN, Role.OPERATIONS, Role.AUDITOR})
PREFIX = "/v1/campaigns"
TAGS = ("campaigns",)


@route(
    bp,
    PREFIX,
    method="POST",
    summary="Define a backfill campaign: its waves are scheduled at once (a wave already past is missed)",
    roles=WRITE_ROLES,
    body=lambda: views.CampaignCreateBody,
    response=lambda: views.CampaignView,
    status=201,
    tags=TAGS,
)
def create_campaign(call: Call) -> dict[str, Any]:
    body: views.CampaignCreateBody = call.body
    return service.campaign_view(deps.campaigns().create(body.draft(), by=call.actor))


@route(
    bp,
    PREFIX,
    summary="The backfill campaigns, newest first (the call centre lists them to find a call list)",
    roles=READ_ROLES | {Role.CALL_CENTRE},
    response=lambda: views.CampaignList,
    query=lambda: views.CampaignListQuery,
    errors=(400,),
    tags=TAGS,
)
def list_campaigns(call: Call) -> dict[str, Any]:
    q: views.CampaignListQuery = call.query
    found, cursor = deps.campaigns().list(q.cursor, q.limit)
    return {"campaigns": [service.campaign_view(c) for c in found], "next_cursor": cursor}


@route(
    bp,
    PREFIX + "/targets/count",
    summary="The cards a campaign would message now: in service, not registered (by index shard)",
    roles=READ_ROLES,
    response=lambda: views.TargetCountView,
    tags=TAGS,
)
def count_targets(call: Call) -> dict[str, Any]:
    shards = deps.campaigns().target_count()
    return {"targets": sum(shards.values()), "shards": shards}


@route(
    bp,
    PREFIX + "/{campaign_id}",
    summary="A backfill campaign with its waves",
    roles=READ_ROLES,
    response=lambda: views.CampaignView,
    errors=(404,),
    tags=TAGS,
)
def get_campaign(call: Call, campaign_id: str) -> dict[str, Any]:
    return service.campaign_view(deps.campaigns().get(campaign_id))


@route(
    bp,
    PREFIX + "/{campaign_id}/pause",
    method="POST",
    summary="Pause the campaign: nothing more is planned or sent until it resumes (nothing is lost)",
    roles=WRITE_ROLES,
    response=lambda: views.CampaignView,
    errors=(404, 409),
    tags=TAGS,
)
def pause_campaign(call: Call, campaign_id: str) -> dict[str, Any]:
    return service.campaign_view(deps.campaigns().pause(campaign_id))


@route(
    bp,
    PREFIX + "/{campaign_id}/resume",
    method="POST",
    summary="Resume a paused campaign: a running wave continues where its planning stopped",
    roles=WRITE_ROLES,
    response=lambda: views.CampaignView,
    errors=(404, 409),
    tags=TAGS,
)
def resume_campaign(call: Call, campaign_id: str) -> dict[str, Any]:
    return service.campaign_view(deps.campaigns().resume(campaign_id))


@route(
    bp,
    PREFIX + "/{campaign_id}/stop",
    method="POST",
    summary="Stop the campaign for good: waves not started are cancelled, queued messages skipped",
    roles=WRITE_ROLES,
    response=lambda: views.CampaignView,
    errors=(404, 409),
    tags=TAGS,
)
def stop_campaign(call: Call, campaign_id: str) -> dict[str, Any]:
    return service.campaign_view(deps.campaigns().stop(campaign_id))


@route(
    bp,
    PREFIX + "/{campaign_id}/waves/{wave}/run",
    method="POST",
    summary="Start a wave now, off its schedule (a missed wave too)",
    roles=WRITE_ROLES,
    response=lambda: views.CampaignView,
    errors=(404, 409),
    tags=TAGS,
)
def run_wave(call: Call, campaign_id: str, wave: str) -> dict[str, Any]:
    from chalicelib.campaigns.errors import wave_not_found

    if not (wave.isascii() and wave.isdigit()) or len(wave) > 3:
        raise wave_not_found(campaign_id, -1)
    return service.campaign_view(deps.campaigns().run_wave(campaign_id, int(wave)))


@route(
    bp,
    PREFIX + "/{campaign_id}/progress",
    summary="Per wave: targeted, sent, skipped by reason, failed, called, registered since, deferred",
    roles=READ_ROLES,
    response=lambda: views.CampaignProgressView,
    errors=(404,),
    tags=TAGS,
)
def campaign_progress(call: Call, campaign_id: str) -> dict[str, Any]:
    return service.progress_view(deps.campaigns().progress(campaign_id))
