"""A fleet batch's world over the fakes, for the automatic checks and the approved batch's cards: the
inventory, the card lifecycle with its outbox, the enterprise, the batch's flow, batches and cases that
keep what they are told, an SMS sender and the evidence notes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

from chalicelib.cards.domain.inventory import Card, CardEvent, Vehicle
from chalicelib.cards.lifecycle import Lifecycle
from chalicelib.enterprise.domain import Enterprise, EnterpriseType, LegalPersonType
from chalicelib.fleet.apply import FleetApply, enterprise_id_hash
from chalicelib.fleet.checks import AutomaticChecks, CheckResult
from chalicelib.fleet.domain import BatchKind, BatchStatus, DocumentSlot, FleetBatch
from chalicelib.kernel.errors import Conflict
from chalicelib.kernel.operators import Operator
from chalicelib.kernel.personal import IdType, id_lookup_value
from chalicelib.operators.domain.messages import CallbackOutcome, OperatorCallback
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import (
    CheckName,
    CheckVerdict,
    Flow,
    FlowPurpose,
    FlowStatus,
    TypedIdentity,
)
from chalicelib.verification.domain.readings import BusinessLicence
from tests.fakes.cards import FakeInventory, FakeParties
from tests.fakes.clock import FakeClock
from tests.fakes.crypto import FakeHasher
from tests.fakes.operators import FakeOutboxStore, FakePushQueue
from tests.fakes.sms import FakeSmsSender

MOBILE = Operator.CHINA_MOBILE
USCC = "91110000802100433B"
COMPANY = "北京星河车联科技有限公司"
RESPONSIBLE_ID = "110101199003076632"
SUBMITTER_PHONE = "13800138000"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


class FakeBatches:
    """Batches kept in a dict; ``set_status`` honours ``expected`` like the service."""

    def __init__(self) -> None:
        self.batches: dict[str, FleetBatch] = {}
        self.progress: list[tuple[str, int]] = []

    def put(self, batch: FleetBatch) -> FleetBatch:
        self.batches[batch.batch_id] = batch
        return batch

    def get(self, batch_id: str) -> FleetBatch | None:
        return self.batches.get(batch_id)

    def set_status(
        self,
        batch_id: str,
        status: BatchStatus,
        *,
        reasons: Sequence[str] = (),
        resubmit_documents: Sequence[Any] = (),
        expected: set[BatchStatus],
    ) -> FleetBatch:
        batch = self.batches[batch_id]
        if batch.status not in expected:
            raise Conflict("fleet.wrong_status", "批次状态不允许该操作", "Wrong status")
        return self.put(
            replace(
                batch,
                status=status,
                outcome_reasons=tuple(reasons),
                resubmit_documents=tuple(DocumentSlot(s) for s in resubmit_documents),
                version=batch.version + 1,
            )
        )

    def record_progress(self, batch_id: str, cards_pushed_delta: int) -> FleetBatch:
        self.progress.append((batch_id, cards_pushed_delta))
        batch = self.batches[batch_id]
        return self.put(replace(batch, cards_pushed=batch.cards_pushed + cards_pushed_delta))


@dataclass
class FakeCases:
    """Records every round it is asked to open, and answers with short deadlines."""

    rounds: list[tuple[str, list[CheckResult], str]] = field(default_factory=list)

    def open_round(self, batch: FleetBatch, checks: list[CheckResult], outcome: str) -> dict[str, Any]:
        self.rounds.append((batch.batch_id, checks, outcome))
        return {"outcome": outcome, "remind_after_seconds": 1, "escalate_after_seconds": 2}


@dataclass(frozen=True)
class Message:
    """A task message as the state machine sends it."""

    task: str
    batch_id: str
    chunk: int | None = None
    outcome: str | None = None
    token: str | None = "token"


def licence(uscc: str = USCC, name: str = COMPANY) -> BusinessLicence:
    return BusinessLicence(uscc=uscc, name=name)


class World:
    def __init__(self, enterprise_type: EnterpriseType = EnterpriseType.ENTERPRISE) -> None:
        self.clock = FakeClock()
        self.inventory = FakeInventory()
        self.store = FakeOutboxStore(self.inventory)
        self.queue = FakePushQueue()
        ids = count()
        self.lifecycle = Lifecycle(
            self.inventory, self.store, self.queue, clock=self.clock, new_id=lambda: f"{next(ids):032x}"
        )
        self.hasher = FakeHasher()
        self.parties = FakeParties()
        self.sms = FakeSmsSender()
        self.batches = FakeBatches()
        self.cases = FakeCases()
        self.notes: list[tuple[str, EvidenceKind, str, dict[str, Any]]] = []
        self.enterprise = Enterprise(
            uscc=USCC,
            company_name=COMPANY,
            enterprise_type=enterprise_type,
            legal_person_type=LegalPersonType.LEGAL_REPRESENTATIVE,
            representative_name_masked="李*国",
            representative_person_hash="h",
            address="北京市海淀区中关村大街27号8层801",
            legal_account_id="acct-legal",
            created_at=self.clock(),
        )
        self.flows: dict[str, Flow] = {}
        self.photos: dict[str, bytes] = {}
        self.licence: BusinessLicence = licence()
        #: The open batch holding each claimed VIN.
        self.claims: dict[str, str] = {}
        self._vehicles = count(1)

    # -- set-up ---------------------------------------------------------------------------------------

    def vehicles(self, n: int, *, cards: int = 1, operator: Operator = MOBILE) -> list[str]:
        vins = []
        for _ in range(n):
            k = next(self._vehicles)
            vin = f"LSVAU218XN2{k:06d}"
            vehicle = Vehicle(vin=vin, engine_no=f"E{k:08d}", brand="启航", model="QH-5", colour="白")
            made = [
                Card(
                    iccid=f"89860{operator.value[-1:]}{k:08d}{i:02d}",
                    msisdn=f"14600{k:06d}{i:02d}",
                    operator=operator,
                    vin=vin,
                )
                for i in range(cards)
            ]
            events = [
                CardEvent(
                    iccid=c.iccid, seq=1, at=self.clock(), event="imported", to_state=c.state, actor="t"
                )
                for c in made
            ]
            self.inventory.put_new([vehicle], made, events)
            vins.append(vin)
        return vins

    def flow(
        self, *, documents: Sequence[str] | None = None, face: CheckVerdict = CheckVerdict.PASSED
    ) -> Flow:
        keys = (
            documents
            if documents is not None
            else ["business_licence", "authorization_letter", "custody_agreement", "id_front", "id_back"]
        )
        stored = {k: f"flows/f1/{k}.jpg" for k in keys}
        for key in stored.values():
            self.photos[key] = JPEG
        flow = Flow(
            flow_id=f"f{len(self.flows) + 1}",
            owner="acct-agent",
            purpose=FlowPurpose.ENTERPRISE_REGISTRATION,
            status=FlowStatus.VERIFIED,
            version=3,
            person_hash=self.responsible_hash,
            identity=TypedIdentity(
                id_type="resident_id",
                id_number=RESPONSIBLE_ID,
                name="王小明",
                address="北京市东城区景山前街4号",
            ),
            documents=stored,
            checks={
                CheckName.OCR_ID_FRONT: CheckVerdict.PASSED,
                CheckName.OCR_ID_BACK: CheckVerdict.PASSED,
                CheckName.OCR_BUSINESS_LICENCE: CheckVerdict.PASSED,
                CheckName.FACE: face,
            },
            created_at=self.clock(),
            updated_at=self.clock(),
            expires_at=self.clock() + timedelta(days=3650),
        )
        self.flows[flow.flow_id] = flow
        return flow

    @property
    def responsible_hash(self) -> str:
        return self.hasher.digest(id_lookup_value(IdType.RESIDENT_ID, RESPONSIBLE_ID))

    @property
    def enterprise_hash(self) -> str:
        return enterprise_id_hash(self.hasher, USCC)

    def batch(
        self,
        vins: Sequence[str],
        *,
        kind: BatchKind = BatchKind.REGISTRATION,
        status: BatchStatus = BatchStatus.SUBMITTED,
        typed: str = COMPANY,
        flow: Flow | None = None,
    ) -> FleetBatch:
        at = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
        flow = flow or self.flow()
        return self.batches.put(
            FleetBatch(
                batch_id=f"fb_{len(self.batches.batches) + 1:024x}",
                uscc=USCC,
                company_name=COMPANY,
                kind=kind,
                status=status,
                created_by="acct-agent",
                created_at=at,
                updated_at=at,
                vins=tuple(vins),
                flow_id=flow.flow_id,
                responsible_phone_verified=True,
                responsible_name_masked="王**",
                responsible_id_hash=self.responsible_hash,
                typed_company_name=typed,
                submitted_at=at,
            )
        )

    # -- the services ---------------------------------------------------------------------------------

    def checks(self) -> AutomaticChecks:
        return AutomaticChecks(
            batches=self.batches,
            cases=self.cases,
            find_flow=self.flows.get,
            enterprise_of=lambda uscc: self.enterprise if uscc == self.enterprise.uscc else None,
            read_document=self.photos.get,
            read_licence=lambda photo: self.licence,
            inventory=self.inventory,
            counts=self.store,
            enterprise_hash=lambda uscc: enterprise_id_hash(self.hasher, uscc),
            claims=lambda vins: {v: self.claims[v] for v in vins if v in self.claims},
        )

    def apply(self) -> FleetApply:
        return FleetApply(
            batches=self.batches,
            find_flow=self.flows.get,
            enterprise_of=lambda uscc: self.enterprise if uscc == self.enterprise.uscc else None,
            parties=self.parties,
            lifecycle=self.lifecycle,
            inventory=self.inventory,
            bookkeeping=self.store,
            hasher=self.hasher,
            sms=self.sms,
            phone_of=lambda account_id: SUBMITTER_PHONE if account_id == "acct-agent" else None,
            note=lambda flow_id, kind, actor, details: self.notes.append((flow_id, kind, actor, details)),
            notices_sent=lambda flow_id: [
                d for f, k, _, d in self.notes if f == flow_id and k is EvidenceKind.SMS_SENT
            ],
        )

    def card(self, iccid: str) -> Card:
        card = self.inventory.get_card(iccid)
        assert card is not None
        return card

    def accept(self, iccid: str) -> None:
        """The operator accepts the card's current push."""
        message_id = self.store.lifecycle(iccid).message_id
        assert message_id is not None
        self.lifecycle.apply_callback(
            OperatorCallback(
                callback_id=f"cb-{message_id}",
                message_id=message_id,
                operator=self.card(iccid).operator,
                iccid=iccid,
                outcome=CallbackOutcome.ACCEPTED,
                decided_at=self.clock(),
            )
        )

    def cards_of(self, vins: Sequence[str]) -> list[Card]:
        return [c for vin in vins for c in self.inventory.cards_of_vehicle(vin)]
