"""The JSON messages of the campaign queues, built and read in one place.

``campaign-waves``: ``{"kind": "start_wave", "campaign_id", "wave"}`` (a wave's schedule fires, or an
admin runs it) and ``{"kind": "plan_shard", "campaign_id", "wave", "shard"}`` (one per shard of the
backfill index). ``campaign-sends``: ``{"campaign_id", "wave", "targets": [{"iccid", "vin",
"phone_hash", "phone"}]}``, the phone sealed (or null: no phone).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.campaigns.domain import Target
from chalicelib.kernel.errors import BadRequest

START_WAVE = "start_wave"
PLAN_SHARD = "plan_shard"


@dataclass(frozen=True)
class WaveMessage:
    kind: str  # START_WAVE | PLAN_SHARD
    campaign_id: str
    wave: int
    shard: str | None = None


@dataclass(frozen=True)
class QueuedTarget:
    """A target as the plan queued it (the sender reads the card again before messaging it)."""

    iccid: str
    vin: str
    phone_hash: str | None
    phone: str | None  # sealed


@dataclass(frozen=True)
class SendBatch:
    campaign_id: str
    wave: int
    targets: tuple[QueuedTarget, ...]


def start_wave_message(campaign_id: str, wave: int) -> dict[str, Any]:
    return {"kind": START_WAVE, "campaign_id": campaign_id, "wave": wave}


def plan_shard_message(campaign_id: str, wave: int, shard: str) -> dict[str, Any]:
    return {"kind": PLAN_SHARD, "campaign_id": campaign_id, "wave": wave, "shard": shard}


def send_batch_message(campaign_id: str, wave: int, targets: Sequence[Target]) -> dict[str, Any]:
    return {
        "campaign_id": campaign_id,
        "wave": wave,
        "targets": [
            {
                "iccid": t.iccid,
                "vin": t.vin,
                "phone_hash": t.contact_phone_hash,
                "phone": t.contact_phone_sealed,
            }
            for t in targets
        ],
    }


def _bad(what: str) -> BadRequest:
    return BadRequest("campaign.bad_message", "补登记队列消息格式错误", f"Malformed campaign message: {what}")


def read_wave_message(body: Mapping[str, Any]) -> WaveMessage:
    try:
        kind = str(body["kind"])
        if kind not in (START_WAVE, PLAN_SHARD):
            raise _bad(f"kind {kind!r}")
        shard = str(body["shard"]) if kind == PLAN_SHARD else None
        return WaveMessage(
            kind=kind, campaign_id=str(body["campaign_id"]), wave=int(body["wave"]), shard=shard
        )
    except (KeyError, TypeError, ValueError) as err:
        raise _bad(type(err).__name__) from err


def read_send_batch(body: Mapping[str, Any]) -> SendBatch:
    try:
        targets = tuple(
            QueuedTarget(
                iccid=str(t["iccid"]),
                vin=str(t["vin"]),
                phone_hash=t.get("phone_hash"),
                phone=t.get("phone"),
            )
            for t in body["targets"]
        )
        return SendBatch(campaign_id=str(body["campaign_id"]), wave=int(body["wave"]), targets=targets)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise _bad(type(err).__name__) from err
