"""Tables of the outbox and the card lifecycle (operator push)."""

from __future__ import annotations

from chalicelib.adapters.dynamo.base import TableSpec

OUTBOX_TABLES: tuple[TableSpec, ...] = ()
