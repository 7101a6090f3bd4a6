"""Registrations attributed to campaign messages (补登记 progress: "registered since the message").

When a card becomes registered (the operator accepted it), the newest message a campaign sent it within
that campaign's attribution window is marked registered, once, and its wave's ``registered`` counter
grows by one. Best effort: the registration never waits for it or fails because of it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from chalicelib.campaigns.domain import SendStatus
from chalicelib.campaigns.ports import SendLedger
from chalicelib.cards.domain.inventory import CardState
from chalicelib.cards.views import CallbackResult
from chalicelib.core.metric_names import Metric
from chalicelib.core.observability import emit, logger
from chalicelib.operators.domain.outbox import CallbackNote


def attribute_registration(
    ledger: SendLedger, iccid: str, at: datetime, window_days_of: Callable[[str], int | None]
) -> bool:
    """Mark the newest message sent to the card within its campaign's window (``window_days_of``: the
    campaign's attribution days, None for an unknown campaign) as having led to the registration at
    ``at``. False when no message qualifies, or the registration was attributed already."""
    windows: dict[str, int | None] = {}
    candidates = []
    for record in ledger.records_of(iccid):
        if record.status is not SendStatus.SENT or record.at > at:
            continue
        if record.campaign_id not in windows:
            windows[record.campaign_id] = window_days_of(record.campaign_id)
        days = windows[record.campaign_id]
        if days is not None and at - record.at <= timedelta(days=days):
            candidates.append(record)
    if not candidates:
        return False
    newest = max(candidates, key=lambda r: r.at)
    if newest.registered_at is not None or not ledger.mark_registered(newest, at):
        return False
    ledger.count(newest.campaign_id, newest.wave, registered=1)
    emit(Metric.CAMPAIGN_REGISTRATIONS_ATTRIBUTED, campaign=newest.campaign_id)
    return True


def after_callback(
    result: CallbackResult,
    ledger: Callable[[], SendLedger],
    window_days_of: Callable[[str], int | None],
    clock: Callable[[], datetime],
) -> None:
    """The hook run after an operator's answer is applied: a card it registered is attributed. A failure
    is logged, never raised (the answer is applied already)."""
    if result.note is not CallbackNote.APPLIED or result.state is not CardState.REGISTERED:
        return
    try:
        attribute_registration(ledger(), result.iccid, clock(), window_days_of)
    except Exception:
        logger.exception("campaign attribution failed", extra={"message_id": result.message_id})
