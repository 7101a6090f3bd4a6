"""The face check's one write, on the embedded AWS: the session claimed, the attempt counted and the
verdict saved together, or none of them.

The engines are the scripted fakes of ``test_verification_limits``; flows, counters, sessions, photos and
the evidence log are the real DynamoDB, S3 and KMS adapters. A store failure is raised where botocore
sends the transaction that names the liveness sessions' table (the verdict's write), as DynamoDB
answers a throttle, or after the write landed with its reply lost.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from chalicelib.core.outbound import Unavailable
from chalicelib.kernel.clock import china_day
from chalicelib.kernel.errors import DomainError
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import CheckName, CheckVerdict, Flow
from tests.integration.test_verification_limits import OWNER, World, jpeg, refused


@pytest.fixture
def world(aws: None) -> World:
    return World()


def _names_sessions(request_dict: Any) -> bool:
    """Whether a ``TransactWriteItems`` request writes the liveness sessions' table."""
    body = request_dict.get("body") or b"{}"
    sent = json.loads(body.decode() if isinstance(body, bytes) else body)
    actions = sent.get("TransactItems", [])
    tables = {part.get("TableName", "") for action in actions for part in action.values()}
    return any(name.endswith("-liveness-sessions") for name in tables)


@contextlib.contextmanager
def verdict_write_fails(*, lands: bool) -> Iterator[list[str]]:
    """The verdict's transaction throttled (``lands=False``) or landed with its reply lost; the
    operations struck, one per strike."""
    from botocore.endpoint import Endpoint

    original = Endpoint.make_request
    struck: list[str] = []

    def faulty(endpoint: Endpoint, operation_model: Any, request_dict: Any) -> Any:
        if operation_model.name == "TransactWriteItems" and _names_sessions(request_dict):
            struck.append(operation_model.name)
            if lands:
                original(endpoint, operation_model, request_dict)
                raise ReadTimeoutError(endpoint_url="https://aws.invalid/TransactWriteItems")
            response: Any = {
                "Error": {"Code": "ProvisionedThroughputExceededException", "Message": "throttled"},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            }
            raise ClientError(response, operation_model.name)
        return original(endpoint, operation_model, request_dict)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Endpoint, "make_request", faulty)
        yield struck


def _flow(world: World, flow_id: str) -> Flow:
    flow = world.service.flows.find(flow_id)
    assert flow is not None
    return flow


def _used_at(session_id: str) -> Any:
    from chalicelib.adapters.dynamo.flows import DynamoLivenessSessions

    session = DynamoLivenessSessions().get(session_id)
    assert session is not None
    return session.used_at


def _live_captures(flow_id: str) -> list[str]:
    """Every version and delete marker kept under the flow's live captures."""
    from chalicelib.core.aws import client
    from chalicelib.core.settings import get_settings

    listed = client("s3").list_object_versions(
        Bucket=get_settings().documents_bucket, Prefix=f"documents/{flow_id}/live_capture/"
    )
    return [str(v["Key"]) for v in [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]]


def _left(world: World, flow_id: str) -> tuple[int, int]:
    left = world.service.attempts_left(flow_id, OWNER)
    assert left is not None
    return left.flow, left.person_today


def _send(world: World, flow_id: str, session_id: str) -> Callable[[], Any]:
    return lambda: world.service.complete_liveness(flow_id, OWNER, session_id, [jpeg(640, 480)] * 3)


def test_a_throttled_verdict_write_leaves_the_session_claimable_no_attempt_counted_and_no_capture(
    world: World,
) -> None:
    flow_id = world.ready_flow()
    session = world.service.start_liveness(flow_id, OWNER)
    before = _flow(world, flow_id)
    with verdict_write_fails(lands=False) as struck, pytest.raises(Unavailable):
        _send(world, flow_id, session.session_id)()
    assert struck == ["TransactWriteItems"]
    after = _flow(world, flow_id)
    assert (after.version, after.checks.get(CheckName.FACE)) == (before.version, CheckVerdict.STARTED)
    assert "live_capture" not in after.documents
    assert _used_at(session.session_id) is None
    assert _left(world, flow_id) == (3, 5)
    assert _live_captures(flow_id) == []  # the capture kept for the verdict went with it
    # The same session, sent again, is judged and passes; then it is spent.
    outcome = _send(world, flow_id, session.session_id)()
    assert (outcome.passed, outcome.attempts_left) == (True, 2)
    assert _left(world, flow_id) == (2, 4)
    saved = _flow(world, flow_id)
    assert saved.checks[CheckName.FACE] is CheckVerdict.PASSED
    assert _live_captures(flow_id) == [saved.documents["live_capture"]]
    err = refused(_send(world, flow_id, session.session_id))
    assert (err.status, err.code) == (409, "liveness.session_used")


def test_a_quota_filled_while_judging_refuses_the_verdict_and_counts_nothing_more(world: World) -> None:
    from chalicelib.adapters.dynamo.flows import DynamoAttemptCounters

    flow_id = world.ready_flow()
    session = world.service.start_liveness(flow_id, OWNER)
    before = _flow(world, flow_id)
    assert before.person_hash is not None
    person_hash = before.person_hash

    def fill_the_flows_quota() -> None:  # three attempts of the flow land while this one is judged
        day, until = china_day(world.clock.now), world.clock.now + timedelta(days=2)
        for _ in range(3):
            DynamoAttemptCounters().consume(flow_id, person_hash, day, 3, 5, until)

    world.liveness.meanwhile = fill_the_flows_quota
    err = refused(_send(world, flow_id, session.session_id))
    world.liveness.meanwhile = None
    assert (err.status, err.code) == (429, "face.attempts_exhausted")
    assert err.details["scope"] == "flow"
    assert _left(world, flow_id) == (0, 2)  # the person's quota not counted a fourth time either
    assert _used_at(session.session_id) is None
    after = _flow(world, flow_id)
    assert (after.version, after.checks.get(CheckName.FACE)) == (before.version, CheckVerdict.STARTED)
    assert _live_captures(flow_id) == []
    kinds = [entry.kind for entry in world.evidence.entries(flow_id)]
    assert kinds[-1] is EvidenceKind.ATTEMPTS_EXHAUSTED


def test_a_flow_changed_while_judging_refuses_the_verdict_and_spends_nothing(world: World) -> None:
    flow_id = world.ready_flow()
    session = world.service.start_liveness(flow_id, OWNER)
    before = _flow(world, flow_id)

    def note_meanwhile() -> None:  # another write of the flow lands while this send is judged
        world.service.flows.save(_flow(world, flow_id))

    world.liveness.meanwhile = note_meanwhile
    err = refused(_send(world, flow_id, session.session_id))
    world.liveness.meanwhile = None
    assert (err.status, err.code) == (409, "flow.changed")
    assert _used_at(session.session_id) is None
    assert _left(world, flow_id) == (3, 5)
    after = _flow(world, flow_id)
    assert (after.version, after.checks.get(CheckName.FACE)) == (before.version + 1, CheckVerdict.STARTED)
    assert _live_captures(flow_id) == []


def test_a_verdict_whose_reply_was_lost_is_saved_once_and_its_session_is_refused_after(world: World) -> None:
    flow_id = world.ready_flow()
    session = world.service.start_liveness(flow_id, OWNER)
    with verdict_write_fails(lands=True) as struck, pytest.raises(Unavailable):
        _send(world, flow_id, session.session_id)()
    assert struck == ["TransactWriteItems"]
    saved = _flow(world, flow_id)
    assert saved.checks[CheckName.FACE] is CheckVerdict.PASSED
    assert _used_at(session.session_id) is not None
    assert _left(world, flow_id) == (2, 4)
    # The capture the saved verdict records stays, though the send was answered with a failure.
    assert _live_captures(flow_id) == [saved.documents["live_capture"]]
    judged = world.liveness.judged
    with pytest.raises(DomainError) as caught:
        _send(world, flow_id, session.session_id)()
    assert (caught.value.status, caught.value.code) == (409, "liveness.session_used")
    assert world.liveness.judged == judged
    assert _left(world, flow_id) == (2, 4)
