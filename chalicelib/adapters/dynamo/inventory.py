"""The inventory repository on DynamoDB (pynamodb)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime

from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamo.models import CardHistoryModel, CardModel, VehicleModel
from chalicelib.adapters.ports import InventoryRepository
from chalicelib.domain.errors import Conflict
from chalicelib.domain.inventory import Card, CardEvent, CardFunction, CardState, Vehicle, functions_for
from chalicelib.domain.validators import Operator


def _now() -> datetime:
    return datetime.now(UTC)


def vehicle_item(v: Vehicle, at: datetime) -> VehicleModel:
    return VehicleModel(
        v.vin,
        engine_no=v.engine_no,
        brand=v.brand,
        model=v.model,
        colour=v.colour,
        production_date=v.production_date.isoformat() if v.production_date else None,
        dealer_code=v.dealer_code,
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
    )


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
        for key in CardModel.by_msisdn.query(msisdn, limit=1):
            return self.get_card(key.iccid)
        return None

    def get_vehicles(self, vins: Iterable[str]) -> dict[str, Vehicle]:
        return {m.vin: _vehicle(m) for m in VehicleModel.batch_get(list(vins))}

    def get_cards(self, iccids: Iterable[str]) -> dict[str, Card]:
        return {m.iccid: _card(m) for m in CardModel.batch_get(list(iccids))}

    def put_new(
        self, vehicles: Sequence[Vehicle], cards: Sequence[Card], events: Sequence[CardEvent]
    ) -> None:
        at = _now()
        if vehicles:
            with VehicleModel.batch_write() as batch:
                for v in vehicles:
                    batch.save(vehicle_item(v, at))
        if cards:
            with CardModel.batch_write() as cbatch:
                for c in cards:
                    cbatch.save(card_item(c, at))
        if events:
            with CardHistoryModel.batch_write() as hbatch:
                for e in events:
                    hbatch.save(event_item(e))

    def update_vehicle(self, vehicle: Vehicle) -> None:
        item = vehicle_item(vehicle, _now())
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
                    VehicleModel.updated_at.set(item.updated_at),
                ],
                condition=VehicleModel.vin.exists(),
            )
        except UpdateError as exc:
            raise Conflict(
                "vehicle.changed", "车辆信息已被修改", "The vehicle changed meanwhile", field="vin"
            ) from exc

    def _transact(self) -> TransactWrite:
        conn = CardModel._get_connection().connection
        return TransactWrite(connection=conn)

    def update_card_facts(self, card: Card, msisdn: str, event: CardEvent) -> Card:
        at = event.at
        item = CardModel(card.iccid)
        try:
            with self._transact() as tx:
                tx.update(
                    item,
                    actions=[
                        CardModel.msisdn.set(msisdn),
                        CardModel.version.set(event.seq),
                        CardModel.updated_at.set(at),
                    ],
                    condition=(CardModel.version == card.version),
                    add_version_condition=False,
                )
                tx.save(event_item(event), condition=CardHistoryModel.seq.does_not_exist())
        except TransactWriteError as exc:
            raise _changed(card.iccid) from exc
        return card.model_copy(update={"msisdn": msisdn, "version": event.seq, "updated_at": at})

    def transition(self, card: Card, target: CardState, event: CardEvent, holder_id: str | None) -> Card:
        at = event.at
        functions = [f.value for f in functions_for(target)]
        item = CardModel(card.iccid)
        actions: list[Action] = [
            CardModel.state.set(target.value),
            CardModel.functions.set(functions),
            CardModel.version.set(event.seq),
            CardModel.updated_at.set(at),
            CardModel.holder_id.set(holder_id) if holder_id else CardModel.holder_id.remove(),
        ]
        try:
            with self._transact() as tx:
                tx.update(
                    item,
                    actions=actions,
                    condition=(CardModel.version == card.version) & (CardModel.state == card.state.value),
                    add_version_condition=False,
                )
                tx.save(event_item(event), condition=CardHistoryModel.seq.does_not_exist())
        except (TransactWriteError, UpdateError) as exc:
            raise _changed(card.iccid) from exc
        return card.model_copy(
            update={
                "state": target,
                "functions": functions_for(target),
                "version": event.seq,
                "holder_id": holder_id,
                "updated_at": at,
            }
        )

    def history(self, iccid: str) -> list[CardEvent]:
        return [_event(m) for m in CardHistoryModel.query(iccid, scan_index_forward=True)]
