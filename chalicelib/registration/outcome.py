"""How a submitted registration ended, read from its cards' history since the submission, and the one
SMS that tells the person (确认登记结果) once the operator has answered for every card."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from chalicelib.cards.domain.inventory import Card, CardEvent, CardState
from chalicelib.cards.lifecycle import Lifecycle
from chalicelib.cards.ports import InventoryRepository
from chalicelib.core.observability import logger
from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.errors import Conflict, DomainError
from chalicelib.kernel.personal import Party
from chalicelib.registration.domain.registrations import FINAL_STEPS, Registration, RegistrationStatus, Step
from chalicelib.registration.domain.submission import (
    CardOutcome,
    card_outcome,
    delegated_owner_message,
    registration_outcome,
    result_message,
    transfer_requested_message,
    was_pushed,
)
from chalicelib.registration.ports import RegistrationRepository
from chalicelib.registration.records import Registrations
from chalicelib.sms.ports import SmsSender
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.service import VerificationService


class Outcomes:
    """Reads of the cards a registration submitted."""

    def __init__(self, inventory: InventoryRepository, lifecycle: Lifecycle) -> None:
        self._inventory = inventory
        self._lifecycle = lifecycle

    def in_service(self, cards: Sequence[Card]) -> list[Card]:
        """The cards an owner may deal with: not retired (a swapped-out or scrapped card stays on its
        vehicle for the record, but is out of every owner flow and count)."""
        return [c for c in cards if self._lifecycle.status(c.iccid).lifecycle.retired is None]

    def cards_to_register(self, reg: Registration) -> list[str]:
        """A registration's cards as its vehicle has them now: a card retired since possession was
        shown (更换零部件) is dropped and the card fitted in its place, free, taken instead."""
        cards = self._inventory.cards_of_vehicle(reg.vin)
        retired = {c.iccid for c in cards} - {c.iccid for c in self.in_service(cards)}
        kept = [i for i in reg.iccids if i not in retired]
        fitted = [
            c.iccid
            for c in cards
            if c.iccid not in retired and c.iccid not in kept and c.state is CardState.UNREGISTERED
        ]
        return kept + fitted if retired & set(reg.iccids) else kept

    def transferable(self, cards: Sequence[Card]) -> list[str]:
        """The cards a buyer may take over by transfer (过户, 第十三条): every card in service is
        registered to someone, none with a change in progress (a registration still with the operator,
        a de-registration or transfer asked for); else none."""
        statuses = [(c, self._lifecycle.status(c.iccid).lifecycle) for c in cards]
        in_service = [(c, life) for c, life in statuses if life.retired is None]
        if not in_service or any(
            c.state is not CardState.REGISTERED or life.awaiting or life.pending_holder_id is not None
            for c, life in in_service
        ):
            return []
        return [c.iccid for c, _ in in_service]

    def history(self, iccid: str) -> list[CardEvent]:
        return self._inventory.history(iccid)

    def pushed(self, reg: Registration) -> bool:
        """A claimed submission whose push committed (perhaps by a request that died before recording it)."""
        return was_pushed(reg, {iccid: self._inventory.history(iccid) for iccid in reg.iccids})

    def of(
        self, reg: Registration, histories: Mapping[str, Sequence[CardEvent]] | None = None
    ) -> CardOutcome:
        """Where a submitted registration stands; a refusal in the operator's own words."""
        since = reg.submitted_at
        assert since is not None
        outcomes: list[CardOutcome] = []
        for iccid in reg.iccids:
            history = histories[iccid] if histories is not None else self._inventory.history(iccid)
            outcome = card_outcome(reg.kind, [e for e in history if e.at >= since])
            if outcome.step is Step.REJECTED:
                outcome = self._refused(iccid, outcome)
            outcomes.append(outcome)
        return registration_outcome(outcomes)

    def _refused(self, iccid: str, outcome: CardOutcome) -> CardOutcome:
        refusal = self._lifecycle.status(iccid).last_refusal
        if refusal is None:
            return outcome
        return replace(
            outcome,
            reason_zh=refusal.message_zh or outcome.reason_zh,
            reason_en=refusal.message_en or outcome.reason_en,
        )


class ResultSms:
    """The operator's answers as the person hears them: one SMS per registration, once it is final."""

    def __init__(
        self,
        store: RegistrationRepository,
        registrations: Registrations,
        outcomes: Outcomes,
        verification: VerificationService,
        sms: SmsSender | None,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._registrations = registrations
        self._outcomes = outcomes
        self._verification = verification
        self._sms = sms
        self._clock = clock

    def on_push_result(self, record_id: str) -> None:
        """An operator callback for ``record_id`` was applied: noted in the evidence, and the person told
        once the outcome is final."""
        reg = self._store.by_push(record_id)
        if reg is None or reg.status is not RegistrationStatus.SUBMITTED:
            return
        outcome = self._outcomes.of(reg)
        if reg.flow_id:
            details = {"record": record_id, "step": outcome.step.value}
            self._verification.note(reg.flow_id, EvidenceKind.PUSH_RESULT, "operator", details)
        if outcome.step in FINAL_STEPS:
            self.send_once(reg)

    def send_once(self, reg: Registration) -> None:
        """The SMS with the outcome, at most once per registration, and only once it is final."""
        if reg.notified_at is not None or not reg.phone or self._sms is None:
            return
        outcome = self._outcomes.of(reg)
        if outcome.step not in FINAL_STEPS:
            return
        try:
            marked = self._registrations.save(reg, notified_at=self._clock())
        except Conflict:
            return  # another callback got there first
        try:
            self._sms.send(reg.phone, result_message(reg.vin, outcome, reg.kind, transfer=reg.is_transfer))
        except DomainError:
            logger.warning("result SMS not sent", extra={"registration": marked.registration_id})
        self._tell_delegating_owner(marked, outcome)

    def _tell_delegating_owner(self, reg: Registration, outcome: CardOutcome) -> None:
        """委托登记: the owner hears the outcome too, on their own phone (the trustee heard it above)."""
        owner_phone = reg.delegation.owner_phone if reg.delegation else None
        if self._sms is None or not owner_phone or owner_phone == reg.phone:
            return
        text = delegated_owner_message(reg.vin, outcome)
        if text is None:
            return
        try:
            self._sms.send(owner_phone, text)
        except DomainError:
            logger.warning("result SMS to the owner not sent", extra={"registration": reg.registration_id})

    def tell_seller(self, reg: Registration, seller: Party | None) -> None:
        """过户 pushed: the card's registered holder (the seller) hears of it on their party's phone."""
        if seller is None or not seller.phone or self._sms is None:
            return
        try:
            self._sms.send(seller.phone, transfer_requested_message(reg.vin))
        except DomainError:
            logger.warning("transfer SMS to the seller not sent", extra={"registration": reg.registration_id})
