"""A submitted fleet batch through the workflow's task handlers on the embedded AWS: the automatic checks
read the batch's flow and its synthetic licence (OCR), the approved batch's cards are registered to the
enterprise under its responsible person chunk by chunk through the outbox (a redelivered chunk pushes
nothing twice), the operator's acceptance registers them, and the enterprise is told by SMS.

The responsible person's flow is set up as the batch routes leave it (identity typed, ID sides read,
face passed: walked through the API in ``test_fleet_batches_api``); its photos are real synthetic ones.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from chalicelib.cards.domain.inventory import CardState
from chalicelib.cards.domain.lifecycle import PushKind
from chalicelib.cards.domain.limits import HolderKind
from chalicelib.core import deps
from chalicelib.enterprise.domain import EnterpriseType, LegalPersonType
from chalicelib.fleet.domain import BatchKind, BatchStatus, FleetBatch
from chalicelib.fleet.handlers import HANDLERS
from chalicelib.fleet.tasks import TaskMessage
from chalicelib.kernel.operators import Operator
from chalicelib.kernel.personal import IdType, id_lookup_value, mask_phone
from chalicelib.operators.domain.messages import CallbackOutcome
from chalicelib.operators.domain.outbox import OutboxStatus
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.flows import (
    CheckName,
    CheckVerdict,
    Flow,
    FlowPurpose,
    FlowStatus,
    TypedIdentity,
)
from tests.integration.test_lifecycle import answer, import_cards, make_world
from tests.synthetic_documents import (
    COMPANY,
    PERSON_ADDRESS,
    PERSON_ID_NUMBER,
    PERSON_NAME,
    authorization_letter,
    business_licence,
    id_back,
    id_front,
    require_cjk_font,
)

SUBMITTER_PHONE = "13900139016"
VEHICLES = 6
CHUNK = 4  # chunks of 4 vehicles here (25 in service): two chunks, 4 and 2, and moto stays quick


def submitter() -> str:
    """A portal account with a bound phone (a natural person, the agent who submits the batch)."""
    from chalicelib.accounts.domain import Account, AccountKind, new_account_id

    account = Account(
        account_id=new_account_id(),
        login_name=f"u{uuid.uuid4().hex[:12]}",
        kind=AccountKind.NATURAL,
        phone_hash=deps.keyed_hasher().digest(f"phone:{uuid.uuid4().hex}"),
        created_at=datetime.now(UTC),
    )
    deps.accounts()._store.create(account, phone=SUBMITTER_PHONE, email=None, password_hash=None)
    return account.account_id


def responsible_flow(owner: str, vin: str) -> Flow:
    """The batch's flow: the responsible person's identity, checks and the document photos."""
    verification = deps.verification_service()
    flow = verification.open_flow(owner, FlowPurpose.ENTERPRISE_REGISTRATION)
    letter = authorization_letter(
        owner_name=COMPANY["name"], owner_id_number=COMPANY["uscc"], vin=vin, fmt="JPEG"
    )
    photos = {
        DocumentKind.BUSINESS_LICENCE: business_licence(fmt="JPEG"),
        DocumentKind.AUTHORIZATION_LETTER: letter,
        DocumentKind.CUSTODY_AGREEMENT: letter,
        DocumentKind.ID_FRONT: id_front(fmt="JPEG"),
        DocumentKind.ID_BACK: id_back(fmt="JPEG"),
    }
    uploads = deps.upload_service()
    documents = {k.value: uploads.store(flow.flow_id, k, jpeg, 1000, 1000).key for k, jpeg in photos.items()}
    identity = TypedIdentity(
        id_type="resident_id", id_number=PERSON_ID_NUMBER, name=PERSON_NAME, address=PERSON_ADDRESS
    )
    return verification.flows.save(
        flow,
        identity=identity,
        person_hash=deps.keyed_hasher().digest(id_lookup_value(IdType.RESIDENT_ID, PERSON_ID_NUMBER)),
        documents=documents,
        status=FlowStatus.VERIFIED,
        checks={
            CheckName.OCR_ID_FRONT: CheckVerdict.PASSED,
            CheckName.OCR_ID_BACK: CheckVerdict.PASSED,
            CheckName.OCR_BUSINESS_LICENCE: CheckVerdict.PASSED,
            CheckName.FACE: CheckVerdict.PASSED,
        },
    )


def submitted_batch(vins: list[str]) -> FleetBatch:
    """An enterprise's registration batch as the submit leaves it: submitted, its vehicles claimed."""
    from chalicelib.adapters.dynamo.fleet import DynamoBatchStore

    account_id = submitter()
    deps.enterprises().claim(
        COMPANY["uscc"],
        COMPANY["name"],
        f"legal-{uuid.uuid4().hex[:8]}",
        enterprise_type=EnterpriseType.ENTERPRISE,
        legal_person_type=LegalPersonType.LEGAL_REPRESENTATIVE,
        representative_name_masked="李*国",
        representative_person_hash="h",
        address=COMPANY["address"],
    )
    flow = responsible_flow(account_id, vins[0])
    now = datetime.now(UTC)
    batch = FleetBatch(
        batch_id=f"fb_{uuid.uuid4().hex[:24]}",
        uscc=COMPANY["uscc"],
        company_name=COMPANY["name"],
        kind=BatchKind.REGISTRATION,
        status=BatchStatus.SUBMITTED,
        created_by=account_id,
        created_at=now,
        updated_at=now,
        vins=tuple(vins),
        flow_id=flow.flow_id,
        responsible_phone_verified=True,
        responsible_name_masked="王**",
        responsible_id_hash=flow.person_hash,
        typed_company_name=COMPANY["name"],
        submitted_at=now,
        cards_total=len(vins),
    )
    store = DynamoBatchStore(deps.field_cipher())
    store.create(batch)
    assert store.claim(batch.batch_id, vins) == {}
    return batch


def task(kind: str, batch_id: str, **fields: object) -> TaskMessage:
    return TaskMessage(task=kind, batch_id=batch_id, token=None, **fields)  # type: ignore[arg-type]


def test_an_approved_batch_s_cards_are_pushed_once_and_registered_by_the_operator(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_cjk_font()
    monkeypatch.setattr("chalicelib.fleet.domain.CHUNK_VEHICLES", CHUNK)
    # given a submitted registration batch of 6 vehicles (one card each) with its synthetic documents
    world = make_world()
    cards = import_cards(Operator.CHINA_UNICOM, VEHICLES, seed=16)
    vins = list(dict.fromkeys(c.vin for c in cards))
    batch = submitted_batch(vins)

    # when the automatic checks run (the licence read again by OCR)
    output = HANDLERS["automatic_checks"](task("automatic_checks", batch.batch_id))
    # then every check passed and the batch waits for a reviewer with its deadlines
    assert output is not None
    assert output["outcome"] == "review"
    assert output["remind_after_seconds"] > 0
    assert deps.fleet_batches().get(batch.batch_id).status is BatchStatus.IN_REVIEW  # type: ignore[union-attr]

    # when the reviewer approved and the workflow prepares the cards and applies every chunk
    chunks = HANDLERS["prepare_cards"](task("prepare_cards", batch.batch_id))
    assert chunks == {"chunks": [0, 1]}
    done = [HANDLERS["apply_chunk"](task("apply_chunk", batch.batch_id, chunk=i)) for i in (0, 1)]
    records_after_first = {deps.outbox_store().lifecycle(c.iccid).message_id for c in cards}
    # and the first chunk is delivered again
    again = HANDLERS["apply_chunk"](task("apply_chunk", batch.batch_id, chunk=0))

    # then every card is pending with one register record, the redelivery pushed nothing more
    assert done == [{"chunk": 0, "cards": 4}, {"chunk": 1, "cards": 2}]
    assert again == {"chunk": 0, "cards": 4}
    lives = deps.outbox_store().lifecycles([c.iccid for c in cards])
    assert {lives[c.iccid].message_id for c in cards} == records_after_first
    assert None not in records_after_first
    assert len(records_after_first) == VEHICLES
    store = deps.outbox_store()
    for card in cards:
        assert deps.inventory_repo().get_card(card.iccid).state is CardState.PENDING  # type: ignore[union-attr]
        record = store.get(lives[card.iccid].message_id or "")
        assert record is not None
        assert (record.kind, record.status) == (PushKind.REGISTER, OutboxStatus.PENDING)
    assert record is not None
    holder = record.message.holder
    assert holder is not None
    assert (holder.kind, holder.id_number, holder.name) == (
        HolderKind.ENTERPRISE,
        COMPANY["uscc"],
        COMPANY["name"],
    )
    assert (holder.responsible_name, holder.responsible_id_number) == (PERSON_NAME, PERSON_ID_NUMBER)
    assert deps.fleet_batches().get(batch.batch_id).cards_pushed == VEHICLES  # type: ignore[union-attr]

    # when the outbox pushes them and the operator accepts each
    world.clock.advance(60)  # the records were made by the stage's clock after the world's was set
    for card in cards:
        world.dispatcher.dispatch(lives[card.iccid].message_id or "")
    assert len(world.operator.received) == VEHICLES
    for card in cards:
        record_id = lives[card.iccid].message_id or ""
        world.lifecycle.apply_callback(answer(record_id, card, CallbackOutcome.ACCEPTED))
    # then every card is registered to the enterprise
    states = {deps.inventory_repo().get_card(c.iccid).state for c in cards}  # type: ignore[union-attr]
    assert states == {CardState.REGISTERED}

    # when the enterprise is told of the approval
    HANDLERS["notify"](task("notify", batch.batch_id, outcome="approved"))
    # then the batch is completed and the submitter's phone has the SMS with the batch number
    assert deps.fleet_batches().get(batch.batch_id).status is BatchStatus.COMPLETED  # type: ignore[union-attr]
    texts = [m.text for m in deps.sms_drop().recent() if m.phone == mask_phone(SUBMITTER_PHONE)]
    assert any(batch.batch_id in t and "审核通过" in t for t in texts)
