"""The evidence log (查验日志) on DynamoDB: one item per entry, plus one head item per flow.

Layout of the ``evidence`` table (hash key ``flow_id``, range key ``seq``):

- ``seq >= 1``: the entries. Public facts are stored as their canonical JSON text (exactly what was
  hashed, so numbers cannot drift through DynamoDB's number type); personal facts are sealed with
  the ``FieldCipher`` under the context ``evidence|<flow>|<seq>``, so a ciphertext moved to another
  entry does not decrypt.
- ``seq = 0``: the chain head, ``last_seq`` and ``last_hash``. It lets ``verify`` notice a deleted last
  entry, and it is what concurrent appends serialise on.

An append is one transaction: put the entry if its seq is free, and move the head from the seq and
hash it was read at to the new ones. Two writers that read the same head cannot both commit; the loser
re-reads the head and chains after the winner. Nothing here updates or deletes an entry, except the
purge (第十八条), which drops an entry's sealed personal facts and keeps their digest.

``append_with`` joins other puts to that transaction (a flow's new version with the entry that says
why it changed): the entry and the puts land together or not at all, so a refused step leaves neither.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pynamodb.attributes import (
    MapAttribute,
)
from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamo.models import EvidenceModel
from chalicelib.adapters.dynamo.once import new_token
from chalicelib.adapters.dynamo.resend import cancelled, in_progress, landed
from chalicelib.core.outbound import Unavailable
from chalicelib.kernel.clock import utc_now
from chalicelib.kernel.crypto import FieldCipher, SealedFields
from chalicelib.kernel.errors import Conflict
from chalicelib.verification.domain.evidence import (
    ChainHead,
    ChainVerdict,
    EvidenceEntry,
    EvidenceKind,
    canonical_public,
    next_entry,
    sealed_digest,
    verify_chain,
)
from chalicelib.verification.ports import EvidenceLog

#: The seq of the head item; entries start at 1.
HEAD_SEQ = 0
#: Appends to one flow are rare (one person's checks), but several services may record at once.
#: A lost race means another append committed, so the log always progresses; a writer retries with
#: jittered, capped backoff, re-reading the head each time.
APPEND_ATTEMPTS = 30
BACKOFF_CAP_SECONDS = 0.2
RETRYABLE = frozenset({"ConditionalCheckFailed", "TransactionConflict", "ThrottlingError"})


@dataclass(frozen=True)
class JoinedPut:
    """A put that lands with an evidence entry or not at all (``DynamoEvidenceLog.append_with``):
    ``item`` saved on ``condition``; ``refused`` makes the error raised when the condition refuses it
    (the item changed meanwhile: appending again would not help)."""

    item: Model
    condition: Condition
    refused: Callable[[], Exception]


def append_contended(flow_id: str) -> Conflict:
    """Other writers kept moving the flow's chain (its head, the seq an entry took) on every try
    (``evidence.append_contended``, 409): nothing was written, the same request may be sent again."""
    return Conflict(
        "evidence.append_contended",
        "查验日志写入冲突，请稍后重试",
        "Too many concurrent writes to the evidence log; try again",
        details={"flow_id": flow_id},
    )


def _context(flow_id: str, seq: int) -> str:
    return f"evidence|{flow_id}|{seq}"


def _sealed(item: EvidenceModel) -> SealedFields | None:
    if item.data_key is None or item.personal_enc is None:
        return None
    return SealedFields(item.data_key, {k: bytes(v) for k, v in item.personal_enc.attribute_values.items()})


def _entry(item: EvidenceModel, personal: dict[str, str]) -> EvidenceEntry:
    """An entry as stored. Raises (KeyError, ValueError, …) when the item is not a well-formed entry.

    ``personal_digest`` is recomputed from the stored ciphertext, never stored: an altered or
    removed encrypted part then shows as a hash mismatch. Only a purge (``purge_personal``) removes
    the ciphertext, leaving its digest in ``purged_digest``.
    """
    sealed = _sealed(item)
    return EvidenceEntry(
        flow_id=item.flow_id,
        seq=int(item.seq),
        at=item.at,
        kind=EvidenceKind(item.kind),
        actor=item.actor,
        public=json.loads(item.public_json),
        personal=personal,
        personal_digest=sealed_digest(sealed.data_key, sealed.values) if sealed else item.purged_digest,
        prev_hash=item.prev_hash,
        hash=item.hash,
    )


def read_head(flow_id: str) -> ChainHead:
    try:
        item = EvidenceModel.get(flow_id, HEAD_SEQ, consistent_read=True)
    except EvidenceModel.DoesNotExist:
        return ChainHead()
    return ChainHead(last_seq=int(item.last_seq or 0), last_hash=item.last_hash or "")


def _items(flow_id: str) -> list[EvidenceModel]:
    return list(
        EvidenceModel.query(
            flow_id,
            EvidenceModel.seq > HEAD_SEQ,
            consistent_read=True,
            scan_index_forward=True,
        )
    )


class DynamoEvidenceLog(EvidenceLog):
    def __init__(self, cipher: FieldCipher, *, clock: Callable[[], datetime] | None = None):
        self._cipher = cipher
        self._clock = clock or utc_now

    def append(
        self,
        flow_id: str,
        kind: EvidenceKind,
        actor: str,
        public: Mapping[str, Any],
        personal: Mapping[str, str] | None = None,
    ) -> EvidenceEntry:
        """An entry chained after the flow's last one, its personal facts sealed: ``append_with`` with no
        puts, so a lost reply, a transaction still committing and a lost race are handled as there."""
        return self.append_with(flow_id, kind, actor, public, personal)

    def append_with(
        self,
        flow_id: str,
        kind: EvidenceKind,
        actor: str,
        public: Mapping[str, Any],
        personal: Mapping[str, str] | None = None,
        *,
        puts: Sequence[JoinedPut] = (),
    ) -> EvidenceEntry:
        """``append`` with ``puts`` in the same transaction: all of them land, or none (a throttle, a
        fault, a refused put). A lost race for the seq is appended again after the winner, the puts
        with it; a put whose condition refuses it raises its ``refused()``.

        Each transaction carries a ``ClientRequestToken`` (``dynamo.resend``): botocore's retry of one
        whose reply was lost is answered as done by DynamoDB. One cancelled by nothing but a conflict or a
        throttle, or answered ``TransactionInProgressException``, is sent again as it is, with the same
        token; a new entry (and token) is prepared only when a condition refused it. Before a refusal is
        answered, every entry prepared so far is looked for in the chain: one found means its
        transaction landed (late, or on a retry that met it in flight; the puts are then its own)."""
        prepared: list[EvidenceEntry] = []  # every entry prepared so far: any of them may have landed
        pending: tuple[ChainHead, EvidenceEntry, EvidenceModel, str] | None = None
        for attempt in range(APPEND_ATTEMPTS):
            if pending is None:  # a new transaction: the head read again, a new token
                head = read_head(flow_id)
                entry, item = self.prepare(head, flow_id, kind, actor, public, personal)
                prepared.append(entry)
                pending = (head, entry, item, new_token())
            head, entry, item, token = pending
            try:
                with TransactWrite(
                    connection=EvidenceModel._get_connection().connection, client_request_token=token
                ) as tx:
                    for put in puts:  # puts are sent first, in this order: their reasons come first too
                        tx.save(put.item, condition=put.condition)
                    chain_in(tx, head, entry, item)
                return entry
            except Unavailable as exc:
                if not in_progress(exc) or attempt + 1 == APPEND_ATTEMPTS:
                    raise
                # an earlier send of this token is still committing: sent again once it ended
            except TransactWriteError as exc:
                done = landed(prepared)
                if done is not None:
                    return done  # its puts landed with it: a refusal now would be by its own writes
                if not cancelled(exc):
                    raise
                reasons = [r.code if r is not None else None for r in exc.cancellation_reasons or []]
                for put, code in zip(puts, reasons, strict=False):
                    if code == "ConditionalCheckFailed":
                        raise put.refused() from exc
                codes = {code for code in reasons if code not in (None, "None")}
                if not codes or not codes <= RETRYABLE:
                    raise
                if "ConditionalCheckFailed" in codes:
                    pending = None  # another append won this seq: chained after it, the puts with it
                # else refused by nothing (a conflict, a throttle): the same transaction, the same token
            time.sleep(random.uniform(0, min(BACKOFF_CAP_SECONDS, 0.005 * 2**attempt)))
        raise append_contended(flow_id)

    def prepare(
        self,
        head: ChainHead,
        flow_id: str,
        kind: EvidenceKind,
        actor: str,
        public: Mapping[str, Any],
        personal: Mapping[str, str] | None,
    ) -> tuple[EvidenceEntry, EvidenceModel]:
        seq = head.last_seq + 1
        sealed = self._cipher.seal(_context(flow_id, seq), personal) if personal else None
        entry = next_entry(
            head,
            flow_id=flow_id,
            at=self._clock(),
            kind=kind,
            actor=actor,
            public=public,
            personal=personal,
            personal_digest=sealed_digest(sealed.data_key, sealed.values) if sealed else None,
        )
        item = EvidenceModel(
            flow_id,
            seq,
            at=entry.at,
            kind=entry.kind.value,
            actor=entry.actor,
            public_json=canonical_public(entry.public),
            data_key=sealed.data_key if sealed else None,
            personal_enc=MapAttribute(**sealed.values) if sealed else None,  # type: ignore[no-untyped-call]
            prev_hash=entry.prev_hash,
            hash=entry.hash,
        )
        return entry, item

    def purge_personal(self, flow_id: str) -> int:
        """Delete the sealed personal facts (and their data keys) of the flow's entries, keeping each
        one's digest so the chain still verifies; how many entries lost theirs. Each entry is changed
        only if its hash is the one read (an entry is never otherwise touched)."""
        purged = 0
        for item in _items(flow_id):
            sealed = _sealed(item)
            if sealed is None:
                continue
            try:
                item.update(
                    actions=[
                        EvidenceModel.purged_digest.set(sealed_digest(sealed.data_key, sealed.values)),
                        EvidenceModel.data_key.remove(),
                        EvidenceModel.personal_enc.remove(),
                    ],
                    condition=(EvidenceModel.hash == item.hash) & EvidenceModel.data_key.exists(),
                )
            except UpdateError as exc:
                if exc.cause_response_code != "ConditionalCheckFailedException":
                    raise
                continue  # purged meanwhile by another run
            purged += 1
        return purged

    def entries(self, flow_id: str) -> list[EvidenceEntry]:
        out = []
        for item in _items(flow_id):
            sealed = _sealed(item)
            clear = self._cipher.open(_context(flow_id, int(item.seq)), sealed) if sealed else {}
            out.append(_entry(item, clear))
        return out

    def verify(self, flow_id: str) -> ChainVerdict:
        head = read_head(flow_id)
        items = _items(flow_id)
        if items and int(items[-1].seq) > head.last_seq:
            # Either an append committed between the two reads (the head now covers it), or an
            # entry was written behind the head's back (it does not): only the former is trimmed.
            later = read_head(flow_id)
            if later.last_seq >= int(items[-1].seq):
                items = [i for i in items if int(i.seq) <= head.last_seq]
        entries: list[EvidenceEntry] = []
        for item in items:
            try:
                entries.append(_entry(item, {}))
            except (KeyError, TypeError, ValueError):
                # Not even readable as an entry: report it where it sits, unless something before is wrong.
                verdict = verify_chain(entries)
                if not verdict.ok:
                    return verdict
                return ChainVerdict(
                    ok=False,
                    checked=len(entries),
                    first_bad_seq=int(item.seq),
                    reason="evidence.hash_mismatch",
                )
        return verify_chain(entries, head)


def chain_in(tx: TransactWrite, head: ChainHead, entry: EvidenceEntry, item: EvidenceModel) -> None:
    """``entry`` chained in ``tx``: put if its seq is free (:func:`put_entry_in`) and the head moved to it
    (:func:`move_head_in`)."""
    put_entry_in(tx, item)
    move_head_in(tx, head, entry)


def put_entry_in(tx: TransactWrite, item: EvidenceModel) -> None:
    """The entry's item put in ``tx``, refused if its seq is taken (another writer chained first)."""
    tx.save(item, condition=EvidenceModel.seq.does_not_exist())


def move_head_in(tx: TransactWrite, head: ChainHead, entry: EvidenceEntry) -> None:
    """The chain's head moved to ``entry`` in ``tx``, refused unless it is still what the entry was
    chained to (seq *and* hash: the link is then guaranteed by the write itself, not by how the head
    was read)."""
    moved = (
        EvidenceModel.last_seq.does_not_exist()
        if head.last_seq == 0
        else (EvidenceModel.last_seq == head.last_seq) & (EvidenceModel.last_hash == head.last_hash)
    )
    tx.update(
        EvidenceModel(entry.flow_id, HEAD_SEQ),
        actions=[EvidenceModel.last_seq.set(entry.seq), EvidenceModel.last_hash.set(entry.hash)],
        condition=moved,
        add_version_condition=False,
    )
