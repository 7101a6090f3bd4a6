"""Read models of the operators context: what the callback endpoint answers."""

from __future__ import annotations

from pydantic import BaseModel


class CallbackAck(BaseModel):
    received: bool
    callback_id: str
    note: str
    state: str | None
