"""``cheka sms``: read the local SMS drop (the codes the embedded default did not really send)."""

from __future__ import annotations

import sys

import click

from chalicelib.cli.output import print_json


@click.group()
def sms() -> None:
    """SMS verification codes (短信验证码) on local stages."""


@sms.command()
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 100))
def drop(limit: int) -> None:
    """The newest messages of the local SMS drop, newest first, one JSON object a line (phones masked)."""
    from chalicelib.core import deps
    from chalicelib.core.settings import get_settings

    settings = get_settings()
    if not settings.is_local:
        click.echo(f"the {settings.stage} stage sends SMS through SNS: it has no SMS drop", err=True)
        sys.exit(2)
    for message in deps.sms_drop().recent(limit):
        print_json(message, indent=None)
