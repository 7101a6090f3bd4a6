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
    assert [(e.seq, e.kind) for e in entries] == [
        (1, EvidenceKind.SMS_CHECKED),
        (2, EvidenceKind.UPLOAD_ACCEPTED),
    ]
    assert entries[1].public == public
    assert log.verify(flow.flow_id).ok


def test_a_throttled_flow_save_with_its_entry_leaves_neither_and_the_same_save_then_lands(aws: None) -> None:
    # Given a flow with one entry
    flows, log = deps.verification_service().flows, deps.evidence_log()
    flow = _flow()
    log.append(flow.flow_id, EvidenceKind.SMS_CHECKED, OWNER_ID, {"purpose": "owner_phone"})
    before = flows.find(flow.flow_id)
    # When the joined write is throttled
    with throttled(writes_to("evidence")) as struck, pytest.raises(Unavailable):
        flows.save_noted(
            flow, EvidenceKind.UPLOAD_ACCEPTED, OWNER_ID, {"document": "id_back"}, documents={"id_back": "k"}
        )
    # Then it was one write, and neither the flow nor the evidence moved
    assert struck == ["TransactWriteItems"]
    assert flows.find(flow.flow_id) == before
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
    assert stored is not None
    assert stored.documents == {"id_front": "documents/other.jpg"}
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
        except BaseException as exc:  # reported below
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
    assert stored is not None
    assert (stored.version, stored.documents) == (flow.version + 1, {"id_back": "k"})


def test_a_joined_write_cancelled_while_it_still_commits_is_sent_again_with_its_token_and_lands_once(
    aws: None,
) -> None:
    from tests.integration.test_step_writes import tokens_kept

    # Given a flow with one entry
    flows, log = deps.verification_service().flows, deps.evidence_log()
    flow = _flow()
    log.append(flow.flow_id, EvidenceKind.SMS_CHECKED, OWNER_ID, {"purpose": "owner_phone"})
    # When the joined write is cancelled as a conflict while it still commits (it lands late)
    with tokens_kept("late") as sent:
        flows.save_noted(
            flow, EvidenceKind.UPLOAD_ACCEPTED, OWNER_ID, {"document": "id_back"}, documents={"id_back": "k"}
        )
    # Then the same transaction was sent again (its token, its items), answered as done: one version up,
    # one entry
    assert len(sent) == 2
    assert sent[0] == sent[1]
    stored = flows.find(flow.flow_id)
    assert stored is not None
    assert (stored.version, stored.documents) == (flow.version + 1, {"id_back": "k"})
    assert _kinds(flow.flow_id) == [EvidenceKind.SMS_CHECKED, EvidenceKind.UPLOAD_ACCEPTED]
    assert log.verify(flow.flow_id).ok


def test_a_joined_write_refused_by_its_own_late_landing_is_answered_as_done_not_as_a_changed_flow(
    aws: None,
) -> None:
    from tests.integration.test_step_writes import landing_late

    # Given a flow
    flows, log = deps.verification_service().flows, deps.evidence_log()
    flow = _flow()
    # When the joined write lands late, and its send again is refused by the flow version it wrote
    with landing_late() as sends:
        flows.save_noted(
            flow, EvidenceKind.UPLOAD_ACCEPTED, OWNER_ID, {"document": "id_back"}, documents={"id_back": "k"}
        )
    # Then its entry is found in the chain: the write is done, once
    assert sends == ["TransactWriteItems", "TransactWriteItems"]
    stored = flows.find(flow.flow_id)
    assert stored is not None
    assert (stored.version, stored.documents) == (flow.version + 1, {"id_back": "k"})
    assert _kinds(flow.flow_id) == [EvidenceKind.UPLOAD_ACCEPTED]
    assert log.verify(flow.flow_id).ok


# --------------------------------------------------------------------------- the steps built on it


def _me(token: Callable[..., str]) -> dict[str, str]:
    from tests.integration.test_registration_flow import OWNER

    return {"Authorization": f"Bearer {token('owner', subject=OWNER)}", "Content-Type": "application/json"}


def _flow_of(flow_id: str) -> Flow:
    flow = deps.verification_service().flows.find(flow_id)
    assert flow is not None
    return flow


def test_a_photo_whose_recording_is_throttled_leaves_the_flow_and_evidence_and_completes_again(
    api: Any, token: Callable[..., str]
) -> None:
    from tests.integration.test_verification_api import call, open_flow, s3, stored_keys
    from tests.synthetic_documents import id_back, require_cjk_font

    require_cjk_font()
    me = _me(token)
    flow_id = open_flow(api, me)
    status, post = call(
        api, "post", f"/v1/flows/{flow_id}/uploads", me, {"kind": "id_back", "content_type": "image/jpeg"}
    )
    assert status == 201, post
    s3().put_object(
        Bucket=get_settings().documents_bucket, Key=post["key"], Body=id_back(), ContentType="image/jpeg"
    )
    before, entries = _flow_of(flow_id), _kinds(flow_id)
    complete = {"kind": "id_back", "key": post["key"]}
    # When the photo is completed and the write of its evidence is throttled
    with throttled(writes_to("evidence")) as struck:
        status, body = call(api, "post", f"/v1/flows/{flow_id}/documents", me, complete)
    # Then the person is told to retry, and the flow, its evidence and its stored photos are as they were
    assert (status, body["code"], struck) == (503, "store.unavailable", ["TransactWriteItems"])
    assert _flow_of(flow_id) == before
    assert _kinds(flow_id) == entries
    assert stored_keys(flow_id) == []
    # And the same upload (still there) completes: the photo and one acceptance recorded together
    status, body = call(api, "post", f"/v1/flows/{flow_id}/documents", me, complete)
    assert status == 201, body
    [kept] = stored_keys(flow_id)
    assert _flow_of(flow_id).documents == {"id_back": kept}
    assert _kinds(flow_id) == [*entries, EvidenceKind.UPLOAD_ACCEPTED]
    assert deps.evidence_log().verify(flow_id).ok


def _saves_the_authority_verdict(operation: str, sent: dict[str, Any]) -> bool:
    """The flow's write that carries the identity authority's verdict."""
    checks = sent.get("Item", {}).get("checks", {}).get("M", {})
    return (
        operation == "PutItem"
        and sent.get("TableName") == get_settings().table_name("flows")
        and CheckName.AUTHORITY.value in checks
    )


def test_an_id_front_read_whose_flow_write_is_throttled_leaves_the_flow_and_reads_again(
    api: Any, token: Callable[..., str]
) -> None:
    from tests.face_photos import FACES
    from tests.integration.test_verification_api import CARD_PORTRAIT, call, open_flow, upload
    from tests.synthetic_documents import id_front, require_cjk_font

    if not FACES.is_dir():
        pytest.skip(f"face photos not found at {FACES}")
    require_cjk_font()
    me = _me(token)
    flow_id = open_flow(api, me)
    photo = id_front(portrait=FACES / CARD_PORTRAIT)
    assert upload(api, me, flow_id, DocumentKind.ID_FRONT, photo)[0] == 201
    before = _flow_of(flow_id)
    # When the ID front is read, and the flow's write with the authority's verdict is throttled
    with throttled(_saves_the_authority_verdict) as struck:
        status, body = call(api, "post", f"/v1/flows/{flow_id}/ocr/id_front", me)
    # Then the person is told to retry, and the flow is as it was: no reading kept without its verdict
    assert (status, body["code"], struck) == (503, "store.unavailable", ["PutItem"])
    assert _flow_of(flow_id) == before
    # And reading again records the reading and the verdict in one version of the flow
    status, body = call(api, "post", f"/v1/flows/{flow_id}/ocr/id_front", me)
    assert status == 200, body
    after = _flow_of(flow_id)
    assert after.version == before.version + 1
    assert {k: after.checks.get(k) for k in (CheckName.OCR_ID_FRONT, CheckName.AUTHORITY)} == {
        CheckName.OCR_ID_FRONT: CheckVerdict.PASSED,
        CheckName.AUTHORITY: CheckVerdict.PASSED,
    }


def test_a_possession_proof_whose_write_is_throttled_leaves_it_unproved_and_the_next_proof_records_it(
    api: Any, token: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.cards.inventory import import_inventory
    from chalicelib.local.synthetic import inventory_rows
    from tests.integration.test_possession_api import at_possession
    from tests.integration.test_registration_flow import REG, head_unit_code
    from tests.integration.test_verification_api import call

    monkeypatch.setenv("CHEKA_SMS_RESEND_SECONDS", "0")
    deps.reset()
    rows = list(inventory_rows(1, seed=77))
    assert import_inventory(list(enumerate(rows, start=2)), deps.inventory_repo(), actor="test").errors == []
    vin = rows[0]["vin"]
    me = _me(token)
    reg_id = at_possession(api, me, vin)["registration_id"]
    assert call(api, "post", f"{REG}/{reg_id}/possession/head-unit-code", me)[0] == 202
    prove = {"method": "head_unit", "code": head_unit_code(vin)}
    store = deps.registration_service().registrations
    before = store.own(reg_id, _owner())
    assert before.flow_id is not None
    entries = deps.evidence_log().entries(before.flow_id)
    # When the proof is made and the store throttles the write of its evidence
    with throttled(writes_to("evidence")) as struck:
        status, body = call(api, "post", f"{REG}/{reg_id}/possession", me, prove)
    # Then the person is told to retry, and the registration and the evidence are as they were
    assert (status, body["code"], struck) == (503, "store.unavailable", ["TransactWriteItems"])
    assert store.own(reg_id, _owner()) == before
    assert deps.evidence_log().entries(before.flow_id) == entries
    # And the same code proves it: the proof and its evidence recorded together
    status, body = call(api, "post", f"{REG}/{reg_id}/possession", me, prove)
    assert (status, body["step"]) == (200, "identity"), body
    proved = deps.evidence_log().entries(before.flow_id)[len(entries) :]
    assert [(e.kind, e.public) for e in proved] == [
        (EvidenceKind.POSSESSION_CHECKED, {"method": "head_unit", "outcome": "proved"})
    ]
    assert deps.evidence_log().verify(before.flow_id).ok


def _owner() -> str:
    from tests.integration.test_registration_flow import OWNER

    return OWNER


@contextlib.contextmanager
def reply_lost(strikes: Strikes) -> Iterator[list[str]]:
    """The first DynamoDB write that ``strikes`` picks lands, and its reply is lost (the read of it
    times out); the operations struck are listed in the value yielded."""
    from botocore.endpoint import Endpoint
    from botocore.exceptions import ReadTimeoutError

    struck: list[str] = []
    original = Endpoint.make_request

    def faulty(endpoint: Endpoint, operation_model: Any, request_dict: Any) -> Any:
        name = operation_model.name
        if (
            not struck
            and operation_model.service_model.service_name == "dynamodb"
            and name in WRITES
            and strikes(name, _sent(request_dict))
        ):
            struck.append(name)
            original(endpoint, operation_model, request_dict)
            raise ReadTimeoutError(endpoint_url=f"https://dynamodb.invalid/{name}")
        return original(endpoint, operation_model, request_dict)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Endpoint, "make_request", faulty)
        yield struck


def test_a_photo_whose_recording_landed_with_its_reply_lost_keeps_the_photo_and_completes_again_once(
    api: Any, token: Callable[..., str]
) -> None:
    from tests.integration.test_verification_api import bucket, call, open_flow, s3, stored_keys
    from tests.synthetic_documents import id_back, require_cjk_font

    require_cjk_font()
    me = _me(token)
    flow_id = open_flow(api, me)
    status, post = call(
        api, "post", f"/v1/flows/{flow_id}/uploads", me, {"kind": "id_back", "content_type": "image/jpeg"}
    )
    assert status == 201, post
    s3().put_object(Bucket=bucket(), Key=post["key"], Body=id_back(), ContentType="image/jpeg")
    entries = _kinds(flow_id)
    complete = {"kind": "id_back", "key": post["key"]}
    # When the photo and its acceptance are written, and the write's reply is lost
    with reply_lost(writes_to("evidence")) as struck:
        status, body = call(api, "post", f"/v1/flows/{flow_id}/documents", me, complete)
    # Then the person is told to retry, and the photo the flow now records is still stored and readable
    assert (status, body["code"], struck) == (503, "store.unavailable", ["TransactWriteItems"])
    recorded = _flow_of(flow_id).documents["id_back"]
    assert stored_keys(flow_id) == [recorded]
    flow = _flow_of(flow_id)
    assert deps.verification_service().documents.photo(flow, DocumentKind.ID_BACK)
    assert _kinds(flow_id) == [*entries, EvidenceKind.UPLOAD_ACCEPTED]
    # And the same upload completed again is answered as done: no second acceptance, the raw upload gone
    status, body = call(api, "post", f"/v1/flows/{flow_id}/documents", me, complete)
    assert status == 201, body
    assert _flow_of(flow_id) == flow
    assert _kinds(flow_id) == [*entries, EvidenceKind.UPLOAD_ACCEPTED]
    assert stored_keys(flow_id) == [recorded]
    listed = s3().list_objects_v2(Bucket=bucket(), Prefix=post["key"])
    assert listed.get("KeyCount", 0) == 0
    assert deps.evidence_log().verify(flow_id).ok
