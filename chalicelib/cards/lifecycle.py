"""The card lifecycle after submission (SPEC §6), one object for the composition root: each method is
one of the use cases of ``registering``, ``answers``, ``changes`` and ``reconciliation``, all sharing
one ``Ledger`` (the cards, their bookkeeping and their pushes)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from chalicelib.cards.answers import Answers
from chalicelib.cards.changes import Changes
from chalicelib.cards.commit import Ledger, ServiceEnd, new_record_id
from chalicelib.cards.domain.inventory import CardFunction
from chalicelib.cards.holders import Holder
from chalicelib.cards.ports import InventoryRepository
from chalicelib.cards.reconciliation import Reconciliation
from chalicelib.cards.registering import Registering
from chalicelib.cards.views import (
    CallbackResult,
    CardOutcome,
    CardStatus,
    ReconcileReport,
    ScrapResult,
    SwapResult,
    TransferOpened,
    card_status,
)
from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.operators import Operator
from chalicelib.operators.domain.messages import OperatorCallback
from chalicelib.operators.domain.outbox import RetryPolicy
from chalicelib.operators.ports import OperatorDirectory, OutboxStore, PushQueue


class Lifecycle:
    """The lifecycle use cases; dependencies passed in (ports), time from ``clock``."""

    def __init__(
        self,
        inventory: InventoryRepository,
        store: OutboxStore,
        queue: PushQueue,
        *,
        policy: RetryPolicy | None = None,
        clock: Clock = utc_now,
        new_id: Callable[[], str] = new_record_id,
        default_functions: Sequence[CardFunction] | None = None,
        on_service_end: Callable[[Sequence[ServiceEnd]], None] | None = None,
    ):
        ledger = Ledger(
            inventory,
            store,
            queue,
            policy=policy,
            clock=clock,
            new_id=new_id,
            default_functions=default_functions,
            on_service_end=on_service_end,
        )
        self._inventory = inventory
        self._store = store
        self._registering = Registering(ledger)
        self._answers = Answers(ledger)
        self._changes = Changes(ledger)
        self._reconciliation = Reconciliation(inventory, store)

    def status(self, iccid: str) -> CardStatus:
        return card_status(iccid, self._inventory, self._store)

    def submit_registration(self, iccid: str, holder: Holder, actor: str) -> CardOutcome:
        return self._registering.submit_registrations((iccid,), holder, actor)[0]

    def submit_registrations(self, iccids: Sequence[str], holder: Holder, actor: str) -> list[CardOutcome]:
        return self._registering.submit_registrations(iccids, holder, actor)

    def deregister(self, iccid: str, actor: str, reason: str) -> CardOutcome:
        return self._registering.deregister(iccid, actor, reason)

    def apply_callback(self, callback: OperatorCallback) -> CallbackResult:
        return self._answers.apply_callback(callback)

    def transfer(self, iccid: str, holder: Holder, actor: str, reason: str | None = None) -> CardOutcome:
        return self._changes.transfer(iccid, holder, actor, reason)

    def transfer_cards(
        self, iccids: Sequence[str], holder: Holder, actor: str, reason: str | None = None
    ) -> list[CardOutcome]:
        return self._changes.transfer_cards(iccids, holder, actor, reason)

    def open_transfer(self, vin: str, buyer_phone_hash: str, dealer_code: str, actor: str) -> TransferOpened:
        return self._changes.open_transfer(vin, buyer_phone_hash, dealer_code, actor)

    def scrap(self, vin: str, actor: str) -> ScrapResult:
        return self._changes.scrap(vin, actor)

    def swap(self, vin: str, old_iccid: str, new_iccid: str, actor: str) -> SwapResult:
        return self._changes.swap(vin, old_iccid, new_iccid, actor)

    def reconcile(
        self,
        operator: Operator,
        directory: OperatorDirectory,
        *,
        page_limit: int = 1000,
        max_drifts: int = 1000,
    ) -> ReconcileReport:
        return self._reconciliation.reconcile(
            operator, directory, page_limit=page_limit, max_drifts=max_drifts
        )
