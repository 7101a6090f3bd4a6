"""The inventory repository on DynamoDB (pynamodb)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime

from pynamodb.exceptions import DeleteError, TransactWriteError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamo.models import CardHistoryModel, CardModel, VehicleModel
from chalicelib.adapters.dynamo.models_msisdn import MsisdnModel
from chalicelib.cards.domain.inventory import (
    Card,
    CardEvent,
    CardFunction,
    CardState,
    Vehicle,
    backfill_shard,
    functions_for,
)
from chalicelib.cards.ports import InventoryRepository
from chalicelib.kernel.clock import utc_now
from chalicelib.kernel.errors import Conflict
from chalicelib.kernel.operators import Operator

#: Transaction attempts when DynamoDB cancels for a concurrent transaction on the same item.
TRANSACT_ATTEMPTS = 4
RETRYABLE = frozenset({"TransactionConflict", "ThrottlingError"})
#: Items per writer task (a multiple of DynamoDB's 25-item batch) and concurrent writers.
WRITE_SLICE = 250
WRITE_THREADS = 4


def _batch_save(items: Sequence[Model]) -> None:
    """Write items (of one or more tables) with pynamodb's batch writer, table by table."""
    by_table: dict[type[Model], list[Model]] = {}
    for item in items:
        by_table.setdefault(type(item), []).append(item)
    for model, group in by_table.items():
        with model.batch_write() as batch:
            for item in group:
                batch.save(item)


def vehicle_item(v: Vehicle, at: datetime) -> VehicleModel:
    return VehicleModel(
        v.vin,
        engine_no=v.engine_no,
        brand=v.brand,
        model=v.model,
        colour=v.colour,
        production_date=v.production_date.isoformat() if v.production_date else None,
        dealer_code=v.dealer_code,
        owner_phone_hash=v.owner_phone_hash,
        functions=[f.value for f in v.functions] if v.functions is not None else None,
        created_at=at,
        updated_at=at,
    )


def card_item(c: Card, at: datetime) -> CardModel:
    return CardModel(
        c.iccid,
        msisdn=c.msisdn,
        operator=c.operator.value,
        vin=c.vin,
        state=c.state.value,
        functions=[f.value for f in c.functions],
        version=c.version,
        holder_id=c.holder_id,
        created_at=at,
        updated_at=c.updated_at or at,
        in_service_since=c.in_service_since.isoformat() if c.in_service_since else None,
        backfill_shard=backfill_shard(c),
    )


def backfill_action(after: Card, *, retired: bool = False) -> Action:
    """Every write of a card's state keeps the backfill index exact: the card is in it (under its shard)
    exactly while it is a target, so it leaves in the write that makes it pending or registered, or
    retires it (scrapped, swapped out)."""
    shard = None if retired else backfill_shard(after)
    return CardModel.backfill_shard.set(shard) if shard else CardModel.backfill_shard.remove()


def event_item(e: CardEvent) -> CardHistoryModel:
    return CardHistoryModel(
        e.iccid,
        e.seq,
        at=e.at,
        event=e.event,
        from_state=e.from_state.value if e.from_state else None,
        to_state=e.to_state.value,
        actor=e.actor,
        reason=e.reason,
    )


def _vehicle(m: VehicleModel) -> Vehicle:
    return Vehicle(
        vin=m.vin,
        engine_no=m.engine_no,
        brand=m.brand,
        model=m.model,
        colour=m.colour,
        production_date=date.fromisoformat(m.production_date) if m.production_date else None,
        dealer_code=m.dealer_code,
        owner_phone_hash=m.owner_phone_hash,
        functions=tuple(CardFunction(f) for f in m.functions) if m.functions is not None else None,
    )


def _card(m: CardModel) -> Card:
    return Card(
        iccid=m.iccid,
        msisdn=m.msisdn,
        operator=Operator(m.operator),
        vin=m.vin,
        state=CardState(m.state),
        functions=[CardFunction(f) for f in m.functions],
        version=int(m.version),
        holder_id=m.holder_id,
        updated_at=m.updated_at,
        in_service_since=date.fromisoformat(m.in_service_since) if m.in_service_since else None,
    )


def _event(m: CardHistoryModel) -> CardEvent:
    return CardEvent(
        iccid=m.iccid,
        seq=int(m.seq),
        at=m.at,
        event=m.event,
        from_state=CardState(m.from_state) if m.from_state else None,
        to_state=CardState(m.to_state),
        actor=m.actor,
        reason=m.reason,
    )


def _changed(iccid: str) -> Conflict:
    return Conflict(
        "card.changed",
        "车联网卡已被其他操作修改，请刷新后重试",
        "The card was changed by another operation; reload and try again",
        field="iccid",
        details={"iccid": iccid},
    )


#: MSISDN claims written per transaction (DynamoDB's limit is 100 items).
CLAIMS_PER_TRANSACTION = 100


def _claim_slice(items: Sequence[tuple[str, str]], at: datetime) -> set[str]:
    """Claim each number for its card unless another card holds it; returns the numbers lost.

    A transaction is all or nothing: when some conditions fail, DynamoDB's cancellation reasons name
    them, those are dropped and the others written again (each round drops at least one, or retries a
    transaction cancelled by a concurrent one)."""
    lost: set[str] = set()
    remaining = list(items)
    attempts = 0
    while remaining:
        try:
            with TransactWrite(connection=MsisdnModel._get_connection().connection) as tx:
                for msisdn, iccid in remaining:
                    tx.save(
                        MsisdnModel(msisdn, iccid=iccid, claimed_at=at),
                        condition=MsisdnModel.msisdn.does_not_exist() | (MsisdnModel.iccid == iccid),
                    )
            return lost
        except TransactWriteError as exc:
            reasons = exc.cancellation_reasons
            failed = {
                remaining[i][0]
                for i, r in enumerate(reasons)
                if r is not None and r.code == "ConditionalCheckFailed" and i < len(remaining)
            }
            if failed:
                lost |= failed
                remaining = [pair for pair in remaining if pair[0] not in failed]
                continue
            codes = {r.code for r in reasons if r is not None}
            attempts += 1
            if codes and codes <= RETRYABLE and attempts < TRANSACT_ATTEMPTS:
                time.sleep(random.uniform(0, 0.05 * 2**attempts))
                continue
            raise
    return lost


class DynamoInventoryRepository(InventoryRepository):
    def get_vehicle(self, vin: str) -> Vehicle | None:
        try:
            return _vehicle(VehicleModel.get(vin))
        except VehicleModel.DoesNotExist:
            return None

    def cards_of_vehicle(self, vin: str) -> list[Card]:
        return sorted((_card(m) for m in CardModel.by_vin.query(vin)), key=lambda c: c.iccid)

    def get_card(self, iccid: str) -> Card | None:
        try:
            return _card(CardModel.get(iccid))
        except CardModel.DoesNotExist:
            return None

    def card_by_msisdn(self, msisdn: str) -> Card | None:
        """The card the ``msisdns`` table gives the number to; cards imported before that table (no
        claim) are found by the ``by-msisdn`` index."""
        try:
            claim: MsisdnModel | None = MsisdnModel.get(msisdn)
        except MsisdnModel.DoesNotExist:
            claim = None
        if claim is not None:
            held = self.get_card(claim.iccid)
            if held is not None and held.msisdn == msisdn:
                return held
        for key in CardModel.by_msisdn.query(msisdn, limit=1):
            return self.get_card(key.iccid)
        return None

    def msisdn_holders(self, msisdns: Iterable[str]) -> dict[str, str]:
        return {m.msisdn: m.iccid for m in MsisdnModel.batch_get(list(set(msisdns)))}

    def claim_msisdns(self, claims: Mapping[str, str]) -> set[str]:
        """Conditional puts, up to ``CLAIMS_PER_TRANSACTION`` per transaction (one round trip each), the
        slices from a few threads: a claim whose condition failed is dropped and the rest written again."""
        at = utc_now()
        items = list(claims.items())
        slices = [items[i : i + CLAIMS_PER_TRANSACTION] for i in range(0, len(items), CLAIMS_PER_TRANSACTION)]
        if len(slices) <= 1:
            return set().union(*(_claim_slice(part, at) for part in slices))
        with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
            return set().union(*pool.map(lambda part: _claim_slice(part, at), slices))

    def release_msisdn(self, msisdn: str, iccid: str) -> None:
        try:
            MsisdnModel(msisdn).delete(condition=MsisdnModel.iccid == iccid)
        except DeleteError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise

    def get_vehicles(self, vins: Iterable[str]) -> dict[str, Vehicle]:
        return {m.vin: _vehicle(m) for m in VehicleModel.batch_get(list(vins))}

    def get_cards(self, iccids: Iterable[str]) -> dict[str, Card]:
        return {m.iccid: _card(m) for m in CardModel.batch_get(list(iccids))}

    def put_new(
        self, vehicles: Sequence[Vehicle], cards: Sequence[Card], events: Sequence[CardEvent]
    ) -> None:
        at = utc_now()
        items: list[Model] = [vehicle_item(v, at) for v in vehicles]
        items += [card_item(c, at) for c in cards]
        items += [event_item(e) for e in events]
        # Slices go out from a few threads at once so the round trips overlap; pynamodb's batch
        # writer retries unprocessed items within each slice.
        slices = [items[i : i + WRITE_SLICE] for i in range(0, len(items), WRITE_SLICE)]
        if len(slices) <= 1:
            for part in slices:
                _batch_save(part)
            return
        with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
            for future in [pool.submit(_batch_save, part) for part in slices]:
                future.result()

    def update_vehicle(self, vehicle: Vehicle) -> None:
        item = vehicle_item(vehicle, utc_now())
        try:
            item.update(
                actions=[
                    VehicleModel.engine_no.set(item.engine_no),
                    VehicleModel.brand.set(item.brand),
                    VehicleModel.model.set(item.model),
                    VehicleModel.colour.set(item.colour),
                    VehicleModel.production_date.set(item.production_date)
                    if item.production_date
                    else VehicleModel.production_date.remove(),
                    VehicleModel.dealer_code.set(item.dealer_code)
                    if item.dealer_code
                    else VehicleModel.dealer_code.remove(),
                    VehicleModel.owner_phone_hash.set(item.owner_phone_hash)
                    if item.owner_phone_hash
                    else VehicleModel.owner_phone_hash.remove(),
                    VehicleModel.functions.set(item.functions)
                    if item.functions is not None
                    else VehicleModel.functions.remove(),
                    VehicleModel.updated_at.set(item.updated_at),
                ],
                condition=VehicleModel.vin.exists(),
            )
        except UpdateError as exc:
            raise Conflict(
                "vehicle.changed", "车辆信息已被修改", "The vehicle changed meanwhile", field="vin"
            ) from exc

    def _guarded_write(
        self,
        card: Card,
        actions: list[Action],
        event: CardEvent,
        *,
        same_state: bool,
        msisdn: str | None = None,
    ) -> None:
        """Update the card if it is still at the version read, and append ``event``, in one transaction.

        A write that lost to another (condition failed) is a ``Conflict``. A transaction DynamoDB
        cancelled because another one was in flight on the same item (``TransactionConflict``) is
        retried with jittered backoff: then either it commits or its condition tells it lost.
        """
        condition = CardModel.version == card.version
        if same_state:
            condition &= CardModel.state == card.state.value
        for attempt in range(TRANSACT_ATTEMPTS):
            try:
                with TransactWrite(connection=CardModel._get_connection().connection) as tx:
                    tx.update(
                        CardModel(card.iccid),
                        actions=actions,
                        condition=condition,
                        add_version_condition=False,
                    )
                    tx.save(event_item(event), condition=CardHistoryModel.seq.does_not_exist())
                    if msisdn is not None:  # the number moves with the card: new one held, old one freed
                        tx.save(
                            MsisdnModel(msisdn, iccid=card.iccid, claimed_at=event.at),
                            condition=MsisdnModel.msisdn.does_not_exist() | (MsisdnModel.iccid == card.iccid),
                        )
                        tx.delete(
                            MsisdnModel(card.msisdn),
                            condition=MsisdnModel.msisdn.does_not_exist() | (MsisdnModel.iccid == card.iccid),
                        )
                return
            except TransactWriteError as exc:
                codes = {r.code for r in exc.cancellation_reasons if r is not None}
                if codes and codes <= RETRYABLE and attempt + 1 < TRANSACT_ATTEMPTS:
                    time.sleep(random.uniform(0, 0.05 * 2**attempt))
                    continue
                if codes <= RETRYABLE | {"ConditionalCheckFailed"} and codes:
                    raise _changed(card.iccid) from exc
                raise

    def update_card_facts(self, card: Card, msisdn: str, event: CardEvent) -> Card:
        actions: list[Action] = [
            CardModel.msisdn.set(msisdn),
            CardModel.version.set(event.seq),
            CardModel.updated_at.set(event.at),
        ]
        self._guarded_write(card, actions, event, same_state=False, msisdn=msisdn)
        return card.model_copy(update={"msisdn": msisdn, "version": event.seq, "updated_at": event.at})

    def transition(self, card: Card, target: CardState, event: CardEvent, holder_id: str | None) -> Card:
        actions: list[Action] = [
            CardModel.state.set(target.value),
            CardModel.functions.set([f.value for f in functions_for(target)]),
            CardModel.version.set(event.seq),
            CardModel.updated_at.set(event.at),
            CardModel.holder_id.set(holder_id) if holder_id else CardModel.holder_id.remove(),
        ]
        after = card.model_copy(
            update={
                "state": target,
                "functions": functions_for(target),
                "version": event.seq,
                "holder_id": holder_id,
                "updated_at": event.at,
            }
        )
        actions.append(backfill_action(after))
        self._guarded_write(card, actions, event, same_state=True)
        return after

    def history(self, iccid: str) -> list[CardEvent]:
        return [_event(m) for m in CardHistoryModel.query(iccid, scan_index_forward=True)]
