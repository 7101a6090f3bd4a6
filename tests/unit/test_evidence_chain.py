"""The evidence chain (查验日志): an edited, deleted or reordered entry is detected."""

from __future__ import annotations

import hashlib
import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest

from chalicelib.verification.domain.evidence import (
    GENESIS_HASH,
    ChainHead,
    EvidenceEntry,
    EvidenceKind,
    canonical_bytes,
    entry_hash,
    next_entry,
    sealed_digest,
    verify_chain,
)
from tests.fakes.evidence import FakeEvidenceLog

T0 = datetime(2025, 3, 1, 8, 30, tzinfo=UTC)
FACE = {"engine": "dlib-resnet", "engine_version": "19.24", "threshold": 80, "score": 91.25}


def _chain(n: int = 5, flow_id: str = "flow-1") -> list[EvidenceEntry]:
    entries: list[EvidenceEntry] = []
    head = ChainHead()
    for i in range(n):
        entry = next_entry(
            head,
            flow_id=flow_id,
            at=T0 + timedelta(seconds=i),
            kind=EvidenceKind.FACE_COMPARED,
            actor="user:u1",
            public={**FACE, "attempt": i + 1, "verdict": "pass"},
            personal_digest=sealed_digest(b"key", {"name": f"cipher-{i}".encode()}),
        )
        entries.append(entry)
        head = entry.head
    return entries


def _head(entries: list[EvidenceEntry]) -> ChainHead:
    return entries[-1].head


def test_a_built_chain_verifies() -> None:
    # Given five entries chained from the genesis
    entries = _chain()
    # Then they verify, with and without the head, and link as documented
    assert verify_chain(entries, _head(entries)).ok
    assert verify_chain(entries).checked == 5
    assert entries[0].prev_hash == GENESIS_HASH
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))


def test_hash_is_sha256_of_sorted_compact_utf8_json() -> None:
    entry = next_entry(
        ChainHead(),
        flow_id="f",
        at=datetime(2025, 3, 1, 16, 30, tzinfo=timezone(timedelta(hours=8))),
        kind=EvidenceKind.OCR_READ,
        actor="system",
        public={"b": 1, "a": "长期"},
    )
    body = canonical_bytes(
        flow_id="f",
        seq=1,
        at=entry.at,
        kind="ocr_read",
        actor="system",
        public={"a": "长期", "b": 1},
        personal_digest=None,
        prev_hash=GENESIS_HASH,
    )
    assert body.startswith(b'{"actor":"system","at":"2025-03-01T08:30:00.000000+00:00"')
    assert b" " not in body
    assert "长期".encode() in body
    assert entry.hash == hashlib.sha256(body).hexdigest() == entry_hash(entry)


def test_an_edited_public_fact_is_a_hash_mismatch_at_that_seq() -> None:
    entries = _chain()
    # When someone raises the face score of entry 3
    entries[2] = entries[2].model_copy(update={"public": {**entries[2].public, "score": 99.0}})
    verdict = verify_chain(entries, _head(entries))
    assert (verdict.ok, verdict.first_bad_seq, verdict.reason) == (False, 3, "evidence.hash_mismatch")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("actor", "reviewer:r9"),
        ("kind", EvidenceKind.REVIEW_DECIDED),
        ("at", T0 + timedelta(days=1)),
        ("personal_digest", None),  # the encrypted personal facts were removed
    ],
)
def test_any_other_edited_field_is_a_hash_mismatch(field: str, value: object) -> None:
    entries = _chain()
    entries[1] = entries[1].model_copy(update={field: value})
    verdict = verify_chain(entries, _head(entries))
    assert (verdict.first_bad_seq, verdict.reason) == (2, "evidence.hash_mismatch")


def test_an_edited_entry_with_a_recomputed_hash_breaks_the_next_link() -> None:
    entries = _chain()
    forged = entries[1].model_copy(update={"public": {**entries[1].public, "verdict": "fail"}})
    entries[1] = forged.model_copy(update={"hash": entry_hash(forged)})
    verdict = verify_chain(entries, _head(entries))
    assert (verdict.first_bad_seq, verdict.reason) == (3, "evidence.broken_link")


def test_an_edited_prev_hash_is_a_broken_link() -> None:
    entries = _chain()
    entries[3] = entries[3].model_copy(update={"prev_hash": "f" * 64})
    verdict = verify_chain(entries, _head(entries))
    assert (verdict.first_bad_seq, verdict.reason) == (4, "evidence.broken_link")


def test_a_deleted_middle_entry_is_a_gap() -> None:
    entries = _chain()
    del entries[2]
    verdict = verify_chain(entries, _chain()[-1].head)
    assert (verdict.first_bad_seq, verdict.reason) == (3, "evidence.gap")


def test_a_deleted_first_entry_is_a_gap() -> None:
    entries = _chain()[1:]
    verdict = verify_chain(entries)
    assert (verdict.first_bad_seq, verdict.reason) == (1, "evidence.gap")


def test_a_deleted_last_entry_is_caught_by_the_head() -> None:
    full = _chain()
    truncated = full[:-1]
    # The remaining chain is internally consistent: only the head tells an entry is missing
    assert verify_chain(truncated).ok
    verdict = verify_chain(truncated, _head(full))
    assert (verdict.first_bad_seq, verdict.reason) == (5, "evidence.gap")


def test_a_replaced_last_entry_is_caught_by_the_head() -> None:
    full = _chain()
    forged = full[-1].model_copy(update={"public": {"verdict": "fail"}})
    full[-1] = forged.model_copy(update={"hash": entry_hash(forged)})
    verdict = verify_chain(full, _chain()[-1].head)
    assert (verdict.first_bad_seq, verdict.reason) == (5, "evidence.broken_link")


def test_an_entry_beyond_the_head_is_a_head_mismatch() -> None:
    full = _chain()
    verdict = verify_chain(full, full[2].head)
    assert (verdict.first_bad_seq, verdict.reason) == (4, "evidence.head_mismatch")


def test_reordered_entries_are_out_of_order() -> None:
    # When entries 2 and 3 swap places
    entries = _chain()
    entries[1], entries[2] = entries[2], entries[1]
    verdict = verify_chain(entries, _head(entries))
    # Then the first one out of place is reported
    assert (verdict.first_bad_seq, verdict.reason) == (3, "evidence.out_of_order")


def test_a_repeated_entry_is_out_of_order() -> None:
    entries = _chain()
    verdict = verify_chain([*entries[:3], entries[1], *entries[3:]], _head(entries))
    assert (verdict.first_bad_seq, verdict.reason) == (2, "evidence.out_of_order")


def test_personal_facts_stay_out_of_public_and_out_of_the_hash() -> None:
    with pytest.raises(ValueError, match="id_number"):
        next_entry(
            ChainHead(),
            flow_id="f",
            at=T0,
            kind=EvidenceKind.OCR_READ,
            actor="system",
            public={"id_number": "11010519491231002X"},
        )
    a = next_entry(
        ChainHead(), flow_id="f", at=T0, kind=EvidenceKind.OCR_READ, actor="s", public={}, personal={"n": "A"}
    )
    b = a.model_copy(update={"personal": {"n": "B"}})
    assert entry_hash(a) == entry_hash(b)  # only the ciphertext digest is hashed


def test_the_fake_log_chains_seals_and_detects_tampering() -> None:
    # Given a flow with three checks recorded, one with a personal fact
    log = FakeEvidenceLog(clock=lambda: T0)
    log.append("f1", EvidenceKind.UPLOAD_ACCEPTED, "user:u1", {"doc": "id_front", "bytes": 812_000})
    log.append("f1", EvidenceKind.OCR_READ, "system", {"confidence": 0.97}, {"name": "张三"})
    log.append("f1", EvidenceKind.FACE_COMPARED, "system", FACE)
    # Then it reads back decrypted and verifies
    assert [e.personal for e in log.entries("f1")] == [{}, {"name": "张三"}, {}]
    assert log.verify("f1").ok
    assert log.verify("other").ok
    # When the ciphertext-free copy of the last entry is dropped
    log.stored["f1"].pop()
    verdict = log.verify("f1")
    assert (verdict.first_bad_seq, verdict.reason) == (3, "evidence.gap")
