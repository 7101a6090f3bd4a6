"""第五条's address of a resident ID holder: typed, or, when not typed, the one OCR reads on the ID
card's front goes with the identity (to the party and the push)."""

from __future__ import annotations

from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.flows import TypedIdentity
from tests.unit.verification.world import NAME, NUMBER, OWNER, World, id_front_lines


def identity_after_reading(typed_address: str | None) -> TypedIdentity:
    world = World()
    world.ocr.say(*id_front_lines())
    flow_id = world.open()
    typed = TypedIdentity(id_type="resident_id", id_number=NUMBER, name=NAME, address=typed_address)
    world.service.set_identity(flow_id, OWNER, typed)
    world.upload(flow_id, DocumentKind.ID_FRONT)
    world.service.read_document(flow_id, OWNER, DocumentKind.ID_FRONT)
    flow = world.flows.get(flow_id)
    assert flow is not None
    assert flow.identity is not None
    return flow.identity


def test_an_address_not_typed_is_the_one_read_on_the_id_cards_front() -> None:
    assert identity_after_reading(None).address == "北京市东城区景山前街4号"


def test_a_typed_address_stays_as_typed_when_the_front_is_read() -> None:
    assert identity_after_reading("北京市朝阳区建国路1号").address == "北京市朝阳区建国路1号"
