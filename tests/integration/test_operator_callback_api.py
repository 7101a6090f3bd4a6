"""The operator callback route: a signed answer registers the card once; forgeries and replays
change nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.cards.domain.inventory import CardFunction
from chalicelib.kernel.operators import Operator
from chalicelib.operators.domain.messages import CallbackOutcome, OperatorCallback
from tests.integration.test_lifecycle import import_cards, person

PATH = "/v1/operator/callbacks"


def pending_card() -> tuple[Any, str]:
    from chalicelib.core import deps

    (card,) = import_cards(Operator.CHINA_MOBILE, 1, seed=11)
    outcome = deps.lifecycle().submit_registration(card.iccid, person(11), "u-owner")
    assert outcome.record_id is not None
    return card, outcome.record_id


def signed(callback: OperatorCallback, *, now: datetime | None = None) -> tuple[bytes, dict[str, str]]:
    from chalicelib.core import deps
    from chalicelib.operators.wire import encode_callback

    keys = deps.operator_keys().current(callback.operator)
    request = encode_callback(callback, keys, now=now or datetime.now(UTC))
    return request.body, {**request.headers, "Content-Type": "application/json"}


def answer(iccid: str, record_id: str, callback_id: str = "cb-1") -> OperatorCallback:
    return OperatorCallback(
        callback_id=callback_id,
        message_id=record_id,
        operator=Operator.CHINA_MOBILE,
        iccid=iccid,
        outcome=CallbackOutcome.ACCEPTED,
        functions=[CardFunction.EMERGENCY, CardFunction.TELEMATICS],
        decided_at=datetime.now(UTC),
    )


def state(iccid: str) -> str:
    from chalicelib.core import deps

    card = deps.inventory_repo().get_card(iccid)
    assert card is not None
    return card.state.value


def test_a_signed_acceptance_registers_the_card_once(api: Any) -> None:
    card, record_id = pending_card()
    body, headers = signed(answer(card.iccid, record_id))
    response = api.http.post(PATH, body=body, headers=headers)
    assert response.status_code == 200, response.body
    assert json.loads(response.body)["state"] == "registered"
    assert state(card.iccid) == "registered"

    # The same request again is a replay (its nonce was used): refused, nothing changes.
    again = api.http.post(PATH, body=body, headers=headers)
    assert (again.status_code, json.loads(again.body)["code"]) == (409, "operator_callback.replayed_nonce")
    # The same callback signed anew is a duplicate: acknowledged, applied once.
    body, headers = signed(answer(card.iccid, record_id))
    duplicate = api.http.post(PATH, body=body, headers=headers)
    assert duplicate.status_code == 200
    assert json.loads(duplicate.body)["note"] != "applied"


def test_a_bad_signature_or_a_stale_timestamp_is_refused_and_changes_nothing(api: Any) -> None:
    card, record_id = pending_card()
    body, headers = signed(answer(card.iccid, record_id))
    forged = {**headers, "X-Signature": "0" * 64}
    response = api.http.post(PATH, body=body, headers=forged)
    assert (response.status_code, json.loads(response.body)["code"]) == (
        401,
        "operator_callback.bad_signature",
    )
    stale_body, stale_headers = signed(
        answer(card.iccid, record_id), now=datetime.now(UTC) - timedelta(hours=1)
    )
    response = api.http.post(PATH, body=stale_body, headers=stale_headers)
    assert (response.status_code, json.loads(response.body)["code"]) == (
        401,
        "operator_callback.stale_timestamp",
    )
    assert state(card.iccid) == "pending"


def test_a_nonce_store_failure_is_not_taken_for_a_replay(api: Any) -> None:
    from chalicelib.core.aws import client
    from chalicelib.core.settings import get_settings

    card, record_id = pending_card()
    body, headers = signed(answer(card.iccid, record_id))
    # Given the nonce table unavailable, the callback fails as an error the operator retries (5xx)
    client("dynamodb").delete_table(TableName=get_settings().table_name("operator-nonces"))
    failed = api.http.post(PATH, body=body, headers=headers)
    assert failed.status_code == 500
    assert json.loads(failed.body)["code"] != "operator_callback.replayed_nonce"
    assert state(card.iccid) == "pending"
    # And once the store is back, the same request (same nonce) is accepted
    from chalicelib.local.bootstrap import create_resources

    create_resources(get_settings())
    retried = api.http.post(PATH, body=body, headers=headers)
    assert retried.status_code == 200, retried.body
    assert state(card.iccid) == "registered"
