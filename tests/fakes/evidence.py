"""An in-memory evidence log, for unit tests of services (no AWS, no mocks)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from chalicelib.kernel.crypto import FieldCipher, SealedFields
from chalicelib.verification.domain.evidence import (
    ChainHead,
    ChainVerdict,
    EvidenceEntry,
    EvidenceKind,
    next_entry,
    sealed_digest,
    verify_chain,
)
from chalicelib.verification.ports import EvidenceLog
from tests.fakes.crypto import FakeCipher


class FakeEvidenceLog(EvidenceLog):
    """Entries (personal facts only as ciphertext) and heads in dicts; tests may tamper with ``stored``."""

    def __init__(self, cipher: FieldCipher | None = None, clock: Callable[[], datetime] | None = None):
        self._cipher = cipher or FakeCipher()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self.stored: dict[str, list[tuple[EvidenceEntry, SealedFields | None]]] = {}
        self.heads: dict[str, ChainHead] = {}

    def append(
        self,
        flow_id: str,
        kind: EvidenceKind,
        actor: str,
        public: Mapping[str, Any],
        personal: Mapping[str, str] | None = None,
    ) -> EvidenceEntry:
        with self._lock:
            head = self.heads.get(flow_id, ChainHead())
            context = f"evidence|{flow_id}|{head.last_seq + 1}"
            sealed = self._cipher.seal(context, personal) if personal else None
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
            self.stored.setdefault(flow_id, []).append((entry.model_copy(update={"personal": {}}), sealed))
            self.heads[flow_id] = entry.head
            return entry

    def entries(self, flow_id: str) -> list[EvidenceEntry]:
        out = []
        for entry, sealed in self.stored.get(flow_id, []):
            clear = self._cipher.open(f"evidence|{flow_id}|{entry.seq}", sealed) if sealed else {}
            out.append(entry.model_copy(update={"personal": clear}))
        return out

    def purge_personal(self, flow_id: str) -> int:
        with self._lock:
            stored = self.stored.get(flow_id, [])
            purged = sum(1 for _, sealed in stored if sealed is not None)
            self.stored[flow_id] = [(entry, None) for entry, _ in stored]
            return purged

    def verify(self, flow_id: str) -> ChainVerdict:
        return verify_chain(
            [entry for entry, _ in self.stored.get(flow_id, [])], self.heads.get(flow_id, ChainHead())
        )
