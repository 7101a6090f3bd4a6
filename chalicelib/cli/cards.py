"""``cheka card``, ``cheka outbox``, ``cheka operator``: the card lifecycle and the operator push outbox
from the command line (the stage's store directly; moto locally). Every command prints JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from pydantic import ValidationError

from chalicelib.cli.output import fail, print_json
from chalicelib.kernel.clock import utc_now
from chalicelib.kernel.errors import BadRequest, DomainError
from chalicelib.kernel.operators import Operator
from chalicelib.operators.domain.messages import OperatorCardRecord
from chalicelib.operators.domain.outbox import LISTABLE_STATUSES
from chalicelib.operators.ports import OperatorDirectory, OutboxStore, PushQueue

if TYPE_CHECKING:
    from chalicelib.cards.lifecycle import Lifecycle


_ACTOR = "cli"


def _lifecycle() -> Lifecycle:
    from chalicelib.core import deps

    return deps.lifecycle()


def _store() -> OutboxStore:
    from chalicelib.core import deps

    return deps.outbox_store()


def _queue() -> PushQueue:
    from chalicelib.core import deps

    return deps.push_queue()


def _valid(kind: str, value: str, field: str) -> str:
    from chalicelib.kernel.validators import validate

    return validate(kind, value, field=field).value


@click.group()
def card() -> None:
    """Card lifecycle (过户 transfer, 报废 scrap, 更换零部件 swap) and a card's full status."""


@card.command("show")
@click.argument("iccid")
def card_show(iccid: str) -> None:
    """A card in words: its state, holder (masked), current push, transfer, retirement, the operator's
    last refusal and its history with who did what, in China time."""
    from chalicelib.cli.card_view import card_words
    from chalicelib.core import deps

    try:
        status = _lifecycle().status(_valid("iccid", iccid, "iccid"))
    except DomainError as err:
        fail(err)
    message_id = status.lifecycle.message_id
    push = _store().get(message_id) if message_id else None
    print_json(card_words(status, deps.party_repo(), push))


@card.command("transfer")
@click.argument("iccid")
@click.option("--holder", "holder_id", required=True, help="Party id of the new holder (verified).")
@click.option("--responsible", "responsible_id", default=None, help="Enterprise: its responsible person.")
@click.option("--reason", required=True, help="Why the OEM corrects the holder (kept in the card's history).")
def card_transfer(iccid: str, holder_id: str, responsible_id: str | None, reason: str) -> None:
    """Correct a registered card's holder (a buyer's transfer is the H5 flow); effective when the
    operator accepts."""
    from chalicelib.cards.holders import holder_from_party
    from chalicelib.core import deps
    from chalicelib.kernel.errors import InvalidField, NotFound

    try:
        if not reason.strip():
            raise InvalidField(
                "transfer.reason_required",
                "请填写更正原因",
                "Give the reason for the correction",
                field="reason",
            )
        parties = deps.party_repo()
        party = parties.get(holder_id)
        responsible = parties.get(responsible_id) if responsible_id else None
        if party is None or (responsible_id and responsible is None):
            raise NotFound("party.not_found", "未找到该登记人", "No party with this id", field="holder_id")
        holder = holder_from_party(party, deps.keyed_hasher(), responsible)
        outcome = _lifecycle().transfer(
            _valid("iccid", iccid, "iccid"), holder, _ACTOR, f"OEM correction: {reason.strip()}"
        )
    except DomainError as err:
        fail(err)
    print_json(outcome)


@card.command("scrap")
@click.argument("vin")
def card_scrap(vin: str) -> None:
    """Scrap a vehicle: every card de-registered (pushed) and retired. Running it again is harmless."""
    try:
        result = _lifecycle().scrap(_valid("vin", vin, "vin"), _ACTOR)
    except DomainError as err:
        fail(err)
    print_json(result)


@card.command("swap")
@click.argument("vin")
@click.option("--old", "old_iccid", required=True, help="ICCID of the card taken out.")
@click.option("--new", "new_iccid", required=True, help="ICCID of the card fitted (in the inventory).")
def card_swap(vin: str, old_iccid: str, new_iccid: str) -> None:
    """Replace the part holding a card: the old card de-registered and retired, the new one fitted."""
    try:
        result = _lifecycle().swap(
            _valid("vin", vin, "vin"),
            _valid("iccid", old_iccid, "old_iccid"),
            _valid("iccid", new_iccid, "new_iccid"),
            _ACTOR,
        )
    except DomainError as err:
        fail(err)
    print_json(result)


@click.group()
def outbox() -> None:
    """The operator push outbox: what is pending, sent or dead; retry a dead push."""


@outbox.command("status")
@click.option(
    "--status",
    "status",
    type=click.Choice([s.value for s in LISTABLE_STATUSES]),
    default=None,
    help="List the records of this status (default: counts only).",
)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100))
@click.option("--cursor", default=None, help="From the previous page.")
@click.option(
    "--scan/--no-scan",
    default=None,
    help="Count accepted and refused pushes by scanning the outbox table (default: on local stages only).",
)
def outbox_status(status: str | None, limit: int, cursor: str | None, scan: bool | None) -> None:
    """Per kind of push: queued, sent, waiting for the operator, accepted, refused, dead (and what was
    read to count them); with --status, a page of the pending, sent or dead records."""
    from chalicelib.cli.tally import outbox_tally
    from chalicelib.core.settings import get_settings
    from chalicelib.operators.dispatch import list_records

    settings = get_settings()
    store = _store()
    doc: dict[str, Any] = outbox_tally(
        store, scan=settings.is_local if scan is None else scan, stage=settings.stage
    )
    if status:
        try:
            doc["page"] = list_records(store, status, limit, cursor)
        except DomainError as err:
            fail(err)
    print_json(doc)


@outbox.command("retry")
@click.argument("record_id", required=False)
@click.option("--dead", "all_dead", is_flag=True, help="Retry every dead record (after the cause was fixed).")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 100_000))
def outbox_retry(record_id: str | None, all_dead: bool, limit: int) -> None:
    """Push a dead record (or, with --dead, every dead record) again with a fresh attempt budget."""
    from chalicelib.operators.dispatch import retry_dead, retry_record

    if all_dead == (record_id is not None):
        raise click.UsageError("give either a RECORD_ID or --dead")
    if all_dead:
        print_json(retry_dead(_store(), _queue(), limit=limit))
        return
    assert record_id is not None
    try:
        summary = retry_record(_store(), _queue(), record_id)
    except DomainError as err:
        fail(err)
    print_json(summary)


@outbox.command("reconcile")
def outbox_reconcile() -> None:
    """Ask the operators about pushes whose answer never came (as the hourly schedule does)."""
    from chalicelib.events.reconcile import reconcile_pushes

    print_json(reconcile_pushes())


class ListingFile(OperatorDirectory):
    """An operator's card listing exported to a JSON Lines file (one ``OperatorCardRecord`` a line; the
    operator and ``updated_at`` may be left out), read a page at a time."""

    def __init__(self, path: Path, page_size: int = 1000):
        self._path = path
        self._page_size = page_size
        self._read_at = utc_now()

    def listing(self, operator: Operator, cursor: str | None) -> tuple[list[OperatorCardRecord], str | None]:
        start = int(cursor or 0)
        page: list[OperatorCardRecord] = []
        with self._path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines):
                if number < start or not line.strip():
                    continue
                if len(page) == self._page_size:
                    return page, str(number)
                try:
                    doc = {"operator": operator.value, "updated_at": self._read_at, **json.loads(line)}
                    page.append(OperatorCardRecord.model_validate(doc))
                except (ValueError, ValidationError) as exc:
                    raise BadRequest(
                        "listing.line",
                        f"对账文件第 {number + 1} 行格式错误",
                        f"Line {number + 1} of the listing is not a card record",
                        field="listing",
                    ) from exc
        return page, None


@click.group()
def operator() -> None:
    """Telecom operators (电信企业): reconcile what they and the platform believe."""


@operator.command("reconcile")
@click.option("--operator", "name", required=True, type=click.Choice([o.value for o in Operator]))
@click.option(
    "--listing",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A card listing file the operator delivered, JSON Lines: iccid, state (registered|deregistered), "
    "holder_id_hash, functions. Without it the operator's listing interface is asked (locally: the "
    "sandbox operator).",
)
@click.option("--max-drifts", default=1000, show_default=True, help="Drifts to print (all are counted).")
def operator_reconcile(name: str, listing: Path | None, max_drifts: int) -> None:
    """Compare the operator's listing with the platform's cards; prints every drift per card."""
    from chalicelib.core import deps

    directory: OperatorDirectory = ListingFile(listing) if listing else deps.operator_gateway()
    try:
        report = _lifecycle().reconcile(Operator(name), directory, max_drifts=max_drifts)
    except DomainError as err:
        fail(err)
    print_json(report)
    sys.exit(1 if report.drift_count else 0)
