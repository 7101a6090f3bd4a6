"""Secret rotation in the synthesised stack (``infra.rotation``): a schedule for the token signing key
alone (operator keys rotate at a hand-over with the operator, never on a schedule), and a rotation
function whose role can touch those secrets and nothing else."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.conftest import Synth

pytestmark = pytest.mark.infra

FUNCTION = "AWS::Serverless::Function"
SCHEDULE = "AWS::SecretsManager::RotationSchedule"
#: Actions a rotation needs beyond reading (no other role of the stage may have them).
WRITES = {"secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage"}


def _resources(synth: Synth, kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in synth.json["Resources"].items() if v["Type"] == kind}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _token_secret_id(synth: Synth) -> str:
    (found,) = [
        logical_id
        for logical_id, secret in _resources(synth, "AWS::SecretsManager::Secret").items()
        if secret["Properties"]["Name"] == synth.settings.token_secret_name
    ]
    return found


def _operator_secret_ids(synth: Synth) -> set[str]:
    operator_prefix = synth.settings.operator_secret_pattern.split("{operator}")[0]
    return {
        logical_id
        for logical_id, secret in _resources(synth, "AWS::SecretsManager::Secret").items()
        if secret["Properties"]["Name"].startswith(operator_prefix)
    }


def _rotated_secret_ids(synth: Synth) -> set[str]:
    """Logical ids of the token key's secret and the operator keys' secrets."""
    return {_token_secret_id(synth)} | _operator_secret_ids(synth)


def _statements(synth: Synth, role_id: str) -> list[dict[str, Any]]:
    role = synth.json["Resources"][role_id]
    found = [s for p in role["Properties"].get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
    for policy in _resources(synth, "AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"].get("Roles", []):
            found += policy["Properties"]["PolicyDocument"]["Statement"]
    return found


def test_the_token_key_alone_rotates_on_a_schedule_and_no_operators_keys_do(synth: Synth) -> None:
    from chalicelib.kernel.operators import Operator

    assert len(_operator_secret_ids(synth)) == len(Operator)
    schedules = _resources(synth, SCHEDULE).values()
    scheduled = {s["Properties"]["SecretId"]["Ref"] for s in schedules}
    # keys an operator never received would break every push to it: they change at a hand-over only
    assert scheduled == {_token_secret_id(synth)}
    for schedule in schedules:
        props = schedule["Properties"]
        assert props["RotationRules"] == {"AutomaticallyAfterDays": synth.settings.rotation_days}
        assert props["RotateImmediatelyOnUpdate"] is False  # a deploy never rotates by itself
        assert "-RotateSecrets" in json.dumps(props["RotationLambdaARN"])


def test_secrets_manager_alone_may_invoke_the_rotation_function_for_this_account(synth: Synth) -> None:
    permissions = [
        p["Properties"]
        for p in _resources(synth, "AWS::Lambda::Permission").values()
        if "-RotateSecrets" in json.dumps(p["Properties"]["FunctionName"])
    ]
    assert len(permissions) == 1
    [permission] = permissions
    assert permission["Principal"] == "secretsmanager.amazonaws.com"
    assert permission["SourceAccount"] == {"Ref": "AWS::AccountId"}


def test_the_rotation_functions_role_touches_the_rotated_secrets_only(synth: Synth) -> None:
    functions = _resources(synth, FUNCTION)
    role_ref = functions["RotateSecrets"]["Properties"]["Role"]
    role_id = role_ref["Fn::GetAtt"][0]
    statements = _statements(synth, role_id)
    rotated = {json.dumps({"Ref": logical_id}) for logical_id in _rotated_secret_ids(synth)}
    operators = {json.dumps({"Ref": logical_id}) for logical_id in _operator_secret_ids(synth)}
    services = set()
    for statement in statements:
        actions = _as_list(statement["Action"])
        services |= {a.split(":")[0] for a in actions}
        if any(a.startswith("secretsmanager:") for a in actions):
            touched = {json.dumps(r) for r in _as_list(statement["Resource"])}
            assert touched <= rotated
            if touched & operators:  # a hand-over checks and relabels the keys staged, never writes keys
                assert "secretsmanager:PutSecretValue" not in actions
                assert "secretsmanager:UpdateSecretVersionStage" in actions
    token = json.dumps({"Ref": _token_secret_id(synth)})
    assert [
        s
        for s in statements
        if "secretsmanager:PutSecretValue" in _as_list(s["Action"])
        and token in {json.dumps(r) for r in _as_list(s["Resource"])}
    ]
    assert services == {"secretsmanager", "logs", "xray"}  # no table, bucket, queue or KMS key
    # and no other function's role may write a secret's versions
    for logical_id, function in functions.items():
        if logical_id == "RotateSecrets" or "Fn::GetAtt" not in function["Properties"]["Role"]:
            continue
        other = function["Properties"]["Role"]["Fn::GetAtt"][0]
        written = {a for s in _statements(synth, other) for a in _as_list(s["Action"])} & WRITES
        assert not written, f"{logical_id} may write secrets: {written}"
