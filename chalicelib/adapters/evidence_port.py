"""Port of the evidence log (查验日志): append-only, hash-chained, per flow."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from chalicelib.domain.evidence import ChainVerdict, EvidenceEntry, EvidenceKind


class EvidenceLog(ABC):
    """Records every check of a flow. There is deliberately no way to change or remove an entry."""

    @abstractmethod
    def append(
        self,
        flow_id: str,
        kind: EvidenceKind,
        actor: str,
        public: Mapping[str, Any],
        personal: Mapping[str, str] | None = None,
    ) -> EvidenceEntry:
        """Chain a new entry after the flow's last one; ``personal`` facts are stored encrypted.

        Safe under concurrent appends to the same flow: each gets its own seq, none is lost.
        """

    @abstractmethod
    def entries(self, flow_id: str) -> list[EvidenceEntry]:
        """The flow's entries in seq order, personal facts decrypted."""

    @abstractmethod
    def verify(self, flow_id: str) -> ChainVerdict:
        """Check the stored chain and its head; needs no decryption (an auditor can run it)."""
