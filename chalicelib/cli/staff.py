"""``cheka staff``: the demo staff of the local stack's identity provider (``make run``).

``make run`` invents one staff member per staff role with a new password and TOTP secret at each start
and records them in its state file; ``cheka staff users`` lists them and ``cheka staff totp <user>``
prints the current TOTP code, for a developer without an authenticator app at hand.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from chalicelib.cli.output import print_json


def _staff() -> tuple[str, list[dict[str, Any]]]:
    """The running local stack's provider and staff; exits saying why when there is none."""
    from chalicelib.core.settings import get_settings
    from chalicelib.local.state import read_state, state_path

    settings = get_settings()
    path = state_path(settings)
    stack = read_state(path) if path is not None else None
    if stack is None or not stack.alive():
        click.echo(
            "no local stack is running (`make run` starts one; its staff are recorded in "
            f"{path or 'its state file'})",
            err=True,
        )
        sys.exit(2)
    if not stack.staff:
        click.echo(f"the stack recorded in {stack.path} has no staff identity provider", err=True)
        sys.exit(2)
    return stack.oidc, stack.staff


@click.group()
def staff() -> None:
    """Staff sign-in on the local stack (员工登录: password + TOTP code)."""


@staff.command("users")
def users() -> None:
    """The demo staff: user name, roles, password and TOTP secret (one JSON object a line)."""
    issuer, members = _staff()
    for member in members:
        print_json(
            {
                "username": member.get("username"),
                "groups": member.get("groups", []),
                "password": member.get("password"),
                "totp_secret": member.get("totp_secret"),
                "issuer": issuer,
            },
            indent=None,
        )


@staff.command("totp")
@click.argument("username")
def totp(username: str) -> None:
    """Print USERNAME's current TOTP code (valid for the rest of its 30 s, and once)."""
    from chalicelib.local.staff_users import TOTP_STEP_SECONDS, totp_now

    _, members = _staff()
    member = next((m for m in members if m.get("username") == username), None)
    if member is None:
        names = ", ".join(str(m.get("username")) for m in members)
        click.echo(f"no staff member {username!r} (the local stack has: {names})", err=True)
        sys.exit(2)
    now = time.time()
    left = TOTP_STEP_SECONDS - int(now) % TOTP_STEP_SECONDS
    click.echo(totp_now(str(member["totp_secret"]), at=now))
    click.echo(f"(valid for {left} s more)", err=True)
