"""What every table model shares: the unbound base (names and endpoint set by ``models.bind``) and
``TableSpec``, how a model becomes a table in the local bootstrap and in infra."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from pynamodb.expressions.condition import Condition
from pynamodb.models import Model

M = TypeVar("M", bound=Model)


def utc_aware(at: datetime) -> datetime:
    """``at`` as read back from a table: a naive datetime is UTC."""
    return at if at.tzinfo else at.replace(tzinfo=UTC)


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


def scan_upto(model: type[M], condition: Condition, limit: int) -> list[M]:
    """Up to ``limit`` items matching ``condition``, scanned a page of 100 at a time (housekeeping only:
    the tables scanned are kept small by TTL)."""
    found: list[M] = []
    for item in model.scan(condition, page_size=100):
        found.append(item)
        if len(found) >= limit:
            break
    return found
