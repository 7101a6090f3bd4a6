"""An approved fleet batch carried out: its cards registered (or de-registered) chunk by chunk through the
outbox, and the enterprise told of every outcome.

- ``prepare_cards``: the batch goes ``approved``; the answer names its chunks of
  ``CHUNK_VEHICLES`` vehicles (the workflow maps over them, four at a time).
- ``apply_chunk``: a registration registers every card of the chunk's vehicles to the enterprise under
  its responsible person (第九条(二)): the enterprise and the responsible person stored as parties (their
  personal data sealed like every party's), then each vehicle's cards pushed in one transaction with
  their outbox records (``Lifecycle.submit_registrations``: per vehicle, far below DynamoDB's 100 items
  of a transaction). A de-registration ends each card still registered to the enterprise
  (``Lifecycle.deregister``). **Idempotent**: SQS delivers at least once and the Map may retry, so a card
  already pending or registered to this batch's enterprise party (or whose de-registration is already
  pushed) counts as done and is never pushed twice. A card that moved meanwhile (``card.changed``) makes
  the chunk fail as a plain error, so SQS delivers it again and the next run sees the card as it is.
- ``notify``: the batch's final or waiting status on the portal (``approved`` → ``completed``: the batches
  then record its vehicles as the enterprise's), an SMS to the submitter's bound phone, an evidence entry
  in the batch flow's chain and a metric per outcome; a notice delivered again sends no second SMS.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from chalicelib.cards.domain.inventory import Card, CardState
from chalicelib.cards.domain.lifecycle import CardLifecycle, PushKind
from chalicelib.cards.holders import Holder, holder_from_party
from chalicelib.cards.ports import InventoryRepository, PartyRepository
from chalicelib.cards.registering import check_registrable
from chalicelib.cards.views import CardOutcome
from chalicelib.core.metric_names import Metric
from chalicelib.core.observability import emit, logger
from chalicelib.enterprise.domain import Enterprise
from chalicelib.fleet.checks import batch_not_found
from chalicelib.fleet.domain import BatchKind, BatchStatus, FleetBatch, chunk_count, chunk_of
from chalicelib.fleet.notices import (
    APPROVED,
    EXPIRED,
    OUTCOMES,
    REJECTED,
    RESUBMISSION_REQUESTED,
    notice_text,
)
from chalicelib.kernel.crypto import KeyedHasher
from chalicelib.kernel.errors import Conflict, DomainError, InvalidField
from chalicelib.kernel.personal import IdType, Party, PartyKind, id_lookup_value
from chalicelib.sms.ports import SmsSender
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import Flow

#: The batch status each notified outcome leaves, and the statuses it may come from (the status the
#: decision or the automatic checks already set counts as done).
TARGETS: dict[str, tuple[BatchStatus, frozenset[BatchStatus]]] = {
    APPROVED: (BatchStatus.COMPLETED, frozenset({BatchStatus.APPROVED})),
    REJECTED: (BatchStatus.REJECTED, frozenset({BatchStatus.SUBMITTED, BatchStatus.IN_REVIEW})),
    RESUBMISSION_REQUESTED: (
        BatchStatus.RESUBMISSION_REQUESTED,
        frozenset({BatchStatus.SUBMITTED, BatchStatus.IN_REVIEW}),
    ),
    EXPIRED: (BatchStatus.EXPIRED, frozenset({BatchStatus.RESUBMISSION_REQUESTED})),
}


class ChunkInterrupted(RuntimeError):
    """A card of the chunk moved while it was pushed: the chunk is delivered again (not a DomainError,
    so the task is retried rather than failed)."""


class TaskLike(Protocol):
    """What these tasks read of a message (``chalicelib.fleet.tasks.TaskMessage``)."""

    @property
    def batch_id(self) -> str: ...

    @property
    def chunk(self) -> int | None: ...

    @property
    def outcome(self) -> str | None: ...


class BatchWrites(Protocol):
    """What the tasks need of the batches (``FleetBatches``)."""

    def get(self, batch_id: str) -> FleetBatch | None: ...

    def set_status(
        self,
        batch_id: str,
        status: BatchStatus,
        *,
        reasons: Sequence[str] = (),
        resubmit_documents: Sequence[Any] = (),
        expected: set[BatchStatus],
    ) -> FleetBatch: ...

    def record_progress(self, batch_id: str, cards_pushed_delta: int) -> Any: ...


class CardActions(Protocol):
    """The lifecycle use cases a batch runs (``chalicelib.cards.lifecycle.Lifecycle``)."""

    def submit_registrations(
        self, iccids: Sequence[str], holder: Holder, actor: str
    ) -> list[CardOutcome]: ...

    def deregister(self, iccid: str, actor: str, reason: str) -> CardOutcome: ...


class Bookkeeping(Protocol):
    def lifecycles(self, iccids: Sequence[str]) -> dict[str, CardLifecycle]: ...


@dataclass(frozen=True)
class ChunkResult:
    """One chunk carried out: its cards done (pushed now or before), those pushed now, those left alone
    (registered to someone else meanwhile, retired)."""

    done: int
    pushed: int
    skipped: int


def enterprise_party_id(batch_id: str) -> str:
    """The enterprise's party of a batch: one per batch, so a card held by it was pushed by this batch."""
    return f"fe-{batch_id}"


def responsible_party_id(batch_id: str) -> str:
    return f"fr-{batch_id}"


def enterprise_id_hash(hasher: KeyedHasher, uscc: str) -> str:
    """The keyed hash an enterprise's cards carry as their holder's (``holder_from_party``)."""
    return hasher.digest(id_lookup_value(IdType.USCC, uscc))


def responsible_missing() -> Conflict:
    return Conflict(
        "fleet.responsible_missing",
        "批次缺少责任人信息，无法登记",
        "The batch has no responsible person's identity: its cards cannot be registered",
    )


class FleetApply:
    """The approved batch's cards, and the enterprise's notices; dependencies passed in (ports)."""

    def __init__(
        self,
        *,
        batches: BatchWrites,
        find_flow: Callable[[str], Flow | None],
        enterprise_of: Callable[[str], Enterprise | None],
        parties: PartyRepository,
        lifecycle: CardActions,
        inventory: InventoryRepository,
        bookkeeping: Bookkeeping,
        hasher: KeyedHasher,
        sms: SmsSender | None,
        phone_of: Callable[[str], str | None],
        note: Callable[[str, EvidenceKind, str, dict[str, Any]], None],
        notices_sent: Callable[[str], Sequence[Mapping[str, Any]]] | None = None,
    ) -> None:
        self._batches = batches
        self._find_flow = find_flow
        self._enterprise_of = enterprise_of
        self._parties = parties
        self._lifecycle = lifecycle
        self._inventory = inventory
        self._bookkeeping = bookkeeping
        self._hasher = hasher
        self._sms = sms
        self._phone_of = phone_of
        self._note = note
        #: The notices already recorded in a flow's evidence (their public details): a redelivered
        #: ``notify`` sends no second SMS.
        self._notices_sent = notices_sent

    def _batch(self, batch_id: str) -> FleetBatch:
        batch = self._batches.get(batch_id)
        if batch is None:
            raise batch_not_found(batch_id)
        return batch

    # -- prepare -------------------------------------------------------------------------------------

    def prepare_cards(self, message: TaskLike) -> dict[str, Any]:
        """The ``prepare_cards`` task: the batch ``approved`` (its cards were counted at submit); its chunk
        indexes."""
        batch = self._batch(message.batch_id)
        if batch.status not in (BatchStatus.APPROVED, BatchStatus.COMPLETED):
            try:
                batch = self._batches.set_status(
                    batch.batch_id,
                    BatchStatus.APPROVED,
                    reasons=batch.outcome_reasons,
                    expected={BatchStatus.IN_REVIEW, BatchStatus.SUBMITTED},
                )
            except Conflict:
                # The reviewer's decision, which started this task, wrote ``approved`` meanwhile.
                batch = self._batch(message.batch_id)
                if batch.status not in (BatchStatus.APPROVED, BatchStatus.COMPLETED):
                    raise
        logger.info("fleet batch approved", extra={"batch": batch.batch_id, "cards": batch.cards_total})
        return {"chunks": list(range(chunk_count(len(batch.vins))))}

    # -- apply ---------------------------------------------------------------------------------------

    def apply_chunk(self, message: TaskLike) -> dict[str, Any]:
        """The ``apply_chunk`` task: chunk ``message.chunk`` of the approved batch carried out."""
        batch = self._batch(message.batch_id)
        index = message.chunk
        if index is None or not 0 <= index < chunk_count(len(batch.vins)):
            raise InvalidField("fleet.chunk", "批次分片无效", "No such chunk of the batch", field="chunk")
        if batch.status not in (BatchStatus.APPROVED, BatchStatus.COMPLETED):
            raise Conflict(
                "fleet.batch_not_approved",
                "批次尚未审核通过",
                "The batch is not approved",
                details={"status": batch.status.value},
            )
        vins = chunk_of(batch.vins, index)
        if batch.kind is BatchKind.REGISTRATION:
            result = self.register(batch, vins)
        else:
            result = self.deregister(batch, vins)
        if result.pushed:
            self._batches.record_progress(batch.batch_id, result.pushed)
            emit(Metric.FLEET_CARDS_PUSHED, result.pushed, kind=batch.kind.value)
        if batch.flow_id:
            details = {
                "batch": batch.batch_id,
                "chunk": index,
                "cards_done": result.done,
                "cards_pushed": result.pushed,
                "cards_skipped": result.skipped,
            }
            self._note(batch.flow_id, EvidenceKind.PUSH_RESULT, "fleet", details)
        return {"chunk": index, "cards": result.done}

    def _cards(self, vins: Iterable[str]) -> list[list[tuple[Card, CardLifecycle]]]:
        """Each vehicle's cards with their bookkeeping (read in one batch for the chunk)."""
        cards = [self._inventory.cards_of_vehicle(vin) for vin in vins]
        lives = self._bookkeeping.lifecycles([c.iccid for per_vehicle in cards for c in per_vehicle])
        return [[(c, lives[c.iccid]) for c in per_vehicle] for per_vehicle in cards]

    def holder(self, batch: FleetBatch) -> Holder:
        """The enterprise with its responsible person as the holder its cards go to, both parties stored
        (sealed) once."""
        flow = self._find_flow(batch.flow_id) if batch.flow_id else None
        identity = flow.identity if flow else None
        enterprise = self._enterprise_of(batch.uscc)
        if identity is None or enterprise is None:
            raise responsible_missing()
        party = Party(
            party_id=enterprise_party_id(batch.batch_id),
            kind=PartyKind.ENTERPRISE,
            id_type=IdType.USCC,
            id_number=enterprise.uscc,
            name=enterprise.company_name,
            address=enterprise.address,
            id_permanent=True,
            created_at=batch.submitted_at,
        )
        responsible = Party(
            party_id=responsible_party_id(batch.batch_id),
            kind=PartyKind.PERSON,
            id_type=IdType(identity.id_type),
            id_number=identity.id_number,
            name=identity.name,
            address=identity.address,
            id_valid_until=identity.id_valid_until,
            id_permanent=identity.id_permanent,
            created_at=batch.submitted_at,
        )
        for stored in (party, responsible):
            if self._parties.get(stored.party_id) is None:
                self._parties.put(stored)
        return holder_from_party(party, self._hasher, responsible=responsible)

    def register(self, batch: FleetBatch, vins: Iterable[str]) -> ChunkResult:
        """Every card of ``vins`` registered to the batch's enterprise; one transaction per vehicle."""
        holder = self.holder(batch)
        actor = f"fleet:{batch.batch_id}"
        done = pushed = skipped = 0
        for vehicle in self._cards(vins):
            todo: list[str] = []
            for card, life in vehicle:
                if card.holder_id == holder.party_id and card.state in (
                    CardState.PENDING,
                    CardState.REGISTERED,
                ):
                    done += 1
                    continue
                try:
                    check_registrable(card, life)
                except DomainError as refused:
                    skipped += 1
                    logger.warning(
                        "fleet card not registrable",
                        extra={"batch": batch.batch_id, "iccid": card.iccid, "code": refused.code},
                    )
                    continue
                todo.append(card.iccid)
            if todo:
                self._push(partial(self._lifecycle.submit_registrations, todo, holder, actor))
                done += len(todo)
                pushed += len(todo)
        return ChunkResult(done, pushed, skipped)

    def deregister(self, batch: FleetBatch, vins: Iterable[str]) -> ChunkResult:
        """Every card of ``vins`` still registered to the batch's enterprise de-registered (pushed); a
        card whose de-registration is already with the operator, or accepted, counts as done."""
        ours = enterprise_id_hash(self._hasher, batch.uscc)
        actor = f"fleet:{batch.batch_id}"
        done = pushed = skipped = 0
        for vehicle in self._cards(vins):
            for card, life in vehicle:
                ending = life.message_kind is PushKind.DEREGISTER
                if ending and (life.awaiting and life.holder_id_hash == ours):
                    done += 1
                elif ending and not life.awaiting and card.state is CardState.UNREGISTERED:
                    done += 1  # accepted already: the operator answered a previous delivery's push
                elif card.state is CardState.REGISTERED and life.holder_id_hash == ours and not life.awaiting:
                    self._push(partial(self._lifecycle.deregister, card.iccid, actor, "单位解除登记 fleet"))
                    done += 1
                    pushed += 1
                else:
                    skipped += 1
                    logger.warning(
                        "fleet card not de-registrable", extra={"batch": batch.batch_id, "iccid": card.iccid}
                    )
        return ChunkResult(done, pushed, skipped)

    @staticmethod
    def _push(push: Callable[[], object]) -> None:
        try:
            push()
        except Conflict as moved:
            if moved.code == "card.changed":
                raise ChunkInterrupted(moved.code) from moved
            raise

    # -- notify --------------------------------------------------------------------------------------

    def notify(self, message: TaskLike) -> None:
        """The ``notify`` task: the portal status, the submitter's SMS, the evidence, a metric."""
        outcome = message.outcome or ""
        if outcome not in OUTCOMES:
            raise InvalidField("fleet.outcome", "通知类型无效", "Unknown outcome", field="outcome")
        batch = self._batch(message.batch_id)
        target, sources = TARGETS[outcome]
        if batch.status is not target:
            try:
                batch = self._batches.set_status(
                    batch.batch_id,
                    target,
                    reasons=batch.outcome_reasons,
                    resubmit_documents=batch.resubmit_documents,
                    expected=set(sources),
                )
            except Conflict:
                logger.warning(
                    "fleet batch moved before its notice",
                    extra={"batch": batch.batch_id, "status": batch.status.value, "outcome": outcome},
                )
                batch = self._batch(batch.batch_id)
        if self._notified(batch, outcome):
            logger.info("fleet notice already sent", extra={"batch": batch.batch_id, "outcome": outcome})
            return
        sent = self._send(batch, outcome)
        if batch.flow_id:
            details = {
                "batch": batch.batch_id,
                "outcome": outcome,
                "round": batch.round,
                "status": batch.status.value,
                "reasons": list(batch.outcome_reasons),
                "sms": sent,
            }
            self._note(batch.flow_id, EvidenceKind.SMS_SENT, "fleet", details)
        emit(Metric.FLEET_BATCH_NOTIFIED, outcome=outcome, kind=batch.kind.value)

    def _notified(self, batch: FleetBatch, outcome: str) -> bool:
        """Whether this outcome of this round was told already (the message delivered again)."""
        if self._notices_sent is None or not batch.flow_id:
            return False
        return any(
            n.get("batch") == batch.batch_id and n.get("outcome") == outcome and n.get("round") == batch.round
            for n in self._notices_sent(batch.flow_id)
        )

    def _send(self, batch: FleetBatch, outcome: str) -> bool:
        phone = self._phone_of(batch.created_by)
        if self._sms is None or not phone:
            return False
        try:
            self._sms.send(phone, notice_text(batch, outcome))
        except DomainError:
            logger.warning("fleet notice SMS not sent", extra={"batch": batch.batch_id, "outcome": outcome})
            return False
        return True


# -- the task handlers, over the services the composition root provides (``chalicelib.fleet.wiring``) --


def _service() -> FleetApply:
    from chalicelib.fleet import wiring

    service: FleetApply = wiring.service("fleet_apply")
    return service


def prepare_cards(message: TaskLike) -> dict[str, Any]:
    return _service().prepare_cards(message)


def apply_chunk(message: TaskLike) -> dict[str, Any]:
    return _service().apply_chunk(message)


def notify(message: TaskLike) -> dict[str, Any] | None:
    """A plain notification: no token, nothing to answer."""
    _service().notify(message)
    return None
