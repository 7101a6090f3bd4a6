"""SMS through Amazon SNS (direct publish to a phone number, transactional)."""

from __future__ import annotations

from typing import Any

from chalicelib.sms.domain import send_failed
from chalicelib.sms.ports import SmsSender


class SnsSmsSender(SmsSender):
    """``sns.publish(PhoneNumber="+86…")`` with ``SMSType=Transactional`` (codes are time-critical).

    ``sns`` is a boto3 SNS client in a region that delivers SMS (the China regions do not).
    """

    def __init__(self, sns: Any, *, sender_id: str | None = None) -> None:
        self._sns = sns
        self._attributes: dict[str, dict[str, str]] = {
            "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"},
        }
        if sender_id:
            self._attributes["AWS.SNS.SMS.SenderID"] = {"DataType": "String", "StringValue": sender_id}

    def send(self, phone: str, text: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            resp = self._sns.publish(
                PhoneNumber=f"+86{phone}", Message=text, MessageAttributes=self._attributes
            )
        except (ClientError, BotoCoreError) as exc:
            # The provider's error names no number; the caller retries after the resend interval.
            raise send_failed() from exc
        return str(resp["MessageId"])
