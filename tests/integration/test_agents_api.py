"""Agents of an enterprise (经办人, seed 001) through the API: a natural person applies by company name and
USCC, the legal-person account approves, rejects or revokes, the agent acts only for that enterprise and
only until revoked, and every action is recorded under the name of whoever took it.

Accounts sign up and sign in through the accounts API (codes read from the local SMS drop); their
real-name authentication is recorded through the accounts service (its own walk through the
verification flow is tested by the real-name tests).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.core import deps

USCC_A = "91310000MA1FL0000N"
NAME_A = "上海甲运输有限公司（车队）"
USCC_B = "91110108MA0000000A"
NAME_B = "北京乙物流有限公司"
PASSWORD = "Fleet#2024a"

Api = Any


def body(resp: Any) -> Any:
    return json.loads(resp.body)


def post(api: Api, path: str, doc: Any, token: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    resp = api.http.post(path, body=json.dumps(doc), headers=headers)
    return resp.status_code, body(resp)


def get(api: Api, path: str, token: str) -> tuple[int, Any]:
    resp = api.http.get(path, headers={"Authorization": f"Bearer {token}"})
    return resp.status_code, body(resp)


def last_code() -> str:
    """The code of the newest SMS in the local SMS drop."""
    found = re.search(r"验证码 (\d{6})", deps.sms_drop().recent(1)[0].text)
    assert found is not None
    return found.group(1)


def accepted_texts() -> list[dict[str, str]]:
    from chalicelib.consents.account import account_texts

    return [{"kind": d.kind.value, "version": d.version, "sha256": d.sha256} for d in account_texts()]


def sign_up(api: Api, login_name: str, phone: str) -> str:
    """A new (unverified) portal account through the API: its account id."""
    status, sent = post(api, "/v1/accounts/sms-codes", {"phone": phone})
    assert status == 202, sent
    status, account = post(
        api,
        "/v1/accounts",
        {
            "login_name": login_name,
            "password": PASSWORD,
            "password_confirm": PASSWORD,
            "email": f"{login_name.lower()}@example.com",
            "phone": phone,
            "code": last_code(),
            "accepted": accepted_texts(),
        },
    )
    assert status == 201, account
    return str(account["account_id"])


def sign_in(api: Api, identifier: str, password: str = PASSWORD) -> dict[str, Any]:
    """The two-step login: ``{token, refresh_token, account, ...}``."""
    status, challenge = post(api, "/v1/accounts/login", {"identifier": identifier, "password": password})
    assert status == 202, challenge
    status, signed = post(
        api, "/v1/accounts/login/verify", {"challenge_id": challenge["challenge_id"], "code": last_code()}
    )
    assert status == 200, signed
    return dict(signed)


def refresh(api: Api, signed: dict[str, Any]) -> tuple[int, Any]:
    status, doc = post(api, "/v1/accounts/refresh", {"refresh_token": signed["refresh_token"]})
    if status == 200:
        signed.update(doc)
    return status, doc


def claims(token: str) -> dict[str, Any]:
    import jwt

    return dict(jwt.decode(token, options={"verify_signature": False}))


def make_natural(account_id: str, name_masked: str = "李*") -> None:
    from chalicelib.accounts.domain import RealNameKind, RealNameRecord

    deps.accounts().complete_real_name(
        account_id,
        RealNameRecord(
            kind=RealNameKind.NATURAL,
            flow_id="f" + account_id[-12:],
            verified_at=datetime.now(UTC),
            person_hash=deps.keyed_hasher().digest("person:" + account_id),
            display_name_masked=name_masked,
        ),
    )


def make_legal(account_id: str, uscc: str, company_name: str) -> None:
    from chalicelib.accounts.domain import RealNameKind, RealNameRecord
    from chalicelib.enterprise.domain import EnterpriseType, LegalPersonType

    person_hash = deps.keyed_hasher().digest("person:" + account_id)
    deps.enterprises().claim(
        uscc,
        company_name,
        account_id,
        enterprise_type=EnterpriseType.ENTERPRISE,
        legal_person_type=LegalPersonType.LEGAL_REPRESENTATIVE,
        representative_name_masked="王*",
        representative_person_hash=person_hash,
        address="上海市浦东新区示例路1号",
    )
    deps.accounts().complete_real_name(
        account_id,
        RealNameRecord(
            kind=RealNameKind.LEGAL,
            flow_id="f" + account_id[-12:],
            verified_at=datetime.now(UTC),
            person_hash=person_hash,
            display_name_masked="王*",
            uscc=uscc,
            company_name=company_name,
        ),
    )


@pytest.fixture(autouse=True)
def quick_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sign-in right after the sign-up sends the same phone a second code: no resend wait here."""
    monkeypatch.setenv("CHEKA_SMS_RESEND_SECONDS", "0")


class Portal:
    """Two enterprises with their legal-person accounts, a natural person, an unverified account."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.legal_a_id = sign_up(api, "legalA", "13800000001")
        make_legal(self.legal_a_id, USCC_A, NAME_A)
        self.legal_b_id = sign_up(api, "legalB", "13800000002")
        make_legal(self.legal_b_id, USCC_B, NAME_B)
        self.agent_id = sign_up(api, "agentLi", "13800000003")
        make_natural(self.agent_id)
        self.other_id = sign_up(api, "agentZhao", "13800000004")
        make_natural(self.other_id, "赵*")
        self.unverified_id = sign_up(api, "newbie", "13800000005")
        self.legal_a = sign_in(api, "legalA")
        self.legal_b = sign_in(api, "legalB")
        self.agent = sign_in(api, "agentLi")
        self.other = sign_in(api, "agentZhao")
        self.unverified = sign_in(api, "newbie")

    def apply(self, who: dict[str, Any], company_name: str, uscc: str) -> tuple[int, Any]:
        return post(
            self.api,
            "/v1/enterprise/agent-applications",
            {"company_name": company_name, "uscc": uscc},
            who["token"],
        )

    def decide(
        self, who: dict[str, Any], account_id: str, decision: str, reason: str | None = None
    ) -> tuple[int, Any]:
        doc = {"reason": reason} if reason is not None else {}
        return post(self.api, f"/v1/enterprise/agents/{account_id}/{decision}", doc, who["token"])


@pytest.fixture
def portal(api: Api) -> Portal:
    return Portal(api)


def test_an_agent_applies_is_approved_acts_only_for_that_enterprise_and_every_action_is_recorded(
    portal: Portal, api: Api, token: Callable[..., str]
) -> None:
    # The name is matched after normalisation: half-width brackets and spaces, the USCC in lower case
    status, applied = portal.apply(portal.agent, " 上海甲运输有限公司 (车队) ", USCC_A.lower())
    assert status == 201, applied
    assert (applied["status"], applied["status_zh"], applied["uscc"]) == ("pending", "待审核", USCC_A)
    assert applied["company_name"] == NAME_A
    assert applied["name_masked"] == "李*"
    # A second application while one is pending
    status, again = portal.apply(portal.agent, NAME_A, USCC_A)
    assert (status, again["code"]) == (409, "agent.application_pending")
    assert again["message_zh"]
    # The legal person sees the application, the name masked, and approves it
    status, pending = get(api, "/v1/enterprise/agents?status=pending", portal.legal_a["token"])
    assert status == 200, pending
    assert [(g["account_id"], g["login_name"], g["name_masked"]) for g in pending["items"]] == [
        (portal.agent_id, "agentLi", "李*")
    ]
    status, approved = portal.decide(portal.legal_a, portal.agent_id, "approve")
    assert (status, approved["status"]) == (200, "approved"), approved
    # Until the next refresh the agent's token carries no enterprise; the refresh mints it from now
    assert "enterprise_agent" not in claims(portal.agent["token"])["roles"]
    status, _ = refresh(api, portal.agent)
    assert status == 200
    minted = claims(portal.agent["token"])
    assert "enterprise_agent" in minted["roles"]
    assert minted["ent"] == USCC_A
    assert deps.agent_grants().active_for(portal.agent_id) == USCC_A
    # The agent sees its enterprise, and who it is there
    status, mine = get(api, "/v1/enterprise", portal.agent["token"])
    assert status == 200, mine
    assert (mine["uscc"], mine["company_name"], mine["my_role"], mine["my_role_zh"]) == (
        USCC_A,
        NAME_A,
        "enterprise_agent",
        "经办人",
    )
    assert mine["representative_name"] == "王*"
    assert "address" not in mine
    # The legal person of A sees A; of B sees B
    status, a = get(api, "/v1/enterprise", portal.legal_a["token"])
    assert (status, a["uscc"], a["my_role"]) == (200, USCC_A, "enterprise_legal")
    # An agent of A presenting a token whose ent claim names B is refused, not shown B
    from chalicelib.core.auth import CLAIM_ENTERPRISE, CLAIM_SESSION, Role, issue_token
    from chalicelib.core.settings import get_settings

    forged = issue_token(
        get_settings(),
        portal.agent_id,
        [Role.ACCOUNT, Role.ENTERPRISE_AGENT],
        claims={CLAIM_ENTERPRISE: USCC_B, CLAIM_SESSION: minted["sid"]},
    )
    for path in ("/v1/enterprise", "/v1/enterprise/actions"):
        status, refused = get(api, path, forged)
        assert (status, refused["code"]) == (403, "enterprise.not_acting"), path
    # One enterprise at a time: the agent may apply to B, but B cannot approve while A's grant stands
    status, to_b = portal.apply(portal.agent, NAME_B, USCC_B)
    assert status == 201, to_b
    status, refused = portal.decide(portal.legal_b, portal.agent_id, "approve")
    assert (status, refused["code"]) == (409, "agent.acting_elsewhere")
    status, rejected = portal.decide(portal.legal_b, portal.agent_id, "reject", "不认识此人")
    assert (status, rejected["status"], rejected["reason"]) == (200, "rejected", "不认识此人")
    # The applicant sees its applications and their outcome
    status, mine_list = get(api, "/v1/enterprise/agent-applications", portal.agent["token"])
    assert status == 200
    assert {(g["uscc"], g["status"]) for g in mine_list["items"]} == {
        (USCC_A, "approved"),
        (USCC_B, "rejected"),
    }
    # Every action under the name of who took it: the legal person of A reads all of A's
    status, log_a = get(api, "/v1/enterprise/actions", portal.legal_a["token"])
    assert status == 200, log_a
    assert [(e["action"], e["actor_login_name"], e["actor_role"]) for e in log_a["items"]] == [
        ("agent.approved", "legalA", "enterprise_legal"),
        ("agent.applied", "agentLi", "applicant"),
    ]
    assert log_a["items"][0]["actor_name_masked"] == "王*"
    assert log_a["items"][0]["details"] == {"agent_account_id": portal.agent_id}
    assert log_a["items"][1]["actor_name_masked"] == "李*"
    # The agent reads its own actions in A only (its application), not the legal person's
    status, log_agent = get(api, "/v1/enterprise/actions", portal.agent["token"])
    assert status == 200
    assert [e["action"] for e in log_agent["items"]] == ["agent.applied"]
    # B's log holds B's actions only
    status, log_b = get(api, "/v1/enterprise/actions", portal.legal_b["token"])
    assert [e["action"] for e in log_b["items"]] == ["agent.rejected", "agent.applied"]
    # The OEM's auditor reads A's log; nobody else at the OEM, and no portal account, may
    status, audited = get(api, f"/v1/admin/enterprises/{USCC_A}/actions", token("auditor"))
    assert status == 200
    assert [e["action"] for e in audited["items"]] == ["agent.approved", "agent.applied"]
    status, refused = get(api, f"/v1/admin/enterprises/{USCC_A}/actions", portal.legal_a["token"])
    assert status == 403
    # Paging: one item a page, the cursor leads to the next
    status, page = get(api, f"/v1/admin/enterprises/{USCC_A}/actions?limit=1", token("auditor"))
    assert status == 200
    assert [e["action"] for e in page["items"]] == ["agent.approved"]
    status, page2 = get(
        api, f"/v1/admin/enterprises/{USCC_A}/actions?limit=1&cursor={page['next_cursor']}", token("auditor")
    )
    assert [e["action"] for e in page2["items"]] == ["agent.applied"]


def test_a_revoked_agent_is_refused_at_once_and_its_refresh_fails(portal: Portal, api: Api) -> None:
    from chalicelib.core.auth import authenticate
    from chalicelib.core.settings import get_settings
    from chalicelib.kernel.errors import DomainError

    assert portal.apply(portal.agent, NAME_A, USCC_A)[0] == 201
    assert portal.decide(portal.legal_a, portal.agent_id, "approve")[0] == 200
    assert refresh(api, portal.agent)[0] == 200
    still_valid = portal.agent["token"]
    assert get(api, "/v1/enterprise", still_valid)[0] == 200
    # What the agent does for the enterprise is recorded under its name (as the fleet routes will)
    principal = authenticate(get_settings(), f"Bearer {still_valid}")
    uscc = deps.agent_grants().acting_enterprise(principal)
    deps.enterprise_actions().record(uscc, principal, "fleet.batch_submitted", {"batch_id": "b-1"})
    status, own = get(api, "/v1/enterprise/actions", still_valid)
    assert status == 200, own
    first = own["items"][0]
    assert (first["action"], first["actor_role"], first["details"]) == (
        "fleet.batch_submitted",
        "enterprise_agent",
        {"batch_id": "b-1"},
    )
    assert first["actor_name_masked"] == "李*"
    # Revoked (no reason needed): the grant, the role and every session end
    status, revoked = portal.decide(portal.legal_a, portal.agent_id, "revoke")
    assert (status, revoked["status"]) == (200, "revoked"), revoked
    assert deps.agent_grants().active_for(portal.agent_id) is None
    # The token has not expired yet, and is refused at once
    status, refused = get(api, "/v1/enterprise", still_valid)
    assert status in (401, 403), refused
    # ... by the grant itself, whatever the session: acting_enterprise re-reads the store
    principal = authenticate(get_settings(), f"Bearer {still_valid}")
    with pytest.raises(DomainError) as caught:
        deps.agent_grants().acting_enterprise(principal)
    assert (caught.value.status, caught.value.code) == (403, "enterprise.not_acting")
    # The refresh is refused; signing in again gives an account that is no agent
    status, refused = refresh(api, portal.agent)
    assert status == 401, refused
    again = sign_in(api, "agentLi")
    assert "enterprise_agent" not in claims(again["token"])["roles"]
    assert "ent" not in claims(again["token"])
    status, refused = get(api, "/v1/enterprise", again["token"])
    assert (status, refused["code"]) == (403, "enterprise.not_acting")
    # The revocation is in the log, under the legal person's name; revoking twice is refused
    status, log_a = get(api, "/v1/enterprise/actions", portal.legal_a["token"])
    assert log_a["items"][0]["action"] == "agent.revoked"
    assert log_a["items"][0]["actor_login_name"] == "legalA"
    status, twice = portal.decide(portal.legal_a, portal.agent_id, "revoke")
    assert (status, twice["code"]) == (409, "agent.status_changed")
    # The agent may apply again (a new application, pending)
    status, reapplied = portal.apply(again, NAME_A, USCC_A)
    assert (status, reapplied["status"]) == (201, "pending")


def test_an_application_naming_no_registered_enterprise_gets_one_answer(portal: Portal) -> None:
    for company_name, uscc in (
        (NAME_A, USCC_B),  # a registered USCC with another enterprise's name
        ("上海甲运输有限公司", USCC_A),  # the name without its bracketed part
        (NAME_A, "91440300MA5F000007"),  # a well-formed USCC nobody registered
        (NAME_A, ""),  # no USCC at all
    ):
        status, refused = portal.apply(portal.agent, company_name, uscc)
        if not uscc:
            assert status == 422  # refused by the body's rules
            continue
        assert status == 404, (company_name, uscc)
        assert refused == {
            "code": "enterprise.not_found",
            "message_zh": "未找到该企业，请核对企业名称和统一社会信用代码",
            "message_en": "No enterprise with that name and USCC",
        }
    assert deps.agent_grants().applications_of(portal.agent_id) == []


def test_only_a_natural_person_applies_and_only_the_legal_person_decides(portal: Portal, api: Api) -> None:
    # An account without real-name authentication, and a legal-person account, cannot apply
    status, refused = portal.apply(portal.unverified, NAME_A, USCC_A)
    assert (status, refused["code"]) == (409, "account.real_name_required")
    status, refused = portal.apply(portal.legal_b, NAME_A, USCC_A)
    assert (status, refused["code"]) == (409, "agent.personal_account_required")
    # Two applications to A; Li is approved
    assert portal.apply(portal.agent, NAME_A, USCC_A)[0] == 201
    assert portal.apply(portal.other, NAME_A, USCC_A)[0] == 201
    assert portal.decide(portal.legal_a, portal.agent_id, "approve")[0] == 200
    assert refresh(api, portal.agent)[0] == 200
    # An approved agent may not decide on others, nor list them
    status, refused = portal.decide(portal.agent, portal.other_id, "approve")
    assert (status, refused["code"]) == (403, "enterprise.legal_only")
    status, refused = get(api, "/v1/enterprise/agents", portal.agent["token"])
    assert (status, refused["code"]) == (403, "enterprise.legal_only")
    # A natural person acting for nobody may not either
    status, refused = portal.decide(portal.other, portal.agent_id, "revoke")
    assert (status, refused["code"]) == (403, "enterprise.not_acting")
    # B's legal person cannot touch A's applications: to B there is no such application
    status, refused = portal.decide(portal.legal_b, portal.other_id, "approve")
    assert (status, refused["code"]) == (404, "agent.not_found")
    # A rejection needs a reason; bad input changes nothing
    status, refused = portal.decide(portal.legal_a, portal.other_id, "reject")
    assert (status, refused["code"], refused["field"]) == (422, "agent.reason_missing", "reason")
    status, refused = portal.decide(portal.legal_a, portal.other_id, "reject", "x" * 201)
    assert (status, refused["code"]) == (422, "agent.reason_too_long")
    status, pending = get(api, "/v1/enterprise/agents?status=pending", portal.legal_a["token"])
    assert [g["account_id"] for g in pending["items"]] == [portal.other_id]
    status, refused = get(api, "/v1/enterprise/agents?status=nonsense", portal.legal_a["token"])
    assert (status, refused["code"]) == (422, "agent.status")
    # Rejected with a reason the applicant reads; approving a rejected application is refused
    status, rejected = portal.decide(portal.legal_a, portal.other_id, "reject", "  非本公司员工 ")
    assert (status, rejected["reason"]) == (200, "非本公司员工")
    status, refused = portal.decide(portal.legal_a, portal.other_id, "approve")
    assert (status, refused["code"]) == (409, "agent.status_changed")
    status, listed = get(api, "/v1/enterprise/agent-applications", portal.other["token"])
    assert [(g["status"], g["reason"]) for g in listed["items"]] == [("rejected", "非本公司员工")]
    # ... and may apply again
    assert portal.apply(portal.other, NAME_A, USCC_A)[0] == 201
    # Every agent listed for A, newest application first
    status, everyone = get(api, "/v1/enterprise/agents", portal.legal_a["token"])
    assert {(g["login_name"], g["status"]) for g in everyone["items"]} == {
        ("agentLi", "approved"),
        ("agentZhao", "pending"),
    }


def test_the_grant_tables_hold_no_personal_data_in_clear(portal: Portal) -> None:
    from chalicelib.adapters.dynamo.models_agents import AgentGrantModel, EnterpriseActionModel

    assert portal.apply(portal.agent, NAME_A, USCC_A)[0] == 201
    assert portal.decide(portal.legal_a, portal.agent_id, "approve")[0] == 200
    raw = json.dumps(
        [i.attribute_values for i in AgentGrantModel.scan()]
        + [i.attribute_values for i in EnterpriseActionModel.scan()],
        default=str,
        ensure_ascii=False,
    )
    for clear in ("13800000003", "13800000001", "示例路"):
        assert clear not in raw
