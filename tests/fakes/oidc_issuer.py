"""A minimal OpenID Connect issuer for the verifier's tests: keys generated here, its discovery document
and JWKS served over HTTP on a free loopback port, and tokens minted with any claims or header.

It signs whatever it is asked to (a token without a second factor, an expired one, one for another
audience): the tests prove what the API refuses. ``down()`` stops answering (connection refused),
``hang`` makes it accept and never answer (the fetch's timeout), ``rotate()`` replaces its key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

AUDIENCE = "cheka-console-test"


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TestIssuer:
    """Discovery at ``<issuer>/.well-known/openid-configuration``, keys at ``<issuer>/jwks``."""

    __test__ = False  # not a test class

    def __init__(self, *, audience: str = AUDIENCE) -> None:
        self.audience = audience
        self.key = rsa_key()
        self.kid = uuid.uuid4().hex[:12]
        self.ec_key = ec.generate_private_key(ec.SECP256R1())
        self.ec_kid = uuid.uuid4().hex[:12]
        self.requests: list[str] = []
        self.hang = False
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- the server --------------------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TestIssuer:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer.requests.append(self.path)
                if issuer.hang:
                    time.sleep(5)
                    return
                if self.path == "/.well-known/openid-configuration":
                    self._json(issuer.discovery())
                elif self.path == "/jwks":
                    self._json(issuer.jwks())
                else:
                    self.send_error(404)

            def _json(self, doc: dict[str, Any]) -> None:
                body = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()
        return self

    def down(self) -> None:
        """Stop answering: the port refuses connections."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "end_session_endpoint": f"{self.issuer}/logout",
            "jwks_uri": f"{self.issuer}/jwks",
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        }

    def jwks(self) -> dict[str, Any]:
        rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.ec_key.public_key()))
        return {
            "keys": [
                {**rsa_jwk, "kid": self.kid, "use": "sig", "alg": "RS256"},
                {**ec_jwk, "kid": self.ec_kid, "use": "sig", "alg": "ES256"},
            ]
        }

    def jwks_bytes(self) -> bytes:
        return json.dumps(self.jwks()).encode()

    def rotate(self) -> None:
        """A new RSA signing key under a new kid (the old one leaves the JWKS)."""
        self.key, self.kid = rsa_key(), uuid.uuid4().hex[:12]

    # -- tokens ------------------------------------------------------------------------------------

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """A staff reviewer's access token claims with a second factor; ``None`` removes a claim."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": "staff-0001",
            "iat": now,
            "exp": now + 900,
            "jti": uuid.uuid4().hex,
            "sid": "sid-" + uuid.uuid4().hex[:8],
            "amr": ["pwd", "otp"],
            "groups": ["reviewer"],
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(
        self,
        *,
        key: Any = None,
        kid: str | None = None,
        algorithm: str = "RS256",
        headers: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> str:
        if algorithm == "ES256":
            signing, key_id = key or self.ec_key, kid or self.ec_kid
        else:
            signing, key_id = key or self.key, kid or self.kid
        return jwt.encode(
            self.claims(**overrides),
            signing,
            algorithm=algorithm,
            headers={"kid": key_id, **(headers or {})},
        )

    def unsigned_token(self, **overrides: Any) -> str:
        """``alg: none``: no signature at all."""
        header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": self.kid}).encode())
        return f"{header}.{_b64(json.dumps(self.claims(**overrides)).encode())}."

    def hmac_with_public_key(self, **overrides: Any) -> str:
        """Key confusion: HS256 keyed with the bytes of the issuer's public key (anyone has them)."""
        public = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": self.kid}).encode())
        payload = _b64(json.dumps(self.claims(**overrides)).encode())
        signature = hmac.new(public, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64(signature)}"


@contextmanager
def running_issuer(**kwargs: Any) -> Iterator[TestIssuer]:
    issuer = TestIssuer(**kwargs).start()
    try:
        yield issuer
    finally:
        issuer.down()
