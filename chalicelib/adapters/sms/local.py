"""The embedded default's SMS: the SMS drop, where messages are kept for the developer to read instead
of being sent.

The drop is a prefix of the stage's documents bucket on the embedded AWS (moto server), so the API
(chalice local), the CLI and the worker, which are separate processes, all see the same messages.
Keys sort newest first (a reversed nanosecond clock), so the newest messages are one list call away.
Only the masked number is kept; the text is kept in clear so that the developer can type the code.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from chalicelib.core.observability import logger
from chalicelib.kernel.clock import utc_now
from chalicelib.kernel.personal import mask_phone
from chalicelib.sms.ports import SmsSender
from chalicelib.sms.views import DroppedSms

#: Where the messages are kept in the bucket.
SMS_DROP_PREFIX = "dev/sms-drop/"
_NS_CEILING = 10**20  # above any time.time_ns() for the next three thousand years


class LocalSmsDrop(SmsSender):
    """Keeps each message as a JSON object under ``SMS_DROP_PREFIX``; ``recent`` reads them back."""

    def __init__(self, s3: Any, bucket: str, *, prefix: str = SMS_DROP_PREFIX) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._prefix = prefix

    def send(self, phone: str, text: str) -> str:
        message_id = uuid.uuid4().hex
        message = DroppedSms(message_id=message_id, phone=mask_phone(phone), text=text, sent_at=utc_now())
        key = f"{self._prefix}{_NS_CEILING - time.time_ns():020d}-{message_id}.json"
        self._s3.put_object(
            Bucket=self._bucket,
            Key=key,
            Body=message.model_dump_json().encode(),
            ContentType="application/json",
        )
        # The text holds the code: it is in the drop, never in the log.
        logger.info("SMS kept in the local SMS drop", extra={"message_id": message_id, "to": message.phone})
        return message_id

    def recent(self, limit: int = 20) -> list[DroppedSms]:
        """The newest ``limit`` messages, newest first."""
        listed = self._s3.list_objects_v2(Bucket=self._bucket, Prefix=self._prefix, MaxKeys=limit)
        messages = []
        for entry in listed.get("Contents", []):
            body = self._s3.get_object(Bucket=self._bucket, Key=entry["Key"])["Body"].read()
            messages.append(DroppedSms.model_validate(json.loads(body)))
        return messages
