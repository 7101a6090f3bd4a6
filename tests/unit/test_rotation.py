"""Secret rotation: the rotation function's four steps against Secrets Manager (moto), and the overlap
that keeps every token and operator request valid across a rotation (``chalicelib.core.token_keys``,
``chalicelib.events.rotation``, ``chalicelib.adapters.operator.secrets``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.core import token_keys
from chalicelib.core.auth import Role, authenticate, issue_token
from chalicelib.core.settings import Settings
from chalicelib.events.rotation import STEPS, RotationRefused, rotate
from chalicelib.kernel.errors import Unauthenticated
from chalicelib.kernel.operators import Operator
from chalicelib.operators.keys import OperatorKeys, generate_operator_keys, secret_name
from tests.fakes.clock import FakeClock

REGION = "cn-north-1"


class RotatingSecretsManager:
    """Moto's Secrets Manager with what the real service does around a rotation function: it labels the
    new version ``AWSPENDING`` before the first step, reports rotation enabled, and removes the label once
    ``finishSecret`` has made the version current."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.exceptions = client.exceptions
        self._pending: dict[str, str] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def describe_secret(self, **kw: Any) -> dict[str, Any]:
        meta = dict(self._client.describe_secret(**kw))
        stages = {v: list(s) for v, s in meta.get("VersionIdsToStages", {}).items()}
        version = self._pending.get(meta["ARN"])
        if version is not None and version not in stages:
            stages[version] = ["AWSPENDING"]
        meta["VersionIdsToStages"] = stages
        meta["RotationEnabled"] = True
        return meta

    def rotate(self, settings: Settings, secret_id: str) -> str:
        """One whole rotation, as Secrets Manager drives it; answers the new version's id."""
        arn = self._client.describe_secret(SecretId=secret_id)["ARN"]
        version = str(uuid.uuid4())
        self._pending[arn] = version
        for step in STEPS:
            rotate(self, {"SecretId": arn, "ClientRequestToken": version, "Step": step}, settings)
        del self._pending[arn]
        self._client.update_secret_version_stage(
            SecretId=arn, VersionStage="AWSPENDING", RemoveFromVersionId=version
        )
        return version


@pytest.fixture
def secrets_manager() -> Iterator[Any]:
    from moto import mock_aws

    with mock_aws():
        import boto3

        yield boto3.client("secretsmanager", region_name=REGION)
    token_keys.reset()


@pytest.fixture
def prod() -> Settings:
    return Settings(stage="prod", region=REGION)


def _container(client: Any, settings: Settings, clock: FakeClock) -> token_keys.SecretsManagerTokenKeys:
    """One function container's view of the token key (its own cache)."""
    return token_keys.SecretsManagerTokenKeys(
        client,
        settings.token_secret_name,
        max_age_seconds=settings.rotation_cache_seconds,
        overlap_seconds=settings.rotation_overlap_seconds,
        min_refresh_seconds=0,
        clock=clock,
    )


def _signed_in(settings: Settings, token: str) -> str:
    return authenticate(settings, f"Bearer {token}").subject


def _refused(settings: Settings, token: str) -> str:
    with pytest.raises(Unauthenticated) as refused:
        authenticate(settings, f"Bearer {token}")
    return refused.value.code


def test_a_token_signed_before_a_rotation_verifies_after_it_and_one_two_rotations_old_does_not(
    secrets_manager: Any, prod: Settings
) -> None:
    secrets_manager.create_secret(Name=prod.token_secret_name, SecretString="k" * 32)
    sm = RotatingSecretsManager(secrets_manager)
    token_keys.install(prod, _container(sm, prod, FakeClock(datetime.now(UTC))))
    before = issue_token(prod, "owner-1", [Role.OWNER])

    sm.rotate(prod, prod.token_secret_name)
    token_keys.reset()  # the cache has expired
    token_keys.install(prod, _container(sm, prod, FakeClock(datetime.now(UTC))))
    after = issue_token(prod, "owner-2", [Role.OWNER])
    assert _signed_in(prod, before) == "owner-1"  # previous key, within the overlap
    assert _signed_in(prod, after) == "owner-2"

    sm.rotate(prod, prod.token_secret_name)
    token_keys.install(prod, _container(sm, prod, FakeClock(datetime.now(UTC))))
    assert _refused(prod, before) == "auth.invalid"  # two rotations old
    assert _signed_in(prod, after) == "owner-2"


def test_the_previous_token_key_stops_verifying_once_the_overlap_has_passed(
    secrets_manager: Any, prod: Settings
) -> None:
    secrets_manager.create_secret(Name=prod.token_secret_name, SecretString="k" * 32)
    sm = RotatingSecretsManager(secrets_manager)
    clock = FakeClock(datetime.now(UTC))
    token_keys.install(prod, _container(sm, prod, clock))
    long_lived = issue_token(prod, "owner-1", [Role.OWNER], ttl_seconds=6 * 3600)
    sm.rotate(prod, prod.token_secret_name)
    clock.advance(seconds=prod.rotation_cache_seconds)  # the container reads the rotated secret
    assert _signed_in(prod, long_lived) == "owner-1"
    clock.advance(seconds=prod.rotation_overlap_seconds)
    assert _refused(prod, long_lived) == "auth.invalid"


def test_a_container_still_holding_the_old_key_accepts_a_token_signed_with_the_new_one(
    secrets_manager: Any, prod: Settings
) -> None:
    secrets_manager.create_secret(Name=prod.token_secret_name, SecretString="k" * 32)
    sm = RotatingSecretsManager(secrets_manager)
    clock = FakeClock(datetime.now(UTC))
    stale = _container(sm, prod, clock)
    token_keys.install(prod, stale)
    old = issue_token(prod, "owner-1", [Role.OWNER])  # the stale container has read the key
    sm.rotate(prod, prod.token_secret_name)
    token_keys.install(prod, _container(sm, prod, clock))  # a fresh container signs with the new key
    new = issue_token(prod, "owner-2", [Role.OWNER])
    token_keys.install(prod, stale)  # its cache has not expired: it re-reads on the unknown kid
    assert _signed_in(prod, new) == "owner-2"
    assert _signed_in(prod, old) == "owner-1"


def test_a_forged_kid_makes_no_more_than_one_secret_read_per_refresh_interval(
    secrets_manager: Any, prod: Settings
) -> None:
    import jwt

    secrets_manager.create_secret(Name=prod.token_secret_name, SecretString="k" * 32)
    reads: list[str] = []

    class Counting(RotatingSecretsManager):
        def get_secret_value(self, **kw: Any) -> Any:
            reads.append(kw.get("VersionStage", ""))
            return secrets_manager.get_secret_value(**kw)

    source = token_keys.SecretsManagerTokenKeys(
        Counting(secrets_manager),
        prod.token_secret_name,
        max_age_seconds=300,
        overlap_seconds=7200,
        clock=FakeClock(datetime.now(UTC)),
    )
    token_keys.install(prod, source)
    forged = jwt.encode({"sub": "x"}, "f" * 40, algorithm="HS256", headers={"kid": "tunknown"})
    for _ in range(5):
        assert _refused(prod, forged) == "auth.invalid"
    assert reads.count("AWSCURRENT") == 2  # the first read, then one forced re-read


def test_the_rotation_steps_write_a_new_token_key_and_keep_the_old_as_previous(
    secrets_manager: Any, prod: Settings
) -> None:
    secrets_manager.create_secret(Name=prod.token_secret_name, SecretString="k" * 32)
    sm = RotatingSecretsManager(secrets_manager)
    version = sm.rotate(prod, prod.token_secret_name)
    # (the stage named: moto's unnamed read answers the version created first)
    current = secrets_manager.get_secret_value(SecretId=prod.token_secret_name, VersionStage="AWSCURRENT")
    previous = secrets_manager.get_secret_value(SecretId=prod.token_secret_name, VersionStage="AWSPREVIOUS")
    assert current["VersionId"] == version
    assert len(current["SecretString"]) >= 64
    assert previous["SecretString"] == "k" * 32
    # a step Secrets Manager retries changes nothing once the version is current
    event = {"SecretId": prod.token_secret_name, "ClientRequestToken": version, "Step": "createSecret"}
    rotate(sm, event, prod)
    again = secrets_manager.get_secret_value(SecretId=prod.token_secret_name, VersionStage="AWSCURRENT")
    assert again["SecretString"] == current["SecretString"]


def _hand_over(client: Any, settings: Settings, name: str, keys: OperatorKeys) -> str:
    """An operator's hand-over as docs/supply-chain.md has it: the keys agreed staged as ``AWSPENDING`` by
    hand, then the function invoked with that version's last two steps; answers the version's id."""
    version = str(
        client.put_secret_value(SecretId=name, SecretString=keys.to_json(), VersionStages=["AWSPENDING"])[
            "VersionId"
        ]
    )
    for step in ("testSecret", "finishSecret"):
        rotate(client, {"SecretId": name, "ClientRequestToken": version, "Step": step}, settings)
    return version


def test_an_operators_handed_over_keys_become_current_and_the_old_key_id_verifies_until_the_next(
    secrets_manager: Any, prod: Settings
) -> None:
    from chalicelib.adapters.operator.secrets import SecretsManagerKeySource

    operator = Operator.CHINA_MOBILE
    name = secret_name(prod.operator_secret_pattern, operator)
    old = generate_operator_keys(operator, app_id="oem-app")
    secrets_manager.create_secret(Name=name, SecretString=old.to_json())
    agreed = generate_operator_keys(operator, app_id="oem-app")  # the keys exchanged with the operator
    version = _hand_over(secrets_manager, prod, name, agreed)
    current = secrets_manager.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")
    assert current["VersionId"] == version
    assert current["SecretString"] == agreed.to_json()  # exactly the keys handed over, nothing invented
    source = SecretsManagerKeySource(secrets_manager, prod.operator_secret_pattern)
    assert source.current(operator).key_id == agreed.key_id  # we sign with the keys the operator holds
    assert source.find(operator, old.key_id) is not None  # callbacks signed with the old still verify
    _hand_over(secrets_manager, prod, name, generate_operator_keys(operator, app_id="oem-app"))
    source.clear()
    assert source.find(operator, old.key_id) is None  # two hand-overs old


def test_a_rotation_of_an_operators_keys_without_a_hand_over_is_refused_and_writes_nothing(
    secrets_manager: Any, prod: Settings
) -> None:
    operator = Operator.CHINA_TELECOM
    name = secret_name(prod.operator_secret_pattern, operator)
    old = generate_operator_keys(operator, app_id="oem-app")
    secrets_manager.create_secret(Name=name, SecretString=old.to_json())
    with pytest.raises(RotationRefused, match="hand-over"):
        RotatingSecretsManager(secrets_manager).rotate(prod, name)
    current = secrets_manager.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")
    assert current["SecretString"] == old.to_json()
    assert len(secrets_manager.list_secret_version_ids(SecretId=name)["Versions"]) == 1


def test_handed_over_keys_that_are_not_the_operators_never_become_current_even_without_the_test_step(
    secrets_manager: Any, prod: Settings
) -> None:
    name = secret_name(prod.operator_secret_pattern, Operator.CHINA_MOBILE)
    old = generate_operator_keys(Operator.CHINA_MOBILE, app_id="oem-app")
    secrets_manager.create_secret(Name=name, SecretString=old.to_json())
    wrong = generate_operator_keys(Operator.CHINA_UNICOM, app_id="oem-app")
    version = secrets_manager.put_secret_value(
        SecretId=name, SecretString=wrong.to_json(), VersionStages=["AWSPENDING"]
    )["VersionId"]
    with pytest.raises(RotationRefused, match="another operator"):
        rotate(
            secrets_manager, {"SecretId": name, "ClientRequestToken": version, "Step": "finishSecret"}, prod
        )
    current = secrets_manager.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")
    assert current["SecretString"] == old.to_json()


def test_the_rotation_refuses_secrets_it_does_not_rotate_and_operators_without_keys(
    secrets_manager: Any, prod: Settings
) -> None:
    sm = RotatingSecretsManager(secrets_manager)
    secrets_manager.create_secret(Name=prod.authority_secret_name, SecretString='{"secret_id": "x"}')
    with pytest.raises(RotationRefused, match="not a secret this function rotates"):
        sm.rotate(prod, prod.authority_secret_name)
    placeholder = secret_name(prod.operator_secret_pattern, Operator.CHINA_UNICOM)
    secrets_manager.create_secret(Name=placeholder, SecretString="infra-placeholder-without-keys")
    with pytest.raises(RotationRefused, match="hand-over"):
        sm.rotate(prod, placeholder)
    # nothing was written: the placeholder is still the only version
    assert len(secrets_manager.list_secret_version_ids(SecretId=placeholder)["Versions"]) == 1


def test_a_token_issued_before_tokens_named_their_key_still_verifies_with_the_current_or_previous_key(
    secrets_manager: Any, prod: Settings
) -> None:
    import time

    import jwt

    secrets_manager.create_secret(Name=prod.token_secret_name, SecretString="k" * 32)
    sm = RotatingSecretsManager(secrets_manager)
    now = int(time.time())
    claims = {"sub": "owner-0", "roles": ["owner"], "iss": prod.token_issuer, "iat": now, "exp": now + 600}
    unnamed = jwt.encode({**claims, "jti": "a"}, "k" * 32, algorithm="HS256")  # no kid header
    sm.rotate(prod, prod.token_secret_name)
    token_keys.install(prod, _container(sm, prod, FakeClock(datetime.now(UTC))))
    assert _signed_in(prod, unnamed) == "owner-0"  # the previous key, tried after the current one
    forged = jwt.encode({**claims, "jti": "b"}, "x" * 32, algorithm="HS256")
    assert _refused(prod, forged) == "auth.invalid"
