"""In-memory fakes of the fleet batch ports (``chalicelib.fleet.batch_ports``) and of what a batch needs
of the flows: batches kept whole with their version checked, vehicle claims, an inventory of vehicle
facts and flows that keep what they are told."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from chalicelib.fleet.batch_ports import BatchStore, FleetInventory, VehicleFacts, VehicleRegistration
from chalicelib.fleet.domain import BatchKind, BatchStatus, FleetBatch, batch_changed, batch_not_found
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import Flow, FlowPurpose, FlowStatus, new_flow


class FakeBatchStore(BatchStore):
    def __init__(self) -> None:
        self.batches: dict[str, FleetBatch] = {}
        self.open_batch: dict[str, str] = {}
        self.registered: dict[str, VehicleRegistration] = {}
        self.saves = 0

    def create(self, batch: FleetBatch) -> None:
        assert batch.batch_id not in self.batches
        self.batches[batch.batch_id] = batch

    def get(self, batch_id: str) -> FleetBatch | None:
        return self.batches.get(batch_id)

    def save(self, batch: FleetBatch, expected_version: int) -> FleetBatch:
        stored = self.batches.get(batch.batch_id)
        if stored is None or stored.version != expected_version:
            raise batch_changed()
        kept = replace(batch, cards_pushed=stored.cards_pushed)
        self.batches[batch.batch_id] = kept
        self.saves += 1
        return kept

    def listing(
        self,
        uscc: str,
        kind: BatchKind | None,
        status: BatchStatus | None,
        limit: int,
        cursor: str | None,
    ) -> tuple[Sequence[FleetBatch], str | None]:
        found = [
            b
            for b in self.batches.values()
            if b.uscc == uscc and (kind is None or b.kind is kind) and (status is None or b.status is status)
        ]
        found.sort(key=lambda b: b.created_at, reverse=True)
        return found[:limit], None

    def add_pushed(self, batch_id: str, delta: int) -> FleetBatch:
        batch = self.batches.get(batch_id)
        if batch is None:
            raise batch_not_found()
        self.batches[batch_id] = replace(batch, cards_pushed=batch.cards_pushed + delta)
        return self.batches[batch_id]

    def claim(self, batch_id: str, vins: Sequence[str]) -> dict[str, str]:
        lost = {}
        for vin in vins:
            holder = self.open_batch.get(vin)
            if holder is not None and holder != batch_id:
                lost[vin] = holder
            else:
                self.open_batch[vin] = batch_id
        return lost

    def release(self, batch_id: str, vins: Iterable[str]) -> None:
        for vin in vins:
            if self.open_batch.get(vin) == batch_id:
                del self.open_batch[vin]

    def claims(self, vins: Iterable[str]) -> dict[str, str]:
        return {v: self.open_batch[v] for v in vins if v in self.open_batch}

    def registrations(self, vins: Iterable[str]) -> dict[str, VehicleRegistration]:
        return {v: self.registered[v] for v in vins if v in self.registered}

    def mark_registered(self, batch: FleetBatch) -> None:
        for vin in batch.vins:
            self.registered[vin] = VehicleRegistration(
                vin, batch.uscc, batch.batch_id, batch.responsible_id_hash
            )

    def mark_deregistered(self, vins: Iterable[str]) -> None:
        for vin in vins:
            self.registered.pop(vin, None)


class FakeFleetInventory(FleetInventory):
    def __init__(self) -> None:
        self.facts: dict[str, VehicleFacts] = {}

    def add(
        self,
        vin: str,
        dealer_code: str | None = "D001",
        states: tuple[str, ...] = ("unregistered",),
        holder: str | None = None,
    ) -> None:
        self.facts[vin] = VehicleFacts(vin, dealer_code, states, holder)

    def vehicles(self, vins: Iterable[str]) -> dict[str, VehicleFacts]:
        return {v: self.facts[v] for v in vins if v in self.facts}


class FakeFlows:
    """Flows kept in a dict; ``notes`` are the evidence entries the batch added."""

    def __init__(self, clock: Any) -> None:
        self.flows: dict[str, Flow] = {}
        self.notes: list[tuple[str, EvidenceKind, dict[str, Any]]] = []
        self._clock = clock

    def open_flow(self, owner: str, purpose: FlowPurpose) -> Flow:
        flow = new_flow(f"f{len(self.flows) + 1:032x}", owner, purpose, self._clock(), timedelta(hours=24))
        self.flows[flow.flow_id] = flow
        return flow

    def find(self, flow_id: str) -> Flow | None:
        return self.flows.get(flow_id)

    def save(self, flow: Flow, **changes: Any) -> Flow:
        updated = flow.model_copy(
            update={**changes, "version": flow.version + 1, "updated_at": self._clock()}
        )
        self.flows[flow.flow_id] = updated
        return updated

    def keep(self, flow: Flow, until: datetime) -> Flow:
        return self.save(flow, status=FlowStatus.VERIFIED, expires_at=until)

    def note(self, flow_id: str, kind: EvidenceKind, actor: str, details: dict[str, Any]) -> None:
        self.notes.append((flow_id, kind, details))
