"""The Secrets Manager rotation function (``rotate_secrets``): a new token signing key, or the new keys of
one operator, in the four steps Secrets Manager calls it with.

The token key rotates on a schedule (infra's ``RotationSchedule``, every ``rotation_days``). An operator's
keys rotate only at a hand-over with the operator: keys it never received would break every push to it,
so the function never invents them. The keys agreed are staged by hand as the secret's ``AWSPENDING``
version, and the function is invoked with that version's ``testSecret`` and ``finishSecret`` steps
(docs/supply-chain.md); a ``createSecret`` for an operator finds them staged or is refused.

- ``createSecret``: the new value as the ``AWSPENDING`` version (once per rotation: a retried step finds
  it there). A token key is 64 random URL-safe characters.
- ``setSecret``: nothing to install elsewhere: whoever uses these keys reads them from this secret.
- ``testSecret``: the pending value must be usable (a key long enough that signs and verifies a token;
  operator keys that parse, belong to the secret's operator and carry a new ``key_id``).
- ``finishSecret``: ``AWSCURRENT`` moves to the new version; the old one becomes ``AWSPREVIOUS``.

Nothing is dropped while containers catch up: tokens signed with the previous key verify until
``rotation_overlap_seconds`` after the rotation (``chalicelib.core.token_keys``), operator requests
and callbacks are accepted under the current and the previous ``key_id``
(``chalicelib.adapters.operator.secrets``).
No key material is ever logged: the log names the secret, the step and the version.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from chalicelib.core.token_keys import CURRENT, MIN_KEY_CHARS, PENDING

if TYPE_CHECKING:
    from chalicelib.core.settings import Settings
    from chalicelib.kernel.operators import Operator

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
#: Characters of a new token key (``secrets.token_urlsafe(48)``: 384 random bits).
TOKEN_KEY_BYTES = 48


class RotationRefused(Exception):
    """The event names a secret, version or step this function does not rotate (Secrets Manager then
    marks the rotation failed and keeps the current version)."""


@dataclass(frozen=True)
class RotatedSecret:
    """What a secret holds: the token signing key, or the keys of one operator."""

    kind: Literal["token", "operator"]
    operator: Operator | None = None


def rotated_secret(settings: Settings, name: str) -> RotatedSecret:
    """What the secret called ``name`` holds; refused for any secret the stage does not rotate."""
    from chalicelib.kernel.operators import Operator
    from chalicelib.operators.keys import secret_name

    if name == settings.token_secret_name:
        return RotatedSecret("token")
    for operator in Operator:
        if name == secret_name(settings.operator_secret_pattern, operator):
            return RotatedSecret("operator", operator)
    raise RotationRefused(f"{name} is not a secret this function rotates")


def new_value(secret: RotatedSecret) -> str:
    """The next version's value: a new token key. Operator keys are never generated here (module
    docstring): without keys staged at a hand-over, their rotation is refused."""
    if secret.kind == "token":
        return secrets.token_urlsafe(TOKEN_KEY_BYTES)
    raise RotationRefused(
        "operator keys rotate at a hand-over only: stage the keys agreed with the operator as the "
        "AWSPENDING version first"
    )


def check_value(secret: RotatedSecret, pending: str, current: str) -> None:
    """Refuse a pending value the functions could not use (``RotationRefused``)."""
    if secret.kind == "token":
        import jwt

        from chalicelib.core.token_keys import key_id

        if len(pending) < MIN_KEY_CHARS:
            raise RotationRefused(f"the new token key is shorter than {MIN_KEY_CHARS} characters")
        if pending == current:
            raise RotationRefused("the new token key is the current one")
        probe = jwt.encode(
            {"sub": "rotation-test"}, pending, algorithm="HS256", headers={"kid": key_id(pending)}
        )
        if jwt.decode(probe, pending, algorithms=["HS256"]).get("sub") != "rotation-test":
            raise RotationRefused("the new token key does not verify what it signs")
        return
    from chalicelib.operators.keys import OperatorKeys, OperatorKeysUnavailable

    try:
        keys = OperatorKeys.from_json(pending)
    except OperatorKeysUnavailable as exc:
        raise RotationRefused(str(exc)) from None
    if keys.operator is not secret.operator:
        raise RotationRefused("the new keys belong to another operator")
    try:
        if OperatorKeys.from_json(current).key_id == keys.key_id:
            raise RotationRefused("the new keys reuse the current key id")
    except OperatorKeysUnavailable:
        pass


def _log(step: str, name: str, version: str, outcome: str) -> None:
    from chalicelib.core.observability import logger

    logger.info(
        "secret rotation", extra={"step": step, "secret": name, "version": version, "outcome": outcome}
    )


def rotate(client: Any, event: dict[str, Any], settings: Settings) -> None:
    """One step of one rotation: ``event`` is Secrets Manager's (``SecretId``, ``ClientRequestToken``,
    ``Step``); ``client`` a Secrets Manager client allowed to touch the rotated secrets only."""
    arn, version, step = str(event["SecretId"]), str(event["ClientRequestToken"]), str(event["Step"])
    if step not in STEPS:
        raise RotationRefused(f"unknown step {step!r}")
    meta = client.describe_secret(SecretId=arn)
    name = str(meta["Name"])
    secret = rotated_secret(settings, name)
    # the token key's rotation is Secrets Manager's; an operator's hand-over is invoked by hand
    if secret.kind == "token" and not meta.get("RotationEnabled"):
        raise RotationRefused(f"{name}: rotation is not enabled")
    stages = meta.get("VersionIdsToStages", {})
    if version not in stages:
        raise RotationRefused(f"{name}: version {version} is not a version of the secret")
    if CURRENT in stages[version]:
        _log(step, name, version, "already current")
        return
    if PENDING not in stages[version]:
        raise RotationRefused(f"{name}: version {version} is not pending")
    current = str(client.get_secret_value(SecretId=arn, VersionStage=CURRENT)["SecretString"])
    if step == "createSecret":
        try:
            client.get_secret_value(SecretId=arn, VersionId=version, VersionStage=PENDING)
            _log(step, name, version, "already created")
            return
        except client.exceptions.ResourceNotFoundException:
            pass
        client.put_secret_value(
            SecretId=arn,
            ClientRequestToken=version,
            SecretString=new_value(secret),
            VersionStages=[PENDING],
        )
    elif step == "testSecret":
        pending = client.get_secret_value(SecretId=arn, VersionId=version, VersionStage=PENDING)
        check_value(secret, str(pending["SecretString"]), current)
    elif step == "finishSecret":
        # a hand-over invoked by hand may have skipped testSecret: nothing unchecked becomes current
        pending = client.get_secret_value(SecretId=arn, VersionId=version, VersionStage=PENDING)
        check_value(secret, str(pending["SecretString"]), current)
        previous_current = next(v for v, labels in stages.items() if CURRENT in labels)
        client.update_secret_version_stage(
            SecretId=arn, VersionStage=CURRENT, MoveToVersionId=version, RemoveFromVersionId=previous_current
        )
    _log(step, name, version, "done")


def handle(event: dict[str, Any], context: Any) -> None:
    """The Lambda's handler (``app.rotate_secrets``): Secrets Manager's schedule, or an operator's
    hand-over invoked by hand with the same event (``SecretId``, ``ClientRequestToken``, ``Step``)."""
    from chalicelib.core.aws import client
    from chalicelib.core.settings import get_settings

    rotate(client("secretsmanager"), event, get_settings())
