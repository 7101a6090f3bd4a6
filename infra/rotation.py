"""Secret rotation of a stage, by the ``rotate_secrets`` function (``chalicelib.events.rotation``):

- the token signing key rotates by itself every ``Settings.rotation_days``: its secret has an
  ``AWS::SecretsManager::RotationSchedule`` naming the function (Secrets Manager may invoke it for this
  account only). A deploy never rotates by itself (``RotateImmediatelyOnUpdate`` false): the first
  rotation comes ``rotation_days`` after the schedule.
- an operator's keys rotate only on demand, at a hand-over agreed with the operator: keys the operator
  never received would break every push to it, so no schedule may invent them. The keys agreed are
  staged as the secret's ``AWSPENDING`` version, then the same function is invoked with the
  ``testSecret`` and ``finishSecret`` steps of that version (docs/supply-chain.md): it checks them and
  makes them current.

The function's role (``infra.roles``: ``RotateSecrets``) may describe, read, write and relabel the token
key's versions, describe, read and relabel the operator keys' (never write them: their values come from
the hand-over), and nothing else: no table, no bucket, no KMS key (the secrets are under Secrets
Manager's own key).

Rotation drops nothing: the functions verify tokens with the current and, for ``rotation_overlap_seconds``,
the previous key (``chalicelib.core.token_keys``), and accept operator messages under the current and the
previous ``key_id`` (``chalicelib.adapters.operator.secrets``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Aws
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager

from chalicelib.core.resources import TOKEN_SECRET

if TYPE_CHECKING:
    from aws_cdk import aws_secretsmanager as sm

    from infra.stack import ChekaStack

#: The rotation function's logical id (``@app.lambda_function(name="rotate_secrets")``).
ROTATION_FUNCTION = "RotateSecrets"
#: What a rotation does to a secret (``chalicelib.events.rotation``): the four steps' calls.
ROTATION_ACTIONS = (
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecretVersionStage",
)
#: What an operator's hand-over needs: the staged keys are read, checked and made current, never written.
HAND_OVER_ACTIONS = tuple(a for a in ROTATION_ACTIONS if a != "secretsmanager:PutSecretValue")


def scheduled_secrets(stack: ChekaStack) -> dict[str, sm.Secret]:
    """Declared secret id -> secret, for the secrets rotated on a schedule: the token key alone (operator
    keys rotate at a hand-over, module docstring)."""
    return {
        declared_id: secret for declared_id, secret in stack.secrets.items() if declared_id == TOKEN_SECRET
    }


def rotation_function_arn(stack: ChekaStack) -> str:
    from infra.stack import function_name_prefix

    name = function_name_prefix(stack.settings) + ROTATION_FUNCTION
    return f"arn:{Aws.PARTITION}:lambda:{Aws.REGION}:{Aws.ACCOUNT_ID}:function:{name}"


def add_secret_rotation(stack: ChekaStack) -> None:
    """The token key's rotation schedule, and Secrets Manager's permission to invoke the function (nothing
    when the stack was made without the API's functions)."""
    if stack.api is None:
        return
    function = next((f for f in stack.functions(stack.api) if f.node.id == ROTATION_FUNCTION), None)
    if function is None:
        raise ValueError(f"the app declares no {ROTATION_FUNCTION} function (app.rotate_secrets)")
    permission = lambda_.CfnPermission(
        stack,
        "RotateSecretsInvokedBySecretsManager",
        action="lambda:InvokeFunction",
        function_name=rotation_function_arn(stack),
        principal="secretsmanager.amazonaws.com",
        source_account=Aws.ACCOUNT_ID,
    )
    permission.node.add_dependency(function)
    for secret in scheduled_secrets(stack).values():
        schedule = secretsmanager.CfnRotationSchedule(
            stack,
            f"{secret.node.id}Rotation",
            secret_id=secret.secret_arn,
            rotation_lambda_arn=rotation_function_arn(stack),
            rotate_immediately_on_update=False,
            rotation_rules=secretsmanager.CfnRotationSchedule.RotationRulesProperty(
                automatically_after_days=stack.settings.rotation_days
            ),
        )
        schedule.node.add_dependency(permission)
