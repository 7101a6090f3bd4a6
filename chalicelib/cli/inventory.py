"""``cheka inventory in-service FILE``: import the OEM's in-service feed (the backfill targets)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from chalicelib.cli.output import fail, print_json


@click.group()
def inventory() -> None:
    """The inventory's feeds (the vehicles and cards themselves: cheka import-inventory)."""


@inventory.command("in-service")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "json"]), help="Default: from the file's extension."
)
@click.option("--max-errors", default=50, show_default=True, help="Row errors to print (all are counted).")
def in_service(file: Path, fmt: str | None, max_errors: int) -> None:
    """Import the in-service feed (CSV or JSON: iccid or vin, in_service_since, contact_phone,
    dealer_code); prints the report as JSON, exits 1 when some rows were refused."""
    from chalicelib.campaigns.in_service import parse_in_service
    from chalicelib.core import deps
    from chalicelib.kernel.errors import DomainError

    chosen = fmt or ("json" if file.suffix.lower() == ".json" else "csv")
    try:
        rows = parse_in_service(file.read_bytes(), "json" if chosen == "json" else "csv", max_rows=10_000_000)
        report = deps.in_service_import().run(rows, actor="cli")
    except DomainError as err:
        fail(err)
    doc = report.model_dump(mode="json")
    doc["errors"] = doc["errors"][:max_errors]
    print_json(doc)
    sys.exit(1 if report.errors else 0)
