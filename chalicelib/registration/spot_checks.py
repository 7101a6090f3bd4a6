"""抽查 (第十条): an operator's spot check becomes a case in the OEM's review queue; the reviewer reads the
registration's evidence and answers once; the answer goes back to the operator through the outbox.

- ``receive``: a verified ``SPOT_CHECK`` callback. The card must be ours and the message one of its
  pushes (else refused with its reason: ``spot_check.unknown_card``, ``…unknown_message``,
  ``…no_registration``); the card's history gets ``spot_check`` (the cards' answer use case) and a case
  opens with the registration the push belongs to, its flows, and a deadline (the operator's
  ``answer_by``, else ``answer_within`` after arrival). The same callback twice finds the same case.
- ``answer``: confirmed or discrepancy (with a note), once (``409 spot_check.already_answered``); after
  the deadline it is still sent, marked ``late``. The ``spot_check_answer`` outbox record is committed
  with the card's ``spot_check`` history entry in one transaction, then dispatched like every push.
- ``registration_of_card``: the registration (and its flows) a card's current push belongs to, for the
  OEM's card view and its auditors.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import timedelta

from pydantic import BaseModel

from chalicelib.cards.commit import Ledger, Moves
from chalicelib.cards.domain.inventory import Card
from chalicelib.cards.domain.lifecycle import LifecycleEvent, PushKind
from chalicelib.cards.views import CallbackResult
from chalicelib.core.metric_names import Metric
from chalicelib.core.observability import emit, logger
from chalicelib.kernel.errors import Conflict
from chalicelib.operators.domain.messages import OperatorCallback, SpotCheckAnswer
from chalicelib.operators.domain.outbox import OutboxCommit, OutboxRecord
from chalicelib.operators.domain.spot_check_codes import SpotCheckStatus, SpotCheckVerdict
from chalicelib.operators.domain.spot_checks import (
    SpotCheck,
    check_id_for,
    no_registration,
    spot_check_answered,
    spot_check_not_found,
    unknown_card,
    unknown_message,
)
from chalicelib.registration.domain.registrations import Registration
from chalicelib.registration.ports import RegistrationRepository

#: Attempts at writing the answer's history entry when the card moved meanwhile.
_ATTEMPTS = 3


class SpotCheckStore(ABC):
    @abstractmethod
    def open(self, check: SpotCheck) -> tuple[SpotCheck, bool]:
        """Create the case, or find the one already under its id; the flag says it was created."""

    @abstractmethod
    def get(self, check_id: str) -> SpotCheck | None: ...

    @abstractmethod
    def page(
        self, status: SpotCheckStatus, limit: int, cursor: str | None
    ) -> tuple[list[SpotCheck], str | None]:
        """Cases of ``status``, earliest deadline first, a page at a time (an index, never a scan)."""

    @abstractmethod
    def answer(self, answered: SpotCheck) -> SpotCheck:
        """Write the answer of an open case once; raises Conflict ``spot_check.already_answered``."""

    @abstractmethod
    def reopen(self, check_id: str, record_id: str) -> None:
        """Undo an answer whose outbox record could not be committed (only that answer's)."""


class RegistrationLink(BaseModel):
    """Which registration a card's current push belongs to, and the flows holding its evidence."""

    registration_id: str
    kind: str
    status: str
    flow_ids: list[str]


def flows_of(reg: Registration) -> list[str]:
    flows = [reg.flow_id] if reg.flow_id else []
    owner_flow = reg.delegation.owner_flow_id if reg.delegation else None
    if owner_flow and owner_flow not in flows:
        flows.append(owner_flow)
    return flows


def link_of(reg: Registration) -> RegistrationLink:
    return RegistrationLink(
        registration_id=reg.registration_id,
        kind=reg.kind.value,
        status=reg.status.value,
        flow_ids=flows_of(reg),
    )


class SpotChecks:
    def __init__(
        self,
        store: SpotCheckStore,
        registrations: RegistrationRepository,
        ledger: Ledger,
        apply: Callable[[OperatorCallback], CallbackResult],
        *,
        answer_within: timedelta = timedelta(days=5),
    ) -> None:
        """``apply`` is the cards' answer use case (it writes the ``spot_check`` history entry and
        remembers the callback id)."""
        self._store = store
        self._registrations = registrations
        self._ledger = ledger
        self._apply = apply
        self._answer_within = answer_within

    # -- the operator asks ----------------------------------------------------------------------------

    def receive(self, cb: OperatorCallback) -> CallbackResult:
        """A verified spot check: refused with its reason, or recorded and opened as a case (once)."""
        ledger = self._ledger
        card = ledger.inventory.get_card(cb.iccid)
        if card is None or card.operator is not cb.operator:
            raise unknown_card()
        reg = self._registrations.by_push(cb.message_id)
        if reg is None or cb.iccid not in reg.iccids:
            record = ledger.store.get(cb.message_id)
            if record is None or record.iccid != cb.iccid or record.operator is not cb.operator:
                raise unknown_message()
            # A push of the card that no registration sent (an admin's): the card's current registration.
            reg = self._current_registration(card.iccid)
        if reg is None:
            raise no_registration()
        result = self._apply(cb)
        now = ledger.clock()
        check, created = self._store.open(
            SpotCheck(
                check_id=check_id_for(cb.operator, cb.callback_id),
                callback_id=cb.callback_id,
                operator=cb.operator,
                iccid=cb.iccid,
                message_id=cb.message_id,
                registration_id=reg.registration_id,
                flow_ids=flows_of(reg),
                reason_code=cb.reason_code,
                reason_zh=cb.reason_zh,
                reason_en=cb.reason_en,
                received_at=now,
                due_at=cb.answer_by or now + self._answer_within,
            )
        )
        if created:
            emit(Metric.SPOT_CHECK_OPENED, operator=cb.operator.value)
            logger.info("spot check opened", extra={"check": check.check_id, "operator": cb.operator.value})
        return result

    def _current_registration(self, iccid: str) -> Registration | None:
        message_id = self._ledger.store.lifecycle(iccid).message_id
        return self._registrations.by_push(message_id) if message_id else None

    # -- the reviewer looks and answers ---------------------------------------------------------------

    def queue(
        self, status: SpotCheckStatus, limit: int, cursor: str | None
    ) -> tuple[list[SpotCheck], str | None]:
        return self._store.page(status, limit, cursor)

    def check(self, check_id: str) -> SpotCheck:
        found = self._store.get(check_id)
        if found is None:
            raise spot_check_not_found()
        return found

    def answer(self, check_id: str, reviewer: str, verdict: SpotCheckVerdict, note: str | None) -> SpotCheck:
        """Answer once; the answer is pushed to the operator (late if past the deadline)."""
        check = self.check(check_id)
        if check.status is not SpotCheckStatus.OPEN:
            raise spot_check_answered(check)
        ledger = self._ledger
        now = ledger.clock()
        late = now > check.due_at
        card = ledger.card(check.iccid)
        record = ledger.record(
            PushKind.SPOT_CHECK_ANSWER,
            card,
            ledger.vehicle(card.vin),
            now,
            holder=None,
            previous_holder_id_hash=None,
        )
        answer = SpotCheckAnswer(
            check_ref=check.callback_id,
            verdict=verdict,
            note=note,
            late=late,
            due_at=check.due_at,
            answered_at=now,
        )
        message = record.message.model_copy(update={"spot_check": answer, "functions": card.functions})
        record = record.model_copy(update={"message": message})
        answered = self._store.answer(
            check.model_copy(
                update={
                    "status": SpotCheckStatus.ANSWERED,
                    "answered_at": now,
                    "answered_by": reviewer,
                    "verdict": verdict,
                    "note": note,
                    "late": late,
                    "answer_record_id": record.record_id,
                }
            )
        )
        try:
            self._commit(card, reviewer, answered, record)
        except Exception:
            self._store.reopen(check.check_id, record.record_id)
            raise
        emit(Metric.SPOT_CHECK_ANSWERED, verdict=verdict.value, late=str(late).lower())
        if late:
            emit(Metric.SPOT_CHECK_OVERDUE, operator=check.operator.value)
        return answered

    def _commit(self, card: Card, reviewer: str, answered: SpotCheck, record: OutboxRecord) -> None:
        verdict = answered.verdict.value if answered.verdict else "-"
        reason = f"抽查已答复 / spot check answered: {verdict}{' (late)' if answered.late else ''}"
        for attempt in range(_ATTEMPTS):
            moves = Moves(card, reviewer, self._ledger.clock())
            moves.step(LifecycleEvent.SPOT_CHECK, card.state, reason)
            write = moves.write(card.holder_id, None, functions=card.functions)
            try:
                self._ledger.commit(OutboxCommit(cards=(write,), records=(record,)))
                return
            except Conflict as err:
                if err.code != "card.changed" or attempt + 1 == _ATTEMPTS:
                    raise
                card = self._ledger.card(card.iccid)

    def report_overdue(self, page_size: int = 100) -> int:
        """Open cases past their deadline (hourly, with the reconciliation): counted from the open
        queue's deadline order, so only the overdue ones and one more are read; emitted as a gauge
        (``SpotChecksOverdueOpen``, alarmed): the operator waits for an answer."""
        now = self._ledger.clock()
        overdue, cursor = 0, None
        while True:
            cases, cursor = self._store.page(SpotCheckStatus.OPEN, page_size, cursor)
            late = [c for c in cases if c.due_at < now]
            overdue += len(late)
            if len(late) < len(cases) or cursor is None:
                break
        emit(Metric.SPOT_CHECKS_OVERDUE_OPEN, overdue)
        if overdue:
            logger.warning("spot checks overdue", extra={"overdue": overdue})
        return overdue

    # -- the card's view ------------------------------------------------------------------------------

    def registration_of_card(self, iccid: str) -> RegistrationLink | None:
        """The registration the card's current push belongs to (None when it never had one)."""
        reg = self._current_registration(iccid)
        return None if reg is None else link_of(reg)
