"""Operator keys in AWS Secrets Manager: the key source, the bootstrap and rotation of secrets."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from chalicelib.kernel.operators import Operator
from chalicelib.operators.keys import (
    Cipher,
    OperatorKeys,
    OperatorKeysUnavailable,
    generate_operator_keys,
    secret_name,
)
from chalicelib.operators.ports import OperatorKeySource
from chalicelib.operators.signing import SignMethod


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
        try:
            previous = self._read(operator, "AWSPREVIOUS")
        except OperatorKeysUnavailable:
            # The previous version is what infra created before the keys were put in (a generated
            # password, no keys): nothing to accept from it, and no reason to refuse the current keys.
            previous = None
        entry = (time.monotonic(), current, previous)
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
