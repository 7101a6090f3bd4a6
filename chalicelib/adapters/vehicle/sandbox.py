"""The embedded default's telematics: the head-unit drop, where the codes a car's head unit (车机) would
show are kept for the developer and the tests to read (``cheka vehicle head-unit VIN``).

Like the SMS drop, it is a prefix of the stage's documents bucket on the embedded AWS, so the API, the
CLI and the tests see the same codes; keys sort newest first within a VIN. Any VIN is accepted (a real
telematics platform knows only its own cars; the caller never learns which).
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime
from typing import Any

from chalicelib.core.observability import logger
from chalicelib.kernel.clock import utc_now
from chalicelib.kernel.personal import mask_vin
from chalicelib.registration.ports import HeadUnitMessage, VehicleChannel

#: Where the head-unit messages are kept in the bucket, one folder per VIN.
HEAD_UNIT_PREFIX = "dev/head-unit/"
_NS_CEILING = 10**20


class SandboxVehicleChannel(VehicleChannel):
    def __init__(self, s3: Any, bucket: str, *, prefix: str = HEAD_UNIT_PREFIX) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._prefix = prefix

    def show_code(self, vin: str, code: str, expires_at: datetime) -> None:
        message = HeadUnitMessage(
            message_id=uuid.uuid4().hex,
            vin=vin,
            code=code,
            text=f"【车联网卡实名登记】车辆验证码 {code}，请勿告知他人。",
            shown_at=utc_now(),
            expires_at=expires_at,
        )
        key = f"{self._prefix}{vin}/{_NS_CEILING - time.time_ns():020d}-{message.message_id}.json"
        self._s3.put_object(
            Bucket=self._bucket,
            Key=key,
            Body=message.model_dump_json().encode(),
            ContentType="application/json",
        )
        logger.info("head-unit code kept in the sandbox drop", extra={"vin": mask_vin(vin)})

    def recent(self, vin: str, limit: int = 5) -> list[HeadUnitMessage]:
        """The newest ``limit`` codes shown on ``vin``'s head unit, newest first."""
        listed = self._s3.list_objects_v2(Bucket=self._bucket, Prefix=f"{self._prefix}{vin}/", MaxKeys=limit)
        messages = []
        for entry in listed.get("Contents", []):
            body = self._s3.get_object(Bucket=self._bucket, Key=entry["Key"])["Body"].read()
            messages.append(HeadUnitMessage.model_validate(json.loads(body)))
        return messages
