"""A registration step's writes in one DynamoDB transaction (``registration.step_writes``).

The transaction puts the registration (on the version read) and the step's evidence entry (its seq
free), moves the evidence chain's head from what the entry was chained to, and, when the step has them,
uses the SMS code it proves (``adapters.sms.dynamo.use_in``: still current, unused, unburnt, unexpired)
and opens the new flow: its put (the id free) and the owner's turn of opens (``dynamo.opens``), so the
open is counted with the create, one open of the owner at a time. All land or none: a throttle, a
timeout or a refused condition leaves the store as it was and the code usable.

A cancellation is read by its reasons, one per item in the order sent (PynamoDB sends the puts, then the
updates): the head moved or the turn taken by another open is read again and the transaction tried
again; a refused code is ``CodeTaken`` (the step matches it again); a refused registration is
``registration.changed``; a flow of the new id ``flow.changed``. Reasons that name no item (a conflict
with a transaction in flight, a store that did not say) are tried again a few times, and a refusal that
names no item is taken as the code's (the step's re-read says which), else as the registration's.

Each transaction carries a ``ClientRequestToken`` (``dynamo.resend``): botocore's retry of one whose
reply was lost is answered as done by DynamoDB. A transaction cancelled by nothing but a conflict or a
throttle, or answered ``TransactionInProgressException`` (an earlier send of it still committing), is sent
again as it is, with the same token: DynamoDB then answers it as done if that send landed. Only a
refused condition (the head or the turn moved) prepares a new one, with a new entry and a new token; when
other writers moved them on every try, the step is answered ``evidence.append_contended`` (409), nothing
written.
Before any refusal is answered, every entry prepared so far is looked for in the chain: one found means
its transaction landed (late, or on a retry that met it in flight), and the step is done.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamo.evidence import (
    DynamoEvidenceLog,
    append_contended,
    move_head_in,
    put_entry_in,
    read_head,
)
from chalicelib.adapters.dynamo.flows import DynamoFlowRepository, flow_changed, held_by
from chalicelib.adapters.dynamo.models import EvidenceModel, FlowModel
from chalicelib.adapters.dynamo.once import new_token
from chalicelib.adapters.dynamo.opens import OwnerOpens
from chalicelib.adapters.dynamo.registrations import DynamoRegistrationRepository, changed
from chalicelib.adapters.dynamo.resend import cancelled, in_progress, landed
from chalicelib.adapters.sms.dynamo import use_in
from chalicelib.core.outbound import Unavailable
from chalicelib.kernel.crypto import FieldCipher
from chalicelib.registration.domain.registrations import Registration
from chalicelib.registration.step_writes import CodeTaken, StepWrite, StepWrites
from chalicelib.verification.domain.evidence import EvidenceEntry
from chalicelib.verification.domain.flows import too_many_open_flows

#: Transactions tried when the chain's head or the owner's turn moved, or a conflict named no item.
ATTEMPTS = 8
#: The longest pause before a transaction is tried again (jittered, doubling from 5 ms).
BACKOFF_CAP_SECONDS = 0.2
_CONDITION_FAILED = "ConditionalCheckFailed"
#: Reasons that are no refusal: another transaction on one of the items, an item's throttle.
_TRY_AGAIN = frozenset({"TransactionConflict", "ThrottlingError"})
#: The turn of flow opens, as ``DynamoFlowRepository.create_if_room`` takes it.
_FLOW_OPENS = OwnerOpens("flows")


class DynamoStepWrites(StepWrites):
    """Registrations, flows, the evidence log and SMS codes, as their own adapters store them."""

    def __init__(self, cipher: FieldCipher) -> None:
        self._registrations = DynamoRegistrationRepository(cipher)
        self._evidence = DynamoEvidenceLog(cipher)

    def commit(self, write: StepWrite) -> Registration:
        prepared: list[EvidenceEntry] = []  # every entry prepared so far: any of them may have landed
        pending: tuple[list[tuple[str, Callable[[TransactWrite], None]]], str] | None = None
        for attempt in range(ATTEMPTS):
            if pending is None:  # a new transaction: the head and the turn read again, a new token
                entry, items = self._transaction(write)
                prepared.append(entry)
                pending = (items, new_token())
            items, token = pending
            try:
                with TransactWrite(
                    connection=EvidenceModel._get_connection().connection, client_request_token=token
                ) as tx:
                    for _, add in items:
                        add(tx)
                return write.registration.registration
            except Unavailable as exc:
                if not in_progress(exc) or attempt + 1 == ATTEMPTS:
                    raise
                # an earlier send of this token is still committing: the same transaction, sent again
                # once it ended, is answered as done (it landed) or tried on its own (it did not)
            except TransactWriteError as exc:
                if landed(prepared) is not None:
                    return write.registration.registration  # a transaction of this step landed
                if not cancelled(exc):
                    raise
                reasons = [r.code if r is not None else None for r in exc.cancellation_reasons or []]
                if not set(reasons) - {None, "None"} <= _TRY_AGAIN | {_CONDITION_FAILED}:
                    raise
                refused = _refused([label for label, _ in items], reasons)
                if refused is not None:
                    raise refused from exc
                if attempt + 1 == ATTEMPTS:
                    if _CONDITION_FAILED in reasons:  # others kept moving the head, the seq or the turn
                        raise append_contended(write.note.flow_id) from exc
                    raise
                if _CONDITION_FAILED in reasons:
                    pending = None  # the head, the entry's seq or the turn moved: prepared again
                # else refused by nothing (a conflict, a throttle): the same transaction, the same token
            time.sleep(random.uniform(0, min(BACKOFF_CAP_SECONDS, 0.005 * 2**attempt)))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _transaction(
        self, write: StepWrite
    ) -> tuple[EvidenceEntry, list[tuple[str, Callable[[TransactWrite], None]]]]:
        """The step's entry, and its writes as (label, add to a transaction), in the order PynamoDB sends
        them (puts, then updates): the order of a cancellation's reasons. The chain's head and the
        owner's turn are read here, each time the transaction is tried."""
        note = write.note
        head = read_head(note.flow_id)
        entry, item = self._evidence.prepare(head, note.flow_id, note.kind, note.actor, note.public, None)
        puts: list[tuple[str, Callable[[TransactWrite], None]]] = []
        updates: list[tuple[str, Callable[[TransactWrite], None]]] = []
        if write.flow is not None:
            flow = write.flow.flow
            now = flow.created_at
            turn = _FLOW_OPENS.turn(flow.owner, flow.flow_id, write.flow.limit, now, held_by(flow.owner, now))
            if turn is None:
                raise too_many_open_flows(write.flow.limit)
            flow_item = DynamoFlowRepository.item_of(flow, None)  # a new flow: no identity to seal yet
            puts.append(("flow", lambda tx: tx.save(flow_item, condition=FlowModel.flow_id.does_not_exist())))
            updates.append(("turn", turn.take_in))
        puts.append(("registration", lambda tx: self._registrations.save_in(tx, write.registration)))
        puts.append(("entry", lambda tx: put_entry_in(tx, item)))
        if write.code is not None:
            matched = write.code
            updates.append(("code", lambda tx: use_in(tx, matched)))
        updates.append(("head", lambda tx: move_head_in(tx, head, entry)))
        return entry, puts + updates


def _refused(labels: list[str], reasons: list[str | None]) -> Exception | None:
    """What a cancelled transaction answers, from its reasons: None to try again (the head, the entry's
    seq or the turn moved; a conflict or a throttle on an item), else the refusal to raise."""
    if _CONDITION_FAILED not in reasons:
        return None
    if len(reasons) == len(labels):
        failed = {label for label, code in zip(labels, reasons, strict=True) if code == _CONDITION_FAILED}
        if "code" in failed:
            return CodeTaken()
        if "registration" in failed:
            return changed()
        if "flow" in failed:
            return flow_changed()
        return None
    # A refusal the reasons do not place: the code's when the step uses one (matched again, the re-read
    # says which), else the registration's.
    return CodeTaken() if "code" in labels else changed()
