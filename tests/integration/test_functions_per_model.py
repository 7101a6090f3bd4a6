"""最小必要 (第十四条): a registration's push asks for the functions the vehicle's model needs (inventory
column ``functions``, else the OEM default ``CHEKA_DEFAULT_FUNCTIONS``), emergency always; the card opens
no more than was asked even if the operator says it opened more (moto, pynamodb repositories)."""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Callable
from typing import Any

from chalicelib.adapters.dynamo.outbox import OUTBOX_QUEUE, DynamoOutboxStore, SqsPushQueue, queue_name
from chalicelib.cards.domain.inventory import CardFunction
from chalicelib.cards.domain.lifecycle import PushKind
from chalicelib.cards.inventory import COLUMNS
from chalicelib.cards.lifecycle import Lifecycle
from chalicelib.core import deps
from chalicelib.core.aws import client
from chalicelib.core.settings import get_settings
from chalicelib.kernel.operators import Operator
from chalicelib.local.synthetic import make_iccid, make_msisdn, make_vin
from chalicelib.operators.domain.messages import CallbackOutcome
from tests.integration.test_lifecycle import answer, create_queues, person

CSV = {"Content-Type": "text/csv"}
Auth = Callable[..., dict[str, str]]
ALL = [CardFunction.EMERGENCY, CardFunction.TELEMATICS, CardFunction.DATA]


def body(resp: Any) -> Any:
    return json.loads(resp.body)


def row(rng: random.Random, functions: str = "") -> dict[str, str]:
    return {
        "vin": make_vin(rng),
        "engine_no": f"E{rng.randrange(10**8, 10**9)}",
        "brand": "启航",
        "model": "QH-3 基础版",
        "colour": "白",
        "iccid": make_iccid(rng, Operator.CHINA_UNICOM),
        "msisdn": make_msisdn(rng, Operator.CHINA_UNICOM),
        "functions": functions,
    }


def post(api: Any, auth: Auth, *rows: dict[str, str]) -> Any:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    resp = api.http.post("/v1/admin/inventory/imports", headers=auth("admin", **CSV), body=out.getvalue())
    assert resp.status_code == 200, resp.body
    return body(resp)


def lifecycle(default: list[CardFunction] | None = None) -> tuple[Lifecycle, DynamoOutboxStore]:
    create_queues()
    store = DynamoOutboxStore(deps.field_cipher())
    queue = SqsPushQueue(client("sqs"), queue_name(get_settings(), OUTBOX_QUEUE))
    defaults = default if default is not None else [CardFunction(f) for f in get_settings().default_functions]
    return Lifecycle(deps.inventory_repo(), store, queue, default_functions=defaults), store


def test_a_model_with_telematics_only_pushes_emergency_and_telematics_and_opens_no_more(
    api: Any, auth: Auth
) -> None:
    rng = random.Random(701)
    # Given a vehicle imported with the model's functions: telematics only
    r = row(rng, "telematics")
    assert post(api, auth, r)["errors"] == []
    vehicle = deps.inventory_repo().get_vehicle(r["vin"])
    assert vehicle is not None
    assert vehicle.functions == (CardFunction.TELEMATICS,)
    # When its card's registration is submitted
    life, store = lifecycle()
    outcome = life.submit_registration(r["iccid"], person(7011), "owner:u1")
    # Then the outbox record pushed to the operator asks for emergency and telematics only
    assert outcome.record_id is not None
    record = store.get(outcome.record_id)
    assert record is not None
    assert record.kind is PushKind.REGISTER
    assert record.message.functions == [CardFunction.EMERGENCY, CardFunction.TELEMATICS]
    # And when the operator accepts saying it opened everything, the card opens only what was asked
    card = deps.inventory_repo().get_card(r["iccid"])
    assert card is not None
    life.apply_callback(answer(outcome.record_id, card, CallbackOutcome.ACCEPTED, functions=ALL))
    card = deps.inventory_repo().get_card(r["iccid"])
    assert card is not None
    assert card.functions == [CardFunction.EMERGENCY, CardFunction.TELEMATICS]


def test_a_vehicle_without_model_functions_gets_the_oem_default(api: Any, auth: Auth) -> None:
    rng = random.Random(702)
    r = row(rng)
    post(api, auth, r)
    life, store = lifecycle([CardFunction.DATA])
    outcome = life.submit_registration(r["iccid"], person(7021), "owner:u1")
    assert outcome.record_id is not None
    record = store.get(outcome.record_id)
    assert record is not None
    assert record.message.functions == [CardFunction.EMERGENCY, CardFunction.DATA]
    # the stage's own default (settings) asks for telematics and data beside emergency
    assert get_settings().default_functions == ["telematics", "data"]


def test_a_reimport_without_the_column_keeps_the_models_functions_and_a_new_value_replaces_them(
    api: Any, auth: Auth
) -> None:
    rng = random.Random(703)
    r = row(rng, "telematics|data")
    post(api, auth, r)
    assert post(api, auth, {**r, "functions": ""})["vehicles_unchanged"] == 1
    vehicle = deps.inventory_repo().get_vehicle(r["vin"])
    assert vehicle is not None
    assert vehicle.functions == (CardFunction.TELEMATICS, CardFunction.DATA)
    assert post(api, auth, {**r, "functions": "emergency"})["vehicles_updated"] == 1
    vehicle = deps.inventory_repo().get_vehicle(r["vin"])
    assert vehicle is not None
    assert vehicle.functions == ()
    life, store = lifecycle()
    outcome = life.submit_registration(r["iccid"], person(7031), "owner:u1")
    assert outcome.record_id is not None
    record = store.get(outcome.record_id)
    assert record is not None
    assert record.message.functions == [CardFunction.EMERGENCY]


def test_an_unknown_function_refuses_the_row_with_its_reason(api: Any, auth: Auth) -> None:
    rng = random.Random(704)
    good, bad = row(rng, "data"), row(rng, "telematics;video")
    report = post(api, auth, good, bad)
    assert report["cards_created"] == 1
    [error] = report["errors"]
    assert (error["row"], error["field"], error["code"]) == (3, "functions", "functions.unknown")
    assert "video" in error["message_en"]
    assert "video" in error["message_zh"]
