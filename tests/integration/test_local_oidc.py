"""The local staff identity provider (chalicelib/local/oidc_provider.py) in-process on a free port, driven
over HTTP the way a browser and the console drive it: discovery, the code flow with PKCE, the password and
TOTP pages, the tokens, refresh, revocation, logout, CORS."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from chalicelib.local.oidc_provider import LocalOidcProvider, RunningProvider, console_client, serve
from chalicelib.local.serving import free_ports
from chalicelib.local.staff_users import DemoStaff, StaffDirectory, invent_demo_staff, totp_now

API = "http://127.0.0.1:9"  # the console's origin (never called: redirects are read, not followed)
CLIENT_ID = "cheka-console"
#: The API names the console's client id as the audience of staff tokens (CHEKA_STAFF_OIDC_AUDIENCE).
AUDIENCE = CLIENT_ID
REDIRECT = f"{API}/console"


class Clock:
    """The directory's clock: each sign-in moves it to a new 30 s step (a TOTP code is good once)."""

    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now

    def next_step(self) -> None:
        self.now += 30


@dataclass
class Idp:
    running: RunningProvider
    staff: dict[str, DemoStaff]
    clock: Clock

    @property
    def issuer(self) -> str:
        return self.running.issuer

    def code(self, username: str) -> str:
        return totp_now(self.staff[username].totp_secret, at=self.clock())


@pytest.fixture
def idp() -> Iterator[Idp]:
    port = free_ports(1)[0]
    clock = Clock()
    staff = invent_demo_staff()
    provider = LocalOidcProvider(
        issuer=f"http://127.0.0.1:{port}",
        audience=AUDIENCE,
        users=StaffDirectory([s.user() for s in staff], clock=clock),
        clients=[console_client(API, CLIENT_ID)],
    )
    running = serve(provider, port)
    try:
        yield Idp(running=running, staff={s.username: s for s in staff}, clock=clock)
    finally:
        running.stop()


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def _claims(jwt: str) -> dict[str, Any]:
    part = jwt.split(".")[1]
    doc: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return doc


def _login_id(page: str) -> str:
    found = re.search(r'name="login" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def _error_text(page: str) -> str:
    found = re.search(r"<p class='error'[^>]*>([^<]+)</p>", page)
    return found.group(1) if found else ""


@dataclass
class Authorization:
    http: requests.Session
    login: str
    verifier: str
    state: str
    nonce: str


def _start(idp: Idp, **overrides: str) -> tuple[requests.Response, Authorization]:
    verifier, challenge = _pkce()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "scope": "openid profile groups",
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **overrides,
    }
    http = requests.Session()
    page = http.get(f"{idp.issuer}/authorize", params=params, allow_redirects=False, timeout=10)
    login = _login_id(page.text) if page.status_code == 200 else ""
    return page, Authorization(http=http, login=login, verifier=verifier, state=state, nonce=nonce)


def _post(idp: Idp, auth: Authorization, **form: str) -> requests.Response:
    return auth.http.post(
        f"{idp.issuer}/authorize", data={"login": auth.login, **form}, allow_redirects=False, timeout=10
    )


def _sign_in(idp: Idp, username: str) -> tuple[str, Authorization]:
    """Password, then the current TOTP code: the authorization code the console gets back."""
    page, auth = _start(idp)
    assert page.status_code == 200
    totp_page = _post(idp, auth, username=username, password=idp.staff[username].password)
    assert totp_page.status_code == 200
    assert "动态验证码" in totp_page.text
    idp.clock.next_step()
    back = _post(idp, auth, otp=idp.code(username))
    assert back.status_code == 302, back.text
    location = urlsplit(back.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = parse_qs(location.query)
    assert query["state"] == [auth.state]
    return query["code"][0], auth


def _exchange(idp: Idp, code: str, verifier: str) -> requests.Response:
    return requests.post(
        f"{idp.issuer}/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": CLIENT_ID,
            "code_verifier": verifier,
        },
        headers={"Origin": API},
        timeout=10,
    )


def _verify(idp: Idp, token: str, audience: str) -> dict[str, Any]:
    """Verify a token as a relying party does: the key from the JWKS the discovery document names."""
    from joserfc import jwt
    from joserfc.jwk import KeySet

    meta = requests.get(f"{idp.issuer}/.well-known/openid-configuration", timeout=10).json()
    keys = KeySet.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
    decoded = jwt.decode(token, keys, algorithms=["RS256"])
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": idp.issuer},
        aud={"essential": True, "value": audience},
        exp={"essential": True},
        sub={"essential": True},
    ).validate(decoded.claims)
    assert decoded.header["kid"] in {k["kid"] for k in keys.as_dict()["keys"]}
    return dict(decoded.claims)


def test_discovery_names_every_endpoint_and_only_s256_pkce(idp: Idp) -> None:
    meta = requests.get(f"{idp.issuer}/.well-known/openid-configuration", timeout=10).json()
    assert meta["issuer"] == idp.issuer
    for name, path in (
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("userinfo_endpoint", "/userinfo"),
        ("jwks_uri", "/jwks"),
        ("revocation_endpoint", "/revoke"),
        ("end_session_endpoint", "/logout"),
    ):
        assert meta[name] == idp.issuer + path
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["id_token_signing_alg_values_supported"] == ["RS256"]
    jwks = requests.get(meta["jwks_uri"], timeout=10).json()
    assert [k["kty"] for k in jwks["keys"]] == ["RSA"]
    assert not any("d" in k or "p" in k for k in jwks["keys"]), "the JWKS must hold the public key only"


def test_code_flow_with_pkce_issues_tokens_carrying_the_second_factor_and_groups(idp: Idp) -> None:
    code, auth = _sign_in(idp, "reviewer")
    answer = _exchange(idp, code, auth.verifier)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Access-Control-Allow-Origin"] == API
    tokens = answer.json()
    assert tokens["token_type"].lower() == "bearer"
    assert tokens["expires_in"] == 15 * 60
    assert tokens["refresh_token"]

    access = _verify(idp, tokens["access_token"], AUDIENCE)
    assert access["amr"] == ["pwd", "otp"]
    assert access["groups"] == ["reviewer"]
    assert access["sub"] == idp.staff["reviewer"].subject
    assert access["exp"] - access["iat"] == 15 * 60
    assert access["client_id"] == CLIENT_ID

    identity = _verify(idp, tokens["id_token"], CLIENT_ID)
    assert identity["nonce"] == auth.nonce
    assert identity["amr"] == ["pwd", "otp"]
    assert identity["sid"] == access["sid"]
    assert identity["preferred_username"] == "reviewer"
    assert "groups" not in identity, "an ID token grants nothing"

    me = requests.get(
        f"{idp.issuer}/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=10
    )
    assert me.status_code == 200
    assert me.json()["groups"] == ["reviewer"]
    assert me.json()["sub"] == idp.staff["reviewer"].subject


def test_wrong_code_verifier_is_refused_and_a_reused_code_is_refused_and_revokes_its_tokens(idp: Idp) -> None:
    code, auth = _sign_in(idp, "auditor")
    wrong = _exchange(idp, code, secrets.token_urlsafe(48))
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    assert "access_token" not in wrong.json()

    code, auth = _sign_in(idp, "auditor")
    first = _exchange(idp, code, auth.verifier)
    assert first.status_code == 200
    again = _exchange(idp, code, auth.verifier)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    # The code was replayed: what it issued first is revoked (RFC 6749 §4.1.2).
    refreshed = requests.post(
        f"{idp.issuer}/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": first.json()["refresh_token"],
            "client_id": CLIENT_ID,
        },
        timeout=10,
    )
    assert refreshed.status_code == 400
    me = requests.get(
        f"{idp.issuer}/userinfo",
        headers={"Authorization": f"Bearer {first.json()['access_token']}"},
        timeout=10,
    )
    assert me.status_code == 401


def test_authorization_without_pkce_or_with_a_plain_challenge_is_refused(idp: Idp) -> None:
    for overrides in (
        {"code_challenge": "", "code_challenge_method": ""},
        {"code_challenge_method": "plain"},
    ):
        page, _ = _start(idp, **overrides)
        assert page.status_code == 302
        query = parse_qs(urlsplit(page.headers["Location"]).query)
        assert query["error"] == ["invalid_request"]
        assert "code" not in query
    # An unregistered redirect URI is never redirected to.
    page, _ = _start(idp, redirect_uri="http://127.0.0.1:9/elsewhere")
    assert page.status_code == 400
    assert "Location" not in page.headers
    assert "无法登录" in page.text


def test_wrong_password_or_totp_code_issues_nothing_and_five_failures_lock_the_user(idp: Idp) -> None:
    _, auth = _start(idp)
    refused = _post(idp, auth, username="admin", password="not-the-password")
    assert refused.status_code == 200  # the page again, with the refusal on it
    assert _error_text(refused.text) == "用户名或密码错误，还可以再试 4 次。"
    assert "Location" not in refused.headers

    totp_page = _post(idp, auth, username="admin", password=idp.staff["admin"].password)
    assert totp_page.status_code == 200
    right = idp.code("admin")
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    # The wrong password counts: four failures so far would be five with the next.
    for left in (3, 2, 1):
        answer = _post(idp, auth, otp=wrong)
        assert answer.status_code == 200
        assert "Location" not in answer.headers
        assert _error_text(answer.text) == f"动态验证码错误或已使用过，还可以再试 {left} 次。"
    locked = _post(idp, auth, otp=wrong)
    assert locked.status_code == 200
    assert 'name="otp"' not in locked.text
    assert _error_text(locked.text) == "尝试次数过多，账号已锁定，请 15 分钟后再试。"

    # Locked: the right password and the right code are refused too, until the lock ends.
    _, auth = _start(idp)
    answer = _post(idp, auth, username="admin", password=idp.staff["admin"].password)
    assert _error_text(answer.text) == "尝试次数过多，账号已锁定，请 15 分钟后再试。"
    assert "动态验证码" not in answer.text
    idp.clock.now += 15 * 60 + 1
    code, auth = _sign_in(idp, "admin")
    assert _exchange(idp, code, auth.verifier).status_code == 200


def test_a_totp_code_is_accepted_once(idp: Idp) -> None:
    code, _ = _sign_in(idp, "operations")
    assert code
    _, auth = _start(idp)
    _post(idp, auth, username="operations", password=idp.staff["operations"].password)
    again = _post(idp, auth, otp=idp.code("operations"))  # same 30 s step: the code just used
    assert _error_text(again.text) == "动态验证码错误或已使用过，还可以再试 4 次。"
    assert "Location" not in again.headers


def test_refresh_rotates_the_refresh_token_and_keeps_the_second_factor(idp: Idp) -> None:
    code, auth = _sign_in(idp, "reviewer")
    tokens = _exchange(idp, code, auth.verifier).json()
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": CLIENT_ID}
    refreshed = requests.post(f"{idp.issuer}/token", data=form, timeout=10)
    assert refreshed.status_code == 200, refreshed.text
    new = refreshed.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    claims = _verify(idp, new["access_token"], AUDIENCE)
    assert claims["amr"] == ["pwd", "otp"]
    assert claims["groups"] == ["reviewer"]
    assert requests.post(f"{idp.issuer}/token", data=form, timeout=10).status_code == 400


def test_revoke_and_logout_end_the_tokens(idp: Idp) -> None:
    code, auth = _sign_in(idp, "reviewer")
    tokens = _exchange(idp, code, auth.verifier).json()
    revoked = requests.post(
        f"{idp.issuer}/revoke",
        data={"token": tokens["refresh_token"], "client_id": CLIENT_ID},
        headers={"Origin": API},
        timeout=10,
    )
    assert revoked.status_code == 200
    assert revoked.headers["Access-Control-Allow-Origin"] == API
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": CLIENT_ID,
    }
    assert requests.post(f"{idp.issuer}/token", data=refresh, timeout=10).status_code == 400

    code, auth = _sign_in(idp, "reviewer")
    tokens = _exchange(idp, code, auth.verifier).json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert requests.get(f"{idp.issuer}/userinfo", headers=bearer, timeout=10).status_code == 200
    out = requests.get(
        f"{idp.issuer}/logout",
        params={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": REDIRECT, "state": "s1"},
        allow_redirects=False,
        timeout=10,
    )
    assert out.status_code == 302
    assert out.headers["Location"] == f"{REDIRECT}?state=s1"
    assert requests.get(f"{idp.issuer}/userinfo", headers=bearer, timeout=10).status_code == 401
    refresh["refresh_token"] = tokens["refresh_token"]
    assert requests.post(f"{idp.issuer}/token", data=refresh, timeout=10).status_code == 400
    # Not a registered place to go back to: the provider stays on its own page.
    out = requests.get(
        f"{idp.issuer}/logout",
        params={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": "http://127.0.0.1:9/x"},
        allow_redirects=False,
        timeout=10,
    )
    assert out.status_code == 200
    assert "已退出登录" in out.text
    # An ID token it did not sign ends nothing.
    forged = tokens["id_token"].rsplit(".", 1)[0] + ".c2lnbmF0dXJl"
    out = requests.get(f"{idp.issuer}/logout", params={"id_token_hint": forged}, timeout=10)
    assert out.status_code == 400
    assert "退出请求无效" in out.text


def test_cors_answers_only_the_console_origin(idp: Idp) -> None:
    preflight = requests.options(
        f"{idp.issuer}/token",
        headers={"Origin": API, "Access-Control-Request-Method": "POST"},
        timeout=10,
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == API
    other = requests.options(
        f"{idp.issuer}/token",
        headers={"Origin": "http://127.0.0.1:10", "Access-Control-Request-Method": "POST"},
        timeout=10,
    )
    assert "Access-Control-Allow-Origin" not in other.headers


def test_the_apis_verifier_accepts_the_token_with_its_second_factor_and_role(
    idp: Idp, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.core.config import Settings
    from chalicelib.core.oidc import OidcConfig, StaffTokenVerifier
    from chalicelib.kernel.errors import DomainError
    from chalicelib.local.oidc_provider import api_environment

    # The settings `make run` gives chalice local for this provider.
    for name, value in api_environment(idp.issuer, CLIENT_ID).items():
        monkeypatch.setenv(name, value)
    verifier = StaffTokenVerifier(OidcConfig.from_settings(Settings()))
    code, auth = _sign_in(idp, "reviewer")
    tokens = _exchange(idp, code, auth.verifier).json()
    staff = verifier.verify(tokens["access_token"])
    assert staff.subject == idp.staff["reviewer"].subject
    assert staff.roles == frozenset({"reviewer"})
    assert staff.mfa == "amr:otp"
    assert staff.issuer == idp.issuer
    assert staff.session_id == _claims(tokens["access_token"])["sid"]
    assert staff.revocation_key == f"sid:{staff.session_id}"
    # The ID token names no group: sent as a bearer token it grants no staff role.
    with pytest.raises(DomainError) as refused:
        verifier.verify(tokens["id_token"])
    assert refused.value.code == "auth.no_staff_role"
    config = verifier.sign_in_config()
    assert config["client_id"] == CLIENT_ID
    assert config["authorization_endpoint"] == f"{idp.issuer}/authorize"
    assert config["end_session_endpoint"] == f"{idp.issuer}/logout"


def test_cheka_staff_prints_the_running_stacks_staff_and_a_users_current_totp_code(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys
    import time
    from datetime import UTC, datetime

    from chalicelib.core.config import Settings
    from chalicelib.local.state import state_doc, write_state

    staff = invent_demo_staff()
    state = tmp_path / "stack.json"
    with socket.socket() as moto:  # something answers where the stack's AWS is: the stack is alive
        moto.bind(("127.0.0.1", 0))
        moto.listen()
        port = int(moto.getsockname()[1])
        settings = Settings(stage="local", moto_port=port, local_state_file=str(state))
        doc = state_doc(
            os.getpid(),
            datetime.now(UTC),
            settings,
            {"CHEKA_MOTO_PORT": str(port)},
            {},
            oidc="http://127.0.0.1:8300",
            staff=[member.state() for member in staff],
        )
        write_state(state, doc)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CHEKA_", "AWS_", "POWERTOOLS_"))}
        env["CHEKA_LOCAL_STATE_FILE"] = str(state)
        cheka = str(Path(sys.executable).parent / "cheka")

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [cheka, "staff", *args], env=env, capture_output=True, text=True, timeout=60
            )

        before = time.time()
        code = run("totp", "reviewer")
        after = time.time()
        assert code.returncode == 0, code.stderr
        reviewer = next(m for m in staff if m.username == "reviewer")
        assert code.stdout.strip() in {totp_now(reviewer.totp_secret, at=t) for t in (before, after)}
        assert re.fullmatch(r"\(valid for \d+ s more\)", code.stderr.strip())

        listed = [json.loads(line) for line in run("users").stdout.splitlines()]
        assert [m["username"] for m in listed] == [
            "reviewer",
            "admin",
            "auditor",
            "operations",
            "review-leads",
            "call-centre",
        ]
        assert [m["groups"] for m in listed] == [
            ["reviewer"],
            ["admin"],
            ["auditor"],
            ["operations"],
            ["review-leads"],
            ["call-centre"],
        ]
        assert {m["issuer"] for m in listed} == {"http://127.0.0.1:8300"}

        unknown = run("totp", "nobody")
        assert unknown.returncode == 2
        assert unknown.stdout == ""
        assert "reviewer, admin, auditor, operations, review-leads, call-centre" in unknown.stderr


def test_cancel_goes_back_to_the_console_with_access_denied_and_no_code(idp: Idp) -> None:
    _, auth = _start(idp)
    _post(idp, auth, username="reviewer", password=idp.staff["reviewer"].password)
    back = _post(idp, auth, action="cancel")
    assert back.status_code == 302
    query = parse_qs(urlsplit(back.headers["Location"]).query)
    assert query["error"] == ["access_denied"]
    assert query["state"] == [auth.state]
    assert "code" not in query
    # The sign-in is over: its page cannot be used again.
    again = _post(idp, auth, otp=idp.code("reviewer"))
    assert again.status_code == 400
    assert "登录页面已失效" in again.text
