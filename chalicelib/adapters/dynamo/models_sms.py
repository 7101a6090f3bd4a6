"""Tables of SMS verification codes and their sends."""

from __future__ import annotations

from chalicelib.adapters.dynamo.base import TableSpec

SMS_TABLES: tuple[TableSpec, ...] = ()
