"""Consents: the separate biometric consent, given once, and the flow's other consents, into the evidence."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from chalicelib.consents.domain import ConsentKind
from chalicelib.consents.texts import current_consent
from chalicelib.kernel.errors import DomainError
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import CheckName, CheckVerdict
from tests.unit.stories import refusal as refused
from tests.unit.verification.world import OWNER, World, photo


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


def test_an_id_front_before_the_biometric_consent_is_refused_and_no_face_is_processed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a flow without the biometric consent, and a face engine that counts what it is asked
    world = World()
    flow_id = world.open()
    asked: list[str] = []
    detect, compare = world.faces.detect, world.faces.compare

    def counted_detect(image: bytes) -> Any:
        asked.append("detect")
        return detect(image)

    def counted_compare(a: bytes, b: bytes) -> Any:
        asked.append("compare")
        return compare(a, b)

    monkeypatch.setattr(world.faces, "detect", counted_detect)
    monkeypatch.setattr(world.faces, "compare", counted_compare)
    # when the ID front is presigned, or completed from an object put without a presign
    presign = refused(
        lambda: world.service.presign_upload(flow_id, OWNER, DocumentKind.ID_FRONT, "image/jpeg")
    )
    raw = f"raw/{flow_id}/id_front/{'b' * 32}"
    world.store.objects[raw] = (photo(), "image/jpeg")
    complete = refused(lambda: world.service.complete_upload(flow_id, OWNER, DocumentKind.ID_FRONT, raw))
    # then both answer the missing consent, with the text to give it to, and no face was looked for
    for error in (presign, complete):
        assert (error.status, error.code) == (409, "consent.biometric_required")
        assert error.details == {"kind": "biometric_consent", "version": "v3"}
        assert "人脸信息处理单独同意书" in error.message_zh
    assert asked == []
    assert world.store.forms == {}
    assert world.store.keys(f"documents/{flow_id}/") == []
    assert world.evidence.entries(flow_id) == []
    # and once the consent is given the same upload completes, its portrait looked for
    world.consent(flow_id)
    stored = world.service.complete_upload(flow_id, OWNER, DocumentKind.ID_FRONT, raw)
    assert stored.key.startswith(f"documents/{flow_id}/id_front/")
    assert asked == ["detect"]


def test_the_back_of_the_id_needs_no_biometric_consent() -> None:
    # given a flow without the biometric consent
    world = World()
    flow_id = world.open()
    # when the back of the ID card (no face on it) is uploaded
    stored = world.upload(flow_id, DocumentKind.ID_BACK)
    # then it is kept
    assert stored.startswith(f"documents/{flow_id}/id_back/")
    assert CheckName.BIOMETRIC_CONSENT not in world.service.flow(flow_id, OWNER).checks
