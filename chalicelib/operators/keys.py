"""Per-operator keys of the push interface, kept in AWS Secrets Manager (one JSON secret per operator).

Each operator shares with the platform two pairs of symmetric keys, one per direction, so that a
leaked platform→operator key cannot forge the operator's answers and the other way round:

- ``to_operator``: the platform signs pushes and listing requests and encrypts personal fields with it;
- ``to_platform``: the operator signs and encrypts its callbacks with it.

Secret value (``SecretString``)::

    {"format": 1, "operator": "china_mobile", "app_id": "cheka", "key_id": "k1f3a…",
     "sign_method": "HMAC-SM3", "cipher": "SM4-GCM",
     "to_operator": {"signing_key": "<base64>", "encryption_key": "<base64>"},
     "to_platform": {"signing_key": "<base64>", "encryption_key": "<base64>"}}

Rotation: :func:`rotate_operator_secret` writes a new version; Secrets Manager keeps the old one as
``AWSPREVIOUS``. Senders always use the current keys and name them (``key_id``); receivers accept the
current and the previous version, so both sides can switch within the cache's ``max_age_seconds``.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from chalicelib.kernel.operators import Operator
from chalicelib.operators.signing import SignMethod

SECRET_FORMAT = 1


class Direction(StrEnum):
    TO_OPERATOR = "to_operator"  # platform → operator: pushes, listing requests
    TO_PLATFORM = "to_platform"  # operator → platform: callbacks


class Cipher(StrEnum):
    """Authenticated encryption of personal fields."""

    SM4_GCM = "SM4-GCM"  # 国密 SM4 (GB/T 32907) in GCM mode, 128-bit key (RFC 8998)
    AES_256_GCM = "AES-256-GCM"


KEY_BYTES: dict[Cipher, int] = {Cipher.SM4_GCM: 16, Cipher.AES_256_GCM: 32}


SIGNING_KEY_BYTES = 32


class OperatorKeysUnavailable(Exception):
    """No usable secret for an operator (missing, unreadable, or in an unknown format)."""


@dataclass(frozen=True, repr=False)
class DirectionKeys:
    signing_key: bytes
    encryption_key: bytes

    def __repr__(self) -> str:
        return "DirectionKeys(<redacted>)"


@dataclass(frozen=True, repr=False)
class OperatorKeys:
    """One version of one operator's secret. ``repr`` never shows key material."""

    operator: Operator
    app_id: str  # the platform's application id at this operator
    key_id: str  # names this version on the wire (header X-Key-Id)
    sign_method: SignMethod
    cipher: Cipher
    to_operator: DirectionKeys
    to_platform: DirectionKeys

    def __repr__(self) -> str:
        return f"OperatorKeys(operator={self.operator.value}, key_id={self.key_id})"

    def direction(self, direction: Direction) -> DirectionKeys:
        return self.to_operator if direction is Direction.TO_OPERATOR else self.to_platform

    def to_json(self) -> str:
        def b64(raw: bytes) -> str:
            return base64.b64encode(raw).decode()

        def pair(keys: DirectionKeys) -> dict[str, str]:
            return {"signing_key": b64(keys.signing_key), "encryption_key": b64(keys.encryption_key)}

        return json.dumps(
            {
                "format": SECRET_FORMAT,
                "operator": self.operator.value,
                "app_id": self.app_id,
                "key_id": self.key_id,
                "sign_method": self.sign_method.value,
                "cipher": self.cipher.value,
                "to_operator": pair(self.to_operator),
                "to_platform": pair(self.to_platform),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> OperatorKeys:
        try:
            doc = json.loads(text)
            if doc.get("format") != SECRET_FORMAT:
                raise ValueError(f"secret format {doc.get('format')!r}, expected {SECRET_FORMAT}")
            cipher = Cipher(doc["cipher"])

            def pair(part: Mapping[str, str]) -> DirectionKeys:
                keys = DirectionKeys(
                    signing_key=base64.b64decode(part["signing_key"], validate=True),
                    encryption_key=base64.b64decode(part["encryption_key"], validate=True),
                )
                if len(keys.encryption_key) != KEY_BYTES[cipher]:
                    raise ValueError(f"{cipher.value} needs a {KEY_BYTES[cipher]}-byte encryption key")
                if len(keys.signing_key) < 16:
                    raise ValueError("signing keys must have at least 16 bytes")
                return keys

            return cls(
                operator=Operator(doc["operator"]),
                app_id=str(doc["app_id"]),
                key_id=str(doc["key_id"]),
                sign_method=SignMethod(doc["sign_method"]),
                cipher=cipher,
                to_operator=pair(doc["to_operator"]),
                to_platform=pair(doc["to_platform"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # The message names the problem, never the key material.
            raise OperatorKeysUnavailable(f"unusable operator secret: {type(exc).__name__}: {exc}") from None


def generate_operator_keys(
    operator: Operator,
    *,
    app_id: str = "cheka",
    sign_method: SignMethod = SignMethod.HMAC_SM3,
    cipher: Cipher = Cipher.SM4_GCM,
) -> OperatorKeys:
    """Fresh random keys (what an operator and the OEM agree on when the interface is opened)."""

    def pair() -> DirectionKeys:
        return DirectionKeys(secrets.token_bytes(SIGNING_KEY_BYTES), secrets.token_bytes(KEY_BYTES[cipher]))

    return OperatorKeys(
        operator=operator,
        app_id=app_id,
        key_id=f"k{secrets.token_hex(6)}",
        sign_method=sign_method,
        cipher=cipher,
        to_operator=pair(),
        to_platform=pair(),
    )


def secret_name(name_pattern: str, operator: Operator) -> str:
    """``name_pattern`` with ``{operator}`` filled in, e.g. ``cheka/test/operator/{operator}``."""
    if "{operator}" not in name_pattern:
        raise ValueError("the secret name pattern must contain {operator}")
    return name_pattern.replace("{operator}", operator.value)
