"""Building, submitting and resubmitting fleet batches over fakes: the vehicles' own checks (good rows go
on), the 500-vehicle limit, the dealer, the phone, the consents, the steps read from the flow, the
submission (company name as on the licence, the workflow started once, a crash between the two
recovered), the review side's status changes and a resubmission of replaced documents."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.core.auth import Principal, Role
from chalicelib.enterprise.grants import not_acting
from chalicelib.fleet.batches import CUSTODY_TEXT, FleetBatches, LicenceReading
from chalicelib.fleet.csv_rows import parse_pasted
from chalicelib.fleet.domain import (
    CHUNK_VEHICLES,
    MAX_BATCH_VEHICLES,
    BatchKind,
    BatchStatus,
    BatchStep,
    DocumentSlot,
    FleetBatch,
)
from chalicelib.kernel.errors import Conflict, DomainError, InvalidField, NotFound
from chalicelib.sms.codes import SmsCodeService
from chalicelib.sms.domain import SmsPurpose
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import CheckName, CheckVerdict, FlowStatus, TypedIdentity
from tests.fakes.clock import FakeClock
from tests.fakes.crypto import FakeHasher
from tests.fakes.fleet_batches import FakeBatchStore, FakeFleetInventory, FakeFlows
from tests.fakes.sms import FakeSmsCodeStore, FakeSmsSender
from tests.fakes.workflow import FakeWorkflow
from tests.unit.test_validators import with_vin_check

USCC = "91310000MA1FL0000N"
COMPANY = "上海甲运输有限公司（车队）"
OTHER_USCC = "91110108MA0000000A"
PHONE = "13900139000"
CONSENTS = {"registration_agreement": "v2", "responsibility_notice": "v2"}


def vin(n: int) -> str:
    return with_vin_check(f"LSVAA4180E{n:07d}")


def principal(subject: str) -> Principal:
    return Principal(subject=subject, roles=frozenset({Role.ENTERPRISE_AGENT}), token_id="t")


class World:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.store = FakeBatchStore()
        self.inventory = FakeFleetInventory()
        self.flows = FakeFlows(self.clock)
        self.sender = FakeSmsSender()
        self.codes = SmsCodeService(FakeSmsCodeStore(), self.sender, FakeHasher(), clock=self.clock)
        self.actions: list[tuple[str, str, str]] = []
        self.workflow = FakeWorkflow()
        self.workflow_down = False
        self.resubmissions: list[str] = []
        self.licence = LicenceReading(USCC, "上海甲运输有限公司(车队)")
        self.acting = {"agent-a": USCC, "legal-a": USCC, "agent-b": OTHER_USCC}
        self.batches = FleetBatches(
            self.store,
            inventory=self.inventory,
            flows=self.flows,
            codes=self.codes,
            actions=self,
            acting=self._acting,
            company_of=lambda uscc: {USCC: COMPANY, OTHER_USCC: "北京乙物流有限公司"}.get(uscc),
            read_licence=lambda flow: self.licence,
            workflow=self._workflow,
            resubmitted=self.resubmissions.append,
            consent_versions=lambda: dict(CONSENTS),
            clock=self.clock,
        )

    def record(self, uscc: str, who: Principal, action: str, details: Any = None) -> None:
        self.actions.append((uscc, who.subject, action))

    def _acting(self, who: Principal) -> str:
        if who.subject not in self.acting:
            raise not_acting()
        return self.acting[who.subject]

    def _workflow(self) -> FakeWorkflow:
        if self.workflow_down:
            raise RuntimeError("states endpoint unreachable")
        return self.workflow

    # -- a batch walked to just before the submit ------------------------------------------------------

    def ready(self, kind: BatchKind = BatchKind.REGISTRATION, vehicles: int = 3) -> FleetBatch:
        agent = principal("agent-a")
        for n in range(1, vehicles + 1):
            self.inventory.add(vin(n), "D001" if n > 1 else "D002")
        batch = self.batches.create(agent, kind)
        self.batches.add_vehicles(
            agent, batch.batch_id, parse_pasted([vin(n) for n in range(1, vehicles + 1)])
        )
        if kind is BatchKind.REGISTRATION:
            self.batches.choose_dealer(agent, batch.batch_id, "D001")
            self.batches.send_phone_code(agent, batch.batch_id, PHONE)
            self.batches.verify_phone(agent, batch.batch_id, PHONE, self.sender.last_code(PHONE))
            self.batches.accept_consents(agent, batch.batch_id, {CUSTODY_TEXT: "v1", **CONSENTS})
        self.flow_done(batch)
        found = self.store.get(batch.batch_id)
        assert found is not None
        return found

    def flow_done(self, batch: FleetBatch, person: str = "110105194912310029") -> None:
        assert batch.flow_id is not None
        flow = self.flows.flows[batch.flow_id]
        identity = TypedIdentity(
            id_type="resident_id", id_number=person, name="张三", uscc=USCC, company_name=COMPANY
        )
        docs = {k: f"{k}/1" for k in ("id_front", "id_back", "business_licence", "authorization_letter")}
        if batch.kind is BatchKind.REGISTRATION:
            docs["custody_agreement"] = "custody_agreement/1"
        checks = dict.fromkeys(
            (
                CheckName.OCR_ID_FRONT,
                CheckName.OCR_ID_BACK,
                CheckName.OCR_BUSINESS_LICENCE,
                CheckName.AUTHORITY,
                CheckName.FACE,
            ),
            CheckVerdict.PASSED,
        )
        self.flows.save(
            flow, identity=identity, person_hash=FakeHasher().digest(person), documents=docs, checks=checks
        )


AGENT = principal("agent-a")
OTHER = principal("agent-b")


@pytest.fixture
def w() -> World:
    return World()


def test_good_rows_go_on_and_each_bad_row_is_told_why(w: World) -> None:
    w.inventory.add(vin(1))
    w.inventory.add(vin(2), states=("registered",))
    w.inventory.add(vin(3))
    w.inventory.add(vin(4))
    other = w.batches.create(principal("legal-a"), BatchKind.REGISTRATION)
    w.batches.add_vehicles(principal("legal-a"), other.batch_id, parse_pasted([vin(4)]))
    batch = w.batches.create(AGENT, BatchKind.REGISTRATION)
    added = w.batches.add_vehicles(
        AGENT, batch.batch_id, parse_pasted([vin(1), vin(2), vin(5), vin(4), vin(3)])
    )
    assert added.added == (vin(1), vin(3))
    codes = [(r.line, r.error.code if r.error else None) for r in added.rows]
    assert codes == [
        (1, None),
        (2, "fleet.vehicle_registered"),
        (3, "fleet.vehicle_unknown"),
        (4, "fleet.vehicle_in_open_batch"),
        (5, None),
    ]
    again = w.batches.add_vehicles(AGENT, batch.batch_id, parse_pasted([vin(1)]))
    assert again.rows[0].error is not None
    assert again.rows[0].error.code == "fleet.vehicle_already_in_batch"
    assert w.store.open_batch[vin(1)] == batch.batch_id
    assert (USCC, "agent-a", "fleet.vehicles_added") in w.actions


def test_more_than_500_vehicles_are_refused_with_the_count_and_nothing_is_added(w: World) -> None:
    for n in range(1, MAX_BATCH_VEHICLES + 2):
        w.inventory.add(vin(n))
    batch = w.batches.create(AGENT, BatchKind.REGISTRATION)
    w.batches.add_vehicles(AGENT, batch.batch_id, parse_pasted([vin(1)]))
    with pytest.raises(InvalidField) as refused:
        w.batches.add_vehicles(
            AGENT, batch.batch_id, parse_pasted([vin(n) for n in range(2, MAX_BATCH_VEHICLES + 2)])
        )
    assert (refused.value.code, refused.value.details["count"]) == ("fleet.batch_too_large", 501)
    stored = w.store.get(batch.batch_id)
    assert stored is not None
    assert stored.vins == (vin(1),)
    assert set(w.store.open_batch) == {vin(1)}


def test_a_de_registration_takes_only_vehicles_registered_to_the_enterprise(w: World) -> None:
    w.inventory.add(vin(1), states=("registered",), holder=USCC)
    w.inventory.add(vin(2), states=("registered",), holder=OTHER_USCC)
    w.inventory.add(vin(3))
    batch = w.batches.create(AGENT, BatchKind.DEREGISTRATION)
    added = w.batches.add_vehicles(AGENT, batch.batch_id, parse_pasted([vin(1), vin(2), vin(3)]))
    assert added.added == (vin(1),)
    assert [r.error.code for r in added.rows if r.error] == ["fleet.vehicle_not_registered_here"] * 2


def test_another_enterprise_cannot_see_or_change_a_batch(w: World) -> None:
    batch = w.batches.create(AGENT, BatchKind.REGISTRATION)
    for attempt in (
        lambda: w.batches.batch_of(OTHER, batch.batch_id),
        lambda: w.batches.add_vehicles(OTHER, batch.batch_id, parse_pasted([vin(1)])),
        lambda: w.batches.submit(OTHER, batch.batch_id, COMPANY),
    ):
        with pytest.raises(NotFound) as refused:
            attempt()
        assert refused.value.code == "fleet.batch_not_found"
    assert [b.batch_id for b in w.batches.listing(OTHER)[0]] == []
    assert [b.batch_id for b in w.batches.listing(principal("legal-a"))[0]] == [batch.batch_id]


def test_only_a_dealer_that_sold_vehicles_of_the_batch_may_be_chosen(w: World) -> None:
    w.inventory.add(vin(1), "D001")
    w.inventory.add(vin(2), "D001")
    w.inventory.add(vin(3), "D009")
    batch = w.batches.create(AGENT, BatchKind.REGISTRATION)
    w.batches.add_vehicles(AGENT, batch.batch_id, parse_pasted([vin(1), vin(2), vin(3)]))
    assert [(d.dealer_code, d.vehicles) for d in w.batches.dealers(AGENT, batch.batch_id)] == [
        ("D001", 2),
        ("D009", 1),
    ]
    with pytest.raises(InvalidField) as refused:
        w.batches.choose_dealer(AGENT, batch.batch_id, "D777")
    assert (refused.value.code, refused.value.field) == ("fleet.dealer_not_seller", "dealer_code")
    assert w.batches.choose_dealer(AGENT, batch.batch_id, "D009").dealer_code == "D009"


def test_the_phone_is_verified_by_its_code_and_outdated_consents_are_refused(w: World) -> None:
    batch = w.batches.create(AGENT, BatchKind.REGISTRATION)
    w.batches.send_phone_code(AGENT, batch.batch_id, PHONE)
    with pytest.raises(DomainError):
        w.batches.verify_phone(AGENT, batch.batch_id, PHONE, "000000")
    verified = w.batches.verify_phone(AGENT, batch.batch_id, PHONE, w.sender.last_code(PHONE))
    assert (verified.responsible_phone_verified, verified.responsible_phone) == (True, PHONE)
    with pytest.raises(InvalidField) as refused:
        w.batches.accept_consents(
            AGENT, batch.batch_id, {CUSTODY_TEXT: "v1", **CONSENTS, "responsibility_notice": "v1"}
        )
    assert refused.value.code == "consent.outdated"
    accepted = w.batches.accept_consents(AGENT, batch.batch_id, {CUSTODY_TEXT: "v1", **CONSENTS})
    assert accepted.consents == {CUSTODY_TEXT: "v1", **CONSENTS}
    assert [n[1] for n in w.flows.notes] == [EvidenceKind.SMS_CHECKED, EvidenceKind.CONSENT_GIVEN]


def test_a_submit_with_steps_missing_names_them(w: World) -> None:
    w.inventory.add(vin(1))
    batch = w.batches.create(AGENT, BatchKind.REGISTRATION)
    w.batches.add_vehicles(AGENT, batch.batch_id, parse_pasted([vin(1)]))
    progress = w.batches.progress(AGENT, batch.batch_id)
    assert progress.step is BatchStep.DEALER
    with pytest.raises(Conflict) as refused:
        w.batches.submit(AGENT, batch.batch_id, COMPANY)
    assert refused.value.code == "fleet.steps_missing"
    assert refused.value.details["missing"][:3] == ["dealer", "responsible_phone", "business_licence"]


def test_a_name_one_character_off_is_refused_and_the_right_one_starts_the_workflow_once(w: World) -> None:
    batch = w.ready()
    with pytest.raises(InvalidField) as refused:
        w.batches.submit(AGENT, batch.batch_id, "上海甲运输有限公司（车对）")
    assert (refused.value.code, refused.value.field) == ("fleet.company_name_mismatch", "company_name")
    assert w.store.get(batch.batch_id) == batch
    assert w.workflow.starts == 0
    # Full-width brackets and spaces are the same name
    submitted = w.batches.submit(AGENT, batch.batch_id, " 上海甲运输有限公司 (车队) ")
    assert submitted.status is BatchStatus.SUBMITTED
    assert submitted.execution_arn == w.workflow.executions[batch.batch_id].arn
    assert w.workflow.executions[batch.batch_id].payload == {
        "batch_id": batch.batch_id,
        "kind": "registration",
    }
    assert (submitted.responsible_name_masked, submitted.cards_total) == ("张*", 3)
    assert submitted.responsible_id_hash == FakeHasher().digest("110105194912310029")
    assert w.flows.flows[str(batch.flow_id)].status is FlowStatus.VERIFIED
    assert EvidenceKind.FLEET_BATCH_SUBMITTED in [n[1] for n in w.flows.notes]
    with pytest.raises(Conflict):
        w.batches.submit(AGENT, batch.batch_id, COMPANY)
    assert w.workflow.starts == 1


def test_a_submit_whose_workflow_did_not_start_is_kept_and_a_retry_starts_it(w: World) -> None:
    batch = w.ready()
    w.workflow_down = True
    with pytest.raises(RuntimeError):
        w.batches.submit(AGENT, batch.batch_id, COMPANY)
    kept = w.store.get(batch.batch_id)
    assert kept is not None
    assert (kept.status, kept.execution_arn) == (BatchStatus.SUBMITTED, None)
    w.workflow_down = False
    retried = w.batches.submit(AGENT, batch.batch_id, COMPANY)
    assert retried.execution_arn is not None
    assert list(w.workflow.executions) == [batch.batch_id]


def test_a_licence_of_another_enterprise_is_refused_at_submit(w: World) -> None:
    batch = w.ready()
    w.licence = LicenceReading(OTHER_USCC, COMPANY)
    with pytest.raises(InvalidField) as refused:
        w.batches.submit(AGENT, batch.batch_id, COMPANY)
    assert (refused.value.code, refused.value.field) == ("fleet.licence_mismatch", "business_licence")


def test_the_review_side_moves_the_status_only_from_what_it_expects(w: World) -> None:
    batch = w.batches.submit(AGENT, w.ready().batch_id, COMPANY)
    with pytest.raises(Conflict) as refused:
        w.batches.set_status(batch.batch_id, BatchStatus.APPROVED, expected={BatchStatus.IN_REVIEW})
    assert refused.value.code == "fleet.wrong_status"
    w.batches.set_status(batch.batch_id, BatchStatus.IN_REVIEW, expected={BatchStatus.SUBMITTED})
    w.batches.set_status(batch.batch_id, BatchStatus.APPROVED, expected={BatchStatus.IN_REVIEW})
    assert w.batches.record_progress(batch.batch_id, 2).cards_pushed == 2
    assert w.batches.record_progress(batch.batch_id, 1).cards_pushed == 3
    done = w.batches.set_status(batch.batch_id, BatchStatus.COMPLETED, expected={BatchStatus.APPROVED})
    assert (done.status, done.cards_pushed) == (BatchStatus.COMPLETED, 3)
    assert w.store.open_batch == {}
    assert w.store.registered[vin(1)].responsible_id_hash == done.responsible_id_hash


def test_a_resubmission_needs_the_named_documents_replaced_and_resumes_the_review(w: World) -> None:
    batch = w.batches.submit(AGENT, w.ready().batch_id, COMPANY)
    w.batches.set_status(batch.batch_id, BatchStatus.IN_REVIEW, expected={BatchStatus.SUBMITTED})
    asked = w.batches.set_status(
        batch.batch_id,
        BatchStatus.RESUBMISSION_REQUESTED,
        reasons=("letter_unreadable",),
        resubmit_documents=(DocumentSlot.AUTHORIZATION_LETTER,),
        expected={BatchStatus.IN_REVIEW},
    )
    assert asked.decision_documents == {"authorization_letter": "authorization_letter/1"}
    flow = w.flows.flows[str(batch.flow_id)]
    assert flow.status is FlowStatus.OPEN
    with pytest.raises(Conflict) as refused:
        w.batches.resubmit(AGENT, batch.batch_id)
    assert (refused.value.code, refused.value.details["documents"]) == (
        "fleet.documents_not_replaced",
        ["authorization_letter"],
    )
    w.flows.save(flow, documents={**flow.documents, "authorization_letter": "authorization_letter/2"})
    again = w.batches.resubmit(AGENT, batch.batch_id)
    assert (again.status, again.round, again.outcome_reasons) == (BatchStatus.SUBMITTED, 2, ())
    assert w.resubmissions == [batch.batch_id]


def test_a_de_registration_by_another_than_the_original_responsible_person_is_refused(w: World) -> None:
    registered = w.batches.submit(AGENT, w.ready().batch_id, COMPANY)
    for status, before in (
        (BatchStatus.IN_REVIEW, BatchStatus.SUBMITTED),
        (BatchStatus.APPROVED, BatchStatus.IN_REVIEW),
        (BatchStatus.COMPLETED, BatchStatus.APPROVED),
    ):
        w.batches.set_status(registered.batch_id, status, expected={before})
    w.inventory.facts = {
        v: w.inventory.facts[v].__class__(v, "D001", ("registered",), USCC) for v in registered.vins
    }
    leaving = w.batches.create(AGENT, BatchKind.DEREGISTRATION)
    w.batches.add_vehicles(AGENT, leaving.batch_id, parse_pasted(list(registered.vins)))
    w.flow_done(leaving, person="11010519491231002X")
    with pytest.raises(InvalidField) as refused:
        w.batches.submit(AGENT, leaving.batch_id, COMPANY)
    assert (refused.value.code, refused.value.field) == ("fleet.not_original_responsible", "responsible_id")
    w.flow_done(leaving)
    assert w.batches.submit(AGENT, leaving.batch_id, COMPANY).status is BatchStatus.SUBMITTED


def test_chunks_are_the_batch_vehicles_in_order() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 3, 2, tzinfo=UTC)
    vins = tuple(vin(n) for n in range(1, 2 * CHUNK_VEHICLES + 4))
    batch = FleetBatch(
        "fb_" + "0" * 24, USCC, COMPANY, BatchKind.REGISTRATION, BatchStatus.APPROVED, "a", now, now, vins
    )
    assert FleetBatches.vehicles_of_chunk(batch, 0) == vins[:CHUNK_VEHICLES]
    assert FleetBatches.vehicles_of_chunk(batch, 2) == vins[2 * CHUNK_VEHICLES :]
    assert FleetBatches.vehicles_of_chunk(batch, 3) == ()
    assert batch.chunks == 3


def test_a_vehicle_taken_out_of_the_draft_is_free_for_another_batch(w: World) -> None:
    w.inventory.add(vin(1))
    batch = w.batches.create(AGENT, BatchKind.REGISTRATION)
    w.batches.add_vehicles(AGENT, batch.batch_id, parse_pasted([vin(1)]))
    assert w.batches.remove_vehicle(AGENT, batch.batch_id, vin(1).lower()).vins == ()
    with pytest.raises(NotFound):
        w.batches.remove_vehicle(AGENT, batch.batch_id, vin(1))
    other = w.batches.create(principal("legal-a"), BatchKind.REGISTRATION)
    assert w.batches.add_vehicles(principal("legal-a"), other.batch_id, parse_pasted([vin(1)])).added == (
        vin(1),
    )


def test_a_phone_code_given_for_a_submitted_batch_is_refused_and_not_spent(w: World) -> None:
    batch = w.batches.submit(AGENT, w.ready().batch_id, COMPANY)
    w.clock.advance(minutes=2)  # past the resend interval of the code the batch was built with
    w.codes.send(PHONE, SmsPurpose.FLEET_RESPONSIBLE, caller=AGENT.subject)
    code = w.sender.last_code(PHONE)
    with pytest.raises(Conflict) as refused:
        w.batches.verify_phone(AGENT, batch.batch_id, PHONE, code)
    assert refused.value.code == "fleet.wrong_status"
    draft = w.batches.create(AGENT, BatchKind.REGISTRATION)
    assert w.batches.verify_phone(AGENT, draft.batch_id, PHONE, code).responsible_phone_verified
