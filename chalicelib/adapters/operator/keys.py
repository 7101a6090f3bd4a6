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
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from chalicelib.adapters.operator.signing import SignMethod
from chalicelib.domain.validators import Operator

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


class OperatorKeySource(ABC):
    """Where the keys come from. Senders use ``current``; receivers ``find`` the version a request names."""

    @abstractmethod
    def current(self, operator: Operator) -> OperatorKeys:
        """The current keys; raises :class:`OperatorKeysUnavailable`."""

    def find(self, operator: Operator, key_id: str) -> OperatorKeys | None:
        """The version called ``key_id`` if it is still accepted, else None."""
        keys = self.current(operator)
        return keys if keys.key_id == key_id else None


class StaticKeySource(OperatorKeySource):
    """Keys held in memory (unit tests, a sandbox given its keys directly)."""

    def __init__(self, keys: Iterable[OperatorKeys]) -> None:
        self._keys = {k.operator: k for k in keys}

    def current(self, operator: Operator) -> OperatorKeys:
        try:
            return self._keys[operator]
        except KeyError:
            raise OperatorKeysUnavailable(f"no keys for {operator.value}") from None


class SecretsManagerKeySource(OperatorKeySource):
    """Reads ``AWSCURRENT`` and ``AWSPREVIOUS`` of each operator's secret; caches them ``max_age_seconds``.

    A request naming a key id that is neither triggers one early reload (the sender may have picked
    up a rotation first), at most once per ``min_refresh_seconds`` per operator.
    """

    def __init__(
        self,
        client: Any,
        name_pattern: str,
        *,
        max_age_seconds: float = 300.0,
        min_refresh_seconds: float = 5.0,
    ) -> None:
        secret_name(name_pattern, Operator.CHINA_MOBILE)  # validates the pattern
        self._client = client
        self._pattern = name_pattern
        self._max_age = max_age_seconds
        self._min_refresh = min_refresh_seconds
        self._lock = threading.Lock()
        self._cache: dict[Operator, tuple[float, OperatorKeys, OperatorKeys | None]] = {}
        self._forced: dict[Operator, float] = {}

    def _read(self, operator: Operator, stage: str) -> OperatorKeys | None:
        name = secret_name(self._pattern, operator)
        try:
            resp = self._client.get_secret_value(SecretId=name, VersionStage=stage)
        except self._client.exceptions.ResourceNotFoundException:
            return None
        keys = OperatorKeys.from_json(resp["SecretString"])
        if keys.operator is not operator:
            raise OperatorKeysUnavailable(f"secret {name} holds the keys of {keys.operator.value}")
        return keys

    def _load(self, operator: Operator) -> tuple[float, OperatorKeys, OperatorKeys | None]:
        current = self._read(operator, "AWSCURRENT")
        if current is None:
            raise OperatorKeysUnavailable(f"no secret {secret_name(self._pattern, operator)}")
        entry = (time.monotonic(), current, self._read(operator, "AWSPREVIOUS"))
        with self._lock:
            self._cache[operator] = entry
        return entry

    def _entry(self, operator: Operator) -> tuple[float, OperatorKeys, OperatorKeys | None]:
        with self._lock:
            entry = self._cache.get(operator)
        if entry is None or time.monotonic() - entry[0] > self._max_age:
            entry = self._load(operator)
        return entry

    def current(self, operator: Operator) -> OperatorKeys:
        return self._entry(operator)[1]

    def find(self, operator: Operator, key_id: str) -> OperatorKeys | None:
        _, current, previous = self._entry(operator)
        for keys in (current, previous):
            if keys is not None and keys.key_id == key_id:
                return keys
        # An unknown key id forces a reload (the sender may have seen a rotation first), at most once
        # per min_refresh_seconds per operator so that made-up ids cannot hammer Secrets Manager.
        now = time.monotonic()
        with self._lock:
            last = self._forced.get(operator)
            if last is not None and now - last < self._min_refresh:
                return None
            self._forced[operator] = now
        _, current, previous = self._load(operator)
        return next((k for k in (current, previous) if k is not None and k.key_id == key_id), None)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()


def bootstrap_operator_secrets(
    client: Any,
    name_pattern: str,
    operators: Iterable[Operator] = tuple(Operator),
    *,
    app_id: str = "cheka",
    sign_method: SignMethod = SignMethod.HMAC_SM3,
    cipher: Cipher = Cipher.SM4_GCM,
) -> dict[Operator, bool]:
    """Create a secret with random keys for each operator that has none (local run, tests).

    Idempotent; answers, per operator, whether a secret was created. Deployed stages get their
    secrets from the operators' key exchange, not from here.
    """
    created: dict[Operator, bool] = {}
    for operator in operators:
        name = secret_name(name_pattern, operator)
        try:
            client.describe_secret(SecretId=name)
            created[operator] = False
            continue
        except client.exceptions.ResourceNotFoundException:
            pass
        keys = generate_operator_keys(operator, app_id=app_id, sign_method=sign_method, cipher=cipher)
        try:
            client.create_secret(
                Name=name,
                Description=f"cheka operator push keys: {operator.value}",
                SecretString=keys.to_json(),
            )
            created[operator] = True
        except client.exceptions.ResourceExistsException:  # another process won the race
            created[operator] = False
    return created


def rotate_operator_secret(client: Any, name_pattern: str, operator: Operator) -> OperatorKeys:
    """Write new keys as the current version (the old ones stay readable as ``AWSPREVIOUS``)."""
    name = secret_name(name_pattern, operator)
    old = OperatorKeys.from_json(client.get_secret_value(SecretId=name)["SecretString"])
    new = generate_operator_keys(operator, app_id=old.app_id, sign_method=old.sign_method, cipher=old.cipher)
    client.put_secret_value(SecretId=name, SecretString=new.to_json())
    return new
