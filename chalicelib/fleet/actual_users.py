"""实际使用人 (第九条(四)) and the enterprise's vehicles: what an enterprise's accounts see of the cards
registered to it, and who actually uses each.

- ``vehicles``: the cards registered (or being registered) to the enterprise — every card whose holder is
  one of the enterprise's parties, read through the parties' ``by-id-hash`` and the cards' ``by-holder``
  indexes, never a scan — with their vehicle, state, the batch that registered them (its enterprise
  party: ``apply.enterprise_party_id``) and the current actual user, masked.
- ``record``: a new actual user of one card from a date; the user of the moment ends on that date, in
  the same transaction (periods never overlap: the card's head item guards every change).
- ``end``: the user of the moment ends on a date, nobody follows.
- The operators that want actual users (``Settings.operators_wanting_actual_users``) hear of each change
  through the outbox (``PushKind.ACTUAL_USER``): the push is written in the same transaction as the
  record. The operator's answer settles the outbox record; the actual-user record shows it
  (``push_state``), copied onto the record the first time it is read after the answer.

A card that is not registered to the acting enterprise is answered as unknown (404), like a card that
does not exist: an enterprise learns nothing of other enterprises' cards.
"""

from __future__ import annotations

import json
import uuid
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from chalicelib.cards.domain.inventory import Card, CardState, Vehicle
from chalicelib.cards.domain.lifecycle import CardLifecycle, PushKind
from chalicelib.cards.domain.limits import HolderKind
from chalicelib.cards.ports import InventoryRepository
from chalicelib.core.observability import logger
from chalicelib.fleet.actual_users_domain import (
    ActualUser,
    ActualUserInput,
    PushState,
    card_not_found,
    check_end,
    ended,
    new_record_id,
    plan_change,
    record_not_found,
)
from chalicelib.fleet.apply import enterprise_id_hash, enterprise_party_id
from chalicelib.fleet.domain import BATCH_ID_PREFIX
from chalicelib.kernel.clock import Clock, china_day, utc_now
from chalicelib.kernel.crypto import KeyedHasher
from chalicelib.kernel.operators import Operator
from chalicelib.kernel.personal import id_lookup_value
from chalicelib.operators.domain.messages import (
    ActualUserPeriod,
    PushCard,
    PushHolder,
    PushMessage,
    PushVehicle,
)
from chalicelib.operators.domain.outbox import OutboxRecord, OutboxStatus, RetryPolicy
from chalicelib.operators.ports import OutboxStore, PushQueue

#: The card states of a card registered, or being registered, to its holder.
HELD_STATES = frozenset({CardState.PENDING, CardState.REGISTERED})


def batch_of(card: Card) -> str | None:
    """The fleet batch that registered ``card``: its holder is that batch's enterprise party
    (``apply.enterprise_party_id``); None for a card registered otherwise."""
    holder = card.holder_id or ""
    batch_id = holder.removeprefix(enterprise_party_id(""))
    if batch_id.startswith(BATCH_ID_PREFIX) and enterprise_party_id(batch_id) == holder:
        return batch_id
    return None


class ActualUserStore(ABC):
    """Where the actual users are kept, and the index reads of the enterprise's cards."""

    @abstractmethod
    def records(self, iccid: str) -> tuple[list[ActualUser], int]:
        """The card's records, newest first, and its head version (0: none yet)."""

    @abstractmethod
    def commit(
        self,
        iccid: str,
        head_version: int,
        written: Sequence[ActualUser],
        pushes: Sequence[OutboxRecord],
    ) -> None:
        """Write ``written`` (each new, or replacing its version - 1) and ``pushes`` in one transaction,
        moving the head from ``head_version``; raise ``actual_user.changed`` (409) when it moved."""

    @abstractmethod
    def settle(self, record: ActualUser, state: PushState, reason: str | None) -> None:
        """Copy the operator's answer onto ``record`` (only while it still waits on that push)."""

    @abstractmethod
    def holder_cards(
        self, holder_id_hash: str, limit: int, cursor: str | None
    ) -> tuple[list[Card], str | None]:
        """A page of the cards held by any party of that ID (an enterprise's USCC hash)."""


@dataclass(frozen=True)
class EnterpriseCard:
    """One card of the enterprise's vehicles page."""

    card: Card
    vehicle: Vehicle | None
    batch_id: str | None
    actual_user: ActualUser | None  # the one using it today, if any


class ActualUsers:
    def __init__(
        self,
        store: ActualUserStore,
        inventory: InventoryRepository,
        outbox: OutboxStore,
        queue: PushQueue,
        hasher: KeyedHasher,
        *,
        wanting: Collection[Operator],
        clock: Clock = utc_now,
        policy: RetryPolicy | None = None,
    ) -> None:
        self._store = store
        self._inventory = inventory
        self._outbox = outbox
        self._queue = queue
        self._hasher = hasher
        self._wanting = frozenset(wanting)
        self._clock = clock
        self._policy = policy or RetryPolicy()

    # -- reading ---------------------------------------------------------------------------------------

    def enterprise_hash(self, uscc: str) -> str:
        """The keyed hash the enterprise's cards are held under (its USCC as an ID)."""
        return enterprise_id_hash(self._hasher, uscc)

    def vehicles(self, uscc: str, limit: int, cursor: str | None) -> tuple[list[EnterpriseCard], str | None]:
        """A page of the cards registered (or being registered) to the enterprise."""
        cards, next_cursor = self._store.holder_cards(self.enterprise_hash(uscc), limit, cursor)
        cards = [c for c in cards if c.state in HELD_STATES]
        vehicles = self._inventory.get_vehicles({c.vin for c in cards})
        today = china_day(self._clock())
        page = []
        for card in cards:
            records, _ = self._store.records(card.iccid)
            current = next((r for r in records if r.current_on(today)), None)
            page.append(
                EnterpriseCard(
                    card=card,
                    vehicle=vehicles.get(card.vin),
                    batch_id=batch_of(card),
                    actual_user=self._settled(current) if current else None,
                )
            )
        return page, next_cursor

    def history(self, uscc: str | None, iccid: str) -> list[ActualUser]:
        """The card's actual users, newest first; ``uscc``: only if the card is that enterprise's (None:
        the OEM's staff, any card)."""
        if uscc is not None:
            self._own_card(uscc, iccid)
        records, _ = self._store.records(iccid)
        return [self._settled(r) for r in records]

    def _own_card(self, uscc: str, iccid: str) -> tuple[Card, CardLifecycle]:
        card = self._inventory.get_card(iccid)
        if card is None or card.holder_id is None or card.state not in HELD_STATES:
            raise card_not_found()
        life = self._outbox.lifecycle(iccid)
        if life.holder_id_hash != self.enterprise_hash(uscc):
            raise card_not_found()
        return card, life

    def _settled(self, record: ActualUser) -> ActualUser:
        """``record`` with the operator's answer to its push, copied onto it when it just came in."""
        if record.push_state is not PushState.PENDING or record.push_record_id is None:
            return record
        pushed = self._outbox.get(record.push_record_id)
        if pushed is None or pushed.status not in (OutboxStatus.ACCEPTED, OutboxStatus.REJECTED):
            return record
        state = PushState.ACCEPTED if pushed.status is OutboxStatus.ACCEPTED else PushState.REJECTED
        reason = pushed.reason if state is PushState.REJECTED else None
        try:
            self._store.settle(record, state, reason)
        except Exception:  # shown anyway; the next read copies it again
            logger.warning("actual user push state not saved", extra={"record": record.record_id})
        return replace(record, push_state=state, push_reason=reason)

    # -- changing --------------------------------------------------------------------------------------

    def record(self, uscc: str, actor: str, iccid: str, wanted: ActualUserInput) -> ActualUser:
        """A new actual user of the enterprise's card from ``wanted.valid_from``; the user open on that
        date ends then. Pushed to the card's operator when it wants actual users."""
        card, life = self._own_card(uscc, iccid)
        records, head = self._store.records(iccid)
        now = self._clock()
        to_end = plan_change(records, wanted, china_day(now))
        added = ActualUser(
            iccid=iccid,
            record_id=new_record_id(),
            uscc=uscc,
            name=wanted.name,
            id_type=wanted.id_type,
            id_number=wanted.id_number,
            phone=wanted.phone,
            valid_from=wanted.valid_from,
            valid_to=wanted.valid_to,
            created_at=now,
            created_by=actor,
            id_hash=self._hasher.digest(id_lookup_value(wanted.id_type, wanted.id_number)),
        )
        push = self._push(card, life, added, to_end.record_id if to_end else None, now)
        added = self._pushed(added, push)
        written = [added]
        if to_end is not None:
            written.append(ended(to_end, wanted.valid_from, now, actor))
        self._commit(iccid, head, written, push)
        return added

    def end(self, uscc: str, actor: str, iccid: str, record_id: str, valid_to: date | None) -> ActualUser:
        """The actual user ``record_id`` ends on ``valid_to`` (default: today in China); pushed too."""
        card, life = self._own_card(uscc, iccid)
        records, head = self._store.records(iccid)
        record = next((r for r in records if r.record_id == record_id), None)
        if record is None:
            raise record_not_found()
        now = self._clock()
        today = china_day(now)
        until = valid_to or today
        check_end(record, until, today)
        finished = ended(record, until, now, actor)
        push = self._push(card, life, finished, None, now)
        finished = self._pushed(finished, push)
        self._commit(iccid, head, [finished], push)
        return finished

    def _commit(self, iccid: str, head: int, written: list[ActualUser], push: OutboxRecord | None) -> None:
        pushes = [push] if push is not None else []
        self._store.commit(iccid, head, written, pushes)
        for record in pushes:  # best effort: the sweeper pushes a record whose message was lost
            try:
                self._queue.send_message(json.dumps({"record_id": record.record_id}))
            except Exception:
                logger.warning(
                    "outbox enqueue failed; the sweeper will push it", extra={"record": record.record_id}
                )

    @staticmethod
    def _pushed(record: ActualUser, push: OutboxRecord | None) -> ActualUser:
        if push is None:
            return replace(record, push_state=PushState.NOT_WANTED, push_record_id=None, push_reason=None)
        return replace(record, push_state=PushState.PENDING, push_record_id=push.record_id, push_reason=None)

    def _push(
        self, card: Card, life: CardLifecycle, record: ActualUser, ended_ref: str | None, at: datetime
    ) -> OutboxRecord | None:
        """The outbox record telling the card's operator of ``record`` (None: it does not want them)."""
        if card.operator not in self._wanting:
            return None
        vehicle = self._inventory.get_vehicle(card.vin)
        if vehicle is None:
            raise card_not_found()
        record_id = uuid.uuid4().hex
        message = PushMessage(
            message_id=record_id,
            kind=PushKind.ACTUAL_USER,
            card=PushCard(iccid=card.iccid, msisdn=card.msisdn, operator=card.operator),
            vehicle=PushVehicle(
                vin=vehicle.vin,
                engine_no=vehicle.engine_no,
                brand=vehicle.brand,
                model=vehicle.model,
                colour=vehicle.colour,
            ),
            holder=PushHolder(
                kind=HolderKind.INDIVIDUAL,
                name=record.name,
                id_type=record.id_type.value,
                id_number=record.id_number,
                phone=record.phone,
            ),
            holder_id_hash=life.holder_id_hash,
            functions=list(card.functions),
            created_at=at,
            actual_user=ActualUserPeriod(
                record_ref=record.record_id,
                valid_from=record.valid_from,
                valid_to=record.valid_to,
                ended_ref=ended_ref,
            ),
        )
        return OutboxRecord(
            record_id=record_id,
            kind=PushKind.ACTUAL_USER,
            iccid=card.iccid,
            operator=card.operator,
            status=OutboxStatus.PENDING,
            next_attempt_at=at,
            sweep_at=at + timedelta(seconds=self._policy.sweep_grace_seconds),
            created_at=at,
            updated_at=at,
            message=message,
        )


def wanting_operators(names: Collection[str]) -> frozenset[Operator]:
    """The operators named in the setting (unknown names are the settings check's to report)."""
    known = {op.value: op for op in Operator}
    return frozenset(known[n] for n in names if n in known)
