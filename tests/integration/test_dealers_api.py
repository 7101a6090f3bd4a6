"""Dealers (经销商, 第二十条) through the API: the OEM's admin creates a dealer account for a dealer code of
the inventory (the dealer sets its password by reset-by-SMS), the account sees only the vehicles sold
through its code (another dealer's answered as unknown), never a holder, and hands an owner's
registration over on the spot, once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.cards.domain.inventory import CardState
from chalicelib.core import deps
from chalicelib.kernel.personal import IdType, Party
from chalicelib.local.synthetic import inventory_rows
from tests.fakes.cards import put_card_state
from tests.integration.test_agents_api import claims, get, last_code, post, refresh, sign_in

DEALER_PHONE = "13900000011"
DEALER_PASSWORD = "Dealer#2024x"
OWNER_PHONE = "13812345678"

Api = Any


@pytest.fixture(autouse=True)
def quick_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several codes to one phone within a test: no resend wait here (tested in test_sms_codes)."""
    monkeypatch.setenv("CHEKA_SMS_RESEND_SECONDS", "0")


class Lot:
    """An inventory of two dealers: D100 sold three vehicles, D200 two."""

    def __init__(self, api: Api, token: Callable[..., str]) -> None:
        rows = list(inventory_rows(5, seed=41))
        for i, row in enumerate(rows):
            row["dealer_code"] = "D100" if i < 3 else "D200"
        admin = {"Authorization": f"Bearer {token('admin', subject='admin-1')}"}
        resp = api.http.post(
            "/v1/admin/inventory/imports",
            headers={**admin, "Content-Type": "application/json"},
            body=json.dumps(rows, ensure_ascii=False),
        )
        assert resp.status_code == 200, resp.body
        self.api = api
        self.admin = admin["Authorization"].split()[1]
        self.mine = sorted(r["vin"] for r in rows[:3])
        self.theirs = [r["vin"] for r in rows[3:]]
        self.rows = rows

    def card_of(self, vin: str) -> dict[str, str]:
        return next(r for r in self.rows if r["vin"] == vin)


def dealer_account(api: Api, admin: str, dealer_code: str, login_name: str, phone: str) -> dict[str, Any]:
    """A dealer account created by the admin, its password set by reset-by-SMS, signed in."""
    status, created = post(
        api,
        f"/v1/admin/dealers/{dealer_code}/accounts",
        {"login_name": login_name, "phone": phone, "email": f"{login_name.lower()}@dealer.example.com"},
        admin,
    )
    assert status == 201, created
    # No password yet: the dealer sets one with the code sent to the phone the admin gave
    status, _ = post(api, "/v1/accounts/password-reset", {"identifier": login_name})
    assert status == 202
    status, done = post(
        api,
        "/v1/accounts/password-reset/confirm",
        {"identifier": login_name, "code": last_code(), "new": DEALER_PASSWORD},
    )
    assert status == 200, done
    signed = sign_in(api, login_name, DEALER_PASSWORD)
    signed["account_id"] = created["account_id"]
    return signed


def dealer_headers(dealer_code: str, login_name: str = "dealerTest") -> dict[str, str]:
    """The headers of a dealer account of ``dealer_code`` signed in (made through the services: for
    the tests of other routes that look vehicles up as a dealer)."""
    from chalicelib.core.auth import issue_token
    from chalicelib.core.settings import get_settings
    from chalicelib.sessions.domain import SessionKind

    accounts = deps.accounts()
    account = accounts.create_dealer_account(login_name, DEALER_PHONE, None, dealer_code)
    session = deps.sessions().open(SessionKind.ENTERPRISE, account.account_id, accounts.roles_of(account))
    roles, minted = accounts.token_grant(account, session.session.session_id)
    return {
        "Authorization": f"Bearer {issue_token(get_settings(), account.account_id, roles, claims=minted)}"
    }


@pytest.fixture
def lot(api: Api, token: Callable[..., str]) -> Lot:
    return Lot(api, token)


def registered_holder(vin: str, iccid: str) -> Party:
    person = Party(
        id_type=IdType.RESIDENT_ID,
        id_number="11010519491231002X",
        name="张三丰",
        address="北京市朝阳区建国路 88 号",
        phone="13812341234",
    )
    deps.party_repo().put(person)
    repo = deps.inventory_repo()
    put_card_state(repo, iccid, CardState.PENDING, actor="t", holder_id=person.party_id)
    put_card_state(repo, iccid, CardState.REGISTERED, actor="t")
    return person


def test_a_dealer_account_sees_only_its_dealers_vehicles_and_never_a_holder(
    api: Api, lot: Lot, token: Callable[..., str]
) -> None:
    # The admin creates a dealer account only for a dealer code the inventory names
    status, refused = post(
        api, "/v1/admin/dealers/D999/accounts", {"login_name": "ghost1", "phone": DEALER_PHONE}, lot.admin
    )
    assert (status, refused["code"]) == (404, "dealer.not_found")
    status, refused = post(
        api,
        "/v1/admin/dealers/D100/accounts",
        {"login_name": "ghost1", "phone": DEALER_PHONE},
        token("reviewer"),
    )
    assert status == 403
    dealer = dealer_account(api, lot.admin, "D100", "dealer100", DEALER_PHONE)
    minted = claims(dealer["token"])
    assert "dealer" in minted["roles"]
    assert minted["dlr"] == "D100"
    # Its own list, by VIN, paged through the index
    status, page = get(api, "/v1/dealer/vehicles?limit=2", dealer["token"])
    assert status == 200, page
    assert [v["vin"] for v in page["items"]] == lot.mine[:2]
    status, rest = get(api, f"/v1/dealer/vehicles?limit=2&cursor={page['next_cursor']}", dealer["token"])
    assert [v["vin"] for v in rest["items"]] == lot.mine[2:]
    # One of its vehicles registered by an owner: the dealer sees the card's state, never the holder
    own, other = lot.mine[0], lot.theirs[0]
    holder = registered_holder(own, lot.card_of(own)["iccid"])
    status, shown = get(api, f"/v1/vehicles/{own}", dealer["token"])
    assert status == 200, shown
    assert shown["cards"][0]["state"] == "registered"
    assert shown["cards"][0]["holder"] is None
    status, listed = get(api, "/v1/dealer/vehicles", dealer["token"])
    text = json.dumps([shown, listed], ensure_ascii=False)
    for personal in (
        holder.name,
        holder.id_number,
        holder.phone or "",
        "张",
        "1101",
        lot.card_of(own)["msisdn"],
    ):
        assert personal
        assert personal not in text
    status, card = get(api, f"/v1/cards/{lot.card_of(own)['iccid']}", dealer["token"])
    assert (status, card["holder"]) == (200, None)
    # Another dealer's vehicle and cards are answered exactly as unknown ones
    unknown_vin = "LFV2A21KXF3043455"
    _, not_found = get(api, f"/v1/vehicles/{unknown_vin}", dealer["token"])
    status, refused = get(api, f"/v1/vehicles/{other}", dealer["token"])
    assert status == 404
    assert refused == not_found
    assert refused["code"] == "vehicle.not_found"
    other_card = lot.card_of(other)
    _, card_unknown = get(api, "/v1/cards/89860112345678901245", dealer["token"])
    for path in (
        f"/v1/cards/{other_card['iccid']}",
        f"/v1/cards/{other_card['iccid']}/history",
        f"/v1/cards?msisdn={other_card['msisdn']}",
    ):
        status, refused = get(api, path, dealer["token"])
        assert (status, refused) == (404, card_unknown), path
    # The OEM still sees every vehicle
    assert get(api, f"/v1/vehicles/{other}", token("admin"))[0] == 200
    # A token whose dlr claim names another dealer sees nothing: the code is re-read from the account
    from chalicelib.core.auth import CLAIM_DEALER, CLAIM_SESSION, Role, issue_token
    from chalicelib.core.settings import get_settings

    forged = issue_token(
        get_settings(),
        dealer["account_id"],
        [Role.ACCOUNT, Role.DEALER],
        claims={CLAIM_DEALER: "D200", CLAIM_SESSION: minted["sid"]},
    )
    assert get(api, f"/v1/vehicles/{other}", forged)[0] == 404
    assert get(api, f"/v1/vehicles/{own}", forged)[0] == 404
    status, refused = get(api, "/v1/dealer/vehicles", forged)
    assert (status, refused["code"]) == (403, "dealer.account_required")
    # A dealer role with no dealer account behind it sees nothing either
    assert get(api, f"/v1/vehicles/{own}", token("dealer", subject="dealer-1"))[0] == 404
    # The admin lists and disables the account: its refresh fails, its token stops working
    status, accounts = get(api, "/v1/admin/dealers/D100/accounts", lot.admin)
    assert [(a["login_name"], a["status"], a["phone_masked"]) for a in accounts["items"]] == [
        ("dealer100", "active", "139****0011")
    ]
    status, disabled = post(
        api, f"/v1/admin/dealers/D100/accounts/{dealer['account_id']}/disable", {}, lot.admin
    )
    assert (status, disabled["status"]) == (200, "disabled"), disabled
    status, refused = post(
        api, f"/v1/admin/dealers/D200/accounts/{dealer['account_id']}/disable", {}, lot.admin
    )
    assert (status, refused["code"]) == (404, "dealer.account_not_found")
    assert refresh(api, dealer)[0] == 401
    assert get(api, f"/v1/vehicles/{own}", dealer["token"])[0] == 404
    assert get(api, "/v1/dealer/vehicles", dealer["token"])[0] == 401


def test_a_dealer_hands_a_registration_to_its_owner_once_and_its_answers_hold_nothing_of_the_owner(
    api: Api, lot: Lot, token: Callable[..., str]
) -> None:
    from chalicelib.adapters.dynamo.models_dealers import DealerHandoffModel

    dealer = dealer_account(api, lot.admin, "D100", "dealer100", DEALER_PHONE)
    own, other = lot.mine[1], lot.theirs[0]
    # Not for another dealer's vehicle (the same answer as an unknown VIN)
    status, refused = post(api, "/v1/dealer/assisted-registrations", {"vin": other}, dealer["token"])
    assert (status, refused["code"]) == (404, "vehicle.not_found")
    status, refused = post(api, "/v1/dealer/assisted-registrations", {"vin": "NOTAVIN"}, dealer["token"])
    assert status == 422
    # Nor by anyone but a dealer
    status, _ = post(api, "/v1/dealer/assisted-registrations", {"vin": own}, token("owner", subject="p1"))
    assert status == 403
    status, handoff = post(api, "/v1/dealer/assisted-registrations", {"vin": own}, dealer["token"])
    assert status == 201, handoff
    assert handoff["handoff_url"] == "/h5/#handoff=" + handoff["code"]
    assert handoff["vin"] == own
    expires = datetime.fromisoformat(handoff["expires_at"])
    assert timedelta(minutes=9) < expires - datetime.now(UTC) <= timedelta(minutes=10)
    # The code is kept only as its keyed hash
    raw = json.dumps([i.attribute_values for i in DealerHandoffModel.scan()], default=str)
    assert handoff["code"] not in raw
    # The owner, signed in on the tablet with their own phone, opens the registration on that VIN
    owner = token("owner", subject="owner-on-tablet")
    status, reg = post(api, "/v1/dealer/handoffs/redeem", {"code": handoff["code"]}, owner)
    assert status == 201, reg
    assert reg["vehicle"]["vin_masked"].endswith(own[-6:])
    assert reg["step"] == "confirm_vehicle"
    from chalicelib.adapters.dynamo.registrations import DynamoRegistrationRepository

    stored = DynamoRegistrationRepository(deps.field_cipher()).get(reg["registration_id"])
    assert stored is not None
    assert stored.assisted_by == "D100"
    assert stored.owner == "owner-on-tablet"
    # On their own phone later, typing the VIN, the owner resumes that registration (the dealer kept on it)
    status, resumed = post(api, "/v1/me/registrations", {"vin": own}, owner)
    assert (status, resumed["registration_id"]) == (200, reg["registration_id"]), resumed
    # Single use: again, or by another owner, it is refused
    for who in (owner, token("owner", subject="someone-else")):
        status, refused = post(api, "/v1/dealer/handoffs/redeem", {"code": handoff["code"]}, who)
        assert (status, refused["code"]) == (404, "handoff.invalid")
    # A made-up code, and an expired one, get the same answer
    status, refused = post(api, "/v1/dealer/handoffs/redeem", {"code": "x" * 32}, owner)
    assert (status, refused["code"]) == (404, "handoff.invalid")
    status, late = post(api, "/v1/dealer/assisted-registrations", {"vin": own}, dealer["token"])
    for item in DealerHandoffModel.scan():
        if item.used_at is None:
            item.update(actions=[DealerHandoffModel.expires_at.set(datetime.now(UTC) - timedelta(seconds=1))])
    status, refused = post(api, "/v1/dealer/handoffs/redeem", {"code": late["code"]}, owner)
    assert (status, refused["code"]) == (404, "handoff.invalid")
    # The owner proves their phone: the dealer is recorded in the flow's evidence too
    status, sent = post(api, "/v1/auth/sms-codes", {"phone": OWNER_PHONE, "purpose": "owner_phone"}, owner)
    assert status == 202, sent
    code = re.search(r"验证码 (\d{6})", deps.sms_drop().recent(1)[0].text)
    assert code is not None
    rid = reg["registration_id"]
    status, confirmed = post(api, f"/v1/me/registrations/{rid}/confirm-vehicle", {}, owner)
    assert status == 200, confirmed
    status, phoned = post(
        api, f"/v1/me/registrations/{rid}/phone", {"phone": OWNER_PHONE, "code": code.group(1)}, owner
    )
    assert status == 200, phoned
    status, evidence = get(api, f"/v1/flows/{phoned['flow_id']}/evidence", token("auditor"))
    assert status == 200, evidence
    checked = [e for e in evidence["entries"] if e["kind"] == "sms_checked"]
    assert checked
    assert "D100" in json.dumps(checked[0], ensure_ascii=False)
    # Nothing the dealer's API answered, before or after, names the owner or their phone
    status, listed = get(api, "/v1/dealer/vehicles", dealer["token"])
    status_v, vehicle = get(api, f"/v1/vehicles/{own}", dealer["token"])
    assert (status, status_v) == (200, 200)
    text = json.dumps([handoff, late, listed, vehicle], ensure_ascii=False)
    assert OWNER_PHONE not in text
    assert OWNER_PHONE[-4:] not in text
    assert "owner-on-tablet" not in text
