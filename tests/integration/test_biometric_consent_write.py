"""The separate biometric consent (人脸信息处理单独同意) is saved on its flow with the evidence entry that
records it, in one write, on the embedded AWS.

Had the flow been saved first and the entry appended after, a failed append would leave the consent
PASSED with no entry, and every later giving would return early (already given): the consent would never
be in the evidence. So a throttled write leaves neither, and the consent given again lands both, once.
"""

from __future__ import annotations

import pytest

from chalicelib.consents.domain import ConsentKind
from chalicelib.consents.texts import current_consent
from chalicelib.core import deps
from chalicelib.core.outbound import Unavailable
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import CheckName, CheckVerdict, Flow, FlowPurpose
from tests.integration.test_evidence_joined_writes import throttled, writes_to

OWNER_ID = "owner-biometric-consent"
CLIENT = {"ip": "203.0.113.9", "user_agent": "Mozilla/5.0"}


def _flow() -> Flow:
    """A new flow of ``OWNER_ID``, with one entry already in its evidence (the chain is not empty)."""
    flow = deps.verification_service().open_flow(OWNER_ID, FlowPurpose.REGISTRATION)
    deps.evidence_log().append(flow.flow_id, EvidenceKind.SMS_CHECKED, OWNER_ID, {"purpose": "owner_phone"})
    return flow


def _give(flow_id: str) -> Flow:
    doc = current_consent(ConsentKind.BIOMETRIC_CONSENT)
    return deps.verification_service().give_biometric_consent(
        flow_id, OWNER_ID, doc.version, doc.sha256, CLIENT
    )


def _kinds(flow_id: str) -> list[EvidenceKind]:
    return [e.kind for e in deps.evidence_log().entries(flow_id)]


def test_a_throttled_consent_write_leaves_the_flow_without_consent_and_no_entry(aws: None) -> None:
    # Given an open flow
    flows = deps.verification_service().flows
    flow = _flow()
    before = flows.find(flow.flow_id)
    # When the consent's write to the evidence is throttled
    with throttled(writes_to("evidence")) as struck, pytest.raises(Unavailable):
        _give(flow.flow_id)
    # Then it was one write, refused whole: the flow is as it was (no consent) and no entry was chained
    assert struck == ["TransactWriteItems"]
    after = flows.find(flow.flow_id)
    assert after == before
    assert after is not None
    assert CheckName.BIOMETRIC_CONSENT not in after.checks
    assert _kinds(flow.flow_id) == [EvidenceKind.SMS_CHECKED]


def test_the_consent_given_again_after_a_throttled_write_lands_the_consent_and_one_entry(aws: None) -> None:
    # Given a flow whose first consent write was throttled
    flow = _flow()
    with throttled(writes_to("evidence")), pytest.raises(Unavailable):
        _give(flow.flow_id)
    # When the consent is given again, and once more after it landed
    saved = _give(flow.flow_id)
    again = _give(flow.flow_id)
    # Then the stored flow has the consent, and the evidence one CONSENT_GIVEN entry with what was accepted
    stored = deps.verification_service().flows.find(flow.flow_id)
    assert stored is not None
    assert stored.checks[CheckName.BIOMETRIC_CONSENT] is CheckVerdict.PASSED
    assert (saved.version, again.version) == (stored.version, stored.version)
    assert stored.version == flow.version + 1
    entries = deps.evidence_log().entries(flow.flow_id)
    assert [e.kind for e in entries] == [EvidenceKind.SMS_CHECKED, EvidenceKind.CONSENT_GIVEN]
    doc = current_consent(ConsentKind.BIOMETRIC_CONSENT)
    [given] = entries[1].public["consents"]
    assert {k: given[k] for k in ("kind", "version", "sha256", "client")} == {
        "kind": "biometric_consent",
        "version": doc.version,
        "sha256": doc.sha256,
        "client": CLIENT,
    }
    assert deps.evidence_log().verify(flow.flow_id).ok
