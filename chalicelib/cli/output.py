"""The command line's one JSON printer: pydantic models, dicts and lists, Chinese as written, datetimes
as ISO 8601."""

from __future__ import annotations

import sys
from datetime import date, datetime, time
from enum import Enum
from json import dumps
from typing import NoReturn

import click
from pydantic import BaseModel

from chalicelib.kernel.errors import DomainError


def to_json(obj: object, *, indent: int | None = 2) -> str:
    """``obj`` as JSON text; ``indent=None`` gives one line (for JSON Lines)."""
    return dumps(obj, ensure_ascii=False, indent=indent, default=_plain)


def print_json(obj: object, *, indent: int | None = 2) -> None:
    click.echo(to_json(obj, indent=indent))


def fail(err: DomainError, exit_code: int = 2) -> NoReturn:
    """Print a refusal as ``{"error": {...}}`` on one line and exit."""
    print_json({"error": err.to_dict()}, indent=None)
    sys.exit(exit_code)


def _plain(value: object) -> object:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)
