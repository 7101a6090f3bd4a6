"""``cheka vehicle VIN``: a vehicle and its cards; ``cheka vehicle head-unit VIN``: the codes the sandbox
telematics showed on its head unit (local stages)."""

from __future__ import annotations

import sys

import click

from chalicelib.cli.output import fail, print_json


class _VehicleGroup(click.Group):
    """``cheka vehicle VIN`` shows the vehicle: a first word that is no subcommand is a VIN."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "show", self.commands["show"], args
        return super().resolve_command(ctx, args)


@click.group(cls=_VehicleGroup)
def vehicle() -> None:
    """A vehicle and its cards (cheka vehicle VIN), and its head unit on local stages."""


@vehicle.command("show", hidden=True)
@click.argument("vin")
def show(vin: str) -> None:
    """Show a vehicle and its cards (personal data masked)."""
    from chalicelib.cards.views import vehicle_view
    from chalicelib.core import deps
    from chalicelib.core.auth import Principal, Role
    from chalicelib.kernel.errors import DomainError
    from chalicelib.kernel.validators import validate as check

    operator = Principal(subject="cli", roles=frozenset({Role.ADMIN}), token_id="cli")
    try:
        view = vehicle_view(check("vin", vin).value, deps.inventory_repo(), deps.party_repo(), operator)
    except DomainError as err:
        fail(err)
    print_json(view)


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
        fail(err)
    messages = deps.vehicle_channel().recent(number, limit)
    if not messages:
        click.echo("no code has been shown on this vehicle's head unit", err=True)
        sys.exit(1)
    for message in messages:
        print_json(message, indent=None)
