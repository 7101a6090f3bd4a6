"""The callback endpoint's use case over the fakes: signature, timestamp window, nonce, then applied."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.cards.domain.inventory import CardState
from chalicelib.kernel.errors import BadRequest, Conflict, Unauthenticated
from chalicelib.operators import wire
from chalicelib.operators.callbacks import CallbackReceiver
from chalicelib.operators.domain.messages import OperatorCallback
from chalicelib.operators.keys import Direction, generate_operator_keys
from tests.fakes.operators import FakeNonces, StaticKeySource
from tests.unit.cards.world import MOBILE, World, holder

KEYS = generate_operator_keys(MOBILE)


class Setup:
    def __init__(self) -> None:
        self.world = World()
        (self.card,) = self.world.vehicle(1)
        self.world.lifecycle.submit_registration(self.card.iccid, holder(1), "owner")
        self.notified: list[str] = []
        self.receiver = CallbackReceiver(
            StaticKeySource([KEYS]),
            FakeNonces(),
            self.world.lifecycle.apply_callback,
            self.notified.append,
            clock=self.world.clock,
        )

    def signed(self, callback: OperatorCallback, *, skew: timedelta = timedelta()) -> wire.WireRequest:
        return wire.encode_callback(callback, KEYS, now=self.world.clock() + skew)


def test_a_signed_answer_is_applied_and_the_registration_notified() -> None:
    # given a pending card and the operator's signed acceptance
    given = Setup()
    request = given.signed(given.world.answer(given.card.iccid))
    # when it is received
    ack = given.receiver.receive(request.headers, request.body)
    # then the card is registered, the ack says so, and the registration heard of it
    assert (ack.received, ack.note, ack.state) == (True, "applied", "registered")
    assert given.world.card(given.card.iccid).state is CardState.REGISTERED
    assert given.notified == [given.world.store.lifecycle(given.card.iccid).message_id]


def test_a_bad_signature_is_refused_and_changes_nothing() -> None:
    given = Setup()
    request = given.signed(given.world.answer(given.card.iccid))
    forged = {**request.headers, wire.H_SIGNATURE: "A" * 44}
    with pytest.raises(Unauthenticated) as refused:
        given.receiver.receive(forged, request.body)
    assert refused.value.code == "operator_callback.bad_signature"
    assert given.world.card(given.card.iccid).state is CardState.PENDING


def test_a_stale_timestamp_is_refused() -> None:
    given = Setup()
    request = given.signed(given.world.answer(given.card.iccid), skew=timedelta(minutes=-10))
    with pytest.raises(Unauthenticated) as refused:
        given.receiver.receive(request.headers, request.body)
    assert refused.value.code == "operator_callback.stale_timestamp"


def test_a_replayed_nonce_is_a_conflict() -> None:
    given = Setup()
    request = given.signed(given.world.answer(given.card.iccid))
    given.receiver.receive(request.headers, request.body)
    with pytest.raises(Conflict) as refused:
        given.receiver.receive(request.headers, request.body)
    assert (refused.value.code, refused.value.status) == ("operator_callback.replayed_nonce", 409)


def test_an_authentic_unreadable_body_is_a_bad_request() -> None:
    given = Setup()
    body = b'{"version": "1.0"}'
    headers = wire.sign_headers(
        KEYS,
        Direction.TO_PLATFORM,
        method="POST",
        path=wire.CALLBACK_PATH,
        body=body,
        now=given.world.clock(),
    )
    with pytest.raises(BadRequest) as refused:
        given.receiver.receive(headers, body)
    assert refused.value.code == "operator_callback.malformed"


def test_a_failing_notification_does_not_fail_the_callback() -> None:
    # given a registration hook that fails
    given = Setup()

    def broken(message_id: str) -> None:
        raise RuntimeError("sms down")

    receiver = CallbackReceiver(
        StaticKeySource([KEYS]),
        FakeNonces(),
        given.world.lifecycle.apply_callback,
        broken,
        clock=given.world.clock,
    )
    request = given.signed(given.world.answer(given.card.iccid))
    # when the callback is received, then it is acknowledged and applied
    assert receiver.receive(request.headers, request.body).note == "applied"


def test_a_duplicate_is_acknowledged_without_a_second_notification() -> None:
    given = Setup()
    answer = given.world.answer(given.card.iccid)
    first = given.signed(answer)
    given.receiver.receive(first.headers, first.body)
    again = given.signed(answer)
    ack = given.receiver.receive(again.headers, again.body)
    assert ack.note == "duplicate"
    assert len(given.notified) == 1
