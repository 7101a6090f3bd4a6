"""The evidence log (查验日志) on DynamoDB: personal facts sealed, tampering detected, appends race-safe."""

from __future__ import annotations

import itertools
import json
import threading
from typing import Any

import pytest

from chalicelib.core import deps
from chalicelib.core.aws import client
from chalicelib.core.settings import get_settings
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.ports import EvidenceLog

FLOW = "flow-7f3a"
ID_NUMBER = "11010519491231002X"
NAME = "张三丰"
FACE = {"engine": "dlib-resnet", "engine_version": "19.24.6", "threshold": 80, "score": 91.25}


@pytest.fixture
def log(aws: None) -> EvidenceLog:
    return deps.evidence_log()


def _table() -> str:
    return get_settings().table_name("evidence")


def _key(seq: int) -> dict[str, Any]:
    return {"flow_id": {"S": FLOW}, "seq": {"N": str(seq)}}


def _record_flow(log: EvidenceLog) -> None:
    log.append(FLOW, EvidenceKind.UPLOAD_ACCEPTED, "user:u1", {"doc": "id_front", "bytes": 812_000})
    log.append(
        FLOW,
        EvidenceKind.OCR_READ,
        "system",
        {"engine": "rapidocr", "confidence": {"name": 0.98, "id_number": 0.97}},
        {"name": NAME, "id_number": ID_NUMBER},
    )
    log.append(FLOW, EvidenceKind.FACE_COMPARED, "system", {**FACE, "verdict": "pass"})
    log.append(
        FLOW, EvidenceKind.LIVENESS_CHECKED, "system", {"engine": "local-challenge", "verdict": "live"}
    )


def test_entries_are_chained_sealed_and_read_back(log: EvidenceLog) -> None:
    # Given a flow's checks recorded in the log
    _record_flow(log)
    # When the raw items are read from the table
    raw = client("dynamodb").query(
        TableName=_table(),
        KeyConditionExpression="flow_id = :f",
        ExpressionAttributeValues={":f": {"S": FLOW}},
    )["Items"]
    dump = json.dumps(raw, default=str, ensure_ascii=False)
    # Then no personal fact is there in clear, and the head (seq 0) points at the last entry
    assert NAME not in dump
    assert ID_NUMBER not in dump
    assert [int(i["seq"]["N"]) for i in raw] == [0, 1, 2, 3, 4]
    entries = log.entries(FLOW)
    assert raw[0]["last_seq"]["N"] == "4"
    assert raw[0]["last_hash"]["S"] == entries[-1].hash
    assert set(raw[2]["personal_enc"]["M"]) == {"name", "id_number"}
    # And the repository reads them back decrypted, floats and all, and the chain verifies
    assert [e.kind for e in entries] == [
        EvidenceKind.UPLOAD_ACCEPTED,
        EvidenceKind.OCR_READ,
        EvidenceKind.FACE_COMPARED,
        EvidenceKind.LIVENESS_CHECKED,
    ]
    assert entries[1].personal == {"name": NAME, "id_number": ID_NUMBER}
    assert entries[2].public["score"] == 91.25
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    verdict = log.verify(FLOW)
    assert verdict.ok
    assert verdict.checked == 4


def test_a_raw_edit_of_a_public_fact_is_detected(log: EvidenceLog) -> None:
    _record_flow(log)
    # When someone with table access raises the face score behind the log's back
    client("dynamodb").update_item(
        TableName=_table(),
        Key=_key(3),
        UpdateExpression="SET public_json = :p",
        ExpressionAttributeValues={":p": {"S": json.dumps({**FACE, "score": 99.5, "verdict": "pass"})}},
    )
    # Then verification points at that entry
    verdict = log.verify(FLOW)
    assert (verdict.ok, verdict.first_bad_seq, verdict.reason) == (False, 3, "evidence.hash_mismatch")


def test_a_removed_encrypted_personal_part_is_detected(log: EvidenceLog) -> None:
    _record_flow(log)
    client("dynamodb").update_item(
        TableName=_table(), Key=_key(2), UpdateExpression="REMOVE personal_enc.id_number"
    )
    verdict = log.verify(FLOW)
    assert (verdict.first_bad_seq, verdict.reason) == (2, "evidence.hash_mismatch")


def test_an_unreadable_entry_is_reported_not_raised(log: EvidenceLog) -> None:
    _record_flow(log)
    client("dynamodb").update_item(
        TableName=_table(),
        Key=_key(3),
        UpdateExpression="SET kind = :k",
        ExpressionAttributeValues={":k": {"S": "no_such_kind"}},
    )
    verdict = log.verify(FLOW)
    assert (verdict.first_bad_seq, verdict.reason) == (3, "evidence.hash_mismatch")


def test_a_deleted_middle_entry_is_detected(log: EvidenceLog) -> None:
    _record_flow(log)
    client("dynamodb").delete_item(TableName=_table(), Key=_key(2))
    verdict = log.verify(FLOW)
    assert (verdict.first_bad_seq, verdict.reason) == (2, "evidence.gap")


def test_a_deleted_last_entry_is_detected_through_the_head(log: EvidenceLog) -> None:
    _record_flow(log)
    client("dynamodb").delete_item(TableName=_table(), Key=_key(4))
    verdict = log.verify(FLOW)
    assert (verdict.first_bad_seq, verdict.reason) == (4, "evidence.gap")


def test_a_deleted_head_is_detected(log: EvidenceLog) -> None:
    _record_flow(log)
    client("dynamodb").delete_item(TableName=_table(), Key=_key(0))
    verdict = log.verify(FLOW)
    assert (verdict.ok, verdict.reason) == (False, "evidence.head_mismatch")


def test_concurrent_appends_make_one_contiguous_chain(log: EvidenceLog) -> None:
    # Given four writers recording checks on the same flow at the same moment
    per_thread = 5
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def write(who: str) -> None:
        barrier.wait()
        try:
            for i in range(per_thread):
                log.append(FLOW, EvidenceKind.FACE_COMPARED, who, {**FACE, "attempt": i}, {"name": NAME})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(f"w{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then every append landed, at seqs 1..20 with no hole, and the chain verifies
    assert errors == []
    entries = log.entries(FLOW)
    assert [e.seq for e in entries] == list(range(1, 4 * per_thread + 1))
    assert sorted((e.actor, e.public["attempt"]) for e in entries) == sorted(
        (f"w{n}", i) for n in range(4) for i in range(per_thread)
    )
    assert log.verify(FLOW).ok


def test_flows_are_independent(log: EvidenceLog) -> None:
    _record_flow(log)
    other = log.append("flow-other", EvidenceKind.SMS_SENT, "system", {"template": "SMS_123"})
    assert other.seq == 1
    assert log.verify("flow-other").ok
    assert log.verify("flow-none").ok
    assert log.entries("flow-none") == []
