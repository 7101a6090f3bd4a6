"""The models of the card lifecycle's routes (``chalicelib.api.lifecycle``): a transfer's correction or
opening, a part replacement, the outbox's page query. Loaded on their first use: a cold start builds
none of them."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field

from chalicelib.api.http import Refusal
from chalicelib.api.models import ApiModel
from chalicelib.kernel.paging import MAX_PAGE


class TransferBody(ApiModel):
    """A correction by the OEM: the new holder, a party whose identity was verified (an enterprise names
    its responsible person), and why (kept in the card's history and the log). A buyer's own transfer
    is the H5 flow (``/v1/me/registrations/{id}/transfer``), which verifies the buyer."""

    model_config = ConfigDict(extra="forbid")

    holder_id: str = Field(min_length=1, max_length=64)
    responsible_id: str | None = Field(default=None, min_length=1, max_length=64)
    reason: str = Field(
        min_length=1, max_length=200, pattern=r"\S", description="Why the OEM corrects the holder"
    )


class TransferOpenBody(ApiModel):
    """过户 at a dealer's request: the buyer's phone (the buyer then shows possession with it) and the
    dealer's code."""

    model_config = ConfigDict(extra="forbid")

    buyer_phone: str = Field(min_length=1, max_length=20, description="The buyer's mainland mobile number")
    dealer_code: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")


class SwapBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    old_iccid: str = Field(min_length=1, max_length=32)
    new_iccid: str = Field(min_length=1, max_length=32)


class OutboxQuery(ApiModel):
    status: str | None = Field(default=None, description="pending | sent | dead")
    limit: Annotated[
        int,
        Field(description=f"1-{MAX_PAGE} (default 50)"),
        Refusal("outbox.limit", f"每页 1–{MAX_PAGE} 条", f"limit must be 1-{MAX_PAGE}"),
    ] = 50
    cursor: str | None = Field(default=None, description="from the previous page")
