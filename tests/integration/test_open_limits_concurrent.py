"""Open registrations and flows per owner under a burst: starts of one owner sent at the same moment (threads
against the embedded DynamoDB, released together by a barrier) pass only up to the owner's limit, and the
store holds no more open ones than that. Another owner's starts are not held up by them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest

from chalicelib.adapters.dynamo.flows import DynamoFlowRepository
from chalicelib.adapters.dynamo.registrations import DynamoRegistrationRepository
from chalicelib.registration.domain.registrations import (
    Registration,
    RegistrationKind,
    RegistrationStatus,
    count_open,
)
from chalicelib.verification.domain.flows import FlowPurpose, FlowStatus, new_flow
from tests.fakes.crypto import FakeCipher

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
LIMIT = 3
BURST = 12


@pytest.fixture
def tables() -> Iterator[None]:
    """The embedded DynamoDB with the tables the opens touch: registrations, flows and attempts."""
    from moto import mock_aws

    from chalicelib.adapters.dynamo.models import AttemptCounterModel, FlowModel, RegistrationModel, bind
    from chalicelib.core.settings import get_settings

    with mock_aws():
        bind(get_settings())
        for model in (RegistrationModel, FlowModel, AttemptCounterModel):
            schema = model._get_schema()
            model._get_connection().create_table(
                attribute_definitions=schema["attribute_definitions"],
                key_schema=schema["key_schema"],
                global_secondary_indexes=schema["global_secondary_indexes"],
                local_secondary_indexes=schema["local_secondary_indexes"],
                billing_mode="PAY_PER_REQUEST",
            )
        yield


def burst(calls: Sequence[Callable[[], bool]]) -> list[bool]:
    """Every call at once: each thread waits at the barrier until all are ready."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], bool]) -> bool:
        barrier.wait(timeout=10)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def registration(n: int, owner: str) -> Registration:
    return Registration(
        registration_id=f"r{owner}-{n}",
        owner=owner,
        kind=RegistrationKind.REGISTRATION,
        vin=f"LSVAU2180N{n:07d}",
        iccids=[],
        status=RegistrationStatus.OPEN,
        version=1,
        created_at=NOW + timedelta(microseconds=n),
        updated_at=NOW,
        expires_at=NOW + timedelta(hours=24),
    )


def test_a_burst_of_concurrent_starts_by_one_owner_opens_no_more_registrations_than_the_limit(
    tables: None,
) -> None:
    repo = DynamoRegistrationRepository(FakeCipher())
    # one already open: two more fit
    assert repo.create_if_room(registration(0, "u-burst"), LIMIT, NOW) is True
    calls = [
        partial(repo.create_if_room, registration(n, "u-burst"), LIMIT, NOW) for n in range(1, BURST + 1)
    ]
    passed = burst(calls)
    assert sum(passed) == LIMIT - 1
    stored = repo.of_owner("u-burst")
    assert len(stored) == LIMIT
    assert count_open(stored, NOW) == LIMIT
    # another owner has room of their own
    assert repo.create_if_room(registration(99, "u-other"), LIMIT, NOW) is True


def test_a_submitted_or_expired_registration_makes_room_for_a_start(tables: None) -> None:
    repo = DynamoRegistrationRepository(FakeCipher())
    for n in range(LIMIT):
        assert repo.create_if_room(registration(n, "u-room"), LIMIT, NOW) is True
    assert repo.create_if_room(registration(10, "u-room"), LIMIT, NOW) is False
    first = repo.get("ru-room-0")
    assert first is not None
    repo.save(first.model_copy(update={"status": RegistrationStatus.SUBMITTED, "version": 2}))
    assert repo.create_if_room(registration(11, "u-room"), LIMIT, NOW) is True
    assert repo.create_if_room(registration(12, "u-room"), LIMIT, NOW) is False
    later = NOW + timedelta(hours=25)  # every open one has expired
    assert repo.create_if_room(registration(13, "u-room"), LIMIT, later) is True


def test_a_burst_of_concurrent_flow_opens_by_one_owner_stores_no_more_open_flows_than_the_limit(
    tables: None,
) -> None:
    repo = DynamoFlowRepository(FakeCipher())
    ttl = timedelta(hours=24)
    calls = [
        partial(
            repo.create_if_room,
            new_flow(f"f-burst-{n}", "u-burst", FlowPurpose.REGISTRATION, NOW, ttl),
            LIMIT,
            NOW,
        )
        for n in range(BURST)
    ]
    passed = burst(calls)
    assert sum(passed) == LIMIT
    stored = [repo.get(f"f-burst-{n}") for n in range(BURST)]
    kept = [f for f in stored if f is not None]
    assert len(kept) == LIMIT
    assert all(f.status is FlowStatus.OPEN for f in kept)
    assert repo.open_count("u-burst", NOW) == LIMIT


def test_a_start_the_store_fails_to_write_counts_no_open_and_leaves_nothing(tables: None) -> None:
    """The owner's turn and the registration are one write: the store throttling it leaves no turn taken
    and no registration, and the owner still has every place (a start taken again is not counted twice)."""
    from botocore.endpoint import Endpoint
    from botocore.exceptions import ClientError

    from chalicelib.adapters.dynamo.models import AttemptCounterModel
    from chalicelib.core.outbound import Unavailable

    repo = DynamoRegistrationRepository(FakeCipher())
    original = Endpoint.make_request

    def throttled(endpoint: Endpoint, operation_model: Any, request_dict: Any) -> Any:
        if operation_model.name == "TransactWriteItems":
            error: Any = {
                "Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            }
            raise ClientError(error, operation_model.name)
        return original(endpoint, operation_model, request_dict)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Endpoint, "make_request", throttled)
        with pytest.raises(Unavailable):
            repo.create_if_room(registration(0, "u-throttled"), LIMIT, NOW)
    assert repo.get("ru-throttled-0") is None
    assert list(AttemptCounterModel.scan()) == []
    for n in range(LIMIT):
        assert repo.create_if_room(registration(n, "u-throttled"), LIMIT, NOW) is True
    assert repo.create_if_room(registration(LIMIT, "u-throttled"), LIMIT, NOW) is False


@pytest.mark.parametrize("kind", ["registration", "flow"])
def test_a_start_at_one_below_the_limit_whose_retry_met_its_own_commit_as_a_conflict_is_started(
    tables: None, kind: str
) -> None:
    """The start's transaction commits, but botocore's retry of it (the reply lost) meets the commit
    still in flight and is cancelled as a conflict: the read that follows shows the start's own id,
    which is not counted against it, so at the limit less one the start is answered as started."""
    from botocore.exceptions import ClientError

    from chalicelib.adapters.dynamo.models import AttemptCounterModel

    owner = f"u-late-{kind}"
    registrations = DynamoRegistrationRepository(FakeCipher())
    flows = DynamoFlowRepository(FakeCipher())
    ttl = timedelta(hours=24)

    def start(n: int) -> bool:
        if kind == "registration":
            return registrations.create_if_room(registration(n, owner), LIMIT, NOW)
        return flows.create_if_room(
            new_flow(f"f-{owner}-{n}", owner, FlowPurpose.REGISTRATION, NOW, ttl), LIMIT, NOW
        )

    def open_count() -> int:
        if kind == "registration":
            return count_open(registrations.of_owner(owner), NOW)
        return flows.open_count(owner, NOW)

    for n in range(LIMIT - 1):
        assert start(n) is True
    client = AttemptCounterModel._get_connection().connection.client
    real = client._make_api_call
    tokens: list[str | None] = []

    def committed_then_conflict(operation: str, kwargs: dict[str, Any]) -> Any:
        if operation != "TransactWriteItems" or tokens:
            return real(operation, kwargs)
        tokens.append(kwargs.get("ClientRequestToken"))
        real(operation, kwargs)  # the first attempt commits; its reply is lost
        raise ClientError(
            {
                "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
                "CancellationReasons": [{"Code": "TransactionConflict"}, {"Code": "None"}],
                "ResponseMetadata": {"HTTPStatusCode": 400, "RetryAttempts": 1},
            },
            operation,
        )

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(client, "_make_api_call", committed_then_conflict)
        assert start(LIMIT - 1) is True
    assert len(tokens) == 1
    assert tokens[0]
    assert open_count() == LIMIT
    # The owner is now at the limit: another start is refused and writes nothing
    assert start(LIMIT) is False
    assert open_count() == LIMIT
