"""Submission: claim → holder → push → complete, and the recovery of submissions whose request died.

A submit claims the registration (a conditional write: one request wins, a second submit gets the same
registration and no second push), takes its flow out of expiry, stores the holder and pushes every card
in one transaction (``Lifecycle.submit_registrations``; a de-registration ends each registered card),
then records the pushes and tells the person if the outcome is already final. A refused push opens the
registration again. A request that dies after its push committed leaves a claim the cards show as
pushed: ``recover_stuck`` (or the next submit) completes it; one that died before is opened again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from chalicelib.cards.domain.inventory import CardState
from chalicelib.cards.domain.lifecycle import LifecycleEvent, PushKind
from chalicelib.cards.holders import holder_from_party
from chalicelib.cards.lifecycle import Lifecycle
from chalicelib.cards.ports import PartyRepository
from chalicelib.core.observability import logger
from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.crypto import KeyedHasher
from chalicelib.kernel.errors import Conflict, DomainError, NotFound
from chalicelib.registration.domain.registrations import (
    Registration,
    RegistrationKind,
    RegistrationStatus,
    Step,
    require_step,
)
from chalicelib.registration.domain.submission import (
    STALE_CLAIM,
    claimable,
    holder_party,
    not_the_holder,
    trustee_is_owner,
)
from chalicelib.registration.outcome import Outcomes, ResultSms
from chalicelib.registration.ports import RegistrationRepository
from chalicelib.registration.records import Registrations
from chalicelib.registration.views import RegistrationView, RegistrationViews
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.flows import Flow
from chalicelib.verification.service import VerificationService

#: A submitted registration's flow (identity, photos, live capture, evidence) is kept this long: the
#: card's service life is unknown here, so long enough to outlive it plus the two years of 第十八条.
EVIDENCE_RETENTION = timedelta(days=365 * 20)

#: What a push gives back: the operator records it created and the holder's party (if any).
Pushed = tuple[list[str], str | None]


class Submission:
    def __init__(
        self,
        store: RegistrationRepository,
        registrations: Registrations,
        views: RegistrationViews,
        outcomes: Outcomes,
        result_sms: ResultSms,
        parties: PartyRepository,
        verification: VerificationService,
        lifecycle: Lifecycle,
        hasher: KeyedHasher,
        *,
        flow_ttl: timedelta = timedelta(hours=24),
        clock: Clock = utc_now,
        on_submitted: Callable[[str, list[str]], None] | None = None,
    ) -> None:
        self._store = store
        #: Told (registration id, the cards' holders) of every committed push before it is recorded:
        #: retention (第十八条) keeps the registration's materials with its holders' service.
        self._on_submitted = on_submitted
        self._registrations = registrations
        self._views = views
        self._outcomes = outcomes
        self._result_sms = result_sms
        self._parties = parties
        self._verification = verification
        self._lifecycle = lifecycle
        self._hasher = hasher
        self._flow_ttl = flow_ttl
        self._clock = clock

    def submit(self, registration_id: str, caller: str) -> RegistrationView:
        """Submit once: a second submit (or a concurrent one) gets the same registration, no second push.

        The claim takes the registration and its flow out of expiry before anything is pushed, so a
        request that dies after the push commits leaves nothing to purge.
        """
        reg = self._registrations.own(registration_id, caller)
        if reg.status is RegistrationStatus.SUBMITTED:
            return self._views.view(reg)
        flow = self._registrations.flow(reg)
        if reg.status is RegistrationStatus.OPEN:
            require_step(reg, flow, Step.SUBMIT)
            reg = self._current_cards(reg)
        elif self._outcomes.pushed(reg):
            return self._views.view(self._complete(reg, flow, caller))
        claimed = self._claim(reg)
        if claimed is None:
            return self._views.view(self._registrations.own(registration_id, caller))
        assert flow is not None
        flow = self._verification.keep(flow, self._clock() + EVIDENCE_RETENTION)
        self._keep_owner_check(claimed, caller)
        try:
            pushed = self._push(claimed, flow, caller)
        except DomainError:
            self._release(claimed, flow)
            raise
        done = self._finish(claimed, flow, pushed)
        logger.info(
            "registration submitted", extra={"registration": done.registration_id, "kind": done.kind.value}
        )
        return self._views.view(done)

    def recover_stuck(self, limit: int = 100) -> dict[str, int]:
        """Submissions whose request died: completed when their push committed, else opened again."""
        finished = released = 0
        for reg in self._store.submitting(self._clock() - STALE_CLAIM, limit):
            try:
                flow = self._kept_flow(reg)
                if self._outcomes.pushed(reg):
                    self._complete(reg, flow, "system")
                    finished += 1
                else:
                    self._release(reg, flow)
                    released += 1
            except DomainError:
                continue  # moved meanwhile: the next round sees it as it is now
        return {"finished": finished, "released": released}

    # -- claim and release ---------------------------------------------------------------------------

    def _claim(self, reg: Registration) -> Registration | None:
        """Claim the submission for this request (its push not committed); None when another request
        holds or made it."""
        now = self._clock()
        if not claimable(reg, now):
            return None
        try:
            receipt_no = self._registrations.issue_receipt(reg, now)  # 受理编号: kept if claimed again
            return self._registrations.save(
                reg,
                status=RegistrationStatus.SUBMITTING,
                submitted_at=now,
                expires_at=None,
                receipt_no=receipt_no,
            )
        except Conflict:
            return None

    def _current_cards(self, reg: Registration) -> Registration:
        """更换零部件 after possession was shown: the retired card is never pushed, its replacement is."""
        if reg.kind is not RegistrationKind.REGISTRATION or reg.is_transfer:
            return reg  # a transfer's cards are the seller's as they are (refused at the push if changed)
        iccids = self._outcomes.cards_to_register(reg)
        if iccids == list(reg.iccids):
            return reg
        if not iccids:
            raise Conflict(
                "vehicle.no_cards",
                "该车辆没有可登记的车联网卡",
                "The vehicle has no card to register",
                field="vin",
            )
        return self._registrations.save(reg, iccids=iccids)

    def _release(self, claimed: Registration, flow: Flow | None) -> None:
        """A refused push: the registration is open again and expires as it would have."""
        expires = claimed.created_at + self._flow_ttl
        self._registrations.save(
            claimed, status=RegistrationStatus.OPEN, submitted_at=None, expires_at=expires
        )
        if flow is not None:
            self._verification.reopen(flow.flow_id, claimed.owner, expires)

    def _keep_owner_check(self, reg: Registration, caller: str) -> None:
        """委托登记 confirmed by the owner's own face check: that flow is evidence too."""
        flow_id = reg.delegation.owner_flow_id if reg.delegation else None
        if flow_id is None:
            return
        try:
            owner_flow = self._verification.flow(flow_id, caller)
        except NotFound:
            return  # expired before the submit: its evidence chain stays, as every purged flow's
        self._verification.keep(owner_flow, self._clock() + EVIDENCE_RETENTION)

    def _kept_flow(self, reg: Registration) -> Flow | None:
        try:
            return self._registrations.flow(reg)
        except NotFound:
            return None  # expired before it was kept: nothing was pushed with it

    # -- push ----------------------------------------------------------------------------------------

    def _push(self, reg: Registration, flow: Flow, caller: str) -> Pushed:
        if reg.is_transfer:
            return self._push_transfer(reg, flow, caller)
        if reg.kind is RegistrationKind.REGISTRATION:
            return self._push_registration(reg, flow, caller)
        return self._push_deregistration(reg, flow, caller)

    def _push_registration(self, reg: Registration, flow: Flow, caller: str) -> Pushed:
        """The holder stored as a party, then every card pushed in one transaction; a refused push
        leaves no party behind."""
        assert flow.identity is not None
        party = holder_party(reg, flow.identity, self._clock())
        holder = holder_from_party(party, self._hasher)
        if reg.delegation is not None and holder.id_hash == flow.person_hash:
            raise trustee_is_owner()
        self._parties.put(party)
        try:
            outcomes = self._lifecycle.submit_registrations(reg.iccids, holder, caller)
        except DomainError:
            self._parties.delete(party.party_id)
            raise
        return [o.record_id for o in outcomes if o.record_id], party.party_id

    def _push_transfer(self, reg: Registration, flow: Flow, caller: str) -> Pushed:
        """过户 (第十三条) by the buyer: the verified buyer becomes a party and every card of the seller
        is pushed as a transfer in one transaction; the cards stay the seller's until the operator
        accepts. The seller is told by SMS. A refused push leaves no party behind."""
        assert flow.identity is not None
        party = holder_party(reg, flow.identity, self._clock())
        holder = holder_from_party(party, self._hasher)
        sellers = {s.card.holder_id for s in (self._lifecycle.status(i) for i in reg.iccids)}
        self._parties.put(party)
        try:
            outcomes = self._lifecycle.transfer_cards(
                reg.iccids, holder, caller, f"buyer's transfer (registration {reg.registration_id})"
            )
        except DomainError:
            self._parties.delete(party.party_id)
            raise
        for seller in sorted(s for s in sellers if s):
            self._result_sms.tell_seller(reg, self._parties.get(seller))
        logger.info("transfer pushed", extra={"registration": reg.registration_id, "cards": len(outcomes)})
        return [o.record_id for o in outcomes if o.record_id], party.party_id

    def _push_deregistration(
        self, reg: Registration, flow: Flow, caller: str, *, fresh: bool = True
    ) -> Pushed:
        """注销 by the registered person only: the face-checked identity must be the card's holder.
        A card whose de-registration is already with the operator (pushed by an earlier, interrupted
        submit) or no longer registered is left as it is; the cards stay registered until the
        operator accepts. A fresh submit with nothing to end is refused (a second de-registration of a
        card whose first is still with the operator)."""
        assert flow.person_hash is not None
        statuses = {i: self._lifecycle.status(i) for i in reg.iccids}
        requested = [
            i
            for i, s in statuses.items()
            if s.lifecycle.awaiting and s.lifecycle.message_kind is PushKind.DEREGISTER
        ]
        registered = [
            i for i, s in statuses.items() if s.card.state is CardState.REGISTERED and i not in requested
        ]
        for iccid in registered:
            if statuses[iccid].lifecycle.holder_id_hash != flow.person_hash:
                raise not_the_holder()
        if not registered and fresh:
            raise Conflict(
                "deregistration.nothing_to_end",
                "该车辆没有可注销的实名登记，或注销正在电信企业处理中",
                "No registration to end: none, or its de-registration is with the operator already",
                field="vin",
            )
        record_ids: list[str] = []
        for iccid in registered:
            outcome = self._lifecycle.deregister(iccid, caller, "owner de-registration (实名注销)")
            if outcome.record_id:
                record_ids.append(outcome.record_id)
        return record_ids, reg.party_id

    # -- complete ------------------------------------------------------------------------------------

    def _complete(self, reg: Registration, flow: Flow | None, actor: str) -> Registration:
        """Complete a submission whose request died after its push committed, from what the cards show.
        A de-registration ends the cards it had not reached yet first (each card is its own transaction)."""
        if reg.kind is RegistrationKind.DEREGISTRATION and flow is not None:
            self._push_deregistration(reg, flow, actor, fresh=False)
        return self._finish(reg, flow, self._pushed_by_cards(reg))

    def _pushed_by_cards(self, reg: Registration) -> Pushed:
        record_ids, party_id = [], reg.party_id
        for iccid in reg.iccids:
            status = self._lifecycle.status(iccid)
            if status.lifecycle.message_id:
                record_ids.append(status.lifecycle.message_id)
            if reg.is_transfer:
                # the buyer: pending until the operator answers, the holder once it accepted
                party_id = status.lifecycle.pending_holder_id or party_id or self._transferred_to(reg, iccid)
            elif reg.kind is RegistrationKind.REGISTRATION and status.card.holder_id:
                party_id = status.card.holder_id
        return record_ids, party_id

    def _transferred_to(self, reg: Registration, iccid: str) -> str | None:
        """The card's holder if a transfer was accepted since ``reg`` was submitted (its buyer)."""
        since = reg.submitted_at
        accepted = any(
            e.event == LifecycleEvent.TRANSFERRED and since is not None and e.at >= since
            for e in self._outcomes.history(iccid)
        )
        return self._lifecycle.status(iccid).card.holder_id if accepted else None

    def _holders(self, reg: Registration, party_id: str | None) -> list[str]:
        """Whose service a submission's materials belong to: the holder it registers, or (实名注销) the
        holders of the cards it ends."""
        if reg.kind is RegistrationKind.REGISTRATION:
            return [party_id] if party_id else []
        found = {self._lifecycle.status(i).card.holder_id for i in reg.iccids}
        return sorted(p for p in found if p)

    def _finish(self, reg: Registration, flow: Flow | None, pushed: Pushed) -> Registration:
        """Record a committed push: its records (for the result SMS), the holder and the onsite photo;
        then the result SMS if the outcome is final already (a de-registration, or a registration the
        operator answered while the request that pushed it was dead)."""
        record_ids, party_id = pushed
        if self._on_submitted is not None:
            self._on_submitted(reg.registration_id, self._holders(reg, party_id))
        onsite = flow.documents.get(DocumentKind.LIVE_CAPTURE.value) if flow is not None else None
        # Linked first: once the registration reads "submitted", every callback can find it.
        self._store.link_pushes(reg.registration_id, record_ids)
        done = self._registrations.save(
            reg,
            status=RegistrationStatus.SUBMITTED,
            record_ids=record_ids,
            party_id=party_id,
            onsite_photo=onsite,
            expires_at=None,
        )
        self._result_sms.send_once(done)
        return done
