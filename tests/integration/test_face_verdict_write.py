"""The face check's one write, on the embedded AWS: the session claimed, the attempt counted, the
verdict saved and its evidence chained together, or none of them.

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
from chalicelib.verification.domain.documents import DocumentKind
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


@pytest.fixture
def gated_world(aws: None) -> World:
    """The world with the one-face-one-identity gate, which records the face bound once a pass is saved."""
    from chalicelib.verification.dedup import FaceDedupGate
    from tests.fakes.faces import FakeFaceIndex

    w = World()
    face = w.service.face
    face._gates = (*face._gates, FaceDedupGate(FakeFaceIndex(), w.evidence, 90.0))
    return w


_VERDICT_KINDS = (EvidenceKind.LIVENESS_CHECKED, EvidenceKind.FACE_COMPARED, EvidenceKind.FACE_BOUND)


def _verdict_entries(world: World, flow_id: str) -> dict[EvidenceKind, list[dict[str, Any]]]:
    """The face verdict's entries of the flow's evidence, by kind (a liveness entry only if counted)."""
    out: dict[EvidenceKind, list[dict[str, Any]]] = {kind: [] for kind in _VERDICT_KINDS}
    for entry in world.evidence.entries(flow_id):
        if entry.kind is EvidenceKind.LIVENESS_CHECKED and entry.public.get("attempt") is not True:
            continue
        if entry.kind in out:
            out[entry.kind].append(dict(entry.public))
    return out


def test_a_throttled_verdict_write_chains_no_verdict_entry_and_the_retry_one_of_each(
    gated_world: World,
) -> None:
    world = gated_world
    flow_id = world.ready_flow()
    session = world.service.start_liveness(flow_id, OWNER)
    with verdict_write_fails(lands=False), pytest.raises(Unavailable):
        _send(world, flow_id, session.session_id)()
    assert _verdict_entries(world, flow_id) == {kind: [] for kind in _VERDICT_KINDS}
    assert world.evidence.verify(flow_id).ok
    outcome = _send(world, flow_id, session.session_id)()
    assert outcome.passed is True
    entries = _verdict_entries(world, flow_id)
    assert [len(entries[kind]) for kind in _VERDICT_KINDS] == [1, 1, 1]
    assert entries[EvidenceKind.LIVENESS_CHECKED][0]["session_id"] == session.session_id
    assert entries[EvidenceKind.FACE_COMPARED][0]["verdict"] == "match"
    assert world.evidence.verify(flow_id).ok


def test_a_refused_verdict_write_chains_none_of_its_entries(gated_world: World) -> None:
    world = gated_world
    flow_id = world.ready_flow()
    session = world.service.start_liveness(flow_id, OWNER)

    def note_meanwhile() -> None:  # another write of the flow lands while this send is judged
        world.service.flows.save(_flow(world, flow_id))

    world.liveness.meanwhile = note_meanwhile
    err = refused(_send(world, flow_id, session.session_id))
    world.liveness.meanwhile = None
    assert err.code == "flow.changed"
    assert _verdict_entries(world, flow_id) == {kind: [] for kind in _VERDICT_KINDS}
    assert _live_captures(flow_id) == []  # refused by a condition: the capture kept for it went
    assert world.evidence.verify(flow_id).ok


def test_two_sends_of_one_session_at_once_chain_one_counted_attempt(gated_world: World) -> None:
    world = gated_world
    flow_id = world.ready_flow()
    session = world.service.start_liveness(flow_id, OWNER)
    other: list[Any] = []

    def the_other_send_lands_first() -> None:
        world.liveness.meanwhile = None
        other.append(_send(world, flow_id, session.session_id)())
        world.liveness.live = False  # this send's own burst: judged not live

    world.liveness.meanwhile = the_other_send_lands_first
    err = refused(_send(world, flow_id, session.session_id))
    assert err.code == "liveness.session_used"
    assert [o.passed for o in other] == [True]
    assert _flow(world, flow_id).checks[CheckName.FACE] is CheckVerdict.PASSED
    assert _left(world, flow_id) == (2, 4)
    entries = _verdict_entries(world, flow_id)
    assert [len(entries[kind]) for kind in _VERDICT_KINDS] == [1, 1, 1]
    assert entries[EvidenceKind.LIVENESS_CHECKED][0]["live"] is True  # the send that was saved
    assert world.evidence.verify(flow_id).ok


def test_an_entry_chained_while_the_verdict_is_written_is_chained_before_it_not_a_refusal(
    gated_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.adapters.dynamo import flows as dynamo_flows

    world = gated_world
    flow_id = world.ready_flow()
    session = world.service.start_liveness(flow_id, OWNER)
    chain = dynamo_flows._chain_notes
    moved: list[int] = []

    def another_entry_after_the_head_is_read(*args: Any) -> Any:
        chained = chain(*args)
        if not moved:  # once: the retry reads the head again and chains after this entry
            moved.append(
                world.evidence.append(flow_id, EvidenceKind.SMS_SENT, OWNER, {"purpose": "other"}).seq
            )
        return chained

    monkeypatch.setattr(dynamo_flows, "_chain_notes", another_entry_after_the_head_is_read)
    outcome = _send(world, flow_id, session.session_id)()
    assert (outcome.passed, outcome.attempts_left) == (True, 2)
    kinds = [(e.seq, e.kind) for e in world.evidence.entries(flow_id)]
    liveness = [seq for seq, kind in kinds if kind is EvidenceKind.LIVENESS_CHECKED]
    assert liveness[-1] == moved[0] + 1
    assert _verdict_entries(world, flow_id)[EvidenceKind.LIVENESS_CHECKED][0]["attempt"] is True
    assert world.evidence.verify(flow_id).ok


def test_the_attempts_left_are_read_after_the_write_and_the_last_one_offers_review(world: World) -> None:
    from chalicelib.adapters.dynamo.flows import DynamoAttemptCounters

    flow_id = world.ready_flow()
    person_hash = _flow(world, flow_id).person_hash
    assert person_hash is not None
    world.liveness.live = False

    def two_attempts_land_meanwhile() -> None:  # another device of the person spends two meanwhile
        world.liveness.meanwhile = None
        day, until = china_day(world.clock.now), world.clock.now + timedelta(days=2)
        for _ in range(2):
            DynamoAttemptCounters().consume(flow_id, person_hash, day, 3, 5, until)

    session = world.service.start_liveness(flow_id, OWNER)
    world.liveness.meanwhile = two_attempts_land_meanwhile
    outcome = _send(world, flow_id, session.session_id)()
    assert (outcome.passed, outcome.attempts_left, outcome.review_available) == (False, 0, True)
    assert _left(world, flow_id) == (0, 2)
    last = world.evidence.entries(flow_id)[-1]
    assert last.kind is EvidenceKind.ATTEMPTS_EXHAUSTED
    assert (last.public["flow_left"], last.public["review_available"]) == (0, True)


def test_a_capture_deleted_by_a_failed_send_of_the_same_frames_is_put_back_by_the_send_that_saved_it(
    world: World,
) -> None:
    from botocore.endpoint import Endpoint

    flow_id = world.ready_flow()
    session = world.service.start_liveness(flow_id, OWNER)
    frames = [jpeg(640, 480)] * 3  # both sends: the same frames, so the same capture key

    def send() -> Any:
        return world.service.complete_liveness(flow_id, OWNER, session.session_id, frames)

    original = Endpoint.make_request
    writes: list[str] = []

    def interleaved(endpoint: Endpoint, operation_model: Any, request_dict: Any) -> Any:
        if operation_model.name == "TransactWriteItems" and _names_sessions(request_dict):
            if not writes:  # the saving send's write waits: the other send fails and discards meanwhile
                writes.append("saving")
                with pytest.raises(Unavailable):
                    send()
            elif writes == ["saving"]:  # the other send's write: throttled
                writes.append("throttled")
                response: Any = {
                    "Error": {"Code": "ProvisionedThroughputExceededException", "Message": "throttled"},
                    "ResponseMetadata": {"HTTPStatusCode": 400},
                }
                raise ClientError(response, operation_model.name)
        return original(endpoint, operation_model, request_dict)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Endpoint, "make_request", interleaved)
        outcome = send()
    assert writes == ["saving", "throttled"]
    assert outcome.passed is True
    saved = _flow(world, flow_id)
    key = saved.documents["live_capture"]
    assert _live_captures(flow_id) == [key]  # deleted by the failed send, put back by the saving one
    assert world.service.documents.photo(saved, DocumentKind.LIVE_CAPTURE).startswith(b"\xff\xd8\xff")
