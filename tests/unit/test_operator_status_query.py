"""The status query's wire format: signed like every request, its decision sealed as a callback is; an
answer for another message, operator or a spot check is refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chalicelib.kernel.operators import Operator
from chalicelib.operators import wire
from chalicelib.operators.domain.messages import (
    CallbackOutcome,
    OperatorCallback,
    PushStatus,
    PushStatusState,
)
from chalicelib.operators.keys import Direction, generate_operator_keys
from chalicelib.operators.signing import NonceCache
from tests.fakes.operators import StaticKeySource

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
MESSAGE = "a" * 32


def _decision(outcome: CallbackOutcome = CallbackOutcome.REJECTED) -> OperatorCallback:
    return OperatorCallback(
        callback_id="cb" + "1" * 30,
        message_id=MESSAGE,
        operator=Operator.CHINA_MOBILE,
        iccid="89860012345678901234",
        outcome=outcome,
        reason_code="blacklisted",
        reason_zh="该证件不能办理",
        reason_en="This ID cannot be used",
        decided_at=NOW,
    )


def test_a_status_request_is_signed_over_its_target_and_names_its_message() -> None:
    keys = generate_operator_keys(Operator.CHINA_MOBILE)
    request = wire.encode_status_request(keys, MESSAGE, now=NOW, prefix="/iot")
    assert (request.method, request.body) == ("GET", b"")
    assert request.path == f"/iot{wire.STATUS_PATH}?messageId={MESSAGE}"
    authenticated = wire.authenticate(
        request.headers,
        b"",
        method="GET",
        path=request.path,
        source=StaticKeySource([keys]),
        direction=Direction.TO_OPERATOR,
        now=NOW,
        seen_nonce=NonceCache(600),
    )
    assert authenticated.operator is Operator.CHINA_MOBILE
    assert wire.parse_status_target(request.path) == MESSAGE


def test_a_decided_status_carries_the_callback_sealed_and_decodes_to_it() -> None:
    keys = generate_operator_keys(Operator.CHINA_MOBILE)
    answer = PushStatus(
        message_id=MESSAGE, operator=keys.operator, state=PushStatusState.DECIDED, decision=_decision()
    )
    body = wire.encode_status(answer, keys)
    assert "该证件".encode() not in body  # the reason is sealed, as in a callback
    assert wire.decode_status(body, MESSAGE, keys) == answer
    unknown = PushStatus(message_id=MESSAGE, operator=keys.operator, state=PushStatusState.UNKNOWN)
    assert wire.decode_status(wire.encode_status(unknown, keys), MESSAGE, keys) == unknown


def test_a_status_answer_for_another_message_operator_or_a_spot_check_is_malformed() -> None:
    keys = generate_operator_keys(Operator.CHINA_MOBILE)
    other = generate_operator_keys(Operator.CHINA_UNICOM)
    answer = PushStatus(message_id=MESSAGE, operator=keys.operator, state=PushStatusState.RECEIVED)
    body = wire.encode_status(answer, keys)
    with pytest.raises(wire.WireError):
        wire.decode_status(body, "b" * 32, keys)
    with pytest.raises(wire.WireError):
        wire.decode_status(body, MESSAGE, other)
    spot = PushStatus(
        message_id=MESSAGE,
        operator=keys.operator,
        state=PushStatusState.DECIDED,
        decision=_decision(CallbackOutcome.SPOT_CHECK),
    )
    with pytest.raises(wire.WireError):
        wire.decode_status(wire.encode_status(spot, keys), MESSAGE, keys)
    with pytest.raises(wire.WireError):
        wire.parse_status_target(f"{wire.STATUS_PATH}?messageId=short")
