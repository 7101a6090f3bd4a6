"""An approved fleet batch carried out over the fakes: chunks, cards registered to the enterprise under its
responsible person through the outbox (never twice), de-registration, and the enterprise's notices."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chalicelib.cards.domain.inventory import CardState
from chalicelib.cards.domain.lifecycle import PushKind
from chalicelib.cards.domain.limits import HolderKind
from chalicelib.fleet.apply import ChunkInterrupted, enterprise_party_id, responsible_party_id
from chalicelib.fleet.domain import CHUNK_VEHICLES, BatchKind, BatchStatus, DocumentSlot
from chalicelib.kernel.errors import Conflict
from chalicelib.kernel.personal import PartyKind
from chalicelib.verification.domain.evidence import EvidenceKind
from tests.unit.fleet.apply_world import RESPONSIBLE_ID, SUBMITTER_PHONE, USCC, Message, World


def approved(world: World, vehicles: int, *, cards: int = 1, kind: BatchKind = BatchKind.REGISTRATION) -> str:
    batch = world.batch(world.vehicles(vehicles, cards=cards), kind=kind, status=BatchStatus.IN_REVIEW)
    world.apply().prepare_cards(Message("prepare_cards", batch.batch_id))
    return batch.batch_id


def test_prepare_cards_approves_the_batch_and_names_its_chunks() -> None:
    # given a batch of 60 vehicles in review
    world = World()
    batch = world.batch(world.vehicles(60), status=BatchStatus.IN_REVIEW)
    # when its cards are prepared
    output = world.apply().prepare_cards(Message("prepare_cards", batch.batch_id))
    # then the batch is approved and the answer names three chunks of 25, 25 and 10 vehicles
    assert output == {"chunks": [0, 1, 2]}
    assert CHUNK_VEHICLES == 25
    assert world.batches.batches[batch.batch_id].status is BatchStatus.APPROVED


def test_prepare_cards_goes_on_when_the_reviewers_decision_approved_the_batch_meanwhile() -> None:
    # given a batch read in review, which the reviewer's decision approves before this task writes it
    world = World()
    batch = world.batch(world.vehicles(30), status=BatchStatus.IN_REVIEW)
    read = world.batches.get

    def read_then_decided(batch_id: str) -> object:
        found = read(batch_id)
        if found is not None and found.status is BatchStatus.IN_REVIEW:
            world.batches.set_status(batch_id, BatchStatus.APPROVED, expected={BatchStatus.IN_REVIEW})
        return found

    world.batches.get = read_then_decided  # type: ignore[method-assign,assignment]
    # when its cards are prepared, then the task goes on with its chunks (no refusal failing the workflow)
    assert world.apply().prepare_cards(Message("prepare_cards", batch.batch_id)) == {"chunks": [0, 1]}
    assert world.batches.batches[batch.batch_id].status is BatchStatus.APPROVED


def test_a_chunk_registers_every_card_to_the_enterprise_under_its_responsible_person() -> None:
    # given an approved batch of 30 vehicles with two cards each
    world = World()
    batch_id = approved(world, 30, cards=2)
    # when its first chunk is applied
    output = world.apply().apply_chunk(Message("apply_chunk", batch_id, chunk=0))
    # then the chunk's 25 vehicles' 50 cards are pending with an outbox record each, one commit per vehicle
    assert output == {"chunk": 0, "cards": 50}
    batch = world.batches.batches[batch_id]
    chunk_cards = world.cards_of(batch.vins[:25])
    assert {c.state for c in chunk_cards} == {CardState.PENDING}
    assert {c.state for c in world.cards_of(batch.vins[25:])} == {CardState.UNREGISTERED}
    assert len(world.store.commits) == 25
    records = [world.store.get(world.store.lifecycle(c.iccid).message_id or "") for c in chunk_cards]
    assert all(r is not None and r.kind is PushKind.REGISTER for r in records)
    # and the operator hears of the enterprise with its responsible person; the count goes on the batch
    holder = records[0].message.holder if records[0] else None
    assert holder is not None
    assert (holder.kind, holder.id_number, holder.responsible_id_number) == (
        HolderKind.ENTERPRISE,
        USCC,
        RESPONSIBLE_ID,
    )
    assert world.batches.progress == [(batch_id, 50)]
    assert world.store.lifecycle(chunk_cards[0].iccid).holder_id_hash == world.enterprise_hash


def test_the_enterprise_and_the_responsible_person_are_stored_as_parties() -> None:
    # given an approved batch
    world = World()
    batch_id = approved(world, 1)
    # when its chunk is applied
    world.apply().apply_chunk(Message("apply_chunk", batch_id, chunk=0))
    # then both parties are kept (the store seals them) and the card refers to the enterprise's
    enterprise = world.parties.get(enterprise_party_id(batch_id))
    responsible = world.parties.get(responsible_party_id(batch_id))
    assert enterprise is not None
    assert (enterprise.kind, enterprise.id_number) == (PartyKind.ENTERPRISE, USCC)
    assert responsible is not None
    assert responsible.id_number == RESPONSIBLE_ID
    (card,) = world.cards_of(world.batches.batches[batch_id].vins)
    assert card.holder_id == enterprise.party_id


def test_a_redelivered_chunk_pushes_nothing_twice() -> None:
    # given a chunk applied once
    world = World()
    batch_id = approved(world, 3, cards=2)
    service = world.apply()
    first = service.apply_chunk(Message("apply_chunk", batch_id, chunk=0))
    commits, sent = len(world.store.commits), world.queue.record_ids()
    # when the same chunk is delivered again (SQS at least once, the Map retried)
    again = service.apply_chunk(Message("apply_chunk", batch_id, chunk=0))
    # then it answers the same count, commits nothing, enqueues nothing and adds no progress
    assert again == first == {"chunk": 0, "cards": 6}
    assert len(world.store.commits) == commits
    assert world.queue.record_ids() == sent
    assert world.batches.progress == [(batch_id, 6)]


def test_a_card_registered_meanwhile_by_someone_else_is_left_alone() -> None:
    # given an approved batch one of whose cards another holder registered meanwhile
    world = World()
    batch_id = approved(world, 2)
    vins = world.batches.batches[batch_id].vins
    (taken,) = world.inventory.cards_of_vehicle(vins[0])
    from tests.unit.cards.world import holder

    world.lifecycle.submit_registration(taken.iccid, holder(9), "owner")
    # when the chunk is applied
    output = world.apply().apply_chunk(Message("apply_chunk", batch_id, chunk=0))
    # then the other vehicle's card is pushed and the taken one keeps its holder
    assert output == {"chunk": 0, "cards": 1}
    assert world.card(taken.iccid).holder_id == "party-9"
    assert world.batches.progress == [(batch_id, 1)]


def test_a_card_that_moves_during_the_push_makes_the_chunk_retry() -> None:
    # given a lifecycle whose commit finds the card changed (a concurrent delivery won)
    world = World()
    batch_id = approved(world, 1)

    def changed(*args: object, **kwargs: object) -> None:
        raise Conflict("card.changed", "车联网卡状态已变化", "The card changed")

    world.lifecycle.submit_registrations = changed  # type: ignore[method-assign,assignment]
    # when the chunk is applied
    # then it fails as a plain error (SQS delivers it again), not as a task failure
    with pytest.raises(ChunkInterrupted):
        world.apply().apply_chunk(Message("apply_chunk", batch_id, chunk=0))


def test_a_chunk_of_a_batch_not_approved_is_refused() -> None:
    # given a batch still in review
    world = World()
    batch = world.batch(world.vehicles(1), status=BatchStatus.IN_REVIEW)
    # when a chunk of it arrives
    with pytest.raises(Conflict) as refused:
        world.apply().apply_chunk(Message("apply_chunk", batch.batch_id, chunk=0))
    # then it is refused and nothing is pushed
    assert refused.value.code == "fleet.batch_not_approved"
    assert world.store.commits == []


def test_a_deregistration_chunk_ends_the_enterprise_s_cards_once() -> None:
    # given cards registered to the enterprise by an earlier batch, and a de-registration batch of them
    world = World()
    reg_id = approved(world, 2)
    service = world.apply()
    service.apply_chunk(Message("apply_chunk", reg_id, chunk=0))
    vins = world.batches.batches[reg_id].vins
    for card in world.cards_of(vins):
        world.accept(card.iccid)
    dereg = world.batch(vins, kind=BatchKind.DEREGISTRATION, status=BatchStatus.IN_REVIEW)
    service.prepare_cards(Message("prepare_cards", dereg.batch_id))
    # when its chunk is applied twice
    first = service.apply_chunk(Message("apply_chunk", dereg.batch_id, chunk=0))
    commits = len(world.store.commits)
    again = service.apply_chunk(Message("apply_chunk", dereg.batch_id, chunk=0))
    # then each card's de-registration was pushed once; the cards stay registered until the operator answers
    assert first == again == {"chunk": 0, "cards": 2}
    assert len(world.store.commits) == commits
    for card in world.cards_of(vins):
        life = world.store.lifecycle(card.iccid)
        assert (card.state, life.message_kind, life.awaiting) == (
            CardState.REGISTERED,
            PushKind.DEREGISTER,
            True,
        )


def test_notify_approved_completes_the_batch_and_texts_the_submitter() -> None:
    # given an approved batch whose chunks are done
    world = World()
    batch_id = approved(world, 1)
    service = world.apply()
    service.apply_chunk(Message("apply_chunk", batch_id, chunk=0))
    # when the enterprise is notified of the approval
    service.notify(Message("notify", batch_id, outcome="approved", token=None))
    # then the batch is completed, the submitter's phone got the batch number, the evidence has it
    assert world.batches.batches[batch_id].status is BatchStatus.COMPLETED
    (text,) = world.sms.texts_to(SUBMITTER_PHONE)
    assert batch_id in text
    assert "审核通过" in text
    _flow_id, kind, _, details = world.notes[-1]
    assert (kind, details["outcome"], details["sms"]) == (EvidenceKind.SMS_SENT, "approved", True)


def test_notify_resubmission_names_the_documents_to_replace() -> None:
    # given a batch the reviewer sent back for a new licence (status set by the decision)
    world = World()
    batch = world.batch(world.vehicles(1), status=BatchStatus.RESUBMISSION_REQUESTED)
    world.batches.put(
        replace(
            batch,
            outcome_reasons=("licence_unreadable",),
            resubmit_documents=(DocumentSlot.BUSINESS_LICENCE,),
        )
    )
    # when the enterprise is notified
    world.apply().notify(Message("notify", batch.batch_id, outcome="resubmission_requested", token=None))
    # then the status stays as the decision set it and the SMS names the licence and the time allowed
    assert world.batches.batches[batch.batch_id].status is BatchStatus.RESUBMISSION_REQUESTED
    (text,) = world.sms.texts_to(SUBMITTER_PHONE)
    assert "营业执照" in text
    assert "30 日" in text


def test_notify_rejected_and_expired_set_the_final_status_with_the_reasons() -> None:
    # given a batch rejected by the automatic checks (still submitted) and one whose resubmission never came
    world = World()
    rejected = world.batch(world.vehicles(1), status=BatchStatus.SUBMITTED)
    world.batches.put(replace(rejected, outcome_reasons=("cards_per_id_exceeded",)))
    expired = world.batch(world.vehicles(1), status=BatchStatus.RESUBMISSION_REQUESTED)
    service = world.apply()
    # when each is notified
    service.notify(Message("notify", rejected.batch_id, outcome="rejected", token=None))
    service.notify(Message("notify", expired.batch_id, outcome="expired", token=None))
    # then each is final, the rejection keeps its reason, and each text says what happened
    assert world.batches.batches[rejected.batch_id].status is BatchStatus.REJECTED
    assert world.batches.batches[rejected.batch_id].outcome_reasons == ("cards_per_id_exceeded",)
    assert world.batches.batches[expired.batch_id].status is BatchStatus.EXPIRED
    texts = world.sms.texts_to(SUBMITTER_PHONE)
    assert "未通过审核" in texts[0]
    assert "责任人名下物联网卡数量超过上限" in texts[0]
    assert "已失效" in texts[1]


def test_a_redelivered_notice_sends_no_second_sms() -> None:
    # given an approved batch told of its approval once
    world = World()
    batch_id = approved(world, 1)
    service = world.apply()
    service.apply_chunk(Message("apply_chunk", batch_id, chunk=0))
    service.notify(Message("notify", batch_id, outcome="approved", token=None))
    # when the same notice is delivered again
    service.notify(Message("notify", batch_id, outcome="approved", token=None))
    # then the submitter has one SMS and the evidence one entry
    assert len(world.sms.texts_to(SUBMITTER_PHONE)) == 1
    assert [n[1] for n in world.notes].count(EvidenceKind.SMS_SENT) == 1
