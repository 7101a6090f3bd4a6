"""第十三条: a transfer (过户) ends the old holder's registration when the operator accepts the new one,
and until then the card stays registered to the old holder; scrap (报废) and part replacement
(更换零部件) end the registration at once and retire the card, which can never be registered again.
"""

from __future__ import annotations

from collections.abc import Sequence

from chalicelib.cards.commit import Ledger, Moves, outcome, retired
from chalicelib.cards.domain.inventory import Card, CardState, card_not_found
from chalicelib.cards.domain.lifecycle import CardLifecycle, LifecycleEvent, PushKind, Retirement
from chalicelib.cards.domain.limits import counts_toward_limit
from chalicelib.cards.holders import Holder
from chalicelib.cards.registering import limit_moves
from chalicelib.cards.views import CardOutcome, ScrapResult, SwapResult, TransferOpened
from chalicelib.core.observability import logger
from chalicelib.kernel.errors import Conflict, InvalidField
from chalicelib.kernel.operators import Operator
from chalicelib.operators.domain.outbox import CardWrite, OutboxCommit, OutboxRecord


class Changes:
    def __init__(self, ledger: Ledger):
        self._ledger = ledger

    def transfer(self, iccid: str, holder: Holder, actor: str, reason: str | None = None) -> CardOutcome:
        """过户 of one card (an OEM correction names why: ``reason``, kept in the card's history)."""
        return self.transfer_cards((iccid,), holder, actor, reason)[0]

    def transfer_cards(
        self, iccids: Sequence[str], holder: Holder, actor: str, reason: str | None = None
    ) -> list[CardOutcome]:
        """过户: the new holder's registration of every card is pushed, all in one transaction; each card
        stays registered to the old holder, with the transfer noted, until the operator accepts it (then
        the old registration ends). Refused as a whole when one card cannot be transferred."""
        ledger = self._ledger
        at = ledger.clock()
        writes: list[CardWrite] = []
        records: list[OutboxRecord] = []
        operators: list[Operator] = []
        counted = counts_toward_limit(holder.facts.kind)
        noted = f"to party {holder.party_id}" + (f"; {reason}" if reason else "")
        for iccid in iccids:
            card = ledger.card(iccid)
            life = ledger.store.lifecycle(iccid)
            self._check_transferable(card, life, holder)
            vehicle = ledger.vehicle(card.vin)
            moves = Moves(card, actor, at)
            moves.step(LifecycleEvent.TRANSFER_REQUESTED, CardState.REGISTERED, noted)
            record = ledger.record(
                PushKind.TRANSFER,
                card,
                vehicle,
                at,
                holder=holder.facts,
                previous_holder_id_hash=life.holder_id_hash,
                holder_id_hash=holder.id_hash,
            )
            new_life = life.model_copy(
                update={
                    "message_id": record.record_id,
                    "message_kind": PushKind.TRANSFER,
                    "awaiting": True,
                    "pending_holder_id": holder.party_id,
                    "pending_holder_id_hash": holder.id_hash,
                    "pending_counted": counted,
                    "reason_code": None,
                    "reason_zh": None,
                    "reason_en": None,
                    "updated_at": at,
                }
            )
            writes.append(moves.write(card.holder_id, new_life, functions=card.functions))
            records.append(record)
            operators.append(card.operator)
        counters = limit_moves(holder.id_hash, operators) if counted else ()
        ledger.commit(OutboxCommit(cards=tuple(writes), records=tuple(records), counters=counters))
        if reason:
            logger.info(
                "transfer requested",
                extra={"actor": actor, "cards": list(iccids), "party": holder.party_id, "reason": reason},
            )
        return [outcome(w, r) for w, r in zip(writes, records, strict=True)]

    def open_transfer(self, vin: str, buyer_phone_hash: str, dealer_code: str, actor: str) -> TransferOpened:
        """过户 started by the OEM at a dealer's request: the buyer's phone becomes the vehicle's sales
        contact phone (its keyed hash), so the buyer shows possession by it (``sales_phone``) and then
        registers as the transfer's buyer. Every card in service must be registered, nothing pending at
        the operator; each card's history notes who opened it, for which dealer."""
        ledger = self._ledger
        vehicle = ledger.vehicle(vin)
        cards = ledger.inventory.cards_of_vehicle(vin)
        lives = ledger.store.lifecycles([c.iccid for c in cards])
        in_service = [c for c in cards if lives[c.iccid].retired is None]
        if not in_service or any(
            c.state is not CardState.REGISTERED
            or lives[c.iccid].awaiting
            or lives[c.iccid].pending_holder_id is not None
            for c in in_service
        ):
            raise Conflict(
                "transfer.not_transferable",
                "该车辆当前不能办理过户：没有实名登记，或有业务正在电信企业处理中",
                "The vehicle cannot be transferred now: not registered, or a change is with the operator",
                field="vin",
                details={"vin": vin},
            )
        ledger.inventory.update_vehicle(vehicle.model_copy(update={"owner_phone_hash": buyer_phone_hash}))
        at = ledger.clock()
        writes: list[CardWrite] = []
        for card in in_service:
            moves = Moves(card, actor, at)
            moves.step(
                LifecycleEvent.TRANSFER_OPENED,
                CardState.REGISTERED,
                f"过户 opened at dealer {dealer_code}: the buyer shows possession by the sales phone",
            )
            writes.append(moves.write(card.holder_id, None, functions=card.functions))
        ledger.commit(OutboxCommit(cards=tuple(writes)))
        logger.info(
            "transfer opened", extra={"actor": actor, "dealer_code": dealer_code, "cards": len(writes)}
        )
        return TransferOpened(vin=vin, dealer_code=dealer_code, cards=[outcome(w, None) for w in writes])

    @staticmethod
    def _check_transferable(card: Card, life: CardLifecycle, holder: Holder) -> None:
        if life.retired is not None:
            raise retired(card, life)
        if card.state is not CardState.REGISTERED:
            raise Conflict(
                "card.not_registered",
                "只有已实名登记的车联网卡可以办理过户",
                "Only a registered card can be transferred",
                field="iccid",
                details={"iccid": card.iccid, "state": card.state.value},
            )
        if life.awaiting or life.pending_holder_id is not None:
            raise Conflict(
                "transfer.pending",
                "该车联网卡有正在办理的业务，请等待电信企业处理完成",
                "The card has a change in progress with the operator; wait for its answer",
                field="iccid",
            )
        if card.holder_id == holder.party_id or life.holder_id_hash == holder.id_hash:
            raise InvalidField(
                "transfer.same_holder",
                "新车主与原车主相同",
                "The new holder is the current holder",
                field="holder_id",
            )

    def scrap(self, vin: str, actor: str) -> ScrapResult:
        """报废: every card of the vehicle de-registered (pushed where a registration existed) and retired.

        One transaction per card; running it again finishes a scrap that stopped half way.
        """
        ledger = self._ledger
        vehicle = ledger.vehicle(vin)
        cards = ledger.inventory.cards_of_vehicle(vin)
        lives = ledger.store.lifecycles([c.iccid for c in cards])
        done: list[CardOutcome] = []
        already: list[str] = []
        for card in cards:
            life = lives[card.iccid]
            if life.retired is not None:
                already.append(card.iccid)
                continue
            write, record, counters = ledger.end(
                card, life, vehicle, actor, "报废 scrap", Retirement.SCRAPPED
            )
            ledger.commit(
                OutboxCommit(cards=(write,), records=(record,) if record else (), counters=tuple(counters))
            )
            done.append(outcome(write, record))
        return ScrapResult(vin=vin, cards=done, already_retired=already)

    def swap(self, vin: str, old_iccid: str, new_iccid: str, actor: str) -> SwapResult:
        """更换零部件: the old card's registration ends and it is retired; the new card takes the vehicle,
        unregistered (emergency only) until somebody registers it. Both in one transaction."""
        if old_iccid == new_iccid:
            raise InvalidField(
                "swap.same_card", "新旧卡片编码相同", "The old and new ICCIDs are the same", field="new_iccid"
            )
        ledger = self._ledger
        vehicle = ledger.vehicle(vin)
        old = ledger.card(old_iccid)
        new = ledger.inventory.get_card(new_iccid)
        if new is None:
            raise card_not_found("new_iccid")
        if old.vin != vin:
            raise Conflict(
                "swap.card_not_on_vehicle",
                "旧车联网卡不属于该车辆",
                "The old card is not on this vehicle",
                field="old_iccid",
                details={"iccid": old_iccid},
            )
        on_vehicle = ledger.inventory.cards_of_vehicle(vin)
        lives = ledger.store.lifecycles([old_iccid, new_iccid, *(c.iccid for c in on_vehicle)])
        if any(lives[c.iccid].retired is Retirement.SCRAPPED for c in on_vehicle):
            raise Conflict(
                "vehicle.scrapped",
                "该车辆已报废",
                "The vehicle was scrapped",
                field="vin",
                details={"vin": vin},
            )
        for card in (old, new):
            if lives[card.iccid].retired is not None:
                raise retired(card, lives[card.iccid])
        if new.state is not CardState.UNREGISTERED or lives[new_iccid].awaiting:
            raise Conflict(
                "swap.new_card_in_use",
                "新车联网卡已登记或正在办理业务，不能装到该车辆",
                "The new card is registered or has a change in progress: it cannot be fitted",
                field="new_iccid",
                details={"iccid": new_iccid, "state": new.state.value},
            )
        old_write, record, counters = ledger.end(
            old,
            lives[old_iccid],
            vehicle,
            actor,
            f"更换零部件 swap: replaced by {new_iccid}",
            Retirement.SWAPPED_OUT,
        )
        moved = f", moved from vehicle {new.vin}" if new.vin != vin else ""
        moves = Moves(new, actor, ledger.clock())
        moves.step(LifecycleEvent.SWAPPED_IN, CardState.UNREGISTERED, f"swap: replaces {old_iccid}{moved}")
        new_write = moves.write(None, None, vin=vin)
        ledger.commit(
            OutboxCommit(
                cards=(old_write, new_write), records=(record,) if record else (), counters=tuple(counters)
            )
        )
        return SwapResult(vin=vin, old=outcome(old_write, record), new=outcome(new_write, None))
