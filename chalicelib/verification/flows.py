"""Verification flows (办理流程): open one, find it, type the identity, keep or reopen it, purge it.

A flow belongs to the caller who opened it; every other use case of the context reaches it through
``Flows.flow`` (the caller's own, unexpired flow) or ``Flows.open_for_checks`` (and still open), and
changes it through ``Flows.save`` (one version up, or ``flow.changed``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.crypto import KeyedHasher
from chalicelib.kernel.errors import Conflict
from chalicelib.kernel.personal import IdType, id_lookup_value
from chalicelib.kernel.validators import validate
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import (
    CheckName,
    CheckVerdict,
    Flow,
    FlowPurpose,
    FlowStatus,
    TypedIdentity,
    VerificationPolicy,
    check_access,
    check_open,
    new_flow,
    strict_uscc,
    too_many_open_flows,
)
from chalicelib.verification.ports import EvidenceLog, FaceGate, FlowRepository, SealedFlow
from chalicelib.verification.uploads import UploadService


class Flows:
    def __init__(
        self,
        *,
        flows: FlowRepository,
        uploads: UploadService,
        evidence: EvidenceLog,
        hasher: KeyedHasher,
        policy: VerificationPolicy,
        gates: Sequence[FaceGate] = (),
        clock: Clock = utc_now,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self._flows = flows
        self._gates = tuple(gates)
        self._uploads = uploads
        self._evidence = evidence
        self._hasher = hasher
        self._policy = policy
        self._clock = clock
        self._new_id = new_id

    def open_flow(self, owner: str, purpose: FlowPurpose, flow_id: str | None = None) -> Flow:
        """A new flow of ``owner``; ``flow.too_many_open`` (429) when they hold ``open_flows`` open ones.

        ``flow_id`` is the new flow's id when the caller chose it beforehand (``new_flow_id``: a step
        that records the id before the flow is opened), else a new one. The store decides the count and
        the create as one step per owner (``create_if_room``): opens of one person racing each other
        cannot all pass."""
        now = self._clock()
        flow = new_flow(flow_id or self.new_flow_id(), owner, purpose, now, self._policy.flow_ttl)
        if not self._flows.create_if_room(flow, self._policy.open_flows, now):
            raise too_many_open_flows(self._policy.open_flows)
        return flow

    def prepare_open(self, owner: str, purpose: FlowPurpose, flow_id: str) -> tuple[Flow, int]:
        """The flow ``open_flow`` would open, not stored, and the open flows ``owner`` may hold: for a
        step that opens it in one write with its own (its store decides the count and the create)."""
        flow = new_flow(flow_id, owner, purpose, self._clock(), self._policy.flow_ttl)
        return flow, self._policy.open_flows

    def new_flow_id(self) -> str:
        """A new flow's id (not yet opened)."""
        return f"f{self._new_id()}"

    def flow(self, flow_id: str, caller: str) -> Flow:
        """The caller's own, unexpired flow (``flow.not_found`` / ``flow.not_yours``)."""
        return check_access(self._flows.get(flow_id), caller, self._clock())

    def open_for_checks(self, flow_id: str, caller: str) -> Flow:
        """The caller's flow, still open to checks (``flow.not_open`` once in review or decided)."""
        flow = self.flow(flow_id, caller)
        check_open(flow)
        return flow

    def find(self, flow_id: str) -> Flow | None:
        """The stored flow, whoever owns it (for reviewers, and to re-read a flow after a long step)."""
        return self._flows.get(flow_id)

    def save(self, flow: Flow, **changes: Any) -> Flow:
        """``flow`` with ``changes``, one version up (``flow.changed`` if it changed meanwhile)."""
        return self._flows.save_sealed(self.seal(flow, **changes))

    def seal(self, flow: Flow, **changes: Any) -> SealedFlow:
        """``flow`` with ``changes``, one version up, its identity sealed and nothing written: a check
        seals before it spends what a KMS failure could not give back, then stores it with
        ``save_sealed``."""
        updated = flow.model_copy(
            update={**changes, "version": flow.version + 1, "updated_at": self._clock()}
        )
        return self._flows.seal(updated)

    def save_sealed(self, ready: SealedFlow) -> Flow:
        """Store a flow ``seal`` prepared (``flow.changed`` if it changed meanwhile)."""
        return self._flows.save_sealed(ready)

    def save_noted(
        self, flow: Flow, kind: EvidenceKind, actor: str, public: dict[str, Any], /, **changes: Any
    ) -> Flow:
        """``save`` with the evidence entry that says why (``kind``, ``public``): both land or neither, so
        a step refused by the store leaves the flow and its evidence as they were."""
        return self._flows.save_noted(self.seal(flow, **changes), self._evidence, kind, actor, public)

    def set_identity(self, flow_id: str, caller: str, identity: TypedIdentity) -> Flow:
        """What the person typed: validated, hashed for the per-person quota, stored encrypted."""
        flow = self.open_for_checks(flow_id, caller)
        if flow.checks.get(CheckName.FACE) is not None:
            raise Conflict(
                "flow.identity_locked",
                "人脸核验已开始，证件信息不能再修改",
                "The identity cannot change once face checks have started",
                field="id_number",
            )
        id_type = IdType(identity.id_type)
        number = validate(id_type.value, identity.id_number, field="id_number").value
        # The validity read from the ID back stays with the same document's identity.
        kept = flow.identity.id_validity if flow.identity and flow.identity.id_type == id_type else None
        clean = identity.model_copy(update={"id_number": number, "id_validity": kept})
        if flow.purpose is FlowPurpose.ACCOUNT_VERIFICATION and identity.uscc:
            # 法人实名认证: the enterprise's code is refused here when wrong, before any photo is read.
            clean = clean.model_copy(update={"uscc": strict_uscc(identity.uscc)})
        person_hash = self._hasher.digest(id_lookup_value(id_type, number))
        # A changed identity invalidates readings checked against the old one.
        checks = {
            k: v
            for k, v in flow.checks.items()
            if k not in (CheckName.OCR_ID_FRONT, CheckName.OCR_BUSINESS_LICENCE, CheckName.AUTHORITY)
        }
        return self.save(flow, identity=clean, person_hash=person_hash, checks=checks)

    def note(self, flow_id: str, kind: EvidenceKind, actor: str, details: dict[str, Any]) -> None:
        """Add a step of the surrounding use case (an SMS check, a push result) to the flow's evidence."""
        self._evidence.append(flow_id, kind, actor, details)

    def keep(self, flow: Flow, until: datetime) -> Flow:
        """A submitted flow is evidence: closed to any change (``verified``) and kept, with its photos,
        until ``until`` instead of expiring. ``flow`` is one the caller was given access to."""
        if flow.status is FlowStatus.VERIFIED and flow.expires_at >= until:
            return flow
        return self.save(flow, status=FlowStatus.VERIFIED, expires_at=max(until, flow.expires_at))

    def reopen(self, flow_id: str, caller: str, at: datetime) -> Flow:
        """A submission was refused: the flow takes changes again (unless a reviewer decided it) and
        expires at ``at`` as it would have."""
        flow = self.flow(flow_id, caller)
        reviewed = flow.checks.get(CheckName.FACE) is CheckVerdict.APPROVED
        return self.save(flow, status=FlowStatus.VERIFIED if reviewed else FlowStatus.OPEN, expires_at=at)

    def purge_expired(self, limit: int = 100) -> int:
        """Delete abandoned flows (expired, never kept by a submission) with their photos; how many.

        The flow's evidence chain stays, ending with a ``purged`` entry (what was deleted, not the data);
        its entries keep no personal facts (the sealed OCR facts of a person who never registered are
        deleted, their digest kept so the chain still verifies).
        """
        now = self._clock()
        purged = 0
        for flow in self._flows.expired(now, limit):
            if flow.status is FlowStatus.IN_REVIEW:
                continue  # a reviewer has the case: its expiry moves when the review opens
            objects = self._uploads.purge(flow.flow_id)
            if self._flows.delete_expired(flow, now):
                purged += 1
                for gate in self._gates:
                    gate.purged(flow.flow_id)
                entries = self._evidence.purge_personal(flow.flow_id)
                self._evidence.append(
                    flow.flow_id,
                    EvidenceKind.PURGED,
                    "system",
                    {
                        "documents": sorted(flow.documents),
                        "objects": objects,
                        "personal_entries": entries,
                        "expired_at": flow.expires_at.isoformat(),
                    },
                )
        return purged
