"""``cheka vehicle``: the sandbox telematics on local stages (the codes a car's head unit would show)."""

from __future__ import annotations

import sys

import click

from chalicelib.cli.output import print_json


@click.group()
def vehicle() -> None:
    """The car's telematics (车联网平台) on local stages."""


@vehicle.command("head-unit")
@click.argument("vin")
@click.option("--limit", default=1, show_default=True, type=click.IntRange(1, 20))
def head_unit(vin: str, limit: int) -> None:
    """The newest one-time codes shown on VIN's head unit (车机验证码), newest first, one JSON a line."""
    from chalicelib.core import deps
    from chalicelib.core.settings import get_settings
    from chalicelib.kernel.errors import DomainError
    from chalicelib.kernel.validators import validate

    settings = get_settings()
    if not settings.is_local:
        click.echo(f"the {settings.stage} stage has no sandbox telematics", err=True)
        sys.exit(2)
    try:
        number = validate("vin", vin, field="vin").value
    except DomainError as err:
        click.echo(f"{err.code}: {err.message_en}", err=True)
        sys.exit(2)
    messages = deps.vehicle_channel().recent(number, limit)
    if not messages:
        click.echo("no code has been shown on this vehicle's head unit", err=True)
        sys.exit(1)
    for message in messages:
        print_json(message, indent=None)
