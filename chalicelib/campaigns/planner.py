"""A wave's plan, one shard of the backfill index at a time (补登记): the targets read page by page from
the sparse index (never a Scan: the cost grows with the targets, not with the cards), queued ten to a
message for the senders, the shard's cursor saved after each page.

A planner bounds its own time: past its budget it saves its cursor and asks for its message to be sent
again, so a shard of any size is planned by a chain of short runs. A paused campaign stops the plan where
it is (its resume queues the unfinished shards again), a stopped one ends it. A page queued twice (a run
killed between queueing and saving its cursor) is harmless: the send ledger handles each card once per
wave. When the last shard is done the wave is ``planned``.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from chalicelib.campaigns.domain import Campaign, CampaignStatus
from chalicelib.campaigns.messages import send_batch_message
from chalicelib.campaigns.ports import BackfillTargets, CampaignQueue, CampaignStore, SendLedger
from chalicelib.cards.domain.inventory import BACKFILL_SHARD_NAMES
from chalicelib.core.metric_names import Metric
from chalicelib.core.observability import emit, logger


class PlanOutcome(StrEnum):
    DONE = "done"  # the shard is planned
    CONTINUE = "continue"  # out of time: the cursor is saved, the message must be sent again
    PAUSED = "paused"  # the campaign is paused: the cursor is saved; its resume queues the shard again
    STOPPED = "stopped"  # the campaign is stopped (or gone): nothing more to plan
    SUPERSEDED = "superseded"  # a later wave started: this one's remaining targets are left to it
    ALREADY = "already"  # the shard was planned before (a message delivered twice)


class WavePlanner:
    def __init__(
        self,
        *,
        targets: BackfillTargets,
        campaigns: CampaignStore,
        ledger: SendLedger,
        sends: CampaignQueue,
        on_planned: Callable[[str, int], object],
        timer: Callable[[], float],
        targets_per_message: int = 10,
        page_size: int = 500,
        budget_seconds: float = 20.0,
    ):
        self._targets = targets
        self._campaigns = campaigns
        self._ledger = ledger
        self._sends = sends
        self._on_planned = on_planned
        self._timer = timer
        self._per_message = targets_per_message
        self._page_size = page_size
        self._budget = budget_seconds

    def plan_shard(self, campaign_id: str, wave: int, shard: str) -> PlanOutcome:
        """Queue the shard's targets from its saved cursor until it is done, the campaign is paused or
        stopped, or the budget is spent."""
        started = self._timer()
        cursor, done = self._ledger.plan_cursor(campaign_id, wave, shard)
        if done:
            return PlanOutcome.ALREADY
        while True:
            campaign = self._campaigns.get(campaign_id)
            halted = _halted(campaign, wave)
            if halted is not None:
                logger.info(
                    "campaign plan halted",
                    extra={"campaign_id": campaign_id, "wave": wave, "shard": shard, "outcome": halted.value},
                )
                return halted
            page, following = self._targets.page(shard, cursor, self._page_size)
            bodies = [
                send_batch_message(campaign_id, wave, page[i : i + self._per_message])
                for i in range(0, len(page), self._per_message)
            ]
            if bodies:
                self._sends.send_batch(bodies)
            if not self._ledger.advance_plan_cursor(
                campaign_id, wave, shard, cursor, following, following is None
            ):
                # Another planner of this shard moved on first (a plan message delivered twice, a resume
                # while this one ran): it counts the pages; what this one queued is sent once by the ledger.
                logger.info(
                    "campaign plan left to another planner",
                    extra={"campaign_id": campaign_id, "wave": wave, "shard": shard},
                )
                return PlanOutcome.ALREADY
            cursor = following
            if page:
                self._ledger.count(campaign_id, wave, targeted=len(page))
                emit(Metric.CAMPAIGN_TARGETS_PLANNED, len(page), campaign=campaign_id)
            if cursor is None:
                self._finish_wave_if_planned(campaign_id, wave)
                return PlanOutcome.DONE
            if self._timer() - started >= self._budget:
                return PlanOutcome.CONTINUE

    def _finish_wave_if_planned(self, campaign_id: str, wave: int) -> None:
        """When every shard of the wave is done, the wave is planned (``on_planned``: the campaigns
        service's ``mark_planned``, which also completes the campaign after its last wave)."""
        for shard in BACKFILL_SHARD_NAMES:
            if not self._ledger.plan_cursor(campaign_id, wave, shard)[1]:
                return
        self._on_planned(campaign_id, wave)
        logger.info("campaign wave planned", extra={"campaign_id": campaign_id, "wave": wave})


def _halted(campaign: Campaign | None, wave: int) -> PlanOutcome | None:
    if campaign is None or campaign.status is CampaignStatus.STOPPED:
        return PlanOutcome.STOPPED
    if campaign.status is CampaignStatus.PAUSED:
        return PlanOutcome.PAUSED
    if campaign.current_wave > wave:
        return PlanOutcome.SUPERSEDED
    return None
