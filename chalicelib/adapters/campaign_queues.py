"""The campaign queues on SQS (``campaign-waves``, ``campaign-sends``): JSON messages sent ten to a
request, and a received message put back for later by changing its visibility."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from chalicelib.campaigns.ports import CampaignQueue

#: SQS's longest per-message delay and longest visibility timeout.
MAX_DELAY_SECONDS = 900
MAX_VISIBILITY_SECONDS = 12 * 3600
#: Messages per ``SendMessageBatch`` request (SQS's limit).
BATCH = 10


class SqsCampaignQueue(CampaignQueue):
    def __init__(self, sqs: Any, name: str):
        self._sqs = sqs
        self._name = name
        self._url: str | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def url(self) -> str:
        if self._url is None:
            self._url = str(self._sqs.get_queue_url(QueueName=self._name)["QueueUrl"])
        return self._url

    def send(self, body: Mapping[str, Any], delay_seconds: int = 0) -> None:
        delay = max(0, min(MAX_DELAY_SECONDS, int(delay_seconds)))
        self._sqs.send_message(QueueUrl=self.url, MessageBody=_json(body), DelaySeconds=delay)

    def send_batch(self, bodies: Sequence[Mapping[str, Any]]) -> None:
        for start in range(0, len(bodies), BATCH):
            entries = [
                {"Id": str(i), "MessageBody": _json(body)}
                for i, body in enumerate(bodies[start : start + BATCH])
            ]
            answer = self._sqs.send_message_batch(QueueUrl=self.url, Entries=entries)
            failed = answer.get("Failed") or []
            if failed:  # sent again by the caller's retry (the ledger makes a repeated target harmless)
                codes = sorted({str(f.get("Code")) for f in failed})
                raise RuntimeError(f"{len(failed)} campaign messages refused by {self._name}: {codes}")

    def defer(self, receipt_handle: str, seconds: int) -> None:
        # (SQS counts the 12 hours from the receive: a little is kept back for the time since)
        timeout = max(0, min(MAX_VISIBILITY_SECONDS - 600, int(seconds)))
        self._sqs.change_message_visibility(
            QueueUrl=self.url, ReceiptHandle=receipt_handle, VisibilityTimeout=timeout
        )


def _json(body: Mapping[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))
