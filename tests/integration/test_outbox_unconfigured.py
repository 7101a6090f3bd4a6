"""Pushes to an operator the stage has not configured yet (no endpoint URL, or a secret without keys, as
infra creates them) wait in the outbox: pending with the reason, no attempt spent, never dead-lettered,
their messages not piling up into the queue's DLQ; once the setting is there, the sweep delivers them."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.adapters.operator.http import HttpOperatorGateway
from chalicelib.adapters.operator.secrets import SecretsManagerKeySource
from chalicelib.core.aws import client
from chalicelib.core.observability import get_logger
from chalicelib.core.settings import get_settings
from chalicelib.core.stages import stage_settings
from chalicelib.kernel.operators import Operator
from chalicelib.local.sandbox_operator import SandboxOperator
from chalicelib.operators.dispatch import Dispatcher, DispatchOutcome
from chalicelib.operators.domain.outbox import OutboxStatus
from chalicelib.operators.keys import generate_operator_keys, secret_name
from tests.integration.test_lifecycle import World, make_world, receive_all
from tests.integration.test_outbox_dispatch import submit

UNICOM = Operator.CHINA_UNICOM


def _keys() -> SecretsManagerKeySource:
    return SecretsManagerKeySource(client("secretsmanager"), get_settings().operator_secret_pattern)


def _dispatcher(world: World, gateway: HttpOperatorGateway) -> Dispatcher:
    """The stage's dispatcher as a cold start builds it, with this gateway, on the world's store and clock."""
    return Dispatcher(
        world.store,
        gateway,
        world.queue,
        dead_letters=world.dead_letters,
        policy=world.policy,
        clock=world.clock,
    )


def _redrive_dlq_url() -> str:
    """The queue SQS moves a message to after ``maxReceiveCount`` receives (the stage's declaration)."""
    sqs = client("sqs")
    url = sqs.get_queue_url(QueueName=f"{get_settings().resource_prefix}-{get_settings().stage}-outbox")[
        "QueueUrl"
    ]
    policy = json.loads(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"][
            "RedrivePolicy"
        ]
    )
    name = policy["deadLetterTargetArn"].rsplit(":", 1)[1]
    return str(sqs.get_queue_url(QueueName=name)["QueueUrl"])


def _visible(url: str) -> int:
    attrs = client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def _not_configured_metrics(out: str) -> list[dict[str, Any]]:
    found = []
    for line in out.splitlines():
        if not line.startswith("{"):
            continue
        doc = json.loads(line)
        metrics = doc.get("_aws", {}).get("CloudWatchMetrics", [])
        if any(m["Name"] == "OperatorNotConfigured" for d in metrics for m in d["Metrics"]):
            found.append(doc)
    return found


@pytest.fixture
def world(aws: None) -> World:
    return make_world()


@pytest.fixture
def sandbox() -> Iterator[SandboxOperator]:
    """The sandbox operator on a free port; it decides later than these tests look (no callbacks)."""
    with SandboxOperator(
        _keys(), "http://127.0.0.1:9/v1/operator/callbacks", decision_delay_seconds=600
    ) as s:
        yield s


def test_a_push_to_an_operator_without_a_url_waits_then_the_sweep_delivers_it(
    world: World,
    sandbox: SandboxOperator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    get_logger()  # the service logger writes where it always does; only the metric lines are captured
    printed = io.StringIO()
    # Given a stage whose operator URLs are not filled in yet (its keys are there)
    unconfigured = _dispatcher(world, HttpOperatorGateway({}, _keys()))
    record_id = submit(world, 101)
    # When its message is handled, and the sweep re-enqueues it round after round (ten rounds)
    outcomes = []
    with contextlib.redirect_stdout(printed):
        for _ in range(10):
            messages = receive_all(world.queue)
            assert len(messages) == 1
            result = unconfigured.handle_received(messages)
            assert result == {"batchItemFailures": []}  # handled: the message is deleted, not redelivered
            outcomes.append(unconfigured.dispatch(record_id))  # a duplicate delivery meanwhile: not due
            world.clock.advance(world.policy.unconfigured_wait_seconds + 1)
            assert unconfigured.sweep().enqueued == 1
    # Then the record is pending with its reason, no attempt spent, never dead
    record = world.store.get(record_id)
    assert record is not None
    assert (record.status, record.attempts) == (OutboxStatus.PENDING, 0)
    assert record.last_error == "operator not configured: china_unicom (url)"
    assert outcomes == [DispatchOutcome.SKIPPED] * 10
    # And nothing reached a dead-letter queue: neither ours nor SQS's redrive target
    assert receive_all(world.dead_letters) == []
    assert _visible(_redrive_dlq_url()) == 0
    # And each wait was counted in the metric the alarm reads, by operator
    waits = _not_configured_metrics(printed.getvalue())
    assert len([w for w in waits if w.get("operator") == UNICOM.value]) == 10
    # When the deployment fills the URL in (a new cold start reads it) and the sweep comes by
    configured = _dispatcher(world, HttpOperatorGateway(dict.fromkeys(Operator, sandbox.url), _keys()))
    assert configured.sweep().enqueued == 0  # already enqueued by the last round
    handled = configured.handle_received(receive_all(world.queue))
    # Then it is delivered on its first attempt
    assert handled == {"batchItemFailures": []}
    record = world.store.get(record_id)
    assert record is not None
    assert (record.status, record.attempts) == (OutboxStatus.SENT, 1)
    assert sandbox.received(UNICOM) == [record_id]


def test_a_secret_without_keys_makes_pushes_wait_until_keys_are_put(
    world: World, sandbox: SandboxOperator
) -> None:
    # Given the operator's secret as infra creates it: present, holding a generated password, no keys
    sm = client("secretsmanager")
    name = secret_name(get_settings().operator_secret_pattern, UNICOM)
    real = sm.get_secret_value(SecretId=name)["SecretString"]
    sm.put_secret_value(SecretId=name, SecretString="q8S!x2-generated-placeholder")
    keys = _keys()
    gateway = HttpOperatorGateway(dict.fromkeys(Operator, sandbox.url), keys)
    dispatcher = _dispatcher(world, gateway)
    assert gateway.missing_configuration() == {UNICOM.value: "keys"}
    record_id = submit(world, 102)
    # When the push is tried (three times, each when the sweep brings it back)
    for _ in range(3):
        assert dispatcher.dispatch(record_id) is DispatchOutcome.WAITING
        world.clock.advance(world.policy.unconfigured_wait_seconds + 1)
        dispatcher.sweep()
    # Then it waits with the reason, without spending attempts, and nothing reached the operator
    record = world.store.get(record_id)
    assert record is not None
    assert (record.status, record.attempts) == (OutboxStatus.PENDING, 0)
    assert record.last_error == "operator not configured: china_unicom (keys)"
    assert sandbox.received(UNICOM) == []
    # When the keys are put in the secret, the next sweep's push goes through with them
    sm.put_secret_value(SecretId=name, SecretString=real)
    handled = dispatcher.handle_received(receive_all(world.queue))
    assert handled == {"batchItemFailures": []}
    record = world.store.get(record_id)
    assert record is not None
    assert (record.status, record.attempts) == (OutboxStatus.SENT, 1)


def test_missing_configuration_names_what_each_operator_lacks_and_is_cached(aws: None) -> None:
    # Every operator with a URL and its keys: nothing missing
    assert (
        HttpOperatorGateway(dict.fromkeys(Operator, "http://127.0.0.1:9"), _keys()).missing_configuration()
        == {}
    )
    sm = client("secretsmanager")
    pattern = get_settings().operator_secret_pattern
    sm.put_secret_value(SecretId=secret_name(pattern, Operator.CHINA_MOBILE), SecretString="{}")
    sm.put_secret_value(
        SecretId=secret_name(pattern, Operator.CHINA_TELECOM),
        SecretString=generate_operator_keys(Operator.CHINA_UNICOM).to_json(),  # another operator's keys
    )
    calls: list[str] = []
    real_get = sm.get_secret_value

    class CountingClient:
        exceptions = sm.exceptions

        def get_secret_value(self, **kw: Any) -> Any:
            calls.append(kw["SecretId"])
            return real_get(**kw)

    urls = {Operator.CHINA_UNICOM: "http://127.0.0.1:9", Operator.CHINA_TELECOM: "http://127.0.0.1:9"}
    urls[Operator.CHINA_BROADNET] = " "  # an empty setting is no setting
    gateway = HttpOperatorGateway(urls, SecretsManagerKeySource(CountingClient(), pattern))
    # A stage with URLs for two operators, one empty secret and one holding the wrong operator's keys
    assert gateway.missing_configuration() == {
        "china_mobile": "url, keys",
        "china_telecom": "keys",
        "china_broadnet": "url",
    }
    read = len(calls)
    assert read >= 4
    # Asked again within the cache period: the same answer, without reading Secrets Manager again
    assert gateway.missing_configuration()["china_mobile"] == "url, keys"
    assert len(calls) == read


def test_a_stage_without_declared_operator_urls_reports_them_missing_until_deploy_fills_them(
    aws: None,
) -> None:
    # A deployed stage as .chalice/config.json declares it: no operator URLs (filled in at deploy)
    prod = stage_settings("prod")
    assert prod.operator_urls() == {}
    bare = HttpOperatorGateway({Operator(op): url for op, url in prod.operator_urls().items()}, _keys())
    assert bare.missing_configuration() == dict.fromkeys((op.value for op in Operator), "url")
    # The deployment fills CHEKA_OPERATOR_BASE_URLS in (JSON, operator → base URL)
    urls = {"china_mobile": "https://gw.example.cn/iot", "china_unicom": "https://iot.example.cn"}
    filled = stage_settings("prod", CHEKA_OPERATOR_BASE_URLS=json.dumps(urls))
    assert filled.operator_urls() == urls
    gateway = HttpOperatorGateway({Operator(op): url for op, url in filled.operator_urls().items()}, _keys())
    assert gateway.missing_configuration() == {"china_telecom": "url", "china_broadnet": "url"}
