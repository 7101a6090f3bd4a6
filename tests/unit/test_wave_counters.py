"""A wave's counters on the local stack: ``called`` on an item of its own (written only by the
transaction of an entry's first outcome), so that such a transaction in flight never holds the ``stats``
item the sender, planner and attribution add to with plain updates; ``progress`` adds both (and a
``called`` an older wave holds on ``stats``). A plain count refused all the same for a transaction in
flight (``TransactionConflictException``, which botocore does not retry) is tried again and lands once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.adapters.dynamo import campaign_sends
from chalicelib.adapters.dynamo.campaign_reach import DynamoCallList
from chalicelib.adapters.dynamo.campaign_sends import (
    CALLS_PART,
    COUNT_ATTEMPTS,
    STATS_PART,
    DynamoSendLedger,
    campaign_wave_key,
)
from chalicelib.adapters.dynamo.models_campaigns import CampaignWaveModel
from chalicelib.campaigns.domain import CallEntry, CallOutcome, CallReason, SkipReason
from chalicelib.core.outbound import Unavailable, retryable_error

CAMPAIGN = "cmp-counters"
T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


def entry(iccid: str, wave: int = 1) -> CallEntry:
    return CallEntry(
        campaign_id=CAMPAIGN,
        wave=wave,
        iccid=iccid,
        vin=f"LSVAU2180N{iccid[-7:]}",
        reason=CallReason.NO_PHONE,
        created_at=T0,
        contact_phone_sealed=None,
    )


def first_outcome(calls: DynamoCallList, iccid: str, wave: int = 1) -> bool:
    listed = entry(iccid, wave)
    assert calls.add(listed)
    _, first = calls.record_outcome(listed, CallOutcome.REACHED, "caller-1", T0, None)
    return first


class RefusedUpdates:
    """The next ``refusals`` UpdateItem calls of the waves table answered as DynamoDB answers a plain
    write to an item a transaction in flight holds: refused, nothing written."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, refusals: int) -> None:
        self.client = CampaignWaveModel._get_connection().connection.client
        self.real = self.client._make_api_call
        self.refusals = refusals
        self.updates = 0
        monkeypatch.setattr(self.client, "_make_api_call", self._call)

    def _call(self, operation: str, kwargs: dict[str, Any]) -> Any:
        if operation == "UpdateItem":
            self.updates += 1
            if self.refusals > 0:
                self.refusals -= 1
                raise ClientError(
                    {
                        "Error": {
                            "Code": "TransactionConflictException",
                            "Message": "Transaction is ongoing for the item",
                        },
                        "ResponseMetadata": {"HTTPStatusCode": 400},
                    },
                    operation,
                )
        return self.real(operation, kwargs)


def test_a_first_outcome_counts_called_on_the_calls_item_and_never_writes_the_stats_item(aws: None) -> None:
    calls = DynamoCallList()
    assert first_outcome(calls, "89860000000000000101") is True
    key = campaign_wave_key(CAMPAIGN, 1)
    assert int(CampaignWaveModel.get(key, CALLS_PART, consistent_read=True).called) == 1
    with pytest.raises(CampaignWaveModel.DoesNotExist):
        CampaignWaveModel.get(key, STATS_PART, consistent_read=True)
    assert DynamoSendLedger().progress(CAMPAIGN, 1).called == 1


def test_progress_adds_the_calls_items_called_to_a_called_an_older_wave_holds_on_its_stats(aws: None) -> None:
    ledger, calls = DynamoSendLedger(), DynamoCallList()
    # A wave counted before ``called`` had its own item: 2 calls on ``stats``, beside its other counters
    ledger.count(CAMPAIGN, 1, targeted=9, sent=5, failed=1, called=2, skipped_opted_out=3)
    for n in range(3):
        assert first_outcome(calls, f"8986000000000000020{n}") is True
    # A later outcome of an entry already called counts nowhere
    listed = entry("89860000000000000200")
    assert calls.record_outcome(listed, CallOutcome.NO_ANSWER, "caller-2", T0, None)[1] is False
    progress = ledger.progress(CAMPAIGN, 1)
    assert (progress.targeted, progress.sent, progress.failed, progress.called) == (9, 5, 1, 5)
    assert progress.skipped == {SkipReason.OPTED_OUT.value: 3}
    # Another wave of the campaign shares neither item
    assert first_outcome(calls, "89860000000000000300", wave=2) is True
    assert ledger.progress(CAMPAIGN, 2).called == 1
    assert ledger.progress(CAMPAIGN, 1).called == 5


def test_progress_of_a_wave_with_no_counters_yet_is_all_zeros(aws: None) -> None:
    progress = DynamoSendLedger().progress(CAMPAIGN, 3)
    assert (progress.targeted, progress.sent, progress.failed, progress.called) == (0, 0, 0, 0)
    assert progress.skipped == {}


def test_a_count_refused_for_a_transaction_in_flight_is_tried_again_and_counted_once(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = DynamoSendLedger()
    ledger.count(CAMPAIGN, 1, sent=4)
    refused = RefusedUpdates(monkeypatch, refusals=1)
    ledger.count(CAMPAIGN, 1, sent=3, failed=2)
    assert refused.updates == 2  # the refused attempt, then the one that landed
    progress = ledger.progress(CAMPAIGN, 1)
    assert (progress.sent, progress.failed) == (7, 2)


def test_a_count_refused_on_every_attempt_is_a_retryable_503_and_counts_nothing(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(campaign_sends, "COUNT_PAUSE_SECONDS", 0.0)
    ledger = DynamoSendLedger()
    refused = RefusedUpdates(monkeypatch, refusals=COUNT_ATTEMPTS)
    with pytest.raises(Unavailable) as caught:
        ledger.count(CAMPAIGN, 1, targeted=50)
    assert refused.updates == COUNT_ATTEMPTS
    error = retryable_error(caught.value)
    assert error is not None
    assert (error.status, error.code) == (503, "store.unavailable")
    assert ledger.progress(CAMPAIGN, 1).targeted == 0
