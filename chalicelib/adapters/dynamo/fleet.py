"""Fleet batches and the claims of their vehicles on DynamoDB, and the inventory as batches read it.

A batch is written whole, conditional on the version read (``fleet.batch_changed`` when it moved
meanwhile); the cards pushed are added atomically. A vehicle is claimed by one open batch at most: each
claim is a conditional write on the VIN's item.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from pynamodb.exceptions import PutError, UpdateError

from chalicelib.adapters.dynamo.agents import decode_cursor, encode_cursor
from chalicelib.adapters.dynamo.base import utc_aware
from chalicelib.adapters.dynamo.models_fleet import FleetBatchModel, FleetVehicleModel
from chalicelib.cards.ports import InventoryRepository, PartyRepository
from chalicelib.fleet.batch_ports import BatchStore, FleetInventory, VehicleFacts, VehicleRegistration
from chalicelib.fleet.domain import (
    BatchKind,
    BatchStatus,
    DocumentSlot,
    FleetBatch,
    batch_changed,
    batch_not_found,
)
from chalicelib.kernel.crypto import FieldCipher, SealedFields
from chalicelib.kernel.personal import PartyKind, mask_phone

_CONDITION_FAILED = "ConditionalCheckFailedException"


def _failed(err: PutError | UpdateError) -> bool:
    return err.cause_response_code == _CONDITION_FAILED


class DynamoBatchStore(BatchStore):
    def __init__(self, cipher: FieldCipher) -> None:
        self._cipher = cipher

    @staticmethod
    def _context(batch_id: str) -> str:
        return f"fleet-batches#{batch_id}"

    def _batch(self, item: FleetBatchModel) -> FleetBatch:
        phone = None
        if item.data_key is not None and item.responsible_phone_enc is not None:
            phone = self._cipher.open(
                self._context(item.batch_id),
                SealedFields(item.data_key, {"phone": item.responsible_phone_enc}),
            )["phone"]
        return FleetBatch(
            batch_id=item.batch_id,
            uscc=item.uscc,
            company_name=item.company_name,
            kind=BatchKind(item.kind),
            status=BatchStatus(item.status),
            created_by=item.created_by,
            created_at=utc_aware(item.created_at),
            updated_at=utc_aware(item.updated_at),
            vins=tuple(item.vins or ()),
            dealer_code=item.dealer_code,
            flow_id=item.flow_id,
            responsible_phone_verified=bool(item.responsible_phone_verified),
            responsible_name_masked=item.responsible_name_masked,
            responsible_id_hash=item.responsible_id_hash,
            consents=dict(json.loads(item.consents_json or "{}")),
            typed_company_name=item.typed_company_name,
            submitted_at=utc_aware(item.submitted_at) if item.submitted_at else None,
            round=int(item.round or 1),
            execution_arn=item.execution_arn,
            resubmit_documents=tuple(DocumentSlot(s) for s in item.resubmit_documents or ()),
            outcome_reasons=tuple(item.outcome_reasons or ()),
            cards_total=int(item.cards_total or 0),
            cards_pushed=int(item.cards_pushed or 0),
            version=int(item.version),
            responsible_phone=phone,
            decision_documents=dict(json.loads(item.decision_documents_json or "{}")),
        )

    def _item(self, batch: FleetBatch) -> FleetBatchModel:
        sealed = (
            self._cipher.seal(self._context(batch.batch_id), {"phone": batch.responsible_phone})
            if batch.responsible_phone
            else None
        )
        return FleetBatchModel(
            batch.batch_id,
            uscc=batch.uscc,
            created_key=f"{batch.created_at.isoformat()}#{batch.batch_id}",
            company_name=batch.company_name,
            kind=batch.kind.value,
            status=batch.status.value,
            created_by=batch.created_by,
            created_at=batch.created_at,
            updated_at=batch.updated_at,
            vins=list(batch.vins),
            dealer_code=batch.dealer_code,
            flow_id=batch.flow_id,
            responsible_phone_verified=batch.responsible_phone_verified,
            responsible_phone_masked=mask_phone(batch.responsible_phone) if batch.responsible_phone else None,
            data_key=sealed.data_key if sealed else None,
            responsible_phone_enc=sealed.values["phone"] if sealed else None,
            responsible_name_masked=batch.responsible_name_masked,
            responsible_id_hash=batch.responsible_id_hash,
            consents_json=json.dumps(batch.consents, sort_keys=True),
            typed_company_name=batch.typed_company_name,
            submitted_at=batch.submitted_at,
            round=batch.round,
            execution_arn=batch.execution_arn,
            resubmit_documents=[s.value for s in batch.resubmit_documents],
            outcome_reasons=list(batch.outcome_reasons),
            decision_documents_json=json.dumps(batch.decision_documents, sort_keys=True),
            cards_total=batch.cards_total,
            cards_pushed=batch.cards_pushed,
            version=batch.version,
        )

    def create(self, batch: FleetBatch) -> None:
        try:
            self._item(batch).save(condition=FleetBatchModel.batch_id.does_not_exist())
        except PutError as err:
            if _failed(err):
                raise batch_changed() from err
            raise

    def get(self, batch_id: str) -> FleetBatch | None:
        try:
            item = FleetBatchModel.get(batch_id, consistent_read=True)
        except FleetBatchModel.DoesNotExist:
            return None
        return self._batch(item)

    def save(self, batch: FleetBatch, expected_version: int) -> FleetBatch:
        """Every attribute but the cards pushed (added atomically by ``add_pushed``, which a whole-item
        write would undo) set in one update, conditional on the version read."""
        item = self._item(batch)
        actions: list[Any] = []
        for name, attribute in FleetBatchModel.get_attributes().items():
            if name in ("batch_id", "cards_pushed"):
                continue
            value = getattr(item, name)
            actions.append(attribute.remove() if value is None else attribute.set(value))
        target = FleetBatchModel(batch.batch_id)
        try:
            target.update(actions=actions, condition=FleetBatchModel.version == expected_version)
        except UpdateError as err:
            if _failed(err):
                raise batch_changed() from err
            raise
        return self._batch(target)

    def listing(
        self,
        uscc: str,
        kind: BatchKind | None,
        status: BatchStatus | None,
        limit: int,
        cursor: str | None,
    ) -> tuple[Sequence[FleetBatch], str | None]:
        condition: Any = None
        if kind is not None:
            condition = FleetBatchModel.kind == kind.value
        if status is not None:
            by_status = FleetBatchModel.status == status.value
            condition = by_status if condition is None else condition & by_status
        result = FleetBatchModel.by_enterprise.query(
            uscc,
            filter_condition=condition,
            scan_index_forward=False,
            limit=limit,
            last_evaluated_key=decode_cursor(cursor),
        )
        found = [self._batch(item) for item in result]
        return found, encode_cursor(result.last_evaluated_key)

    def add_pushed(self, batch_id: str, delta: int) -> FleetBatch:
        item = FleetBatchModel(batch_id)
        try:
            item.update(
                actions=[FleetBatchModel.cards_pushed.add(delta)],
                condition=FleetBatchModel.batch_id.exists(),
            )
        except UpdateError as err:
            if _failed(err):
                raise batch_not_found() from err
            raise
        found = self.get(batch_id)
        if found is None:
            raise batch_not_found()
        return found

    def claim(self, batch_id: str, vins: Sequence[str]) -> dict[str, str]:
        lost: dict[str, str] = {}
        for vin in vins:
            try:
                FleetVehicleModel(vin).update(
                    actions=[FleetVehicleModel.open_batch.set(batch_id)],
                    condition=FleetVehicleModel.open_batch.does_not_exist()
                    | (FleetVehicleModel.open_batch == batch_id),
                )
            except UpdateError as err:
                if not _failed(err):
                    raise
                holder = self.claims([vin]).get(vin)
                lost[vin] = holder or ""
        return lost

    def release(self, batch_id: str, vins: Iterable[str]) -> None:
        for vin in vins:
            try:
                FleetVehicleModel(vin).update(
                    actions=[FleetVehicleModel.open_batch.remove()],
                    condition=FleetVehicleModel.open_batch == batch_id,
                )
            except UpdateError as err:
                if not _failed(err):
                    raise

    def _items(self, vins: Iterable[str]) -> list[FleetVehicleModel]:
        keys = sorted(set(vins))
        return list(FleetVehicleModel.batch_get(keys, consistent_read=True)) if keys else []

    def claims(self, vins: Iterable[str]) -> dict[str, str]:
        return {item.vin: item.open_batch for item in self._items(vins) if item.open_batch}

    def registrations(self, vins: Iterable[str]) -> dict[str, VehicleRegistration]:
        return {
            item.vin: VehicleRegistration(
                vin=item.vin,
                uscc=item.registered_uscc,
                batch_id=item.registered_batch or "",
                responsible_id_hash=item.responsible_id_hash,
            )
            for item in self._items(vins)
            if item.registered_uscc
        }

    def mark_registered(self, batch: FleetBatch) -> None:
        for vin in batch.vins:
            FleetVehicleModel(vin).update(
                actions=[
                    FleetVehicleModel.registered_uscc.set(batch.uscc),
                    FleetVehicleModel.registered_batch.set(batch.batch_id),
                    FleetVehicleModel.responsible_id_hash.set(batch.responsible_id_hash or ""),
                ]
            )

    def mark_deregistered(self, vins: Iterable[str]) -> None:
        for vin in vins:
            FleetVehicleModel(vin).update(
                actions=[
                    FleetVehicleModel.registered_uscc.remove(),
                    FleetVehicleModel.registered_batch.remove(),
                    FleetVehicleModel.responsible_id_hash.remove(),
                ]
            )


class InventoryFleetFacts(FleetInventory):
    """The inventory's vehicles, their cards and, for registered cards, the enterprise holding them."""

    def __init__(self, inventory: InventoryRepository, parties: PartyRepository) -> None:
        self._inventory = inventory
        self._parties = parties

    def vehicles(self, vins: Iterable[str]) -> dict[str, VehicleFacts]:
        found = self._inventory.get_vehicles(list(dict.fromkeys(vins)))
        holders: dict[str, str | None] = {}
        facts: dict[str, VehicleFacts] = {}
        for vin, vehicle in found.items():
            cards = self._inventory.cards_of_vehicle(vin)
            holder_uscc = None
            for card in cards:
                if card.holder_id is None:
                    continue
                if card.holder_id not in holders:
                    party = self._parties.get(card.holder_id)
                    holders[card.holder_id] = (
                        party.id_number if party is not None and party.kind is PartyKind.ENTERPRISE else None
                    )
                holder_uscc = holder_uscc or holders[card.holder_id]
            facts[vin] = VehicleFacts(
                vin=vin,
                dealer_code=vehicle.dealer_code,
                card_states=tuple(c.state.value for c in cards),
                holder_uscc=holder_uscc,
            )
        return facts
