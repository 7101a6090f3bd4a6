"""Staff sign-in through the API: tokens of the stage's OpenID Connect issuer (served on a loopback port,
keys generated in the test) are verified, mapped to roles and revoked by logout; our own tokens with
staff roles are refused on a deployed stage; the CLI mints tokens on local stages only."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from chalicelib.adapters.dynamo.models_staff import StaffRevocationModel
from chalicelib.core import deps
from chalicelib.core.auth import Role, issue_token
from chalicelib.core.settings import get_settings
from tests.fakes.oidc_issuer import AUDIENCE, TestIssuer, rsa_key, running_issuer


@pytest.fixture
def issuer() -> Iterator[TestIssuer]:
    with running_issuer() as running:
        yield running


@pytest.fixture
def staff_api(issuer: TestIssuer, api: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The API of the test stage trusting ``issuer`` for its staff (groups named as our roles)."""
    monkeypatch.setenv("CHEKA_STAFF_OIDC_ISSUER", issuer.issuer)
    monkeypatch.setenv("CHEKA_STAFF_OIDC_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("CHEKA_STAFF_OIDC_ROLES_CLAIM", "groups")
    monkeypatch.setenv("CHEKA_STAFF_OIDC_TIMEOUT_SECONDS", "0.5")
    monkeypatch.setenv("CHEKA_STAFF_OIDC_SCOPES", '["openid", "profile", "groups"]')
    deps.reset()  # the settings are read again (the tables stay: the embedded AWS is the same)
    # Read now: the chalice test client runs each request under .chalice/config.json's dev stage
    # environment, which a first read inside a request would take.
    assert get_settings().staff_oidc_issuer == issuer.issuer
    yield api
    monkeypatch.undo()
    deps.reset()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refusal(response: Any) -> tuple[int, str]:
    return response.status_code, response.json_body["code"]


def test_the_console_reads_the_sign_in_config_from_the_issuers_discovery(
    staff_api: Any, issuer: TestIssuer
) -> None:
    found = staff_api.http.get("/v1/staff/config")
    assert found.status_code == 200, found.json_body
    assert found.json_body == {
        "issuer": issuer.issuer,
        "client_id": AUDIENCE,
        "authorization_endpoint": f"{issuer.issuer}/authorize",
        "token_endpoint": f"{issuer.issuer}/token",
        "end_session_endpoint": f"{issuer.issuer}/logout",
        "scopes": ["openid", "profile", "groups"],
    }


def test_without_a_staff_issuer_the_config_says_sign_in_is_not_configured(api: Any) -> None:
    assert refusal(api.http.get("/v1/staff/config")) == (404, "staff.sign_in_not_configured")


def test_a_reviewer_with_a_second_factor_signs_in_works_and_logs_out_for_good(
    staff_api: Any, issuer: TestIssuer
) -> None:
    token = issuer.token(sub="reviewer-7", groups=["reviewer", "everyone"], sid="sid-A")
    me = staff_api.http.get("/v1/staff/me", headers=bearer(token))
    assert me.status_code == 200, me.json_body
    assert me.json_body["subject"] == "reviewer-7"
    assert me.json_body["roles"] == ["reviewer"]
    assert me.json_body["issuer"] == issuer.issuer
    assert me.json_body["mfa"] == "amr:otp"
    assert me.json_body["from_identity_provider"] is True
    assert me.json_body["expires_at"].startswith(time.strftime("%Y-", time.gmtime()))
    queue = staff_api.http.get("/v1/review-cases", headers=bearer(token))
    assert queue.status_code == 200, queue.json_body
    # The role is the IdP's: a reviewer is not an admin.
    imports = staff_api.http.post(
        "/v1/admin/inventory/imports",
        headers={**bearer(token), "Content-Type": "application/json"},
        body=b"[]",
    )
    assert refusal(imports) == (403, "auth.forbidden")

    # Another sign-in of the same person (another IdP session) is not touched by this logout.
    other = issuer.token(sub="reviewer-7", groups=["reviewer"], sid="sid-B")
    out = staff_api.http.post("/v1/staff/logout", headers=bearer(token))
    assert out.status_code == 200, out.json_body
    assert out.json_body == {
        "signed_out": True,
        "revoked": True,
        "end_session_endpoint": f"{issuer.issuer}/logout",
    }
    assert refusal(staff_api.http.get("/v1/staff/me", headers=bearer(token))) == (401, "auth.revoked")
    assert refusal(staff_api.http.get("/v1/review-cases", headers=bearer(token))) == (401, "auth.revoked")
    # A token refreshed within the same IdP session is refused too: the session is what was revoked.
    refreshed = issuer.token(sub="reviewer-7", groups=["reviewer"], sid="sid-A")
    assert refusal(staff_api.http.get("/v1/staff/me", headers=bearer(refreshed))) == (401, "auth.revoked")
    assert staff_api.http.get("/v1/staff/me", headers=bearer(other)).status_code == 200

    item = StaffRevocationModel.get("sid:sid-A")
    assert item.subject == "reviewer-7"
    assert item.expires_epoch > item.token_expires_epoch  # kept past the token's expiry, then TTL


def test_bad_staff_tokens_are_refused_with_their_reason(staff_api: Any, issuer: TestIssuer) -> None:
    now = int(time.time())
    cases = {
        "no second factor": (issuer.token(amr=["pwd"]), (401, "auth.mfa_required")),
        "expired": (issuer.token(iat=now - 3600, exp=now - 600), (401, "auth.expired")),
        "another audience": (issuer.token(aud="someone-else"), (401, "auth.audience")),
        "forged signature": (issuer.token(key=rsa_key()), (401, "auth.signature")),
        "unknown kid": (issuer.token(kid="not-published"), (401, "auth.signature")),
        "alg none": (issuer.unsigned_token(), (401, "auth.invalid")),
        "HS256 keyed with the public key": (issuer.hmac_with_public_key(), (401, "auth.invalid")),
        # Another issuer's token is not the staff issuer's: it is read as one of ours, and is not.
        "another issuer": (issuer.token(iss="https://idp.elsewhere.example"), (401, "auth.invalid")),
        "no staff group": (issuer.token(groups=["everyone"]), (403, "auth.no_staff_role")),
    }
    for case, (token, expected) in cases.items():
        response = staff_api.http.get("/v1/staff/me", headers=bearer(token))
        assert refusal(response) == expected, case
        assert response.json_body["message_zh"], case
    assert StaffRevocationModel.count() == 0


def test_the_idp_down_answers_503_with_a_retry_after_not_a_hang(staff_api: Any, issuer: TestIssuer) -> None:
    token = issuer.token()
    issuer.down()
    started = time.perf_counter()
    response = staff_api.http.get("/v1/staff/me", headers=bearer(token))
    assert refusal(response) == (503, "auth.idp_unavailable")
    assert int(response.headers["Retry-After"]) > 0
    assert time.perf_counter() - started < 2
    assert refusal(staff_api.http.get("/v1/staff/config")) == (503, "auth.idp_unavailable")


def test_local_stage_tokens_of_ours_still_reach_staff_routes(staff_api: Any, auth: Any) -> None:
    me = staff_api.http.get("/v1/staff/me", headers=auth("admin", "auditor"))
    assert me.status_code == 200, me.json_body
    assert me.json_body["roles"] == ["admin", "auditor"]
    assert me.json_body["from_identity_provider"] is False
    out = staff_api.http.post("/v1/staff/logout", headers=auth("admin"))
    assert out.json_body == {"signed_out": True, "revoked": False, "end_session_endpoint": None}
    assert refusal(staff_api.http.get("/v1/staff/me", headers=auth("owner"))) == (403, "auth.forbidden")


@pytest.fixture
def deployed_stage(api: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The API read as the prod stage (its own signing key given, so no Secrets Manager is needed)."""
    monkeypatch.setenv("CHEKA_STAGE", "prod")
    monkeypatch.setenv("CHEKA_TOKEN_SECRET", "integration-test-deployed-key")
    monkeypatch.setenv("CHEKA_STAFF_OIDC_ISSUER", "https://sso.oem.example.com/realms/cheka-prod")
    deps.reset()
    assert get_settings().stage == "prod"  # read now, not inside a request (see ``staff_api``)
    yield api
    monkeypatch.undo()
    deps.reset()


def test_a_cli_minted_staff_token_is_refused_on_a_deployed_stage(deployed_stage: Any) -> None:
    settings = get_settings()
    assert settings.stage == "prod"
    for role in (Role.REVIEWER, Role.ADMIN, Role.AUDITOR, Role.OPERATIONS):
        minted = issue_token(settings, "ops-by-cli", [role])
        response = deployed_stage.http.get("/v1/staff/me", headers=bearer(minted))
        assert refusal(response) == (401, "auth.staff_token_not_from_idp"), role
        assert response.json_body["message_zh"] == "员工请通过统一身份认证登录"
    review = deployed_stage.http.get(
        "/v1/review-cases", headers=bearer(issue_token(settings, "x", [Role.REVIEWER]))
    )
    assert refusal(review) == (401, "auth.staff_token_not_from_idp")


def test_the_cli_mints_tokens_on_local_stages_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.cli.main import main

    local = CliRunner().invoke(main, ["token", "issue", "--subject", "dev", "--role", "reviewer"])
    assert local.exit_code == 0, local.output
    assert local.output.count(".") == 2
    monkeypatch.setenv("CHEKA_STAGE", "prod")
    monkeypatch.setenv("CHEKA_TOKEN_SECRET", "integration-test-deployed-key")
    deps.reset()
    try:
        refused = CliRunner().invoke(main, ["token", "issue", "--subject", "ops", "--role", "admin"])
    finally:
        monkeypatch.undo()
        deps.reset()
    assert refused.exit_code == 2
    assert "local stages" in refused.output
    assert "eyJ" not in refused.output
