"""``cheka``: the operators' command line; it talks to the stage's store directly (moto locally)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from chalicelib.cli.output import fail, print_json
from chalicelib.core import deps
from chalicelib.core.settings import get_settings
from chalicelib.kernel.errors import DomainError


class _Cheka(click.Group):
    """The top-level group: finds the running local stack, and says every error in one line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except Exception as exc:
            if ctx.meta.get("cheka.debug"):
                raise
            if isinstance(exc, DomainError):
                fail(exc)
            from chalicelib.cli.errors import EXIT_UNREACHABLE, describe

            line, code = describe(exc)
            if code == EXIT_UNREACHABLE and ctx.meta.get("cheka.gone"):
                line += f" ({ctx.meta['cheka.gone']})"
            click.echo(line, err=True)
            sys.exit(code)


def _find_local_stack(ctx: click.Context) -> None:
    """With no endpoint configured on the local stage, take the settings of the stack `make run` runs."""
    from chalicelib.local.state import adopt, find_stack, gone_stack

    settings = get_settings()
    stack = find_stack(settings)
    if stack is not None and adopt(stack, os.environ):
        deps.reset()
    elif stack is None and (gone := gone_stack(settings)) is not None:
        ctx.meta["cheka.gone"] = f"the stack {gone.path} records, started {gone.started}, is gone"


@click.group(cls=_Cheka)
@click.option("--debug", is_flag=True, help="Show the traceback of an unexpected error.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """cheka — 车联网卡实名登记平台 (vehicle IoT card real-name registration).

    Against the local stack `make run` started, nothing needs exporting: it is found through
    .local/stack.json. Other stages: CHEKA_STAGE, CHEKA_AWS_ENDPOINT_URL (or AWS credentials)."""
    ctx.meta["cheka.debug"] = debug
    _find_local_stack(ctx)


@main.command()
def bootstrap() -> None:
    """Create the stage's tables, keys and bucket on the configured endpoint (idempotent)."""
    from chalicelib.local.bootstrap import create_resources

    print_json(create_resources(get_settings()))


@main.command()
@click.option("--vehicles", default=50, show_default=True, help="Demo vehicles to import.")
def seed(vehicles: int) -> None:
    """Create resources if missing and import the demo inventory (re-running changes nothing)."""
    from chalicelib.local.bootstrap import create_resources
    from chalicelib.local.seed import DEMO_OWNER_PHONE
    from chalicelib.local.seed import seed as run_seed

    create_resources(get_settings())
    result = run_seed(
        deps.inventory_repo(),
        deps.party_repo(),
        deps.lifecycle(),
        deps.keyed_hasher(),
        vehicles=vehicles,
        in_service=deps.in_service_import(),
    )
    print_json(
        {
            "report": result.report.model_dump(mode="json", exclude={"errors"}),
            "registered_vins": result.registered_vins,
            "first_vin": result.first_vin,
            "open_vins": result.open_vins,
            "backfill_vins": result.backfill_vins,
            "demo_owner_phone": DEMO_OWNER_PHONE,
        }
    )


@main.command("import-inventory")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "json"]), help="Default: from the file's extension."
)
@click.option("--max-errors", default=50, show_default=True, help="Row errors to print (all are counted).")
def import_inventory(file: Path, fmt: str | None, max_errors: int) -> None:
    """Import vehicles and cards from a CSV or JSON file; prints the report as JSON."""
    from chalicelib.cards.inventory import import_inventory as run_import
    from chalicelib.cards.inventory import parse_inventory

    chosen = fmt or ("json" if file.suffix.lower() == ".json" else "csv")
    try:
        rows = parse_inventory(file.read_bytes(), "json" if chosen == "json" else "csv", max_rows=10_000_000)
        report = run_import(
            rows, deps.inventory_repo(), actor="cli", phone_hash=deps.sms_code_service().phone_hash
        )
    except DomainError as err:
        fail(err)
    doc = report.model_dump(mode="json")
    doc["errors"] = doc["errors"][:max_errors]
    print_json(doc)
    sys.exit(1 if report.errors else 0)


@main.command()
@click.argument("kind")
@click.argument("value")
def validate(kind: str, value: str) -> None:
    """Validate VALUE as KIND (resident_id, uscc, vin, iccid, mobile, msisdn, passport, ...)."""
    from chalicelib.kernel.validators import validate as check

    try:
        result = check(kind, value)
    except DomainError as err:
        print_json(
            {
                "valid": False,
                "code": err.code,
                "message_zh": err.message_zh,
                "message_en": err.message_en,
                "operator": None,
            }
        )
        sys.exit(1)
    print_json({"valid": True, "code": None, **result.model_dump(mode="json")})


@main.group()
def token() -> None:
    """Bearer tokens (local development and operations)."""


@token.command("issue")
@click.option("--subject", required=True)
@click.option("--role", "roles", multiple=True, required=True, help="Repeatable.")
@click.option("--ttl", default=None, type=int, help="Seconds (default from settings).")
def issue(subject: str, roles: tuple[str, ...], ttl: int | None) -> None:
    """Print a signed token for SUBJECT with ROLEs (local stages only: a deployed stage's staff sign in
    at its identity provider, and its API refuses our own tokens carrying staff roles)."""
    from chalicelib.core.auth import Role, issue_token

    settings = get_settings()
    if not settings.is_local:
        raise click.UsageError(
            f"tokens are minted only for the local stages; staff of the {settings.stage} stage sign in "
            "at its identity provider (README: Staff sign-in)"
        )
    try:
        parsed = [Role(r) for r in roles]
    except ValueError as exc:
        raise click.BadParameter(
            f"roles are {', '.join(r.value for r in Role)}", param_hint="--role"
        ) from exc
    click.echo(issue_token(settings, subject, parsed, ttl_seconds=ttl))


@main.command("demo-csv")
@click.option("--vehicles", default=1000, show_default=True)
@click.option("--seed", "rng_seed", default=1, show_default=True, help="Same seed, same file.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def demo_csv(vehicles: int, rng_seed: int, out: Path) -> None:
    """Write a synthetic inventory CSV (valid VINs, ICCIDs and MSISDNs) to try the import with."""
    from chalicelib.local.synthetic import inventory_csv

    out.write_text(inventory_csv(vehicles, seed=rng_seed), encoding="utf-8")
    click.echo(f"wrote {vehicles} vehicles to {out}")


@main.command("demo-id-card")
@click.option(
    "--portrait",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="A photo of your face: it becomes the card's portrait, so the live check can match you.",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option(
    "--no-register",
    is_flag=True,
    help="Do not register the invented identity with the sandbox identity authority (it is then refused).",
)
@click.option(
    "--phone",
    help="A mobile number to register as held in the invented identity's name (the phone-holder check "
    "of a delegated owner's phone then passes).",
)
def demo_id_card(portrait: Path, out: Path, no_register: bool, phone: str | None) -> None:
    """Draw an ID card for a newly invented identity (front with your portrait, back) and register that
    identity, with your portrait, with the local sandbox identity authority."""
    from chalicelib.local import documents
    from chalicelib.local.identities import invent_identity

    if documents.cjk_font_path() is None:
        click.echo(documents.NO_FONT, err=True)
        sys.exit(2)
    person = invent_identity()
    out.mkdir(parents=True, exist_ok=True)
    front = documents.id_front(
        name=person.name,
        sex=person.sex,
        birth_date=person.birth_date,
        address=person.address,
        id_number=person.id_number,
        portrait=portrait,
        fmt="JPEG",
        scale=1.5,
    )
    (out / "id_front.jpg").write_bytes(front)
    (out / "id_back.jpg").write_bytes(documents.id_back(fmt="JPEG"))
    registered: str | bool = False
    if not no_register:
        from chalicelib.cli.authority import register_citizen

        registered = register_citizen(person.name, person.id_number, portrait.read_bytes(), phone)
    print_json(
        {
            "files": [str(out / "id_front.jpg"), str(out / "id_back.jpg")],
            "type in": {
                "id_type": "resident_id",
                "id_number": person.id_number,
                "name": person.name,
                "address": person.address,
            },
            "sandbox_authority": registered,
        }
    )


@main.command("demo-letter")
@click.option("--owner-name", required=True, help="委托人: the owner who authorizes.")
@click.option("--owner-id", "owner_id", required=True, help="The owner's resident ID number.")
@click.option("--trustee-name", required=True, help="受托人: the person who registers for the owner.")
@click.option("--trustee-id", "trustee_id", required=True, help="The trustee's resident ID number.")
@click.option("--vin", required=True, help="车辆识别代号 of the car the letter is for.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def demo_letter(
    owner_name: str, owner_id: str, trustee_name: str, trustee_id: str, vin: str, out: Path
) -> None:
    """Draw an authorization letter (授权委托书) for a delegated registration (委托登记) to try locally.

    Draw the owner's and your own ID card with ``demo-id-card`` first (each registers its invented
    identity with the sandbox authority), then the letter naming both and the car."""
    from chalicelib.kernel.validators import validate as check
    from chalicelib.local import documents

    if documents.cjk_font_path() is None:
        click.echo(documents.NO_FONT, err=True)
        sys.exit(2)
    try:
        number = check("resident_id", owner_id, field="owner_id").value
        trustee_number = check("resident_id", trustee_id, field="trustee_id").value
        car = check("vin", vin, field="vin").value
    except DomainError as err:
        fail(err)
    out.write_bytes(
        documents.authorization_letter(
            owner_name=owner_name,
            owner_id_number=number,
            trustee_name=trustee_name,
            trustee_id_number=trustee_number,
            vin=car,
            fmt="JPEG",
        )
    )
    print_json({"file": str(out), "owner_name": owner_name, "trustee_name": trustee_name, "vin": car})


def _register_subcommands() -> None:
    from chalicelib.cli.authority import authority
    from chalicelib.cli.campaigns import campaign
    from chalicelib.cli.cards import card, operator, outbox
    from chalicelib.cli.faces import faces
    from chalicelib.cli.inventory import inventory
    from chalicelib.cli.ocr import ocr
    from chalicelib.cli.sms import sms
    from chalicelib.cli.staff import staff
    from chalicelib.cli.vehicle import vehicle

    for group in (faces, ocr, card, outbox, operator, sms, vehicle, authority, staff, inventory, campaign):
        main.add_command(group)


_register_subcommands()


if __name__ == "__main__":
    main()
