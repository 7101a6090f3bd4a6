"""Tables of the operator integration (callbacks received)."""

from __future__ import annotations

from chalicelib.adapters.dynamo.base import TableSpec

OPERATOR_TABLES: tuple[TableSpec, ...] = ()
