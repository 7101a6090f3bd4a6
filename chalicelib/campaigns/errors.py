"""The refusals of backfill campaigns, with their stable codes (shared by the service and the stores)."""

from __future__ import annotations

from chalicelib.kernel.errors import Conflict, InvalidField, NotFound


def campaign_not_found(campaign_id: str) -> NotFound:
    return NotFound(
        "campaign.not_found",
        "补登记活动不存在",
        "No such backfill campaign",
        details={"campaign_id": campaign_id},
    )


def campaign_changed(campaign_id: str) -> Conflict:
    return Conflict(
        "campaign.changed",
        "补登记活动已被他人修改，请刷新后重试",
        "The campaign was changed meanwhile; reload and retry",
        details={"campaign_id": campaign_id},
    )


def campaign_exists(campaign_id: str) -> Conflict:
    return Conflict(
        "campaign.exists",
        "补登记活动已存在",
        "The campaign exists already",
        details={"campaign_id": campaign_id},
    )


def wave_not_found(campaign_id: str, wave: int) -> NotFound:
    return NotFound(
        "campaign.wave_not_found",
        "该轮次不存在",
        "No such wave in this campaign",
        details={"campaign_id": campaign_id, "wave": wave},
    )


def invalid(field: str, code: str, zh: str, en: str) -> InvalidField:
    return InvalidField(f"campaign.{code}", zh, en, field=field)
