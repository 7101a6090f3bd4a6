"""An engine call late in a request waits for what is left before the function's end, rather than being
refused for what its full wait could take; it is refused only when too little is left, and then as
``engine.unavailable`` (which the services' engine fallbacks handle), never as a bare ``DeadlineExceeded``."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.adapters.engines import invoker as invoker_module
from chalicelib.adapters.engines.invoker import LambdaEngineInvoker
from chalicelib.core import outbound
from chalicelib.verification.domain.engines import EngineUnavailable


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeLambda:
    """A Lambda client that answers every invoke with ``{"ok": true}``; its read timeout as given."""

    def __init__(self, read_timeout: float) -> None:
        from botocore.config import Config

        self.meta = type("Meta", (), {"config": Config(read_timeout=read_timeout)})()
        self.invoked = 0

    def invoke(self, **_: Any) -> dict[str, Any]:
        from botocore.response import StreamingBody

        self.invoked += 1
        body = json.dumps({"ok": True}).encode()
        return {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(body), len(body))}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeMonotonic]:
    fake = FakeMonotonic()
    monkeypatch.setattr(outbound, "time", fake)
    monkeypatch.setattr(invoker_module, "time", fake)
    token = outbound.begin_request(20.0)  # at 1000: budget spent at 1020, the function's end at 1028
    yield fake
    outbound.end_request(token)


def invoker_with_shorter_clients() -> tuple[LambdaEngineInvoker, FakeLambda, dict[int, FakeLambda]]:
    full = FakeLambda(20.0)
    shorter: dict[int, FakeLambda] = {}

    def client_for(read: int) -> FakeLambda:
        return shorter.setdefault(read, FakeLambda(float(read)))

    made = LambdaEngineInvoker(full, "cheka-test-engines", client_for=client_for, connect_seconds=2.0)
    return made, full, shorter


def test_an_engine_call_late_in_the_request_waits_only_for_what_is_left_and_is_answered(
    clock: FakeMonotonic,
) -> None:
    invoke, full, shorter = invoker_with_shorter_clients()
    assert invoke({"op": "faces.detect", "args": {}}) == {"ok": True}  # 28 s left: the full 20 s wait
    assert (full.invoked, shorter) == (1, {})
    clock.now += 13  # the third engine call of a slow face check: 15 s left, 2 s of them to connect
    assert invoke({"op": "faces.compare", "args": {}}) == {"ok": True}
    assert sorted(shorter) == [12]
    assert shorter[12].invoked == 1
    clock.now += 8  # past the request's budget: the function's end, not the budget, bounds an engine
    assert invoke({"op": "liveness.judge", "args": {}}) == {"ok": True}
    assert shorter[4].invoked == 1


def test_a_shorter_client_is_made_once_per_read_timeout_not_per_call(clock: FakeMonotonic) -> None:
    full = FakeLambda(20.0)
    made: list[int] = []

    def client_for(read: int) -> FakeLambda:
        made.append(read)
        return FakeLambda(float(read))

    invoke = LambdaEngineInvoker(full, "cheka-test-engines", client_for=client_for, connect_seconds=2.0)
    clock.now += 13  # 15 s left: a 12 s client
    for _ in range(3):
        assert invoke({"op": "faces.compare", "args": {}}) == {"ok": True}
    clock.now += 0.4  # still a 12 s read
    assert invoke({"op": "faces.compare", "args": {}}) == {"ok": True}
    clock.now += 8  # a 4 s read: one more client
    assert invoke({"op": "liveness.judge", "args": {}}) == {"ok": True}
    assert made == [12, 4]


def test_an_engine_call_with_too_little_left_is_refused_as_engine_unavailable_without_calling(
    clock: FakeMonotonic,
) -> None:
    invoke, full, shorter = invoker_with_shorter_clients()
    clock.now += 22.6  # 5.4 s left: 2 s to connect, under 3 s to read
    with pytest.raises(EngineUnavailable) as refused:
        invoke({"op": "faces.compare", "args": {}})
    assert (refused.value.code, refused.value.details["cause"]) == ("engine.unavailable", "timeout")
    assert (full.invoked, shorter) == (0, {})


def test_a_deadline_refusal_from_the_lambda_client_is_engine_unavailable() -> None:
    class Refusing(FakeLambda):
        def invoke(self, **_: Any) -> dict[str, Any]:
            raise outbound.DeadlineExceeded("lambda", "Invoke", 22)

    with pytest.raises(EngineUnavailable) as refused:
        LambdaEngineInvoker(Refusing(20.0), "cheka-test-engines")({"op": "faces.detect", "args": {}})
    assert refused.value.details["engine"] == "faces"


def test_the_engines_lambda_clients_are_bounded_by_the_functions_end_not_the_requests_budget(
    clock: FakeMonotonic,
) -> None:
    from chalicelib.core import aws, deps
    from chalicelib.core.settings import get_settings

    aws.reset()
    deps.reset()
    invoke = deps.engine_invoker()
    assert isinstance(invoke, LambdaEngineInvoker)
    shorter = invoke._client_for
    assert shorter is not None
    lambda_client = shorter(4)
    assert lambda_client.meta.config.read_timeout == 4
    assert lambda_client.meta.config.retries["total_max_attempts"] == 1
    assert get_settings().engines_timeout_seconds == 20
    clock.now += 21  # the budget is spent; 2 + 4 s still end before the function does
    lambda_client.meta.events.emit("before-send.lambda.Invoke", request=None)
    with pytest.raises(outbound.DeadlineExceeded):  # a store call is refused past the budget
        aws.client("dynamodb").meta.events.emit("before-send.dynamodb.GetItem", request=None)
    clock.now += 2  # 5 s left: an attempt of 6 s could outlive the function
    with pytest.raises(outbound.DeadlineExceeded):
        lambda_client.meta.events.emit("before-send.lambda.Invoke", request=None)
    aws.reset()
    deps.reset()
