"""Consents given in a flow, kept in its evidence: the separate biometric consent (人脸信息处理单独同意,
PIPL 第二十九条) before any face is processed, and the consents of the surrounding use case."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from chalicelib.consents.domain import AcceptedConsent, ConsentKind
from chalicelib.consents.texts import check_consents, current_consent
from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.errors import Conflict
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import CheckName, CheckVerdict, Flow
from chalicelib.verification.flows import Flows
from chalicelib.verification.ports import EvidenceLog


def require_biometric_consent(flow: Flow) -> None:
    """No face is processed before the separate biometric consent: not the live face, and not the
    portrait on the ID card's front (its detection is face processing too)."""
    if flow.checks.get(CheckName.BIOMETRIC_CONSENT) is not CheckVerdict.PASSED:
        doc = current_consent(ConsentKind.BIOMETRIC_CONSENT)
        raise Conflict(
            "consent.biometric_required",
            f"请先阅读并单独同意《{doc.title}》",
            "The separate consent to process face data must be given before any face is processed",
            details={"kind": doc.kind.value, "version": doc.version},
        )


class Consents:
    def __init__(
        self,
        *,
        flows: Flows,
        evidence: EvidenceLog,
        clock: Clock = utc_now,
    ) -> None:
        self._flows = flows
        self._evidence = evidence
        self._clock = clock

    def give_biometric_consent(
        self, flow_id: str, caller: str, version: str, sha256: str, client: dict[str, str]
    ) -> Flow:
        """人脸信息处理单独同意: the current text, as served, accepted before any face is processed;
        kept in the evidence with its version, hash, time and client. Giving it again changes nothing."""
        flow = self._flows.open_for_checks(flow_id, caller)
        check_consents(
            [AcceptedConsent(kind=ConsentKind.BIOMETRIC_CONSENT, version=version, sha256=sha256)],
            required=(ConsentKind.BIOMETRIC_CONSENT,),
        )
        if flow.checks.get(CheckName.BIOMETRIC_CONSENT) is CheckVerdict.PASSED:
            return flow
        given = {
            "kind": ConsentKind.BIOMETRIC_CONSENT.value,
            "version": version,
            "sha256": sha256,
            "accepted_at": self._clock().isoformat(),
            "client": client,
        }
        # The consent on the flow and its evidence entry in one write: a refused write leaves neither,
        # so the consent given again (not yet PASSED) writes both.
        return self._flows.save_noted(
            flow,
            EvidenceKind.CONSENT_GIVEN,
            caller,
            {"consents": [given]},
            checks={**flow.checks, CheckName.BIOMETRIC_CONSENT: CheckVerdict.PASSED},
        )

    def record_consents(self, flow_id: str, caller: str, consents: Sequence[BaseModel]) -> None:
        """Consents given in the flow (text kind, version, hash, time, client) go into its evidence."""
        flow = self._flows.flow(flow_id, caller)
        self._evidence.append(
            flow.flow_id,
            EvidenceKind.CONSENT_GIVEN,
            caller,
            {"consents": [c.model_dump(mode="json") for c in consents]},
        )
