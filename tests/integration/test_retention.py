"""Retention by 第十八条, through the API and the purge schedule with the clock moved (no sleeping):
materials are kept while the card is in service to its holder and two years after that service ends,
then purged (every stored version, sealed personal fields, the party) with a purge record left; a card
back in service with the same person keeps them; two purges at once write one record; an abandoned
flow's evidence keeps no personal facts."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from chalicelib.adapters.dynamo.models import EvidenceModel, FlowModel, PartyModel, RegistrationModel
from chalicelib.adapters.dynamo.models_retention import RetentionModel
from chalicelib.adapters.dynamo.retention import DynamoMaterials, DynamoRetentionStore
from chalicelib.adapters.s3.documents import S3DocumentStore
from chalicelib.cards.holders import holder_from_party
from chalicelib.core import deps
from chalicelib.core.aws import client
from chalicelib.core.settings import get_settings
from chalicelib.kernel.personal import IdType, Party
from chalicelib.operators.domain.messages import CallbackOutcome
from chalicelib.retention.domain import PurgeReport, RetentionPolicy
from chalicelib.retention.service import Retention
from chalicelib.verification.domain.documents import DocumentKind
from tests.face_photos import FACES
from tests.fakes.clock import FakeClock
from tests.integration.test_registration_flow import (
    OWNER,
    PHONE,
    REG,
    answer_card,
    register,
    sms_code,
)
from tests.integration.test_swap_and_deregistration_api import deregistration_submitted
from tests.integration.test_verification_api import CARD_PORTRAIT, call, upload
from tests.synthetic_documents import (
    PERSON_ADDRESS,
    PERSON_ID_NUMBER,
    PERSON_NAME,
    id_front,
    require_cjk_font,
)

pytestmark = pytest.mark.skipif(not FACES.is_dir(), reason=f"face photos not found at {FACES}")

Headers = dict[str, str]
TWO_YEARS_AND_A_DAY = timedelta(days=2 * 366 + 1)


@pytest.fixture
def me(token: Callable[..., str]) -> Headers:
    return {"Authorization": f"Bearer {token('owner', subject=OWNER)}", "Content-Type": "application/json"}


@pytest.fixture
def vin(aws: None, monkeypatch: pytest.MonkeyPatch) -> str:
    from chalicelib.cards.inventory import import_inventory
    from chalicelib.local.synthetic import inventory_rows

    monkeypatch.setenv("CHEKA_SMS_RESEND_SECONDS", "0")
    deps.reset()
    rows = list(inventory_rows(1, seed=57))
    report = import_inventory(list(enumerate(rows, start=2)), deps.inventory_repo(), actor="test")
    assert report.errors == []
    return str(rows[0]["vin"])


def iccid_of(vin: str) -> str:
    (card,) = deps.inventory_repo().cards_of_vehicle(vin)
    return card.iccid


def retention_at(at: datetime) -> Retention:
    """The purge schedule's service as the stage builds it, with its clock at ``at``."""
    s = get_settings()
    documents = S3DocumentStore(client("s3"), s.documents_bucket, s.pii_key_alias)
    return Retention(
        DynamoRetentionStore(),
        DynamoMaterials(documents, deps.evidence_log()),
        policy=RetentionPolicy(years=s.retention_years),
        gates=deps.face_gates(),
        clock=FakeClock(at),
    )


def object_versions(flow_id: str) -> list[str]:
    """Every stored version and delete marker of the flow's documents and raw uploads."""
    s3, bucket = client("s3"), get_settings().documents_bucket
    found = []
    for prefix in (f"documents/{flow_id}/", f"raw/{flow_id}/"):
        listed = s3.list_object_versions(Bucket=bucket, Prefix=prefix)
        found += [v["Key"] for v in listed.get("Versions", []) + listed.get("DeleteMarkers", [])]
    return found


def sealed_entries(flow_id: str) -> int:
    entries = EvidenceModel.query(flow_id, EvidenceModel.seq > 0)
    return sum(1 for e in entries if e.personal_enc is not None or e.data_key is not None)


def a_buyer_asked_for(vin: str) -> tuple[Party, str]:
    """A verified buyer (a party) the OEM pushes a transfer of ``vin``'s card to; the card's ICCID."""
    buyer = Party(
        id_type=IdType.RESIDENT_ID,
        id_number="11010519491231002X",
        name="买家",
        phone="13600002222",
        created_at=datetime.now(UTC),
    )
    deps.party_repo().put(buyer)
    iccid = iccid_of(vin)
    deps.lifecycle().transfer(iccid, holder_from_party(buyer, deps.keyed_hasher()), "admin-1", "test")
    return buyer, iccid


def registered(api: Any, me: Headers, vin: str) -> tuple[str, str, str]:
    """A registration accepted by the operator: (registration id, its flow, the holder party)."""
    reg = register(api, me, vin)
    answer_card(iccid_of(vin), CallbackOutcome.ACCEPTED)
    item = RegistrationModel.get(reg["registration_id"])
    assert item.flow_id
    assert item.party_id
    return item.registration_id, item.flow_id, item.party_id


def test_a_deregistered_cards_materials_are_purged_two_years_after_with_a_record(
    api: Any, me: Headers, vin: str
) -> None:
    require_cjk_font()
    # Given a registration accepted, then de-registered (the operator accepted)
    reg_id, flow_id, party_id = registered(api, me, vin)
    dereg_id = deregistration_submitted(api, me, vin)
    answer_card(iccid_of(vin), CallbackOutcome.ACCEPTED)
    dereg_flow = RegistrationModel.get(dereg_id).flow_id
    assert dereg_flow
    flows = [flow_id, dereg_flow]
    assert all(object_versions(f) for f in flows)
    assert all(sealed_entries(f) for f in flows)
    assert RegistrationModel.get(reg_id).onsite_photo
    ended = datetime.now(UTC)
    subject = RetentionModel.get(party_id)
    assert subject.reason == "deregistration_confirmed"
    assert {reg_id, dereg_id} <= set(subject.registrations or ())

    # When the purge runs a year later: nothing is due yet
    early = retention_at(ended + timedelta(days=365)).purge_due()
    assert early == PurgeReport()
    assert PartyModel.count(party_id) == 1

    # When it runs two years after the service ended
    report = retention_at(ended + TWO_YEARS_AND_A_DAY).purge_due()

    # Then the materials are gone: every stored version, the flows' sealed identity and documents,
    # the evidence's sealed personal facts, the registration's sealed fields, the party
    assert (report.due, report.purged) == (1, 1)
    assert report.counts.registrations == 2
    assert report.counts.parties == 1
    for f in flows:
        assert object_versions(f) == []
        flow = FlowModel.get(f)
        kept: list[object] = [flow.identity_enc, flow.data_key, flow.documents, flow.person_hash]
        assert kept == [None, None, None, None]
        assert sealed_entries(f) == 0
        # and the evidence chain still verifies, ending with what the purge did
        assert deps.evidence_log().verify(f).ok
        last = deps.evidence_log().entries(f)[-1]
        assert last.kind.value == "purged"
        assert last.personal == {}
    item = RegistrationModel.get(reg_id)
    sealed: list[object] = [item.sealed, item.data_key, item.onsite_photo, item.phone_hash]
    assert sealed == [None, None, None, None]
    assert PartyModel.count(party_id) == 0
    # And a purge record stays: what, when, why; no personal data
    store = DynamoRetentionStore()
    (record,) = store.records(party_id)
    assert record.reason == "deregistration_confirmed"
    assert record.completed_at is not None
    assert set(record.registration_ids) == {reg_id, dereg_id}
    assert record.counts.objects >= 4
    assert record.counts.evidence_entries >= 2
    assert PHONE not in record.model_dump_json()
    # And the subject left the due index: the next run finds nothing
    assert retention_at(ended + TWO_YEARS_AND_A_DAY).purge_due().due == 0


def test_a_purge_that_meets_the_card_back_in_service_with_the_same_person_deletes_nothing(
    api: Any, me: Headers, vin: str
) -> None:
    require_cjk_font()
    # Given a de-registered card registered again by the same person before the due date
    _, flow_id, party_id = registered(api, me, vin)
    deregistration_submitted(api, me, vin)
    answer_card(iccid_of(vin), CallbackOutcome.ACCEPTED)
    ended = datetime.now(UTC)
    _, new_flow, new_party = registered(api, me, vin)
    versions = object_versions(flow_id)
    # When the purge runs after the first service's due date
    report = retention_at(ended + TWO_YEARS_AND_A_DAY).purge_due()
    # Then nothing is deleted: the materials are kept with the card's new service
    assert (report.purged, report.merged) == (0, 1)
    assert object_versions(flow_id) == versions
    assert FlowModel.get(flow_id).identity_enc is not None
    assert sealed_entries(flow_id) > 0
    assert PartyModel.count(party_id) == 1
    assert PartyModel.count(new_party) == 1
    assert DynamoRetentionStore().records(party_id) == []
    kept = RetentionModel.get(new_party)
    assert party_id in (kept.parties or ())
    assert kept.due_at is None
    assert object_versions(new_flow)


def test_the_seller_is_purged_two_years_after_a_transfer_and_the_buyer_is_kept(
    api: Any, me: Headers, vin: str
) -> None:
    require_cjk_font()
    # Given a registered card transferred to a buyer (accepted by the operator)
    _, flow_id, seller = registered(api, me, vin)
    buyer, iccid = a_buyer_asked_for(vin)
    answer_card(iccid, CallbackOutcome.ACCEPTED)
    ended = datetime.now(UTC)
    # When the purge runs two years later
    report = retention_at(ended + TWO_YEARS_AND_A_DAY).purge_due()
    # Then the seller's materials are purged, the buyer's party (holding the card) is not touched
    assert report.purged == 1
    assert PartyModel.count(seller) == 0
    assert object_versions(flow_id) == []
    assert PartyModel.count(buyer.party_id) == 1
    (record,) = DynamoRetentionStore().records(seller)
    assert record.reason == "transferred"


def test_a_refused_transfers_buyer_is_purged_two_years_after_and_the_seller_is_kept(
    api: Any, me: Headers, vin: str
) -> None:
    require_cjk_font()
    # Given a registered card whose transfer to a buyer the operator refused
    _, flow_id, seller = registered(api, me, vin)
    buyer, iccid = a_buyer_asked_for(vin)
    answer_card(iccid, CallbackOutcome.REJECTED)
    refused = datetime.now(UTC)
    # Then the refused buyer is due (a claim that ended), and nothing is purged a day before the two years
    assert retention_at(refused + timedelta(days=365 * 2 - 2)).purge_due().purged == 0
    # When the purge runs two years later
    report = retention_at(refused + TWO_YEARS_AND_A_DAY).purge_due()
    # Then the buyer's party is purged with a record; the seller, still holding the card, is untouched
    assert report.purged == 1
    assert PartyModel.count(buyer.party_id) == 0
    assert PartyModel.count(seller) == 1
    assert object_versions(flow_id) != []
    (record,) = DynamoRetentionStore().records(buyer.party_id)
    assert record.reason == "transfer_rejected"
    assert DynamoRetentionStore().records(seller) == []


def test_two_purges_at_once_write_one_record(
    api: Any, me: Headers, vin: str, token: Callable[..., str]
) -> None:
    require_cjk_font()
    # Given a registered vehicle scrapped (报废: the service ends)
    _, flow_id, party_id = registered(api, me, vin)
    admin = {
        "Authorization": f"Bearer {token('admin', subject='admin-1')}",
        "Content-Type": "application/json",
    }
    status, scrapped = call(api, "post", f"/v1/admin/vehicles/{vin}/scrap", admin)
    assert status == 200, scrapped
    at = datetime.now(UTC) + TWO_YEARS_AND_A_DAY
    # When two purges run at the same moment
    start = threading.Barrier(2)
    reports: list[PurgeReport] = []

    def purge() -> None:
        service = retention_at(at)
        start.wait()
        reports.append(service.purge_due())

    threads = [threading.Thread(target=purge) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then one of them purged, and one purge record exists
    assert sum(r.purged for r in reports) == 1
    (record,) = DynamoRetentionStore().records(party_id)
    assert record.reason == "scrapped"
    assert record.completed_at is not None
    assert object_versions(flow_id) == []
    assert PartyModel.count(party_id) == 0


def test_an_abandoned_flows_evidence_keeps_no_personal_facts_after_the_purge(
    api: Any, me: Headers, vin: str
) -> None:
    require_cjk_font()
    # Given a registration abandoned after the ID card was read (sealed OCR facts in the evidence)
    status, reg = call(api, "post", REG, me, {"vin": vin})
    reg_id = reg["registration_id"]
    call(api, "post", f"{REG}/{reg_id}/confirm-vehicle", me, {})
    code = sms_code(api, PHONE, "owner_phone", me)
    status, reg = call(api, "post", f"{REG}/{reg_id}/phone", me, {"phone": PHONE, "code": code})
    flow_id = reg["flow_id"]
    identity = {
        "id_type": "resident_id",
        "id_number": PERSON_ID_NUMBER,
        "name": PERSON_NAME,
        "address": PERSON_ADDRESS,
    }
    status, body = call(api, "put", f"/v1/flows/{flow_id}/identity", me, identity)
    assert status == 200, body
    status, doc = upload(api, me, flow_id, DocumentKind.ID_FRONT, id_front(portrait=FACES / CARD_PORTRAIT))
    assert status == 201, doc
    status, reading = call(api, "post", f"/v1/flows/{flow_id}/ocr/id_front", me)
    assert status == 200, reading
    assert sealed_entries(flow_id) > 0
    # When it expires and the housekeeping purges it
    service = deps.registration_service()
    past = datetime.now(UTC) - timedelta(minutes=1)
    stored = service.store.get(reg_id)
    assert stored is not None
    service.store.save(stored.model_copy(update={"expires_at": past, "version": stored.version + 1}))
    verification = deps.verification_service()
    flow = verification.flow(flow_id, OWNER)
    verification.flows._flows.save(flow.model_copy(update={"expires_at": past, "version": flow.version + 1}))
    assert service.purge_abandoned()["flows"] == 1
    # Then its evidence keeps no personal facts, and the chain still verifies
    assert sealed_entries(flow_id) == 0
    assert deps.evidence_log().verify(flow_id).ok
    assert all(e.personal == {} for e in deps.evidence_log().entries(flow_id))


def test_the_retention_purge_is_scheduled_daily_in_aws_and_in_the_local_worker(vin: str) -> None:
    from chalice.app import ScheduledEventConfig

    from app import app, purge_retention
    from chalicelib.local.worker import SCHEDULES

    assert [s.every_seconds for s in SCHEDULES if s.name == "purge-retention"] == [86_400.0]
    schedule = {h.name: h for h in app.event_sources}["purge_retention"]
    assert isinstance(schedule, ScheduledEventConfig)
    expression = schedule.schedule_expression
    assert not isinstance(expression, str)
    assert expression.to_string() == "rate(1 day)"
    # and the scheduled function runs the purge (nothing is due in a fresh store)
    event = {
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "time": "2026-11-29T00:00:00Z",
        "id": "e-1",
        "account": "123456789012",
        "region": "cn-north-1",
        "resources": [],
        "detail": {},
        "version": "0",
    }
    context = SimpleNamespace(
        function_name="cheka-test-purge_retention",
        function_version="$LATEST",
        memory_limit_in_mb=1024,
        invoked_function_arn="arn:aws-cn:lambda:cn-north-1:123456789012:function:cheka-test-purge_retention",
        aws_request_id="req-0001",
    )
    assert purge_retention(event, context)["due"] == 0


def test_purged_personal_facts_keep_the_chain_verifiable_and_a_later_edit_is_still_detected(
    aws: None,
) -> None:
    from chalicelib.verification.domain.evidence import EvidenceKind

    deps.reset()
    log = deps.evidence_log()
    log.append("f-purge", EvidenceKind.OCR_READ, "owner-a", {"document": "id_front"}, {"name": "张三"})
    log.append("f-purge", EvidenceKind.FACE_COMPARED, "owner-a", {"score": 0.91})
    # When the personal facts are purged
    assert log.purge_personal("f-purge") == 1
    assert log.purge_personal("f-purge") == 0
    # Then nothing personal is left, the chain verifies, and an edit of the purged entry is detected
    assert sealed_entries("f-purge") == 0
    assert [e.personal for e in log.entries("f-purge")] == [{}, {}]
    assert log.verify("f-purge").ok
    item = EvidenceModel.get("f-purge", 1)
    item.update(actions=[EvidenceModel.purged_digest.set("0" * 64)])
    verdict = log.verify("f-purge")
    assert not verdict.ok
    assert verdict.first_bad_seq == 1
