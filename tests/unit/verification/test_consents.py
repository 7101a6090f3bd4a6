"""Consents: the separate biometric consent, given once, and the flow's other consents, into the evidence."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from chalicelib.consents.domain import ConsentKind
from chalicelib.consents.texts import current_consent
from chalicelib.kernel.errors import DomainError
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import CheckName, CheckVerdict
from tests.unit.verification.world import OWNER, World


def test_the_biometric_consent_is_recorded_with_its_version_hash_time_and_client_once() -> None:
    world = World()
    flow_id = world.open()
    doc = current_consent(ConsentKind.BIOMETRIC_CONSENT)
    # when it is given twice
    first = world.service.give_biometric_consent(
        flow_id, OWNER, doc.version, doc.sha256, {"ip": "203.0.113.9"}
    )
    second = world.service.give_biometric_consent(
        flow_id, OWNER, doc.version, doc.sha256, {"ip": "203.0.113.9"}
    )
    # then the flow records it once
    assert first.checks[CheckName.BIOMETRIC_CONSENT] is CheckVerdict.PASSED
    assert second == first
    [entry] = world.evidence.entries(flow_id)
    assert entry.kind is EvidenceKind.CONSENT_GIVEN
    assert entry.public == {
        "consents": [
            {
                "kind": "biometric_consent",
                "version": doc.version,
                "sha256": doc.sha256,
                "accepted_at": world.clock().isoformat(),
                "client": {"ip": "203.0.113.9"},
            }
        ]
    }


def test_a_consent_to_a_text_other_than_the_current_one_is_refused() -> None:
    world = World()
    flow_id = world.open()
    doc = current_consent(ConsentKind.BIOMETRIC_CONSENT)
    # when
    with pytest.raises(DomainError):
        world.service.give_biometric_consent(flow_id, OWNER, doc.version, "0" * 64, {})
    # then
    assert CheckName.BIOMETRIC_CONSENT not in world.service.flow(flow_id, OWNER).checks
    assert world.evidence.entries(flow_id) == []


class Given(BaseModel):
    kind: str
    version: str


def test_the_flows_other_consents_go_into_its_evidence() -> None:
    world = World()
    flow_id = world.open()
    # when
    world.service.record_consents(flow_id, OWNER, [Given(kind="service_agreement", version="v1")])
    # then
    [entry] = world.evidence.entries(flow_id)
    assert entry.public == {"consents": [{"kind": "service_agreement", "version": "v1"}]}
