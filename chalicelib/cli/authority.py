"""``cheka authority``: the local sandbox identity authority's citizens and faults."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

import click

from chalicelib.cli.output import print_json
from chalicelib.core.settings import get_settings


def register_citizen(name: str, id_number: str, portrait: bytes | None, phone: str | None = None) -> str:
    """Register a citizen (with the mobile number a carrier holds in their name, if given) with the
    sandbox authority of this stage; its URL (exits 2 when unreachable)."""
    from chalicelib.adapters.authority.sandbox import SandboxIdentityAuthority

    url = get_settings().authority_base_url
    try:
        SandboxIdentityAuthority(url).register_citizen(name, id_number, portrait, phone=phone)
    except (OSError, urllib.error.URLError) as err:
        click.echo(
            f"the sandbox identity authority at {url} did not take the identity ({err}): is `make run` "
            "running? (--no-register draws the card only; the authority will then refuse it)",
            err=True,
        )
        sys.exit(2)
    return url


@click.group()
def authority() -> None:
    """The local sandbox identity authority (synthetic citizens, fault injection)."""


@authority.command("register")
@click.option("--name", required=True)
@click.option("--id-number", required=True)
@click.option("--portrait", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--phone", help="The mobile number a carrier holds in the citizen's name (运营商三要素).")
def register(name: str, id_number: str, portrait: Path | None, phone: str | None) -> None:
    """Make NAME / ID-NUMBER (with a portrait photo and a phone) a citizen the sandbox authority knows."""
    url = register_citizen(name, id_number, portrait.read_bytes() if portrait else None, phone)
    print_json({"registered": True, "sandbox_authority": url})


@authority.command("faults")
@click.option("--latency", type=float, help="Seconds to wait before every answer.")
@click.option("--failure-rate", type=float, help="Share of requests answered 503.")
@click.option("--wrong-rate", type=float, help="Share of answers turned wrong.")
@click.option("--down/--up", default=None, help="Drop every connection unanswered (or stop doing so).")
def faults(
    latency: float | None, failure_rate: float | None, wrong_rate: float | None, down: bool | None
) -> None:
    """Show or change the sandbox authority's injected faults."""
    changes = {
        k: v
        for k, v in (
            ("latency_seconds", latency),
            ("failure_rate", failure_rate),
            ("wrong_rate", wrong_rate),
            ("down", down),
        )
        if v is not None
    }
    url = get_settings().authority_base_url + "/_sandbox/faults"
    request = urllib.request.Request(  # noqa: S310 - the configured http(s) sandbox URL
        url,
        data=json.dumps(changes).encode() if changes else None,
        headers={"Content-Type": "application/json"},
        method="POST" if changes else "GET",
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as resp:
        print_json(json.loads(resp.read()))
