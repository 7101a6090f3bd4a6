"""Staff access tokens from the stage's OpenID Connect issuer, verified against its published keys.

The issuer is the car maker's corporate IdP, the stage's Cognito user pool or, on ``make run``, the
local provider (``chalicelib.local.oidc_provider``); the contract is plain OIDC: the discovery document
at ``<issuer>/.well-known/openid-configuration``, its ``jwks_uri``, asymmetrically signed JWT access
tokens. A token is accepted when:

- its header names RS256 or ES256 (never ``none``, never an HMAC: a token signed with the public key's
  bytes as an HMAC secret is refused before any key is looked at) and a ``kid`` the JWKS holds;
- its signature verifies with that key, ``iss`` is the issuer exactly, ``exp``/``nbf``/``iat`` hold
  within the leeway;
- it is meant for us: ``aud`` names the client id, or (a Cognito access token, which has no ``aud``)
  ``client_id`` is the client id and ``token_use`` is ``access``;
- it shows a second factor: a value of ``amr`` in ``staff_oidc_mfa_amr``, or ``acr`` in
  ``staff_oidc_mfa_acr``, or the issuer is declared to require one of every sign-in (a Cognito pool with
  MFA required, whose tokens say nothing of it);
- its groups claim maps to at least one staff role (unknown groups are ignored).

The JWKS is fetched with a timeout and kept ``staff_oidc_jwks_cache_seconds``; a token naming a key the
cached set lacks (the IdP rotated its keys) refetches it, at most once per
``staff_oidc_jwks_refetch_seconds``, so a stream of made-up ``kid`` values cannot make us hammer the IdP.
When the IdP cannot be reached the keys already held are still used; with none held the answer is 503
``auth.idp_unavailable`` (retryable), never a hang.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from chalicelib.kernel.errors import DomainError, Forbidden, Unauthenticated

if TYPE_CHECKING:
    from jwt import PyJWK

    from chalicelib.core.settings import Settings

#: The only signature algorithms accepted from the staff issuer.
ALLOWED_ALGORITHMS = ("RS256", "ES256")
_KEY_TYPES = {"RS256": "RSA", "ES256": "EC"}
#: Our staff roles (``chalicelib.core.auth.Role`` values) an IdP group may map to.
STAFF_ROLE_NAMES = frozenset({"reviewer", "review_lead", "admin", "auditor", "operations", "call_centre"})
#: IdP groups named otherwise than their role, understood when no role map is set.
STAFF_GROUP_ALIASES = {"review-leads": "review_lead", "call-centre": "call_centre"}
#: Seconds a client is told to wait when the IdP cannot be reached.
IDP_RETRY_AFTER_SECONDS = 5
#: Bytes a discovery document or JWKS may have.
_MAX_DOCUMENT_BYTES = 256 * 1024

#: ``fetch(url, timeout_seconds) -> body``; raises ``IdpUnreachable`` (tests inject their own).
Fetcher = Callable[[str, float], bytes]


class IdpUnavailable(DomainError):
    status: ClassVar[int] = 503


class IdpUnreachable(Exception):
    """A fetch from the IdP failed: no answer in time, an error status, or not JSON."""


def idp_unavailable() -> IdpUnavailable:
    return IdpUnavailable(
        "auth.idp_unavailable",
        "员工登录服务暂时无法访问，请稍后再试",
        "The staff identity provider cannot be reached; try again shortly",
        details={"retry_after_seconds": IDP_RETRY_AFTER_SECONDS},
    )


def _refused(code: str, zh: str, en: str) -> Unauthenticated:
    return Unauthenticated(code, zh, en, field="Authorization")


def _invalid(en: str) -> Unauthenticated:
    return _refused("auth.invalid", "登录状态已失效，请重新登录", en)


def http_fetch(url: str, timeout: float) -> bytes:
    """GET ``url`` (https, or http on loopback for the local provider) within ``timeout`` seconds."""
    import urllib.error
    import urllib.request

    if not url.startswith(("https://", "http://")):
        raise IdpUnreachable(f"not an http(s) address: {url!r}")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 # nosec B310 # scheme checked above
            body: bytes = response.read(_MAX_DOCUMENT_BYTES + 1)
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
        raise IdpUnreachable(f"{url}: {exc}") from exc
    if len(body) > _MAX_DOCUMENT_BYTES:
        raise IdpUnreachable(f"{url}: the document is larger than {_MAX_DOCUMENT_BYTES} bytes")
    return body


def _fetch_json(fetch: Fetcher, url: str, timeout: float) -> dict[str, Any]:
    try:
        doc = json.loads(fetch(url, timeout))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IdpUnreachable(f"{url}: not JSON") from exc
    if not isinstance(doc, dict):
        raise IdpUnreachable(f"{url}: not a JSON object")
    return doc


@dataclass(frozen=True)
class OidcConfig:
    """What the verifier needs of the settings (hashable: one verifier per configuration)."""

    issuer: str
    audience: str | None
    jwks_url: str | None
    roles_claim: str
    role_map: tuple[tuple[str, str], ...]
    mfa_amr: frozenset[str]
    mfa_acr: frozenset[str]
    mfa_by_issuer: bool
    leeway_seconds: int
    timeout_seconds: float
    jwks_cache_seconds: int
    jwks_refetch_seconds: int
    end_session_url: str | None = None
    scopes: tuple[str, ...] = ("openid",)

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcConfig:
        if not settings.staff_oidc_issuer:
            raise ValueError("no staff issuer is configured (CHEKA_STAFF_OIDC_ISSUER)")
        return cls(
            issuer=settings.staff_oidc_issuer,
            audience=settings.staff_oidc_audience or None,
            jwks_url=settings.staff_oidc_jwks_url or None,
            roles_claim=settings.staff_oidc_roles_claim,
            role_map=tuple(sorted(settings.staff_oidc_role_map.items())),
            mfa_amr=frozenset(settings.staff_oidc_mfa_amr),
            mfa_acr=frozenset(settings.staff_oidc_mfa_acr),
            mfa_by_issuer=settings.staff_oidc_mfa_by_issuer,
            leeway_seconds=settings.staff_oidc_leeway_seconds,
            timeout_seconds=settings.staff_oidc_timeout_seconds,
            jwks_cache_seconds=settings.staff_oidc_jwks_cache_seconds,
            jwks_refetch_seconds=settings.staff_oidc_jwks_refetch_seconds,
            end_session_url=settings.staff_oidc_end_session_url or None,
            scopes=tuple(settings.staff_oidc_scopes),
        )

    @property
    def discovery_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"

    def roles_of(self, groups: Iterable[str]) -> frozenset[str]:
        """Our roles for the IdP's groups: through the map, or by name when no map is set."""
        mapping = (
            dict(self.role_map) if self.role_map else {r: r for r in STAFF_ROLE_NAMES} | STAFF_GROUP_ALIASES
        )
        return frozenset(mapping[g] for g in groups if mapping.get(g) in STAFF_ROLE_NAMES)


@dataclass(frozen=True)
class StaffClaims:
    """What a verified staff token establishes."""

    subject: str
    roles: frozenset[str]
    issuer: str
    #: How the second factor shows: ``amr:otp``, ``acr:<value>``, or ``issuer`` (required by the pool).
    mfa: str
    expires_at: int
    token_id: str
    #: The IdP's sign-in session (``sid``), if the token names one.
    session_id: str | None
    #: The handle logout revokes and every request checks: the widest the token carries (its sign-in
    #: session, else its original token, else itself).
    revocation_key: str
    name: str | None = None


@dataclass
class _KeySet:
    keys: dict[str, PyJWK] = field(default_factory=dict)
    fetched_at: float | None = None  # monotonic; None: never fetched
    tried_at: float | None = None  # the last fetch attempt, successful or not
    failed: bool = False  # the last attempt failed


class StaffTokenVerifier:
    """Verifies staff access tokens of one issuer; thread-safe, keeps discovery and JWKS in memory."""

    def __init__(
        self,
        config: OidcConfig,
        *,
        fetch: Fetcher = http_fetch,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._discovery: dict[str, Any] | None = None
        self._discovery_failed_at: float | None = None
        self._keys = _KeySet()
        #: How many times the JWKS was fetched (benchmarks and tests read it).
        self.jwks_fetches = 0

    # -- discovery and keys ---------------------------------------------------------------------------

    def _load_discovery(self) -> dict[str, Any]:
        """The discovery document, fetched once; raises ``IdpUnreachable``."""
        with self._lock:
            if self._discovery is not None:
                return self._discovery
        doc = _fetch_json(self._fetch, self.config.discovery_url, self.config.timeout_seconds)
        if doc.get("issuer") != self.config.issuer:
            # OIDC Discovery §4.3: the document names the issuer it is fetched for, exactly.
            raise IdpUnreachable(f"the discovery document names another issuer: {doc.get('issuer')!r}")
        with self._lock:
            self._discovery = doc
        return doc

    def discovery(self) -> dict[str, Any]:
        """The issuer's discovery document; 503 ``auth.idp_unavailable`` when it cannot be fetched (a
        failed fetch is not retried for a few seconds: callers do not each wait for the timeout)."""
        now = self._clock()
        failed_at = self._discovery_failed_at
        if self._discovery is None and failed_at is not None and now - failed_at < IDP_RETRY_AFTER_SECONDS:
            raise idp_unavailable()
        try:
            return self._load_discovery()
        except IdpUnreachable as exc:
            self._discovery_failed_at = self._clock()
            raise idp_unavailable() from exc

    def _jwks_url(self) -> str:
        if self.config.jwks_url:
            return self.config.jwks_url
        url = self._load_discovery().get("jwks_uri")
        if not isinstance(url, str) or not url:
            raise IdpUnreachable("the discovery document names no jwks_uri")
        return url

    def _refresh_keys(self) -> None:
        """Fetch the JWKS now; raises ``IdpUnreachable`` and keeps the keys held if it cannot."""
        import jwt

        with self._lock:
            self._keys.tried_at = self._clock()
        try:
            doc = _fetch_json(self._fetch, self._jwks_url(), self.config.timeout_seconds)
        except IdpUnreachable:
            with self._lock:
                self._keys.failed = True
            raise
        keys: dict[str, PyJWK] = {}
        entries = doc.get("keys")
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict) or not entry.get("kid") or entry.get("use", "sig") != "sig":
                continue
            try:
                keys[str(entry["kid"])] = jwt.PyJWK(entry)
            except jwt.PyJWTError:
                continue  # a key of a type or algorithm we do not use
        now = self._clock()
        with self._lock:
            self._keys = _KeySet(keys, fetched_at=now, tried_at=now)
            self.jwks_fetches += 1

    def key(self, kid: str) -> PyJWK:
        """The signing key ``kid``: from the cache; else after one refetch, unless the JWKS was fetched
        less than ``jwks_refetch_seconds`` ago (a few seconds after a failed fetch)."""
        now = self._clock()
        with self._lock:
            held = self._keys
        fresh = held.fetched_at is not None and now - held.fetched_at < self.config.jwks_cache_seconds
        if fresh and kid in held.keys:
            return held.keys[kid]
        interval = IDP_RETRY_AFTER_SECONDS if held.failed else self.config.jwks_refetch_seconds
        if held.tried_at is None or now - held.tried_at >= interval:  # (a stale set's last try is old)
            try:
                self._refresh_keys()
            except IdpUnreachable as exc:
                if kid in held.keys:
                    return held.keys[kid]  # the IdP is down: the keys we hold still verify
                if not held.keys:
                    raise idp_unavailable() from exc
        with self._lock:
            current = self._keys
        if kid in current.keys:
            return current.keys[kid]
        if not current.keys and current.failed:
            raise idp_unavailable()
        raise _refused("auth.signature", "登录状态已失效，请重新登录", "The token's signing key is unknown")

    # -- verification ----------------------------------------------------------------------------------

    def verify(self, token: str) -> StaffClaims:
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise _invalid("The token is not a JWT") from exc
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise _invalid(f"The token's algorithm {alg!r} is not accepted (RS256 or ES256 only)")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _invalid("The token names no signing key (kid)")
        signing_key = self.key(kid)
        if signing_key.key_type != _KEY_TYPES[alg]:
            raise _refused(
                "auth.signature", "登录状态已失效，请重新登录", "The token's algorithm does not fit its key"
            )
        cfg = self.config
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                signing_key.key,
                algorithms=[alg],
                issuer=cfg.issuer,
                leeway=cfg.leeway_seconds,
                options={"require": ["exp", "iat", "iss", "sub"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError as exc:
            raise _refused("auth.expired", "登录已过期，请重新登录", "The token has expired") from exc
        except jwt.InvalidIssuerError as exc:
            raise _refused(
                "auth.issuer", "登录状态已失效，请重新登录", "The token comes from another issuer"
            ) from exc
        except jwt.InvalidSignatureError as exc:
            raise _refused(
                "auth.signature", "登录状态已失效，请重新登录", "The token's signature does not verify"
            ) from exc
        except jwt.ImmatureSignatureError as exc:
            raise _invalid("The token is not valid yet") from exc
        except jwt.PyJWTError as exc:
            raise _invalid(f"The token is invalid: {type(exc).__name__}") from exc
        self._check_audience(claims)
        mfa = self._second_factor(claims)
        roles = cfg.roles_of(_strings(claims.get(cfg.roles_claim)))
        if not roles:
            raise Forbidden(
                "auth.no_staff_role",
                "您的账号没有本系统的员工角色，请联系管理员",
                f"The token's {cfg.roles_claim} claim names no group mapped to a staff role",
            )
        session_id = _string(claims.get("sid"))
        token_id = _string(claims.get("jti")) or hashlib.sha256(token.encode()).hexdigest()[:32]
        original = _string(claims.get("origin_jti"))  # Cognito: the same for every refreshed token
        revocation_key = (
            f"sid:{session_id}" if session_id else f"ojti:{original}" if original else f"jti:{token_id}"
        )
        return StaffClaims(
            subject=str(claims["sub"]),
            roles=roles,
            issuer=cfg.issuer,
            mfa=mfa,
            expires_at=int(claims["exp"]),
            token_id=token_id,
            session_id=session_id,
            revocation_key=revocation_key,
            name=_string(claims.get("name")) or _string(claims.get("preferred_username")),
        )

    def _check_audience(self, claims: Mapping[str, Any]) -> None:
        if "token_use" in claims and claims["token_use"] != "access":
            raise _invalid("The token is not an access token (Cognito token_use)")  # e.g. an ID token
        audience = self.config.audience
        if audience is None:  # fail closed: a stage names the client id its staff tokens are issued to
            raise _refused("auth.audience", "登录状态已失效，请重新登录", "No staff client id is configured")
        if "aud" in claims:
            if audience in _strings(claims["aud"]):
                return
        elif claims.get("client_id") == audience and claims.get("token_use") == "access":
            return  # a Cognito access token: no aud, the app client in client_id
        raise _refused("auth.audience", "登录状态已失效，请重新登录", "The token is meant for another client")

    def _second_factor(self, claims: Mapping[str, Any]) -> str:
        cfg = self.config
        shown = sorted(set(_strings(claims.get("amr"))) & cfg.mfa_amr)
        if shown:
            return f"amr:{shown[0]}"
        acr = _string(claims.get("acr"))
        if acr and acr in cfg.mfa_acr:
            return f"acr:{acr}"
        if cfg.mfa_by_issuer:
            return "issuer"
        raise _refused(
            "auth.mfa_required",
            "请使用动态验证码等第二重验证方式登录",
            "The token shows no second factor (amr/acr): sign in again with one",
        )

    def sign_in_config(self) -> dict[str, Any]:
        """What the console needs to start the authorization-code + PKCE sign-in."""
        doc = self.discovery()
        end_session = self.config.end_session_url or _string(doc.get("end_session_endpoint"))
        return {
            "issuer": self.config.issuer,
            "client_id": self.config.audience,
            "authorization_endpoint": _string(doc.get("authorization_endpoint")),
            "token_endpoint": _string(doc.get("token_endpoint")),
            "end_session_endpoint": end_session,
            "scopes": list(self.config.scopes),
        }


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _strings(value: Any) -> list[str]:
    """A claim holding a list of strings, or one string (space-separated, as some IdPs send scopes)."""
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


_verifiers: dict[OidcConfig, StaffTokenVerifier] = {}
_verifiers_lock = threading.Lock()


def verifier(settings: Settings) -> StaffTokenVerifier:
    """The verifier of the settings' issuer (one per configuration: its keys are cached in it)."""
    config = OidcConfig.from_settings(settings)
    with _verifiers_lock:
        found = _verifiers.get(config)
        if found is None:
            found = _verifiers[config] = StaffTokenVerifier(config)
        return found


def reset() -> None:
    """Forget every verifier and its cached keys (tests)."""
    with _verifiers_lock:
        _verifiers.clear()
