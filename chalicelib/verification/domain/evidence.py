"""The evidence log (查验日志): an append-only, hash-chained record of every check made in a flow.

SPEC §5 (audit: every verification step is an append-only log entry) and §10 (a tamper-evident
evidence package: thresholds, engine versions, scores, reviewer actions, chained so that an edit is
detectable). Pure: hashing and verification only, no storage.

What an entry's hash covers (``canonical_bytes``): sorted-key JSON, UTF-8, no whitespace, of every
field except ``hash`` and the clear personal facts, plus ``personal_digest``, the SHA-256 of the
personal facts' *ciphertext* (and wrapped data key). So:

- editing a public fact, the time, the kind, the actor or ``prev_hash`` changes the hash;
- altering or deleting the encrypted personal part changes ``personal_digest``;
- the clear personal facts never enter a hash, so a hash (which may travel to a regulator or an
  operator) cannot be used to guess an ID number by brute force; they are bound to their
  ciphertext by AES-GCM, and the ciphertext to the chain by ``personal_digest``.

Each entry carries the hash of the previous one (the first carries ``GENESIS_HASH``); the chain's
head (last seq and hash) is kept apart from the entries, so deleting the last entry is detected too.
An unkeyed chain proves integrity against edits of single records; someone able to rewrite every
entry *and* the head can forge a consistent chain, which is why the head is also meant to be anchored
outside the log (e.g. in the registration record pushed to the operator).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

#: ``prev_hash`` of the first entry of every flow.
GENESIS_HASH = "0" * 64


#: Version of the canonical form, part of what is hashed so the form can evolve without ambiguity.
CANONICAL_VERSION = 1


#: Keys that name personal data: they belong in ``personal`` (encrypted), never in ``public``.
PERSONAL_KEYS = frozenset(
    {"name", "id_number", "id_no", "address", "phone", "mobile", "birth_date", "face_image", "portrait"}
)


class EvidenceKind(StrEnum):
    """What was checked (查验事项)."""

    UPLOAD_ACCEPTED = "upload_accepted"
    UPLOAD_REFUSED = "upload_refused"
    OCR_READ = "ocr_read"
    OCR_CROSS_CHECKED = "ocr_cross_checked"
    AUTHORITY_CHECKED = "authority_checked"
    FACE_COMPARED = "face_compared"
    #: The live face searched among the faces bound to other identities (一脸多证).
    FACE_DEDUPLICATED = "face_deduplicated"
    #: The live face's template bound to the flow's identity (after the pass, with the consent).
    FACE_BOUND = "face_bound"
    LIVENESS_CHECKED = "liveness_checked"
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"
    CONSENT_GIVEN = "consent_given"
    SMS_SENT = "sms_sent"
    SMS_CHECKED = "sms_checked"
    #: 委托登记: the owner agreed (by the code sent to their phone, or their own face check).
    DELEGATION_CONFIRMED = "delegation_confirmed"
    #: A try to show possession of the car (method, outcome), and a contest of another's claim on it.
    POSSESSION_CHECKED = "possession_checked"
    POSSESSION_CONTESTED = "possession_contested"
    REVIEW_OPENED = "review_opened"
    REVIEW_DECIDED = "review_decided"
    #: A fleet case (单位批次审核) not decided by its reminder time, and past its deadline (to a lead).
    REVIEW_REMINDED = "review_reminded"
    REVIEW_ESCALATED = "review_escalated"
    PUSH_RESULT = "push_result"
    #: 账号实名认证: the account that completed real-name with this flow (natural or legal person).
    REAL_NAME_COMPLETED = "real_name_completed"
    #: 单位登记: a fleet batch submitted (or resubmitted) for review with this flow.
    FLEET_BATCH_SUBMITTED = "fleet_batch_submitted"
    PURGED = "purged"


class ChainHead(BaseModel):
    """Where a flow's chain ends: the last seq and its hash (0 and ``GENESIS_HASH`` when empty)."""

    model_config = ConfigDict(frozen=True)

    last_seq: int = Field(default=0, ge=0)
    last_hash: str = GENESIS_HASH


class EvidenceEntry(BaseModel):
    """One record of the evidence log (查验日志条目).

    ``public`` holds non-personal facts (scores, thresholds, engine name and version, verdicts,
    codes); ``personal`` holds personal ones in clear, which are stored only encrypted. ``personal``
    is empty when the entry was read without decrypting (e.g. for verification).
    """

    model_config = ConfigDict(frozen=True)

    flow_id: str = Field(min_length=1)
    seq: int = Field(ge=1)
    at: AwareDatetime
    kind: EvidenceKind
    actor: str
    public: dict[str, Any] = Field(default_factory=dict)
    personal: dict[str, str] = Field(default_factory=dict)
    personal_digest: str | None = None
    prev_hash: str
    hash: str

    @field_validator("at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @property
    def head(self) -> ChainHead:
        return ChainHead(last_seq=self.seq, last_hash=self.hash)


class ChainVerdict(BaseModel):
    """The outcome of verifying a chain: ``ok``, or the first bad seq and why."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    checked: int = 0
    first_bad_seq: int | None = None
    reason: str | None = None  # evidence.hash_mismatch | broken_link | gap | out_of_order | head_mismatch


def _canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def canonical_public(public: Mapping[str, Any]) -> str:
    """The one text form of the public facts (what is hashed and stored)."""
    return _canonical_json(dict(public)).decode("utf-8")


def sealed_digest(data_key: bytes, values: Mapping[str, bytes]) -> str:
    """SHA-256 of the encrypted personal facts: the wrapped data key and each field's ciphertext."""
    doc = {
        "data_key": base64.b64encode(data_key).decode(),
        "values": {name: base64.b64encode(blob).decode() for name, blob in values.items()},
    }
    return hashlib.sha256(_canonical_json(doc)).hexdigest()


def canonical_bytes(
    *,
    flow_id: str,
    seq: int,
    at: datetime,
    kind: str,
    actor: str,
    public: Mapping[str, Any],
    personal_digest: str | None,
    prev_hash: str,
) -> bytes:
    """What an entry's hash is computed over (see the module docstring)."""
    return _canonical_json(
        {
            "v": CANONICAL_VERSION,
            "flow_id": flow_id,
            "seq": seq,
            "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
            "kind": kind,
            "actor": actor,
            "public": dict(public),
            "personal_digest": personal_digest,
            "prev_hash": prev_hash,
        }
    )


def entry_hash(entry: EvidenceEntry) -> str:
    """The hash ``entry`` should carry, recomputed from its fields."""
    return hashlib.sha256(
        canonical_bytes(
            flow_id=entry.flow_id,
            seq=entry.seq,
            at=entry.at,
            kind=entry.kind.value,
            actor=entry.actor,
            public=entry.public,
            personal_digest=entry.personal_digest,
            prev_hash=entry.prev_hash,
        )
    ).hexdigest()


def _check_public(public: Mapping[str, Any]) -> None:
    leaked = PERSONAL_KEYS & set(public)
    if leaked:
        raise ValueError(f"personal facts must not be public: {sorted(leaked)}")

    def finite(value: Any) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("public facts must be finite numbers")
        if isinstance(value, Mapping):
            for v in value.values():
                finite(v)
        elif isinstance(value, list | tuple):
            for v in value:
                finite(v)

    finite(public)
    canonical_public(public)  # raises TypeError on anything JSON cannot carry


def next_entry(
    head: ChainHead,
    *,
    flow_id: str,
    at: datetime,
    kind: EvidenceKind,
    actor: str,
    public: Mapping[str, Any],
    personal: Mapping[str, str] | None = None,
    personal_digest: str | None = None,
) -> EvidenceEntry:
    """The entry that follows ``head``, its hash computed.

    ``public`` is normalised through its canonical JSON (tuples become lists, …) so the entry holds
    exactly what a reader will load back.
    """
    _check_public(public)
    unhashed = EvidenceEntry(
        flow_id=flow_id,
        seq=head.last_seq + 1,
        at=at,
        kind=kind,
        actor=actor,
        public=json.loads(canonical_public(public)),
        personal=dict(personal or {}),
        personal_digest=personal_digest,
        prev_hash=head.last_hash,
        hash="",
    )
    return unhashed.model_copy(update={"hash": entry_hash(unhashed)})


def verify_chain(entries: Sequence[EvidenceEntry], head: ChainHead | None = None) -> ChainVerdict:
    """Check ``entries`` (as stored, in stored order) form one unbroken chain from the genesis.

    Per entry, in order: its seq follows the previous one (``out_of_order`` if it goes back, repeats
    or jumps over a seq that comes later in the list; ``gap`` if a seq is missing altogether), it
    links to the previous hash (``broken_link``), its own hash matches its fields (``hash_mismatch``).
    Then, when ``head`` is given, the chain must end exactly there: a missing last entry shows as a
    ``gap`` at the head's seq, a replaced last entry as a ``broken_link``, entries beyond the head as
    ``head_mismatch``.
    """
    present = {entry.seq for entry in entries}
    prev = ChainHead()
    for checked, entry in enumerate(entries):
        if entry.seq <= prev.last_seq:
            return _bad(checked, entry.seq, "evidence.out_of_order")
        if entry.seq > prev.last_seq + 1:
            if prev.last_seq + 1 in present:
                return _bad(checked, entry.seq, "evidence.out_of_order")
            return _bad(checked, prev.last_seq + 1, "evidence.gap")
        if entry.prev_hash != prev.last_hash:
            return _bad(checked, entry.seq, "evidence.broken_link")
        if entry.hash != entry_hash(entry):
            return _bad(checked, entry.seq, "evidence.hash_mismatch")
        prev = entry.head
    if head is not None:
        if head.last_seq > prev.last_seq:
            return _bad(len(entries), prev.last_seq + 1, "evidence.gap")
        if head.last_seq < prev.last_seq:
            return _bad(len(entries), head.last_seq + 1, "evidence.head_mismatch")
        if head.last_hash != prev.last_hash:
            return _bad(len(entries), prev.last_seq, "evidence.broken_link")
    return ChainVerdict(ok=True, checked=len(entries))


def _bad(checked: int, seq: int, reason: str) -> ChainVerdict:
    return ChainVerdict(ok=False, checked=checked, first_bad_seq=seq, reason=reason)
