"""A change and the evidence entry that says why it was made land in one write, or neither lands.

On the embedded AWS: a flow's new version (or a registration's) joins the evidence append's transaction
(``DynamoEvidenceLog.append_with``). A store failure of that write leaves the flow, the registration and
the evidence as they were, and the step taken again completes; a flow changed meanwhile refuses the
write; racing appends still chain one after another. Then the steps built on it: a photo recorded on its
flow, an ID front's reading saved with the authority's verdict, a possession proof.

Faults are raised where botocore sends a DynamoDB write (``Endpoint.make_request``), as the real service
answers a throttled request, and only for the writes a test names (by the tables they write).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.core import deps
from chalicelib.core.outbound import Unavailable
from chalicelib.core.settings import get_settings
from chalicelib.kernel.errors import Conflict
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import CheckName, CheckVerdict, Flow, FlowPurpose

OWNER_ID = "owner-joined"
WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"})

#: Which DynamoDB write fails: given the operation and the request sent, True to throttle it.
Strikes = Callable[[str, dict[str, Any]], bool]


def _sent(request_dict: Any) -> dict[str, Any]:
    body = request_dict.get("body") or b"{}"
    sent: dict[str, Any] = json.loads(body.decode() if isinstance(body, bytes) else body)
    return sent


def _tables(sent: dict[str, Any]) -> set[str]:
    """The tables a write request names (each item's, for a transaction)."""
    names = {sent["TableName"]} if "TableName" in sent else set()
    for action in sent.get("TransactItems", []):
        names |= {part["TableName"] for part in action.values() if "TableName" in part}
    return names


def writes_to(*tables: str) -> Strikes:
    """Strikes every write that names one of ``tables`` (their short names: ``evidence``, ``flows``)."""
    full = {get_settings().table_name(t) for t in tables}
    return lambda _operation, sent: bool(_tables(sent) & full)


@contextlib.contextmanager
def throttled(strikes: Strikes) -> Iterator[list[str]]:
    """DynamoDB writes that ``strikes`` picks are answered ``ProvisionedThroughputExceededException``
    (nothing written); the operations struck are listed in the value yielded."""
    from botocore.endpoint import Endpoint

    struck: list[str] = []
    original = Endpoint.make_request

    def faulty(endpoint: Endpoint, operation_model: Any, request_dict: Any) -> Any:
        name = operation_model.name
        if (
            operation_model.service_model.service_name == "dynamodb"
            and name in WRITES
            and strikes(name, _sent(request_dict))
        ):
            struck.append(name)
            response: Any = {
                "Error": {"Code": "ProvisionedThroughputExceededException", "Message": "throttled"},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            }
            raise ClientError(response, name)
        return original(endpoint, operation_model, request_dict)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Endpoint, "make_request", faulty)
        yield struck


def _flow() -> Flow:
    """A new flow of ``OWNER_ID``, as the phone step opens it."""
    return deps.verification_service().open_flow(OWNER_ID, FlowPurpose.REGISTRATION)


def _kinds(flow_id: str) -> list[EvidenceKind]:
    return [e.kind for e in deps.evidence_log().entries(flow_id)]


# --------------------------------------------------------------------------- the joined write


def test_a_flow_saved_with_its_entry_lands_both_and_the_chain_verifies(aws: None) -> None:
    # Given a flow with one entry already in its evidence
    flows, log = deps.verification_service().flows, deps.evidence_log()
    flow = _flow()
    log.append(flow.flow_id, EvidenceKind.SMS_CHECKED, OWNER_ID, {"purpose": "owner_phone"})
    # When a photo is recorded on it with the entry that says so
    public = {"document": "id_back", "sha256": "ab" * 32, "size": 91_234}
    saved = flows.save_noted(
        flow, EvidenceKind.UPLOAD_ACCEPTED, OWNER_ID, public, documents={"id_back": "documents/k.jpg"}
    )
    # Then the stored flow is that version, the entry follows the first, and the chain verifies
    stored = flows.find(flow.flow_id)
    assert stored is not None
    assert (stored.version, stored.documents) == (saved.version, {"id_back": "documents/k.jpg"})
    assert saved.version == flow.version + 1
    entries = log.entries(flow.flow_id)
    assert [(e.seq, e.kind) for e in entries] == [(1, EvidenceKind.SMS_CHECKED), (2, EvidenceKind.UPLOAD_ACCEPTED)]
    assert entries[1].public == public
    assert log.verify(flow.flow_id).ok


def test_a_throttled_flow_save_with_its_entry_leaves_neither_and_the_same_save_then_lands(aws: None) -> None:
    # Given a flow with one entry
    flows, log = deps.verification_service().flows, deps.evidence_log()
    flow = _flow()
    log.append(flow.flow_id, EvidenceKind.SMS_CHECKED, OWNER_ID, {"purpose": "owner_phone"})
    # When the joined write is throttled
    with throttled(writes_to("evidence")) as struck, pytest.raises(Unavailable):
        flows.save_noted(
            flow, EvidenceKind.UPLOAD_ACCEPTED, OWNER_ID, {"document": "id_back"}, documents={"id_back": "k"}
        )
    # Then it was one write, and neither the flow nor the evidence moved
    assert struck == ["TransactWriteItems"]
    assert flows.find(flow.flow_id) == flow
    assert _kinds(flow.flow_id) == [EvidenceKind.SMS_CHECKED]
    # And the same save, made again, lands whole
    flows.save_noted(
        flow, EvidenceKind.UPLOAD_ACCEPTED, OWNER_ID, {"document": "id_back"}, documents={"id_back": "k"}
    )
    assert _kinds(flow.flow_id) == [EvidenceKind.SMS_CHECKED, EvidenceKind.UPLOAD_ACCEPTED]
    assert log.verify(flow.flow_id).ok


def test_a_flow_changed_meanwhile_refuses_the_joined_write_and_appends_no_entry(aws: None) -> None:
    # Given a flow another request changed after this one read it
    flows = deps.verification_service().flows
    read = _flow()
    flows.save(read, documents={"id_front": "documents/other.jpg"})
    # When this request records its photo on the version it read
    with pytest.raises(Conflict) as refused:
        flows.save_noted(
            read, EvidenceKind.UPLOAD_ACCEPTED, OWNER_ID, {"document": "id_back"}, documents={"id_back": "k"}
        )
    # Then it is told the flow changed, the other change stands, and no entry claims the photo
    assert refused.value.code == "flow.changed"
    stored = flows.find(read.flow_id)
    assert stored is not None and stored.documents == {"id_front": "documents/other.jpg"}
    assert _kinds(read.flow_id) == []


def test_joined_writes_racing_plain_appends_all_land_in_one_contiguous_chain(aws: None) -> None:
    # Given a flow, and several requests appending to its evidence at once, one of them with the flow
    flows, log = deps.verification_service().flows, deps.evidence_log()
    flow = _flow()
    start = threading.Barrier(6)
    errors: list[BaseException] = []

    def plain(n: int) -> None:
        start.wait()
        log.append(flow.flow_id, EvidenceKind.SMS_CHECKED, OWNER_ID, {"n": n})

    def joined() -> None:
        start.wait()
        flows.save_noted(
            flow, EvidenceKind.UPLOAD_ACCEPTED, OWNER_ID, {"document": "id_back"}, documents={"id_back": "k"}
        )

    def run(target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(lambda n=n: plain(n),)) for n in range(5)]
    threads.append(threading.Thread(target=run, args=(joined,)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then every append landed once, chained one after another, the flow with its own
    assert errors == []
    entries = log.entries(flow.flow_id)
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5, 6]
    assert sorted(e.public.get("n", -1) for e in entries) == [-1, 0, 1, 2, 3, 4]
    assert log.verify(flow.flow_id).ok
    stored = flows.find(flow.flow_id)
    assert stored is not None and (stored.version, stored.documents) == (flow.version + 1, {"id_back": "k"})


