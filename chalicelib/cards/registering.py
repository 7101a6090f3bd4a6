"""实名登记 submitted and 实名注销 (SPEC §6): a card goes ``pending`` and its registration is pushed, or its
de-registration is pushed and it stays registered until the operator accepts; each in one transaction with
its history and outbox record.

一证多卡 (第十一条): one individual's ID holds at most 10 active cards per operator, counted in the same
transaction as the cards it gains, so of two submissions racing for the last slot exactly one passes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from chalicelib.cards.commit import Ledger, Moves, cleared, outcome, retired
from chalicelib.cards.domain.inventory import Card, CardState, check_transition
from chalicelib.cards.domain.lifecycle import CardLifecycle, LifecycleEvent, PushKind
from chalicelib.cards.domain.limits import CARDS_PER_ID_LIMIT, counts_toward_limit
from chalicelib.cards.holders import Holder
from chalicelib.cards.views import CardOutcome
from chalicelib.kernel.errors import Conflict, InvalidField
from chalicelib.kernel.operators import Operator
from chalicelib.operators.domain.outbox import CardWrite, CounterMove, OutboxCommit, OutboxRecord


class Registering:
    def __init__(self, ledger: Ledger):
        self._ledger = ledger

    def submit_registrations(self, iccids: Sequence[str], holder: Holder, actor: str) -> list[CardOutcome]:
        """实名登记 submitted: every card goes ``pending`` and its registration is pushed (第八条(三)), all
        in one transaction (a vehicle with two cards never ends half registered).

        The one-ID limit (第十一条) is counted in the same transaction: of two submissions racing for the
        last slot, exactly one passes. A card already pending or registered is refused.
        """
        if not iccids or len(set(iccids)) != len(iccids):
            raise InvalidField(
                "registration.cards", "车联网卡列表无效", "No or repeated cards", field="iccid"
            )
        ledger = self._ledger
        at = ledger.clock()
        counted = counts_toward_limit(holder.facts.kind)
        writes: list[CardWrite] = []
        records: list[OutboxRecord] = []
        for iccid in iccids:
            card = ledger.card(iccid)
            life = ledger.store.lifecycle(iccid)
            check_registrable(card, life)
            moves = Moves(card, actor, at)
            moves.step(LifecycleEvent.REGISTRATION_SUBMITTED, CardState.PENDING)
            record = ledger.record(
                PushKind.REGISTER,
                card,
                ledger.vehicle(card.vin),
                at,
                holder=holder.facts,
                previous_holder_id_hash=None,
                holder_id_hash=holder.id_hash,
            )
            new_life = cleared(life, at).model_copy(
                update={
                    "message_id": record.record_id,
                    "message_kind": PushKind.REGISTER,
                    "awaiting": True,
                    "holder_id_hash": holder.id_hash,
                    "holder_counted": counted,
                    "reason_code": None,
                    "reason_zh": None,
                    "reason_en": None,
                }
            )
            writes.append(moves.write(holder.party_id, new_life))
            records.append(record)
        counters = limit_moves(holder.id_hash, [w.after.operator for w in writes]) if counted else ()
        ledger.commit(OutboxCommit(cards=tuple(writes), records=tuple(records), counters=counters))
        return [outcome(w, r) for w, r in zip(writes, records, strict=True)]

    def deregister(self, iccid: str, actor: str, reason: str) -> CardOutcome:
        """实名注销 pushed: the card stays registered (its functions, its holder's ID slot) until the
        operator accepts (then registered → deregistered → unregistered, emergency only, the slot
        freed); a refusal leaves it registered with the operator's reason (``answers``)."""
        ledger = self._ledger
        card = ledger.card(iccid)
        check_transition(iccid, card.state, CardState.DEREGISTERED)
        life = ledger.store.lifecycle(iccid)
        if life.awaiting:
            raise Conflict(
                "deregistration.in_progress",
                "该车联网卡有正在办理的业务，请等待电信企业处理完成",
                "The card has a change in progress with the operator; wait for its answer",
                field="iccid",
                details={"iccid": iccid, "kind": life.message_kind.value if life.message_kind else None},
            )
        at = ledger.clock()
        moves = Moves(card, actor, at)
        moves.step(LifecycleEvent.DEREGISTRATION_REQUESTED, CardState.REGISTERED, reason)
        record = ledger.record(
            PushKind.DEREGISTER,
            card,
            ledger.vehicle(card.vin),
            at,
            holder=None,
            previous_holder_id_hash=life.holder_id_hash,
        )
        new_life = life.model_copy(
            update={
                "message_id": record.record_id,
                "message_kind": PushKind.DEREGISTER,
                "awaiting": True,
                "reason_code": None,
                "reason_zh": None,
                "reason_en": None,
                "updated_at": at,
            }
        )
        write = moves.write(card.holder_id, new_life, functions=card.functions)
        ledger.commit(OutboxCommit(cards=(write,), records=(record,)))
        return outcome(write, record)


def check_registrable(card: Card, life: CardLifecycle) -> None:
    """A card can be submitted when it is not retired, not pending, not registered, and no
    de-registration of it is still with the operator."""
    if life.retired is not None:
        raise retired(card, life)
    if card.state is CardState.PENDING:
        raise Conflict(
            "registration.pending",
            "该车联网卡的实名登记正在办理中",
            "A registration of this card is already in progress",
            field="iccid",
        )
    if card.state is CardState.REGISTERED:
        raise Conflict(
            "registration.already_registered",
            "该车联网卡已实名登记；更换车主请办理过户",
            "The card is already registered; a new owner needs a transfer",
            field="iccid",
        )
    if life.awaiting and life.message_kind is PushKind.DEREGISTER:
        raise Conflict(
            "registration.deregistration_in_progress",
            "上一次注销仍在电信企业处理中，请稍后再试",
            "The previous de-registration is still with the operator; try again later",
            field="iccid",
        )


def limit_moves(id_hash: str, operators: Sequence[Operator]) -> tuple[CounterMove, ...]:
    """The one-ID counts raised by the cards gained, one per operator (第十一条).

    The store refuses an increment with ``limit`` unless ``active < limit``, so ``n`` new cards of one
    operator need ``active <= CARDS_PER_ID_LIMIT - n``.
    """
    gained = Counter(operators)
    return tuple(
        CounterMove(id_hash, operator, n, limit=CARDS_PER_ID_LIMIT - n + 1) for operator, n in gained.items()
    )
