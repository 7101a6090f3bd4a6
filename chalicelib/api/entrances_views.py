"""The models of the owner's entrances (``chalicelib.api.entrances``): help, the platform's texts, the VIN
scan's photo. Loaded on their first use: a cold start builds none of them."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from chalicelib.api.entrances import MAX_SCAN_BYTES
from chalicelib.api.models import ApiModel
from chalicelib.consents.account_models import AccountText


class HelpView(ApiModel):
    oem_name: str
    service_phone: str = Field(description="客服电话")
    service_hours: str = Field(description="客服时间")
    enterprise_portal_url: str = Field(
        description="单位用户业务: the enterprise portal — the stage's own (served beside the H5 client, "
        "given relative to it) unless the stage names another address"
    )
    review_expected_zh: str = Field(description="How long a manual review takes, as the owner is told")


class AccountTextsView(ApiModel):
    documents: list[AccountText]


class VinScanBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    image: str = Field(
        min_length=1,
        max_length=(MAX_SCAN_BYTES * 4) // 3 + 4,
        description="The photo (JPEG/PNG/BMP), base64: a 行驶证 or the VIN plate",
    )
