"""The model of the card look-up by MSISDN (``chalicelib.api.inventory``). Loaded on its first use: a
cold start does not build it."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from chalicelib.api.http import Refusal
from chalicelib.api.models import ReasonQuery


class CardQuery(ReasonQuery):
    msisdn: Annotated[
        str,
        Field(description="the card's 13-digit IoT number"),
        Refusal("msisdn.required", "请提供车联网卡号码", "Give ?msisdn=", status=400),
    ]
