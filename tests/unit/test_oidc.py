"""The staff token verifier (``chalicelib.core.oidc``) against an issuer served on a loopback port, and
``authenticate``'s choice between it and our own tokens."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.core import auth, oidc
from chalicelib.core.auth import Role, authenticate, issue_token
from chalicelib.core.config import Settings
from chalicelib.core.oidc import OidcConfig, StaffTokenVerifier
from chalicelib.kernel.errors import DomainError
from tests.fakes.oidc_issuer import AUDIENCE, TestIssuer, rsa_key, running_issuer


@pytest.fixture
def issuer() -> Iterator[TestIssuer]:
    with running_issuer() as running:
        yield running


def config(issuer: TestIssuer, **overrides: Any) -> OidcConfig:
    values: dict[str, Any] = {
        "issuer": issuer.issuer,
        "audience": AUDIENCE,
        "jwks_url": None,
        "roles_claim": "groups",
        "role_map": (),
        "mfa_amr": frozenset({"mfa", "otp", "totp", "swk", "hwk"}),
        "mfa_acr": frozenset(),
        "mfa_by_issuer": False,
        "leeway_seconds": 30,
        "timeout_seconds": 0.5,
        "jwks_cache_seconds": 3600,
        "jwks_refetch_seconds": 60,
        **overrides,
    }
    return OidcConfig(**values)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def verifier(issuer: TestIssuer, clock: Clock | None = None, **overrides: Any) -> StaffTokenVerifier:
    return StaffTokenVerifier(config(issuer, **overrides), clock=clock or Clock())


def refused(verifier: StaffTokenVerifier, token: str) -> DomainError:
    with pytest.raises(DomainError) as raised:
        verifier.verify(token)
    return raised.value


def test_a_token_with_a_second_factor_gives_the_mapped_roles_and_ignores_unknown_groups(
    issuer: TestIssuer,
) -> None:
    v = verifier(
        issuer,
        role_map=(("cheka-audit", "auditor"), ("cheka-review", "reviewer"), ("cheka-x", "superuser")),
    )
    claims = v.verify(issuer.token(groups=["cheka-review", "cheka-audit", "everyone", "cheka-x"], sid="s1"))
    assert claims.roles == frozenset({"reviewer", "auditor"})
    assert claims.subject == "staff-0001"
    assert claims.issuer == issuer.issuer
    assert claims.mfa == "amr:otp"
    assert claims.revocation_key == "sid:s1"
    assert claims.expires_at > time.time()


def test_es256_tokens_and_groups_named_as_our_roles_are_accepted(issuer: TestIssuer) -> None:
    claims = verifier(issuer).verify(issuer.token(algorithm="ES256", groups=["operations", "admin"]))
    assert claims.roles == frozenset({"operations", "admin"})


def test_no_second_factor_is_refused_unless_an_acr_or_the_issuer_vouches_for_one(issuer: TestIssuer) -> None:
    assert refused(verifier(issuer), issuer.token(amr=["pwd"])).code == "auth.mfa_required"
    assert refused(verifier(issuer), issuer.token(amr=None)).code == "auth.mfa_required"
    assert refused(verifier(issuer), issuer.token(amr=None)).status == 401
    by_acr = verifier(issuer, mfa_acr=frozenset({"urn:oem:loa:2fa"}))
    assert by_acr.verify(issuer.token(amr=["pwd"], acr="urn:oem:loa:2fa")).mfa == "acr:urn:oem:loa:2fa"
    assert refused(by_acr, issuer.token(amr=["pwd"], acr="urn:oem:loa:1")).code == "auth.mfa_required"
    pool = verifier(issuer, mfa_by_issuer=True)
    assert pool.verify(issuer.token(amr=None)).mfa == "issuer"


def test_expired_future_and_old_tokens(issuer: TestIssuer) -> None:
    now = int(time.time())
    v = verifier(issuer)
    assert refused(v, issuer.token(iat=now - 1000, exp=now - 60)).code == "auth.expired"
    assert v.verify(issuer.token(iat=now - 1000, exp=now - 10)).subject  # within the 30 s leeway
    assert refused(v, issuer.token(nbf=now + 600)).code == "auth.invalid"
    assert refused(v, issuer.token(exp=None)).code == "auth.invalid"


def test_another_issuer_or_audience_is_refused(issuer: TestIssuer) -> None:
    v = verifier(issuer)
    assert refused(v, issuer.token(iss="https://evil.example.com")).code == "auth.issuer"
    assert refused(v, issuer.token(iss=issuer.issuer + "/")).code == "auth.issuer"
    assert refused(v, issuer.token(aud="another-app")).code == "auth.audience"
    assert refused(v, issuer.token(aud=None)).code == "auth.audience"
    assert v.verify(issuer.token(aud=["another-app", AUDIENCE])).subject


def test_a_cognito_access_token_names_the_client_in_client_id(issuer: TestIssuer) -> None:
    v = verifier(issuer, roles_claim="cognito:groups", mfa_by_issuer=True)
    cognito: dict[str, Any] = {
        "aud": None,
        "amr": None,
        "groups": None,
        "sid": None,
        "cognito:groups": ["reviewer"],
    }
    access = v.verify(issuer.token(client_id=AUDIENCE, token_use="access", origin_jti="o-1", **cognito))
    assert access.roles == frozenset({"reviewer"})
    assert access.revocation_key == "ojti:o-1"
    assert refused(v, issuer.token(client_id="other", token_use="access", **cognito)).code == "auth.audience"
    assert refused(v, issuer.token(client_id=AUDIENCE, token_use="id", **cognito)).code == "auth.invalid"
    # A Cognito ID token names the client in aud, and is still not an access token.
    id_token = {**cognito, "aud": AUDIENCE, "token_use": "id"}
    assert refused(v, issuer.token(**id_token)).code == "auth.invalid"


def test_without_a_client_id_configured_every_token_is_refused(issuer: TestIssuer) -> None:
    assert refused(verifier(issuer, audience=None), issuer.token()).code == "auth.audience"


def test_a_forged_signature_under_the_issuers_kid_is_refused(issuer: TestIssuer) -> None:
    error = refused(verifier(issuer), issuer.token(key=rsa_key(), groups=["admin"]))
    assert (error.code, error.status) == ("auth.signature", 401)


def test_alg_none_and_hmac_keyed_with_the_public_key_are_refused_before_any_key_is_used(
    issuer: TestIssuer,
) -> None:
    v = verifier(issuer)
    assert refused(v, issuer.unsigned_token()).code == "auth.invalid"
    confused = refused(v, issuer.hmac_with_public_key(groups=["admin"]))
    assert confused.code == "auth.invalid"
    assert "HS256" in confused.message_en
    assert issuer.requests == []  # neither fetched a key
    assert refused(v, "not.a.jwt").code == "auth.invalid"


def test_a_token_whose_alg_does_not_fit_its_key_is_refused(issuer: TestIssuer) -> None:
    # RS256 claimed, the EC key's kid named.
    assert refused(verifier(issuer), issuer.token(kid=issuer.ec_kid)).code == "auth.signature"


def test_an_unknown_kid_refetches_once_then_is_refused_without_asking_again(issuer: TestIssuer) -> None:
    clock = Clock()
    v = verifier(issuer, clock)
    v.verify(issuer.token())
    assert v.jwks_fetches == 1
    assert refused(v, issuer.token(kid="made-up-1")).code == "auth.signature"
    assert v.jwks_fetches == 1  # fetched just now: not again within the refetch interval
    clock.now += 61
    assert refused(v, issuer.token(kid="made-up-2")).code == "auth.signature"
    assert v.jwks_fetches == 2  # one refetch
    assert refused(v, issuer.token(kid="made-up-3")).code == "auth.signature"
    assert v.jwks_fetches == 2
    assert issuer.requests.count("/.well-known/openid-configuration") == 1


def test_a_rotated_key_is_fetched_when_a_token_names_it(issuer: TestIssuer) -> None:
    clock = Clock()
    v = verifier(issuer, clock)
    v.verify(issuer.token())
    issuer.rotate()
    clock.now += 61
    assert v.verify(issuer.token()).subject == "staff-0001"
    assert v.jwks_fetches == 2


def test_the_jwks_is_kept_for_its_lifespan_then_fetched_again(issuer: TestIssuer) -> None:
    clock = Clock()
    v = verifier(issuer, clock, jwks_cache_seconds=600)
    for _ in range(5):
        v.verify(issuer.token())
    assert v.jwks_fetches == 1
    clock.now += 601
    v.verify(issuer.token())
    assert v.jwks_fetches == 2


def test_an_idp_that_is_down_answers_503_at_once_and_held_keys_still_verify(issuer: TestIssuer) -> None:
    clock = Clock()
    warm = verifier(issuer, clock, jwks_cache_seconds=600)
    warm.verify(issuer.token())
    token = issuer.token()
    issuer.down()
    cold = verifier(issuer, clock)
    error = refused(cold, token)
    assert (error.code, error.status) == ("auth.idp_unavailable", 503)
    assert error.details["retry_after_seconds"] > 0
    clock.now += 601  # the warm verifier's keys are stale and the IdP is down: they still verify
    assert warm.verify(token).subject == "staff-0001"
    started = time.perf_counter()
    assert refused(cold, token).code == "auth.idp_unavailable"  # failed just now: not tried again
    assert time.perf_counter() - started < 0.1


def test_an_idp_that_hangs_is_given_up_after_the_timeout(issuer: TestIssuer) -> None:
    token = issuer.token()
    issuer.hang = True
    started = time.perf_counter()
    assert refused(verifier(issuer, timeout_seconds=0.3), token).code == "auth.idp_unavailable"
    assert time.perf_counter() - started < 2


def test_a_discovery_document_naming_another_issuer_is_not_trusted(issuer: TestIssuer) -> None:
    def fetch(url: str, timeout: float) -> bytes:
        body = oidc.http_fetch(url, timeout)
        return body.replace(issuer.issuer.encode() + b'"', b'https://evil.example.com"', 1)

    v = StaffTokenVerifier(config(issuer), fetch=fetch, clock=Clock())
    assert refused(v, issuer.token()).code == "auth.idp_unavailable"
    assert v.jwks_fetches == 0


def test_a_token_naming_no_staff_role_is_forbidden(issuer: TestIssuer) -> None:
    error = refused(verifier(issuer), issuer.token(groups=["everyone", "owner", "account"]))
    assert (error.code, error.status) == ("auth.no_staff_role", 403)
    assert refused(verifier(issuer), issuer.token(groups=None)).code == "auth.no_staff_role"


def test_the_sign_in_config_comes_from_discovery(issuer: TestIssuer) -> None:
    found = verifier(issuer, scopes=("openid", "profile", "groups")).sign_in_config()
    assert found == {
        "issuer": issuer.issuer,
        "client_id": AUDIENCE,
        "authorization_endpoint": f"{issuer.issuer}/authorize",
        "token_endpoint": f"{issuer.issuer}/token",
        "end_session_endpoint": f"{issuer.issuer}/logout",
        "scopes": ["openid", "profile", "groups"],
    }
    cognito = verifier(issuer, end_session_url="https://staff.auth.eu-west-1.amazoncognito.com/logout")
    assert cognito.sign_in_config()["end_session_endpoint"].endswith("amazoncognito.com/logout")


# -- authenticate: which verification a token gets --------------------------------------------------


def settings(issuer: TestIssuer | None, stage: str = "test") -> Settings:
    staff: dict[str, Any] = (
        {
            "staff_oidc_issuer": issuer.issuer,
            "staff_oidc_audience": AUDIENCE,
            "staff_oidc_roles_claim": "groups",
            "staff_oidc_timeout_seconds": 0.5,
        }
        if issuer
        else {}
    )
    return Settings(stage=stage, token_secret="unit-test-secret", **staff)  # type: ignore[arg-type]


@pytest.fixture
def revocations(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """An in-memory revocation list in place of the staff API's table, the one installed before (if
    any: ``chalicelib.api.staff`` installs it on import) put back afterwards."""
    revoked: set[str] = set()
    monkeypatch.setattr(auth, "_staff_revoked", revoked.__contains__)
    oidc.reset()
    yield revoked
    oidc.reset()


def test_a_token_of_the_staff_issuer_goes_to_its_verifier_and_ours_to_hs256(
    issuer: TestIssuer, revocations: set[str]
) -> None:
    s = settings(issuer)
    staff = authenticate(s, f"Bearer {issuer.token(groups=['auditor'], sid='s-9')}")
    assert staff.roles == frozenset({Role.AUDITOR})
    assert staff.from_staff_idp
    assert staff.issuer == issuer.issuer
    assert staff.mfa == "amr:otp"
    ours = authenticate(s, f"Bearer {issue_token(s, 'owner-1', [Role.OWNER])}")
    assert ours.roles == frozenset({Role.OWNER})
    assert not ours.from_staff_idp
    revocations.add("sid:s-9")
    with pytest.raises(DomainError) as raised:
        authenticate(s, f"Bearer {issuer.token(groups=['auditor'], sid='s-9')}")
    assert raised.value.code == "auth.revoked"


def test_hmac_tokens_claiming_the_staff_issuer_are_refused(issuer: TestIssuer, revocations: set[str]) -> None:
    s = settings(issuer)
    for token in (issuer.hmac_with_public_key(groups=["admin"]), issuer.unsigned_token(groups=["admin"])):
        with pytest.raises(DomainError) as raised:
            authenticate(s, f"Bearer {token}")
        assert raised.value.code == "auth.invalid"
    # Our own key cannot mint staff-issuer tokens either: the staff issuer's tokens are RS256/ES256.
    import jwt

    forged = jwt.encode(issuer.claims(), s.signing_secret(), algorithm="HS256", headers={"kid": issuer.kid})
    with pytest.raises(DomainError) as raised:
        authenticate(s, f"Bearer {forged}")
    assert raised.value.code == "auth.invalid"


@pytest.mark.parametrize("role", sorted(r.value for r in auth.STAFF_ROLES))
def test_our_own_staff_tokens_are_refused_on_a_deployed_stage_and_accepted_locally(role: str) -> None:
    deployed, local = settings(None, "prod"), settings(None, "test")
    with pytest.raises(DomainError) as raised:
        authenticate(deployed, f"Bearer {issue_token(deployed, 'ops', [Role(role)])}")
    assert (raised.value.code, raised.value.status) == ("auth.staff_token_not_from_idp", 401)
    assert authenticate(local, f"Bearer {issue_token(local, 'ops', [Role(role)])}").roles == {Role(role)}


def test_our_own_non_staff_tokens_still_work_on_a_deployed_stage() -> None:
    deployed = settings(None, "prod")
    for role in (Role.OWNER, Role.ACCOUNT, Role.ENTERPRISE_LEGAL, Role.DEALER):
        assert authenticate(deployed, f"Bearer {issue_token(deployed, 'x', [role])}").roles == {role}


def test_a_deployed_stage_must_name_an_https_staff_issuer_and_its_client_where_cognito_is_not_offered() -> (
    None
):
    from chalicelib.core.stages import stage_settings

    assert stage_settings("prod").staff_sign_in_problems() == []
    (none,) = stage_settings("prod", CHEKA_STAFF_OIDC_ISSUER="").configuration_problems()
    assert "CHEKA_STAFF_OIDC_ISSUER is not set" in none
    assert "cn-north-1" in none
    plain = stage_settings("dev", CHEKA_STAFF_OIDC_ISSUER="http://sso.oem.example.com")
    assert any("is https" in p for p in plain.configuration_problems())
    no_client = stage_settings("dev", CHEKA_STAFF_OIDC_AUDIENCE="")
    assert any("CHEKA_STAFF_OIDC_AUDIENCE" in p for p in no_client.configuration_problems())
    # Local stages need none: `make run` serves its own provider, and the tests use our own tokens.
    assert Settings(stage="local").staff_sign_in_problems() == []
