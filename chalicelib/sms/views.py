"""Read models of the SMS context."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict


class DroppedSms(BaseModel):
    """One message as the developer reads it."""

    model_config = ConfigDict(frozen=True)

    message_id: str
    phone: str  # masked
    text: str
    sent_at: AwareDatetime
