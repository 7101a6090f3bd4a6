"""What every table model shares: the unbound base (names and endpoint set by ``models.bind``) and
``TableSpec``, how a model becomes a table in the local bootstrap and in infra."""

from __future__ import annotations

from dataclasses import dataclass

from pynamodb.models import Model


class Unbound(Model):
    class Meta:
        table_name = "unbound"
        billing_mode = "PAY_PER_REQUEST"


@dataclass(frozen=True)
class TableSpec:
    """How a model becomes a table: its short name and TTL attribute (if any)."""

    short_name: str
    model: type[Model]
    ttl_attribute: str | None = None
