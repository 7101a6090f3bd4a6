"""The local staff identity provider of ``make run``: a real OpenID Connect provider with TOTP.

Built on authlib (its OAuth 2.0 authorization server, the OpenID Connect code flow, PKCE, RFC 9068 JWT
access tokens, RFC 7009 revocation, RP-initiated logout) and joserfc (authlib's JOSE library: the RSA key,
the JWKS, the signatures), served by werkzeug's threaded WSGI server, with pyotp for the second factor.
It stands in for the car maker's corporate IdP (or a Cognito user pool) on the local stage, and it is as
strict as they are: a token is never issued without the user's password AND a valid TOTP code of their
authenticator. moto's cognito-idp cannot stand in: it accepts any TOTP code (and Cognito user pools are
not offered in the China regions the product runs in).

Endpoints (``issuer`` is ``http://127.0.0.1:<CHEKA_OIDC_PORT>``):

- ``/.well-known/openid-configuration`` (discovery) and ``/jwks`` (the public key);
- ``/authorize``: authorization code flow; PKCE with S256 required, a nonce required, then a login page
  (user name + password) and a TOTP page. A wrong password or code shows an error and issues nothing;
  ``MAX_FAILURES`` (5) failures in a row lock the user for 15 minutes; a TOTP code is accepted once;
- ``/token``: code (+ ``code_verifier``) → access token (RS256 JWT for the API's audience, ``amr
  ["pwd","otp"]``, ``groups``), ID token and refresh token; refresh (rotated: the old one stops working).
  An authorization code is used once: a second use is refused and revokes what the first one issued;
- ``/userinfo``, ``/revoke`` (RFC 7009) and ``/logout`` (``end_session_endpoint``: ends the sign-in the
  ID token names, revoking its tokens, then back to a registered ``post_logout_redirect_uri``).
- CORS on ``/token``, ``/revoke`` and ``/userinfo`` for the registered clients' origins (the console).

Tokens last 15 minutes; refresh tokens 8 hours. The signing key is generated at start and kept in memory
only: a restart of ``make run`` starts clean (moto's state is in memory too), and tokens of an earlier
run are refused. Nothing here logs a password, a TOTP secret, a code or a token.
"""

from __future__ import annotations

import base64
import html
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from authlib.common.security import generate_token
from authlib.oauth2 import AuthorizationServer, OAuth2Error
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    ClientMixin,
    OAuth2Payload,
    OAuth2Request,
    TokenMixin,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from authlib.oauth2.rfc6749.requests import JsonPayload, JsonRequest
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator, JWTBearerTokenValidator
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from authlib.oidc.rpinitiated import EndSessionEndpoint
from joserfc.jwk import KeySet, RSAKey
from werkzeug.datastructures import CombinedMultiDict, MultiDict
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from chalicelib.local.staff_users import MAX_FAILURES, Outcome, StaffDirectory, StaffUser

#: What a sign-in through this provider proves: a password and a one-time code (RFC 8176).
AMR = ("pwd", "otp")
SCOPES = ("openid", "profile", "groups")
ACCESS_TOKEN_SECONDS = 15 * 60
REFRESH_TOKEN_SECONDS = 8 * 3600
CODE_SECONDS = 120
#: The console's client id at the provider (and the audience of its access tokens).
CONSOLE_CLIENT_ID = "cheka-console"
LOGIN_SECONDS = 10 * 60


# -- the models authlib works with -------------------------------------------------------------------


@dataclass(frozen=True)
class ClientRegistration:
    """A relying party: a public client (no secret; PKCE), like the console in the browser."""

    client_id: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...] = ()

    @property
    def origins(self) -> frozenset[str]:
        """The origins its pages run on (allowed to call ``/token`` from the browser)."""
        out = set()
        for uri in self.redirect_uris:
            parts = urlsplit(uri)
            out.add(f"{parts.scheme}://{parts.netloc}")
        return frozenset(out)


class _Client(ClientMixin):  # type: ignore[misc]
    def __init__(self, registration: ClientRegistration) -> None:
        self.registration = registration
        self.client_id = registration.client_id

    @property
    def client_metadata(self) -> dict[str, Any]:
        return {
            "redirect_uris": list(self.registration.redirect_uris),
            "post_logout_redirect_uris": list(self.registration.post_logout_redirect_uris),
            "token_endpoint_auth_method": "none",
        }

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # the request must name one of the registered URIs

    def get_allowed_scope(self, scope: str | None) -> str:
        asked = (scope or "").split()
        return " ".join(s for s in SCOPES if s in asked)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.registration.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return False

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "none"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


@dataclass(frozen=True)
class SignIn:
    """One completed sign-in (password and TOTP): what its codes and tokens are issued for."""

    user: StaffUser
    auth_time: int
    sid: str
    amr: tuple[str, ...] = AMR

    def get_user_id(self) -> str:
        return self.user.subject


@dataclass
class _Code(AuthorizationCodeMixin):  # type: ignore[misc]
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    sign_in: SignIn
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: float
    used: bool = False

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.sign_in.auth_time

    def get_acr(self) -> str | None:
        return None

    def get_amr(self) -> list[str]:
        return list(self.sign_in.amr)


@dataclass
class _Token(TokenMixin):  # type: ignore[misc]
    client_id: str
    sign_in: SignIn
    scope: str
    access_jti: str
    access_expires_at: float
    refresh_token: str | None
    refresh_expires_at: float
    code: str | None = None
    revoked: bool = False

    def check_client(self, client: Any) -> bool:
        return bool(client is not None and client.get_client_id() == self.client_id)

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return ACCESS_TOKEN_SECONDS

    def is_expired(self) -> bool:
        return time.time() >= self.refresh_expires_at

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> SignIn:
        return self.sign_in

    def get_client(self) -> Any:
        return None


def _jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT this provider signed itself (read, not verified: it has just made it)."""
    payload = token.split(".")[1]
    doc: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return doc


# -- werkzeug ↔ authlib ------------------------------------------------------------------------------


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, values: MultiDict[str, str] | CombinedMultiDict[str, str]) -> None:
        self._values = values

    @property
    def data(self) -> Any:
        return self._values

    @property
    def datalist(self) -> dict[str, list[str]]:
        return {key: self._values.getlist(key) for key in self._values}


class _OAuthRequest(OAuth2Request):  # type: ignore[misc]
    def __init__(
        self, method: str, uri: str, headers: Any, args: MultiDict[str, str], form: MultiDict[str, str]
    ) -> None:
        super().__init__(method=method, uri=uri, headers=headers)
        self._args, self._form = args, form
        self.payload = _Payload(CombinedMultiDict([args, form]))

    @property
    def args(self) -> MultiDict[str, str]:
        return self._args

    @property
    def form(self) -> MultiDict[str, str]:
        return self._form

    @classmethod
    def of(cls, request: Request) -> _OAuthRequest:
        return cls(request.method, request.url, request.headers, request.args, request.form)


class _JsonPayload(JsonPayload):  # type: ignore[misc]
    def __init__(self, request: Request) -> None:
        self._request = request

    @property
    def data(self) -> Any:
        return self._request.get_json(silent=True) or {}


class _Server(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, provider: LocalOidcProvider) -> None:
        super().__init__(scopes_supported=list(SCOPES))
        self.provider = provider

    def query_client(self, client_id: str) -> _Client | None:
        registration = self.provider.clients.get(client_id)
        return _Client(registration) if registration else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        self.provider._save_token(token, request)

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        return _OAuthRequest.of(request)

    def create_json_request(self, request: Request) -> JsonRequest:
        json_request = JsonRequest(request.method, request.url, request.headers)
        json_request.payload = _JsonPayload(request)
        return json_request

    def handle_response(self, status: int, body: Any, headers: Iterable[tuple[str, str]]) -> Response:
        if isinstance(body, dict):
            body = json.dumps(body)
        return Response(body, status=status, headers=list(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None


# -- grants and endpoints ----------------------------------------------------------------------------


class _S256Only(CodeChallenge):  # type: ignore[misc]
    """PKCE is required of every client, and only S256 (a plain challenge would show the verifier)."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ("S256",)

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        from authlib.oauth2.rfc6749.errors import InvalidRequestError

        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send 'code_challenge' (S256)")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("Only 'code_challenge_method=S256' is accepted")
        super().validate_code_challenge(grant, redirect_uri)

    def get_authorization_code_challenge(self, authorization_code: _Code) -> str | None:
        return authorization_code.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code: _Code) -> str | None:
        return authorization_code.code_challenge_method


def _grants(provider: LocalOidcProvider) -> tuple[type, type, Any]:
    class CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS = ["none"]  # noqa: RUF012 - authlib's attribute

        def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
            data = request.payload.data
            provider._save_code(
                _Code(
                    code=code,
                    client_id=request.client.get_client_id(),
                    redirect_uri=request.payload.redirect_uri,
                    scope=request.scope or "",
                    sign_in=request.user,
                    nonce=data.get("nonce"),
                    code_challenge=data.get("code_challenge"),
                    code_challenge_method=data.get("code_challenge_method"),
                    expires_at=provider.clock() + CODE_SECONDS,
                )
            )

        def query_authorization_code(self, code: str, client: _Client) -> _Code | None:
            return provider._take_code(code, client.get_client_id())

        def delete_authorization_code(self, authorization_code: _Code) -> None:
            return None  # marked used when taken (a second use is refused and revokes the first's)

        def authenticate_user(self, authorization_code: _Code) -> SignIn:
            return authorization_code.sign_in

    class RefreshGrant(RefreshTokenGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS = ["none"]  # noqa: RUF012 - authlib's attribute
        INCLUDE_NEW_REFRESH_TOKEN = True

        def authenticate_refresh_token(self, refresh_token: str) -> _Token | None:
            return provider._refreshable(refresh_token)

        def authenticate_user(self, credential: _Token) -> SignIn:
            return credential.sign_in

        def revoke_old_credential(self, refresh_token: _Token) -> None:
            provider._revoke(refresh_token)

    class IdToken(OpenIDCode):  # type: ignore[misc]
        def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
            return provider._nonce_seen(request.payload.client_id, nonce)

        def resolve_client_private_key(self, client: _Client) -> KeySet:
            return provider.keys

        def get_client_algorithm(self, client: _Client) -> str:
            return "RS256"

        def get_client_claims(self, client: _Client) -> dict[str, Any]:
            return {
                "iss": provider.issuer,
                "aud": [client.get_client_id()],
                "exp": int(time.time()) + ACCESS_TOKEN_SECONDS,
            }

        def get_encode_header(self, client: _Client) -> dict[str, str]:
            return {"alg": "RS256", "kid": provider.key_id}

        def generate_user_info(self, user: SignIn, scope: str) -> UserInfo:
            # No groups in the ID token: it says who signed in, it grants nothing (an ID token sent to
            # the API as a bearer token names no staff role there).
            info = provider.user_info(user, scope)
            info.pop("groups", None)
            return info

    return CodeGrant, RefreshGrant, IdToken(require_nonce=True)


class _AccessTokens(JWTBearerTokenGenerator):  # type: ignore[misc]
    """RFC 9068 access tokens for the API's audience, with the second factor and the groups."""

    def __init__(self, provider: LocalOidcProvider) -> None:
        super().__init__(
            provider.issuer,
            alg="RS256",
            refresh_token_generator=lambda *_, **__: generate_token(48),
            expires_generator=lambda *_, **__: ACCESS_TOKEN_SECONDS,
        )
        self.provider = provider

    def get_jwks(self) -> KeySet:
        return self.provider.keys

    def get_audiences(self, client: _Client, user: SignIn, scope: str) -> str:
        return self.provider.audience

    def get_auth_time(self, user: SignIn) -> int:
        return user.auth_time

    def get_amr(self, user: SignIn) -> list[str]:
        return list(user.amr)

    def get_extra_claims(self, client: _Client, grant_type: str, user: SignIn, scope: str) -> dict[str, Any]:
        return {
            "groups": list(user.user.groups),
            "preferred_username": user.user.username,
            "name": user.user.name,
            "sid": user.sid,
        }


class _Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = ["none"]  # noqa: RUF012 - authlib's attribute

    def __init__(self, server: _Server) -> None:
        super().__init__(server)
        self.provider = server.provider

    def query_token(self, token_string: str, token_type_hint: str | None) -> _Token | None:
        return self.provider._find_token(token_string)

    def revoke_token(self, token: _Token, request: OAuth2Request) -> None:
        self.provider._revoke(token)


class _EndSession(EndSessionEndpoint):  # type: ignore[misc]
    def __init__(self, server: _Server) -> None:
        super().__init__(server)
        self.provider = server.provider

    def get_server_jwks(self) -> KeySet:
        return self.provider.public_keys

    def resolve_client_from_id_token_claims(self, id_token_claims: dict[str, Any]) -> Any | None:
        aud = id_token_claims.get("aud")
        if isinstance(aud, list) and len(aud) == 1:
            aud = aud[0]
        return self.server.query_client(aud) if isinstance(aud, str) else None

    def end_session(self, end_session_request: Any) -> None:
        claims = end_session_request.id_token_claims or {}
        if claims.get("iss") == self.provider.issuer and isinstance(claims.get("sid"), str):
            self.provider.end_sign_in(claims["sid"])


class _AccessTokenValidator(JWTBearerTokenValidator):  # type: ignore[misc]
    def __init__(self, provider: LocalOidcProvider) -> None:
        super().__init__(issuer=provider.issuer, resource_server=provider.audience)
        self.provider = provider

    def get_jwks(self) -> KeySet:
        return self.provider.public_keys


# -- the provider ------------------------------------------------------------------------------------


@dataclass
class _Login:
    """An authorization request waiting for its user: the request, then the user once the password
    was right (the TOTP page)."""

    args: MultiDict[str, str]
    expires_at: float
    username: str | None = None


@dataclass
class _Stores:
    codes: dict[str, _Code] = field(default_factory=dict)
    tokens: list[_Token] = field(default_factory=list)
    revoked_jti: set[str] = field(default_factory=set)
    logins: dict[str, _Login] = field(default_factory=dict)


class LocalOidcProvider:
    """The provider: ``wsgi_app`` is the WSGI application (``serve`` runs it on a port)."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        users: StaffDirectory,
        clients: Iterable[ClientRegistration],
        key: RSAKey | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.users = users
        self.clients = {c.client_id: c for c in clients}
        self.clock = clock
        self.key_id = secrets.token_hex(8)
        private = key or RSAKey.generate_key(2048, parameters={"kid": self.key_id, "use": "sig"})
        self.key_id = str(private.kid or self.key_id)
        self.keys = KeySet([private])
        self.public_keys = KeySet.import_key_set(self.keys.as_dict(private=False))
        self._stores = _Stores()
        self._lock = threading.Lock()
        self.server = _Server(self)
        code_grant, refresh_grant, id_token = _grants(self)
        self.server.register_grant(code_grant, [_S256Only(required=True), id_token])
        self.server.register_grant(refresh_grant)
        self.server.register_token_generator("default", _AccessTokens(self))
        self.server.register_endpoint(_Revocation(self.server))
        self.server.register_endpoint(_EndSession(self.server))
        self.validator = _AccessTokenValidator(self)

    # -- what the grants store

    def _save_code(self, code: _Code) -> None:
        with self._lock:
            now = self.clock()
            self._stores.codes = {k: c for k, c in self._stores.codes.items() if c.expires_at > now - 600}
            self._stores.codes[code.code] = code

    def _take_code(self, code: str, client_id: str) -> _Code | None:
        """The code, once: a second use is refused, and the tokens the first use issued are revoked."""
        with self._lock:
            found = self._stores.codes.get(code)
            if found is None or found.client_id != client_id:
                return None
            if found.used:
                for token in self._stores.tokens:
                    if token.code == code:
                        self._revoke_locked(token)
                return None
            found.used = True
            return found if found.expires_at > self.clock() else None

    def _nonce_seen(self, client_id: str | None, nonce: str) -> bool:
        with self._lock:
            return any(c.client_id == client_id and c.nonce == nonce for c in self._stores.codes.values())

    def _save_token(self, token: Mapping[str, Any], request: OAuth2Request) -> None:
        claims = _jwt_claims(str(token["access_token"]))
        code = request.authorization_code
        record = _Token(
            client_id=request.client.get_client_id(),
            sign_in=request.user,
            scope=str(token.get("scope", "")),
            access_jti=str(claims["jti"]),
            access_expires_at=float(claims["exp"]),
            refresh_token=token.get("refresh_token"),
            refresh_expires_at=time.time() + REFRESH_TOKEN_SECONDS,
            code=code.code if isinstance(code, _Code) else None,
        )
        with self._lock:
            now = time.time()
            self._stores.tokens = [t for t in self._stores.tokens if t.refresh_expires_at > now]
            self._stores.tokens.append(record)

    def _refreshable(self, refresh_token: str) -> _Token | None:
        with self._lock:
            for token in self._stores.tokens:
                if token.refresh_token and secrets.compare_digest(token.refresh_token, refresh_token):
                    return None if token.revoked or token.is_expired() else token
        return None

    def _find_token(self, token_string: str) -> _Token | None:
        jti = None
        if token_string.count(".") == 2:
            try:
                jti = _jwt_claims(token_string).get("jti")
            except (ValueError, IndexError):
                jti = None
        with self._lock:
            for token in self._stores.tokens:
                if (jti and token.access_jti == jti) or (
                    token.refresh_token and secrets.compare_digest(token.refresh_token, token_string)
                ):
                    return token
        return None

    def _revoke_locked(self, token: _Token) -> None:
        token.revoked = True
        self._stores.revoked_jti.add(token.access_jti)

    def _revoke(self, token: _Token) -> None:
        with self._lock:
            self._revoke_locked(token)

    def end_sign_in(self, sid: str) -> int:
        """Revoke every token of the sign-in ``sid``; how many."""
        with self._lock:
            ended = [t for t in self._stores.tokens if t.sign_in.sid == sid and not t.revoked]
            for token in ended:
                self._revoke_locked(token)
            return len(ended)

    def access_token_revoked(self, jti: str) -> bool:
        with self._lock:
            return jti in self._stores.revoked_jti

    def user_info(self, sign_in: SignIn, scope: str) -> UserInfo:
        info: dict[str, Any] = {"sub": sign_in.user.subject, "sid": sign_in.sid}
        if "profile" in scope.split():
            info.update(name=sign_in.user.name, preferred_username=sign_in.user.username)
        if "groups" in scope.split():
            info["groups"] = list(sign_in.user.groups)
        return UserInfo(info)

    # -- discovery

    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "revocation_endpoint": f"{self.issuer}/revoke",
            "end_session_endpoint": f"{self.issuer}/logout",
            "scopes_supported": list(SCOPES),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "revocation_endpoint_auth_methods_supported": ["none"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": [
                "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "amr", "sid", "name",
                "preferred_username", "groups",
            ],
        }  # fmt: skip

    # -- WSGI

    def wsgi_app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self._dispatch(request)
        except OAuth2Error as error:
            response = self.server.handle_error_response(None, error)
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        self._cors(request, response)
        result: Iterable[bytes] = response(environ, start_response)
        return result

    __call__ = wsgi_app

    def _dispatch(self, request: Request) -> Response:
        path, method = request.path.rstrip("/") or "/", request.method
        if method == "OPTIONS":
            return Response(status=204)
        if path == "/.well-known/openid-configuration":
            return _json(self.metadata())
        if path == "/jwks":
            return _json(self.public_keys.as_dict(private=False))
        if path == "/authorize" and method in ("GET", "POST"):
            return self._authorize(request)
        if path == "/token" and method == "POST":
            return self.server.create_token_response(request)  # type: ignore[no-any-return]
        if path == "/revoke" and method == "POST":
            return self.server.create_endpoint_response("revocation", request)  # type: ignore[no-any-return]
        if path == "/userinfo" and method in ("GET", "POST"):
            return self._userinfo(request)
        if path == "/logout" and method in ("GET", "POST"):
            return self._logout(request)
        if path == "/":
            return _page("本地员工身份提供方", "<p>这是本地开发环境的员工登录服务。</p>", status=200)
        return _json({"error": "not_found"}, status=404)

    def _cors(self, request: Request, response: Response) -> None:
        origin = request.headers.get("Origin")
        path = request.path.rstrip("/")
        if path in ("/.well-known/openid-configuration", "/jwks"):
            response.headers["Access-Control-Allow-Origin"] = "*"
            return
        if path not in ("/token", "/revoke", "/userinfo") or not origin:
            return
        if any(origin in c.origins for c in self.clients.values()):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Methods"] = "GET, POST"
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            response.headers["Access-Control-Max-Age"] = "600"
            response.headers["Vary"] = "Origin"

    # -- /authorize: the request, the password page, the TOTP page

    def _authorize(self, request: Request) -> Response:
        if request.method == "GET":
            oauth_request = _OAuthRequest.of(request)
            try:
                self.server.get_consent_grant(oauth_request)
            except OAuth2Error as error:
                if getattr(error, "redirect_uri", None):
                    return self.server.handle_error_response(oauth_request, error)  # type: ignore[no-any-return]
                return _page(
                    "无法登录",
                    # The request names no registered client or return address: nothing to go back to.
                    "<p class='error'>登录请求无效，请从控制台点「员工登录」进入。</p>",
                    status=400,
                )
            login_id = secrets.token_urlsafe(24)
            with self._lock:
                now = self.clock()
                self._stores.logins = {k: v for k, v in self._stores.logins.items() if v.expires_at > now}
                self._stores.logins[login_id] = _Login(
                    args=MultiDict(request.args), expires_at=now + LOGIN_SECONDS
                )
            return _password_page(login_id)
        login_id = request.form.get("login", "")
        with self._lock:
            login = self._stores.logins.get(login_id)
            if login is not None and login.expires_at <= self.clock():
                login = None
        if login is None:
            return _page(
                "登录页面已失效",
                "<p class='error'>页面已超时或已使用过。</p><p>请回到原来的页面重新点「员工登录」。</p>",
                status=400,
            )
        stored = _OAuthRequest(
            "GET",
            f"{self.issuer}/authorize?{urlencode(list(login.args.items(multi=True)))}",
            request.headers,
            login.args,
            MultiDict(),
        )
        if request.form.get("action") == "cancel":
            self._forget_login(login_id)
            grant = self.server.get_authorization_grant(stored)
            return self.server.create_authorization_response(stored, grant_user=None, grant=grant)  # type: ignore[no-any-return]
        if login.username is None:
            return self._password_step(request, login_id, login)
        return self._totp_step(request, login_id, login, stored)

    def _forget_login(self, login_id: str) -> None:
        with self._lock:
            self._stores.logins.pop(login_id, None)

    def _password_step(self, request: Request, login_id: str, login: _Login) -> Response:
        username = request.form.get("username", "").strip()
        check = self.users.check_password(username, request.form.get("password", ""))
        if check.outcome is Outcome.OK:
            with self._lock:
                login.username = username
            return _totp_page(login_id, username)
        return _password_page(login_id, username=username, error=_failure(check.outcome, check.remaining))

    def _totp_step(self, request: Request, login_id: str, login: _Login, stored: _OAuthRequest) -> Response:
        username = login.username or ""
        check = self.users.check_totp(username, request.form.get("otp", ""))
        if check.outcome is Outcome.LOCKED:
            self._forget_login(login_id)
            return _password_page("", username=username, error=_failure(check.outcome, check.remaining))
        if check.outcome is not Outcome.OK or check.user is None:
            return _totp_page(login_id, username, error=_failure(check.outcome, check.remaining, otp=True))
        self._forget_login(login_id)
        sign_in = SignIn(user=check.user, auth_time=int(self.clock()), sid=secrets.token_hex(16))
        grant = self.server.get_authorization_grant(stored)
        return self.server.create_authorization_response(stored, grant_user=sign_in, grant=grant)  # type: ignore[no-any-return]

    # -- /userinfo and /logout

    def _userinfo(self, request: Request) -> Response:
        scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
        claims = None
        if scheme.lower() == "bearer" and token:
            try:
                claims = self.validator.authenticate_token(token.strip())
                self.validator.validate_token(claims, ["openid"], request)
            except OAuth2Error:
                claims = None
        if claims is None or self.access_token_revoked(str(claims.get("jti"))):
            return _json(
                {"error": "invalid_token"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        user = self.users.by_subject(str(claims["sub"]))
        if user is None:
            return _json({"error": "invalid_token"}, status=401)
        sign_in = SignIn(user=user, auth_time=int(claims.get("auth_time", 0)), sid=str(claims.get("sid")))
        return _json(dict(self.user_info(sign_in, str(claims.get("scope", "")))))

    def _logout(self, request: Request) -> Response:
        try:
            ended = self.server.validate_endpoint_request("end_session", request)
        except OAuth2Error:
            # An ID token this provider did not sign (or not for this client): nothing is ended.
            return _page(
                "退出登录", "<p class='error'>退出请求无效，请回到控制台点「退出登录」。</p>", status=400
            )
        response = self.server.create_endpoint_response("end_session", ended)
        if response is not None:
            return response  # type: ignore[no-any-return]
        return _page("已退出登录", "<p>你已退出登录，可以关闭此页面。</p>")


# -- pages -------------------------------------------------------------------------------------------

_STYLE = """
body{font-family:-apple-system,"PingFang SC","Microsoft YaHei","WenQuanYi Micro Hei",sans-serif;
background:#f2f4f7;margin:0;padding:0 12px;color:#1f2933}
main{max-width:360px;margin:48px auto;background:#fff;border-radius:8px;padding:28px 24px;
box-shadow:0 1px 4px rgba(0,0,0,.08)}
h1{font-size:20px;margin:0 0 4px}.sub{color:#6b7280;font-size:13px;margin:0 0 20px}
label{display:block;font-size:14px;margin:14px 0 6px}
input{width:100%;box-sizing:border-box;font-size:16px;padding:10px;border:1px solid #cbd5e1;border-radius:6px}
button{width:100%;margin-top:20px;padding:11px;font-size:16px;border:0;border-radius:6px;background:#1a5fb4;
color:#fff}button.link{background:none;color:#6b7280;font-size:14px;margin-top:8px}
.error{color:#b91c1c;font-size:14px;margin:12px 0 0}
"""


_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


def _page(title: str, body: str, *, status: int = 200) -> Response:
    document = (
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body><main>"
        f"<h1>{html.escape(title)}</h1><p class='sub'>车联网卡实名登记 · 员工账号（本地）</p>{body}"
        "</main></body></html>"
    )
    return Response(
        document,
        status=status,
        content_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": _CSP,
            "X-Frame-Options": "DENY",
        },
    )


def _error(message: str | None) -> str:
    return f"<p class='error' id='error' role='alert'>{html.escape(message)}</p>" if message else ""


def _password_page(login_id: str, *, username: str = "", error: str | None = None) -> Response:
    if not login_id:
        return _page("员工登录", _error(error) + "<p>请回到原来的页面重新点「员工登录」。</p>")
    return _page(
        "员工登录",
        f"""<form method="post" action="authorize" autocomplete="off">
<input type="hidden" name="login" value="{html.escape(login_id)}">
<label for="username">用户名</label>
<input id="username" name="username" value="{html.escape(username)}" autocomplete="username" required>
<label for="password">密码</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
{_error(error)}
<button type="submit" id="next">下一步</button>
</form>
<form method="post" action="authorize"><input type="hidden" name="login" value="{html.escape(login_id)}">
<button class="link" name="action" value="cancel" id="cancel">取消</button></form>""",
    )


def _totp_page(login_id: str, username: str, *, error: str | None = None) -> Response:
    return _page(
        "动态验证码",
        f"""<p>{html.escape(username)}，请输入身份验证器中显示的 6 位动态验证码。</p>
<form method="post" action="authorize" autocomplete="off">
<input type="hidden" name="login" value="{html.escape(login_id)}">
<label for="otp">动态验证码</label>
<input id="otp" name="otp" inputmode="numeric" pattern="[0-9 ]*" maxlength="7"
 autocomplete="one-time-code" required autofocus>
{_error(error)}
<button type="submit" id="verify">登录</button>
</form>
<form method="post" action="authorize"><input type="hidden" name="login" value="{html.escape(login_id)}">
<button class="link" name="action" value="cancel" id="cancel">取消</button></form>""",
    )


def _failure(outcome: Outcome, remaining: int, *, otp: bool = False) -> str:
    if outcome is Outcome.LOCKED:
        minutes = max(1, (remaining + 59) // 60)
        return f"尝试次数过多，账号已锁定，请 {minutes} 分钟后再试。"
    what = "动态验证码错误或已使用过" if otp else "用户名或密码错误"
    if 0 < remaining < MAX_FAILURES:
        return f"{what}，还可以再试 {remaining} 次。"
    return f"{what}。"


def _json(doc: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        json.dumps(doc), status=status, content_type="application/json", headers=dict(headers or {})
    )


# -- serving -----------------------------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    """No request log: the query of a redirect carries codes, and nobody needs the lines."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


@dataclass
class RunningProvider:
    provider: LocalOidcProvider
    server: BaseWSGIServer
    thread: threading.Thread

    @property
    def issuer(self) -> str:
        return self.provider.issuer

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def serve(provider: LocalOidcProvider, port: int, host: str = "127.0.0.1") -> RunningProvider:
    """Run ``provider`` on ``host:port`` in a background thread (threaded: one thread per request)."""
    server = make_server(host, port, provider.wsgi_app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="local-oidc", daemon=True)
    thread.start()
    return RunningProvider(provider=provider, server=server, thread=thread)


def api_environment(issuer: str, client_id: str = CONSOLE_CLIENT_ID) -> dict[str, str]:
    """The API's settings (``chalicelib.core.oidc``) that make it trust this provider: the issuer, the
    console's client id as the audience, the ``groups`` claim (named as our roles), ``amr`` ``otp``."""
    return {
        "CHEKA_STAFF_OIDC_ISSUER": issuer,
        "CHEKA_STAFF_OIDC_AUDIENCE": client_id,
        "CHEKA_STAFF_OIDC_ROLES_CLAIM": "groups",
        "CHEKA_STAFF_OIDC_MFA_AMR": json.dumps(["otp"]),
        "CHEKA_STAFF_OIDC_SCOPES": json.dumps(list(SCOPES)),
    }


def console_client(api: str, client_id: str = CONSOLE_CLIENT_ID) -> ClientRegistration:
    """The console's registration: it runs at ``<api>/console`` and comes back there (a loopback API
    also as ``localhost``, the name a developer may type)."""
    api = api.rstrip("/")
    bases = [api]
    if "//127.0.0.1:" in api:
        bases.append(api.replace("//127.0.0.1:", "//localhost:", 1))
    uris = tuple(f"{base}/console{slash}" for base in bases for slash in ("", "/"))
    return ClientRegistration(client_id=client_id, redirect_uris=uris, post_logout_redirect_uris=uris)
