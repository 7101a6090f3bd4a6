"""委托登记 confirmed by the owner's own face check, through the API with the real local engines: the
owner's ID card (another real person's face) read in a flow of the owner's identity, the owner's live
face matched with it, and the delegation confirmed by it; the registration then submits."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.core import deps
from chalicelib.local.synthetic import make_resident_id
from chalicelib.verification.domain.documents import DocumentKind
from tests.face_photos import FACES
from tests.integration.test_registration_flow import (
    PHONE,
    REG,
    accept_all,
    prove_identity,
    prove_possession,
    sms_code,
)
from tests.integration.test_registration_flow import vins as vins  # the demo inventory fixture
from tests.integration.test_verification_api import burst, call, send_burst, start_sideways, upload
from tests.synthetic_documents import authorization_letter, id_back, id_front, id_photo, require_cjk_font

pytestmark = pytest.mark.skipif(not FACES.is_dir(), reason=f"face photos not found at {FACES}")

TRUSTEE = "owner-trustee"
OWNER_PHONE = "13700001111"
#: The owner is another person than the trustee of the whole-flow tests (a face is one identity's):
#: the card's portrait from one photo, the live owner from another (it turns both ways).
OWNER_CARD = "biden_1.jpg"
OWNER_LIVE = "biden_2.jpg"


@pytest.fixture
def me(token: Callable[..., str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token('owner', subject=TRUSTEE)}", "Content-Type": "application/json"}


def test_the_owner_confirms_the_delegation_with_their_own_face(
    api: Any, me: dict[str, str], identity_authority: Any, vins: list[str]
) -> None:
    from chalicelib.local.sandbox_authority import Citizen

    require_cjk_font()
    vin = vins[3]
    owner_id = make_resident_id(random.Random(21))
    from chalicelib.adapters.faces.local import LocalFaceEngine

    portrait = id_photo(LocalFaceEngine(), FACES / OWNER_CARD)
    identity_authority.register(
        Citizen(name="赵六", id_number=owner_id, portrait=portrait, phone=OWNER_PHONE)
    )
    # Given a delegation recorded with the owner's card and a letter naming the owner, the trustee, the car
    status, reg = call(api, "post", REG, me, {"vin": vin, "delegated": True})
    assert status == 201, reg
    reg_id = reg["registration_id"]
    call(api, "post", f"{REG}/{reg_id}/confirm-vehicle", me, {})
    code = sms_code(api, PHONE, "owner_phone", me)
    status, reg = call(api, "post", f"{REG}/{reg_id}/phone", me, {"phone": PHONE, "code": code})
    assert status == 200, reg
    reg = prove_possession(api, me, reg_id, vin)
    flow_id = reg["flow_id"]
    owner_card = id_front(name="赵六", id_number=owner_id, address="上海市", portrait=portrait, fmt="JPEG")
    letter = authorization_letter(owner_name="赵六", owner_id_number=owner_id, vin=vin, fmt="JPEG")
    assert upload(api, me, flow_id, DocumentKind.OWNER_ID_FRONT, owner_card)[0] == 201
    assert upload(api, me, flow_id, DocumentKind.OWNER_ID_BACK, id_back(fmt="JPEG"))[0] == 201
    assert upload(api, me, flow_id, DocumentKind.AUTHORIZATION_LETTER, letter)[0] == 201
    owner = {"id_type": "resident_id", "id_number": owner_id, "name": "赵六", "address": "上海市"}
    status, reg = call(
        api, "post", f"{REG}/{reg_id}/delegation", me, {"owner": owner, "owner_phone": OWNER_PHONE}
    )
    assert status == 200, reg
    assert reg["step"] == "delegation", reg
    # When the owner's own check is opened: a flow of the owner's identity
    status, reg = call(api, "post", f"{REG}/{reg_id}/delegation/owner-check", me)
    assert status == 200, reg
    owner_flow = reg["delegation"]["owner_flow_id"]
    assert owner_flow
    status, flow = call(api, "get", f"/v1/flows/{owner_flow}", me)
    assert (status, flow["purpose"]) == (200, "delegation_owner")
    # And a face check that has not passed does not confirm
    status, err = call(api, "post", f"{REG}/{reg_id}/delegation/confirm", me, {"method": "face"})
    assert (status, err["code"]) == (409, "delegation.owner_face_missing"), err
    # When the owner's card is read there and the owner turns their head before the trustee's phone
    status, doc = upload(api, me, owner_flow, DocumentKind.ID_FRONT, owner_card)
    assert status == 201, doc
    status, reading = call(api, "post", f"/v1/flows/{owner_flow}/ocr/id_front", me)
    assert status == 200, reading
    session = start_sideways(api, me, owner_flow)
    frames = burst(session["challenge"]["direction"], name=OWNER_LIVE)
    status, outcome = send_burst(api, me, owner_flow, session, frames)
    assert status == 200, outcome
    assert outcome["passed"] is True, outcome
    # Then the delegation is confirmed by the owner's face, and the trustee goes on
    status, reg = call(api, "post", f"{REG}/{reg_id}/delegation/confirm", me, {"method": "face"})
    assert (status, reg["step"]) == (200, "identity"), reg
    assert (reg["delegation"]["confirmed"], reg["delegation"]["confirmed_by"]) == (True, "face")
    prove_identity(api, me, flow_id)
    status, reg = accept_all(api, me, reg_id)
    assert (status, reg["step"]) == (200, "submit"), reg
    status, reg = call(api, "post", f"{REG}/{reg_id}/submit", me)
    assert (status, reg["step"]) == (200, "pending"), reg
    card = deps.inventory_repo().cards_of_vehicle(vin)[0]
    assert card.holder_id is not None
    holder = deps.party_repo().get(card.holder_id)
    assert holder is not None
    assert (holder.id_number, holder.name) == (owner_id, "赵六")
