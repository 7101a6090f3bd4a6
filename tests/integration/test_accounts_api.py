"""Enterprise-portal accounts through the API on the embedded AWS: sign-up, the two-step login by login
name, USCC or ID number, lockout with back-off, sessions (refresh from the current roles, sign out
everywhere), password change and reset. The clock of the accounts, their SMS codes and sessions is
controlled: locks and resend intervals pass without sleeping. Codes are read from the local SMS drop.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import pytest

from chalicelib.accounts.domain import AccountStatus, RealNameKind, RealNameRecord
from chalicelib.accounts.passwords import Argon2Parameters, Argon2Passwords
from chalicelib.accounts.service import Accounts
from chalicelib.adapters.dynamo.accounts import DynamoAccountStore, DynamoChallengeStore, DynamoGuardStore
from chalicelib.adapters.dynamo.models_accounts import AccountGuardModel, AccountModel, AccountNameModel
from chalicelib.adapters.dynamo.sessions import DynamoSessionStore
from chalicelib.adapters.sms.dynamo import DynamoSmsCodeStore
from chalicelib.core import deps
from chalicelib.core.auth import authenticate
from chalicelib.core.settings import get_settings
from chalicelib.kernel.personal import IdType, id_lookup_value
from chalicelib.sessions.service import Sessions
from chalicelib.sms.codes import SmsCodeService
from tests.integration.test_registration_flow import sms_code
from tests.integration.test_verification_api import call

JSON = {"Content-Type": "application/json"}
PHONE = "13812345678"
PASSWORD = "Secure#2026"
USCC = "91110000100000000X"
ID_NUMBER = "11010519491231002X"
T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def _getter(value: Any) -> Callable[[], Any]:
    @lru_cache(maxsize=1)
    def get() -> Any:
        return value

    return get


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def portal(api: Any, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The app with the accounts, their SMS codes and sessions on the test's clock (argon2id cheap)."""
    deps._bind_tables()
    codes = SmsCodeService(DynamoSmsCodeStore(), deps.sms_sender(), deps.keyed_hasher(), clock=clock)
    sessions = Sessions(DynamoSessionStore(), deps.keyed_hasher(), clock=clock)
    accounts = Accounts(
        DynamoAccountStore(deps.field_cipher()),
        DynamoGuardStore(),
        DynamoChallengeStore(),
        Argon2Passwords(Argon2Parameters(time_cost=1, memory_cost_kib=8192)),
        codes,
        sessions,
        DynamoSessionStore(),
        deps.keyed_hasher(),
        clock=clock,
        agent_of=lambda account_id: None,
        legal_account_of=lambda uscc: e.legal_account_id if (e := deps.enterprises().get(uscc)) else None,
    )
    monkeypatch.setattr(deps, "accounts", _getter(accounts))
    monkeypatch.setattr(deps, "sessions", _getter(sessions))
    monkeypatch.setattr(deps, "sms_code_service", _getter(codes))
    return api


def last_code() -> str:
    found = re.search(r"验证码 (\d{6})", deps.sms_drop().recent(1)[0].text)
    assert found is not None
    return found.group(1)


def texts(api: Any) -> list[dict[str, Any]]:
    """用户协议 and 隐私政策 as served, accepted."""
    status, body = call(api, "get", "/v1/account-texts", {})
    assert status == 200, body
    return [{"kind": t["kind"], "version": t["version"], "sha256": t["sha256"]} for t in body["documents"]]


def sign_up(api: Any, clock: Clock, login_name: str = "fleet_admin", **changes: Any) -> tuple[int, Any]:
    status, sent = call(api, "post", "/v1/accounts/sms-codes", JSON, {"phone": changes.get("phone", PHONE)})
    assert status == 202, sent
    form: dict[str, Any] = {
        "login_name": login_name,
        "password": PASSWORD,
        "password_confirm": PASSWORD,
        "email": "ops@example.com",
        "phone": PHONE,
        "code": last_code(),
        "accepted": texts(api),
    }
    form.update(changes)
    clock.advance(seconds=61)
    return call(api, "post", "/v1/accounts", JSON, form)


def log_in(
    api: Any, clock: Clock, identifier: str = "fleet_admin", password: str = PASSWORD
) -> dict[str, Any]:
    status, challenge = call(
        api, "post", "/v1/accounts/login", JSON, {"identifier": identifier, "password": password}
    )
    assert status == 202, challenge
    clock.advance(seconds=61)
    status, signed = call(
        api,
        "post",
        "/v1/accounts/login/verify",
        JSON,
        {"challenge_id": challenge["challenge_id"], "code": last_code()},
    )
    assert status == 200, signed
    return dict(signed)


def bearer(signed: dict[str, Any]) -> dict[str, str]:
    return {**JSON, "Authorization": f"Bearer {signed['token']}"}


def test_sign_up_then_login_with_password_and_code_answers_tokens_and_the_account_kept_sealed(
    portal: Any, clock: Clock, log_output: Any
) -> None:
    status, account = sign_up(portal, clock)
    assert status == 201, account
    assert account["kind"] == "unverified"
    assert account["phone_masked"] == "138****5678"
    assert account["email_masked"] == "o***@example.com"
    assert account["roles"] == ["account"]

    status, challenge = call(
        portal, "post", "/v1/accounts/login", JSON, {"identifier": "Fleet_Admin", "password": PASSWORD}
    )
    assert status == 202, challenge
    assert challenge["phone_masked"] == "138****5678"
    assert "用于账号登录" in deps.sms_drop().recent(1)[0].text
    status, signed = call(
        portal,
        "post",
        "/v1/accounts/login/verify",
        JSON,
        {"challenge_id": challenge["challenge_id"], "code": last_code()},
    )
    assert status == 200, signed
    assert signed["expires_in"] == 900
    principal = authenticate(get_settings(), f"Bearer {signed['token']}")
    assert principal.subject == account["account_id"]
    assert {r.value for r in principal.roles} == {"account"}
    assert principal.session_id is not None
    status, me = call(portal, "get", "/v1/accounts/me", bearer(signed))
    assert status == 200, me
    assert me["login_name"] == "fleet_admin"
    assert me["real_name_done"] is False

    # At rest: the phone and e-mail sealed, the password an argon2id hash, the name claimed in lower case.
    item = AccountModel.get(account["account_id"])
    raw = json.dumps({k: str(v) for k, v in item.attribute_values.items()})
    assert PHONE not in raw
    assert "ops@example.com" not in raw
    assert PASSWORD not in raw
    assert item.password_hash.startswith("$argon2id$")
    assert AccountNameModel.get("fleet_admin").account_id == account["account_id"]
    # Logs: ids and codes, never the login name, the phone or the password.
    logged = log_output.getvalue()
    assert account["account_id"] in logged
    assert "fleet_admin" not in logged
    assert PHONE not in logged
    assert PASSWORD not in logged


def test_a_bad_sign_up_answers_each_field_error_in_chinese_and_english_and_writes_nothing(
    portal: Any, clock: Clock
) -> None:
    status, body = sign_up(
        portal,
        clock,
        login_name="9lives",
        password="weak pass",
        password_confirm="weak pass!",
        email="nope",
        accepted=[],
    )
    assert status == 422, body
    errors = {(e["field"], e["code"]) for e in body["details"]["errors"]}
    assert errors >= {
        ("login_name", "account.login_name_invalid"),
        ("password", "account.password_spaces"),
        ("password", "account.password_weak"),
        ("password_confirm", "account.password_mismatch"),
        ("email", "account.email_invalid"),
        ("accepted", "consent.missing"),
    }
    assert all(e["message_zh"] and e["message_en"] for e in body["details"]["errors"])
    assert list(AccountModel.scan()) == []
    assert list(AccountNameModel.scan()) == []


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("Ab1!xyz", "account.password_length"),
        ("Abcdefghijk1234!x", "account.password_length"),
        ("abcdefghijk", "account.password_weak"),
        ("abcdefgh123", "account.password_weak"),
        ("Secure 2026!", "account.password_spaces"),
        ("fleet_admin#1", "account.password_contains_login_name"),
    ],
)
def test_each_weak_password_is_refused_at_sign_up(
    portal: Any, clock: Clock, password: str, code: str
) -> None:
    status, body = sign_up(portal, clock, password=password, password_confirm=password)
    assert status == 422, body
    assert code in {e["code"] for e in body["details"]["errors"]}
    assert list(AccountModel.scan()) == []


def test_a_taken_login_name_is_refused_whatever_its_case_and_the_name_never_changes(
    portal: Any, clock: Clock
) -> None:
    status, first = sign_up(portal, clock, "Fleet_Admin")
    assert status == 201, first
    status, body = sign_up(portal, clock, "FLEET_admin")
    assert status == 409, body
    assert body["code"] == "account.login_name_taken"
    assert len(list(AccountModel.scan())) == 1

    signed = log_in(portal, clock, "fleet_admin")
    status, body = call(portal, "patch", "/v1/accounts/me", bearer(signed), {"login_name": "renamed"})
    assert status == 422, body
    assert body["code"] == "account.login_name_immutable"
    status, me = call(portal, "patch", "/v1/accounts/me", bearer(signed), {"email": "new.box@example.org"})
    assert status == 200, me
    assert me["login_name"] == "Fleet_Admin"
    assert me["email_masked"] == "n***@example.org"


def test_an_unknown_login_name_and_a_wrong_password_get_the_same_status_and_body(
    portal: Any, clock: Clock
) -> None:
    assert sign_up(portal, clock)[0] == 201
    answers = [
        call(portal, "post", "/v1/accounts/login", JSON, {"identifier": identifier, "password": password})
        for identifier, password in [("fleet_admin", "Wrong#2026x"), ("nobody_here", PASSWORD)]
    ]
    assert answers[0] == answers[1]
    assert answers[0][0] == 401
    assert answers[0][1]["code"] == "account.credentials_invalid"


def test_five_failures_lock_the_account_with_retry_after_doubling_then_the_lock_lifts(
    portal: Any, clock: Clock
) -> None:
    assert sign_up(portal, clock)[0] == 201
    wrong = {"identifier": "fleet_admin", "password": "Wrong#2026x"}
    for _ in range(4):
        assert call(portal, "post", "/v1/accounts/login", JSON, wrong)[0] == 401
    response = portal.http.post("/v1/accounts/login", headers=JSON, body=json.dumps(wrong))
    assert response.status_code == 423
    body = json.loads(response.body)
    assert body["code"] == "account.locked"
    assert body["details"]["retry_after_seconds"] == 900
    assert response.headers["Retry-After"] == "900"
    assert "15分钟" in body["message_zh"]
    # The right password is refused while locked.
    status, body = call(
        portal, "post", "/v1/accounts/login", JSON, {"identifier": "fleet_admin", "password": PASSWORD}
    )
    assert status == 423
    clock.advance(minutes=15)
    for _ in range(4):
        assert call(portal, "post", "/v1/accounts/login", JSON, wrong)[0] == 401
    status, body = call(portal, "post", "/v1/accounts/login", JSON, wrong)
    assert status == 423
    assert body["details"]["retry_after_seconds"] == 1800
    clock.advance(minutes=30)
    log_in(portal, clock)
    guards = {g.guard_key: g for g in AccountGuardModel.scan()}
    account_guard = next(g for k, g in guards.items() if k.startswith("acct#"))
    assert (int(account_guard.failures), int(account_guard.locks)) == (0, 0)


def test_wrong_sms_codes_at_the_second_step_count_toward_the_lock(portal: Any, clock: Clock) -> None:
    assert sign_up(portal, clock)[0] == 201
    statuses = []
    for _ in range(5):
        clock.advance(seconds=61)
        status, challenge = call(
            portal, "post", "/v1/accounts/login", JSON, {"identifier": "fleet_admin", "password": PASSWORD}
        )
        assert status == 202, challenge
        status, body = call(
            portal,
            "post",
            "/v1/accounts/login/verify",
            JSON,
            {"challenge_id": challenge["challenge_id"], "code": "000000"},
        )
        statuses.append((status, body["code"]))
    assert statuses[:4] == [(422, "sms.code_wrong")] * 4
    assert statuses[4] == (423, "account.locked")


def test_a_refresh_mints_the_roles_the_account_holds_now_and_a_disabled_account_gets_none(
    portal: Any, clock: Clock
) -> None:
    _, account = sign_up(portal, clock)
    signed = log_in(portal, clock)
    deps.accounts().complete_real_name(
        account["account_id"],
        RealNameRecord(
            kind=RealNameKind.LEGAL,
            flow_id="f1",
            verified_at=clock(),
            person_hash="p1",
            display_name_masked="张*",
            uscc=USCC,
            company_name="示例运输有限公司",
        ),
    )
    status, refreshed = call(
        portal, "post", "/v1/accounts/refresh", JSON, {"refresh_token": signed["refresh_token"]}
    )
    assert status == 200, refreshed
    principal = authenticate(get_settings(), f"Bearer {refreshed['token']}")
    assert {r.value for r in principal.roles} == {"account", "enterprise_legal"}
    assert principal.enterprise == USCC
    assert refreshed["account"]["kind"] == "legal"
    assert refreshed["account"]["real_name"]["name_masked"] == "张*"
    # The retired refresh token (past the grace) ends the session; a disabled account cannot refresh.
    deps.accounts().set_status(account["account_id"], AccountStatus.DISABLED)
    status, body = call(
        portal, "post", "/v1/accounts/refresh", JSON, {"refresh_token": refreshed["refresh_token"]}
    )
    assert status == 401, body
    status, body = call(portal, "get", "/v1/accounts/me", bearer(refreshed))
    assert status == 401, body


def test_sessions_are_listed_without_tokens_one_can_be_ended_and_sign_out_everywhere_stops_every_token(
    portal: Any, clock: Clock
) -> None:
    assert sign_up(portal, clock)[0] == 201
    here = log_in(portal, clock)
    clock.advance(seconds=61)
    there = log_in(portal, clock)
    clock.advance(seconds=61)
    third = log_in(portal, clock)
    status, listing = call(portal, "get", "/v1/accounts/me/sessions", bearer(here))
    assert status == 200, listing
    sessions = listing["sessions"]
    assert len(sessions) == 3
    assert [s["current"] for s in sessions].count(True) == 1
    assert all(s["kind"] == "enterprise" for s in sessions)
    assert all(
        set(s) == {"session_id", "kind", "created_at", "last_used_at", "expires_at", "current"}
        for s in sessions
    )
    there_id = authenticate(get_settings(), f"Bearer {there['token']}").session_id
    status, body = call(portal, "delete", f"/v1/accounts/me/sessions/{there_id}", bearer(here))
    assert status == 200, body
    status, body = call(portal, "get", "/v1/accounts/me", bearer(there))
    assert (status, body["code"]) == (401, "account.session_revoked")
    status, body = call(
        portal, "post", "/v1/accounts/refresh", JSON, {"refresh_token": there["refresh_token"]}
    )
    assert status == 401, body

    status, ended = call(portal, "post", "/v1/accounts/me/sessions/revoke-all", bearer(here))
    assert status == 200, ended
    assert ended["ended"] == 2
    for signed in (here, third):
        status, body = call(portal, "get", "/v1/accounts/me", bearer(signed))
        assert (status, body["code"]) == (401, "account.session_revoked")
        status, body = call(
            portal, "post", "/v1/accounts/refresh", JSON, {"refresh_token": signed["refresh_token"]}
        )
        assert status == 401, body


def test_logout_ends_the_session_of_the_refresh_token(portal: Any, clock: Clock) -> None:
    assert sign_up(portal, clock)[0] == 201
    signed = log_in(portal, clock)
    status, body = call(
        portal, "post", "/v1/accounts/logout", JSON, {"refresh_token": signed["refresh_token"]}
    )
    assert (status, body) == (200, {"signed_out": True})
    status, body = call(portal, "get", "/v1/accounts/me", bearer(signed))
    assert (status, body["code"]) == (401, "account.session_revoked")


def test_a_password_change_ends_the_other_sessions_and_a_reset_by_sms_ends_them_all(
    portal: Any, clock: Clock
) -> None:
    assert sign_up(portal, clock)[0] == 201
    here = log_in(portal, clock)
    clock.advance(seconds=61)
    there = log_in(portal, clock)
    status, body = call(
        portal,
        "post",
        "/v1/accounts/me/password",
        bearer(here),
        {"current": "Wrong#2026x", "new": "Better#2027"},
    )
    assert (status, body["code"]) == (422, "account.password_wrong")
    status, body = call(
        portal, "post", "/v1/accounts/me/password", bearer(here), {"current": PASSWORD, "new": "Better 2027"}
    )
    assert status == 422, body
    status, body = call(
        portal, "post", "/v1/accounts/me/password", bearer(here), {"current": PASSWORD, "new": "Better#2027"}
    )
    assert status == 200, body
    assert body == {"changed": True, "other_sessions_ended": 1}
    assert call(portal, "get", "/v1/accounts/me", bearer(here))[0] == 200
    assert call(portal, "get", "/v1/accounts/me", bearer(there))[0] == 401

    # Forgotten: the same answer for an unknown identifier (and no code sent).
    sent_before = len(deps.sms_drop().recent(100))
    unknown = call(portal, "post", "/v1/accounts/password-reset", JSON, {"identifier": "nobody_here"})
    clock.advance(seconds=61)
    known = call(portal, "post", "/v1/accounts/password-reset", JSON, {"identifier": "fleet_admin"})
    assert unknown == known == (202, {"sent": True})
    assert len(deps.sms_drop().recent(100)) == sent_before + 1
    status, body = call(
        portal,
        "post",
        "/v1/accounts/password-reset/confirm",
        JSON,
        {"identifier": "fleet_admin", "code": last_code(), "new": "Newest#2028"},
    )
    assert (status, body) == (200, {"reset": True})
    assert call(portal, "get", "/v1/accounts/me", bearer(here))[0] == 401
    clock.advance(seconds=61)
    status, body = call(
        portal, "post", "/v1/accounts/login", JSON, {"identifier": "fleet_admin", "password": "Better#2027"}
    )
    assert (status, body["code"]) == (401, "account.credentials_invalid")
    log_in(portal, clock, password="Newest#2028")


def test_the_identifier_may_be_the_enterprises_uscc_or_the_real_name_persons_id_number(
    portal: Any, clock: Clock
) -> None:
    from chalicelib.enterprise.domain import EnterpriseType, LegalPersonType

    _, account = sign_up(portal, clock)
    person_hash = deps.keyed_hasher().digest(id_lookup_value(IdType.RESIDENT_ID, ID_NUMBER))
    deps.accounts().complete_real_name(
        account["account_id"],
        RealNameRecord(
            kind=RealNameKind.LEGAL,
            flow_id="f1",
            verified_at=clock(),
            person_hash=person_hash,
            display_name_masked="张*",
            uscc=USCC,
            company_name="示例运输有限公司",
        ),
    )
    deps.enterprises().claim(
        USCC,
        "示例运输有限公司",
        account["account_id"],
        enterprise_type=EnterpriseType.ENTERPRISE,
        legal_person_type=LegalPersonType.LEGAL_REPRESENTATIVE,
        representative_name_masked="张*",
        representative_person_hash=person_hash,
        address="北京市东城区示例路1号",
    )
    by_uscc = log_in(portal, clock, USCC)
    assert by_uscc["account"]["account_id"] == account["account_id"]
    assert authenticate(get_settings(), f"Bearer {by_uscc['token']}").enterprise == USCC
    clock.advance(seconds=61)
    by_id = log_in(portal, clock, ID_NUMBER.lower())
    assert by_id["account"]["account_id"] == account["account_id"]


def test_account_codes_are_not_sent_through_the_owners_code_route(portal: Any) -> None:
    status, body = call(
        portal, "post", "/v1/auth/sms-codes", JSON, {"phone": PHONE, "purpose": "account_signup"}
    )
    assert (status, body["code"]) == (422, "sms.purpose_not_here")


def test_an_owner_signs_out_everywhere_and_every_refresh_token_stops(portal: Any, clock: Clock) -> None:
    tokens = []
    for _ in range(2):
        code = sms_code(portal, PHONE, "login", JSON)
        status, signed = call(portal, "post", "/v1/auth/login", JSON, {"phone": PHONE, "code": code})
        assert status == 200, signed
        tokens.append(signed)
        clock.advance(seconds=61)
    status, body = call(
        portal,
        "post",
        "/v1/auth/sessions/revoke-all",
        {**JSON, "Authorization": f"Bearer {tokens[0]['token']}"},
    )
    assert (status, body) == (200, {"ended": 2})
    for signed in tokens:
        status, body = call(
            portal, "post", "/v1/auth/refresh", JSON, {"refresh_token": signed["refresh_token"]}
        )
        assert status == 401, body


def test_the_stages_own_wiring_signs_up_logs_in_and_mints_from_the_agent_grants_store(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test double: ``deps.accounts()`` as a stage builds it (argon2id of the settings, the agents'
    grants asked for the agent role); only the resend interval is lifted, to log in right after."""
    from chalicelib.sms.domain import SmsPolicy

    deps._bind_tables()
    codes = SmsCodeService(
        DynamoSmsCodeStore(),
        deps.sms_sender(),
        deps.keyed_hasher(),
        policy=SmsPolicy(resend_interval=timedelta(0)),
    )
    monkeypatch.setattr(deps, "sms_code_service", _getter(codes))
    deps.accounts.cache_clear()
    status, sent = call(api, "post", "/v1/accounts/sms-codes", JSON, {"phone": PHONE})
    assert status == 202, sent
    form = {
        "login_name": "fleet_admin",
        "password": PASSWORD,
        "password_confirm": PASSWORD,
        "email": "ops@example.com",
        "phone": PHONE,
        "code": last_code(),
        "accepted": texts(api),
    }
    status, account = call(api, "post", "/v1/accounts", JSON, form)
    assert status == 201, account
    stored = AccountModel.get(account["account_id"]).password_hash
    assert stored.startswith("$argon2id$v=19$m=65536,t=2,p=1$")
    status, challenge = call(
        api, "post", "/v1/accounts/login", JSON, {"identifier": "fleet_admin", "password": PASSWORD}
    )
    assert status == 202, challenge
    status, signed = call(
        api,
        "post",
        "/v1/accounts/login/verify",
        JSON,
        {"challenge_id": challenge["challenge_id"], "code": last_code()},
    )
    assert status == 200, signed
    assert signed["account"]["roles"] == ["account"]
    assert signed["account"]["agent_of"] is None
    status, me = call(api, "get", "/v1/accounts/me", bearer(signed))
    assert status == 200, me
