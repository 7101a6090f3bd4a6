"""Staff sign-in in the synthesised stack (``infra.staff``): where the region offers Cognito user pools a
pool with TOTP MFA required, a group per staff role and a short-lived public PKCE client, and the
functions pointed at it; in the China regions no pool, the corporate IdP the stage names, and a stage
naming none refused before synthesis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib.core.config import Settings
from chalicelib.core.stages import ConfigurationError, stage_settings
from tests.infra.conftest import Synth
from tests.infra.test_engines_stack import of_type, synth_without_api

pytestmark = pytest.mark.infra

POOL = "AWS::Cognito::UserPool"
CONSOLE = "https://console.oem.example.com/console/"


def cognito_stage() -> Settings:
    """prod as declared, moved to a region with Cognito user pools and naming no issuer of its own."""
    return stage_settings(
        "prod",
        CHEKA_REGION="eu-west-1",
        CHEKA_STAFF_OIDC_ISSUER="",
        CHEKA_STAFF_OIDC_AUDIENCE="",
        CHEKA_STAFF_CONSOLE_URL=CONSOLE,
    )


@pytest.fixture(scope="module")
def cognito(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Any]]:
    settings = cognito_stage()
    assert settings.staff_idp == "cognito"
    assert settings.configuration_problems() == []
    stack, template, _ = synth_without_api(settings, tmp_path_factory.mktemp("staff"))
    return stack, template


def single(template: dict[str, Any], kind: str) -> tuple[str, dict[str, Any]]:
    found = of_type(template, kind)
    assert len(found) == 1, list(found)
    (logical_id, resource), *_ = found.items()
    return logical_id, resource["Properties"]


def test_the_pool_requires_totp_and_offers_no_sms_codes_nor_self_sign_up(cognito: Any) -> None:
    _, template = cognito
    pool_id, pool = single(template, POOL)
    assert pool["MfaConfiguration"] == "ON"
    assert pool["EnabledMfas"] == ["SOFTWARE_TOKEN_MFA"]
    assert "SmsConfiguration" not in pool
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    assert pool["UserPoolAddOns"]["AdvancedSecurityMode"] == "ENFORCED"
    assert pool["UserPoolTier"] == "PLUS"
    assert pool["Policies"]["PasswordPolicy"]["MinimumLength"] >= 12
    assert template["Resources"][pool_id]["DeletionPolicy"] == "Retain"
    assert pool["DeletionProtection"] == "ACTIVE"


def test_a_group_per_staff_role(cognito: Any) -> None:
    _, template = cognito
    pool_id, _ = single(template, POOL)
    groups = of_type(template, "AWS::Cognito::UserPoolGroup").values()
    assert sorted(g["Properties"]["GroupName"] for g in groups) == [
        "admin",
        "auditor",
        "call-centre",
        "operations",
        "review-leads",
        "reviewer",
    ]
    assert all(g["Properties"]["UserPoolId"] == {"Ref": pool_id} for g in groups)


def test_the_console_client_is_public_code_flow_with_short_tokens(cognito: Any) -> None:
    _, template = cognito
    _, client = single(template, "AWS::Cognito::UserPoolClient")
    assert client["GenerateSecret"] is False
    assert client["AllowedOAuthFlows"] == ["code"]
    assert client["AllowedOAuthFlowsUserPoolClient"] is True
    assert set(client["AllowedOAuthScopes"]) == {"openid", "profile", "email"}
    assert client["CallbackURLs"] == [CONSOLE]
    assert client["LogoutURLs"] == [CONSOLE]
    assert client["SupportedIdentityProviders"] == ["COGNITO"]
    units = client["TokenValidityUnits"]
    minutes = {"minutes": 1, "hours": 60, "days": 1440}
    access = client["AccessTokenValidity"] * minutes[units["AccessToken"]]
    id_token = client["IdTokenValidity"] * minutes[units["IdToken"]]
    refresh = client["RefreshTokenValidity"] * minutes[units["RefreshToken"]]
    assert 15 <= access <= 60
    assert 15 <= id_token <= 60
    assert refresh <= 12 * 60
    assert client["EnableTokenRevocation"] is True
    assert client["PreventUserExistenceErrors"] == "ENABLED"
    assert not {"ALLOW_USER_PASSWORD_AUTH", "ALLOW_ADMIN_USER_PASSWORD_AUTH"} & set(
        client.get("ExplicitAuthFlows", [])
    )
    _, domain = single(template, "AWS::Cognito::UserPoolDomain")
    assert domain["Domain"] == "cheka-prod-staff"


def test_the_functions_are_pointed_at_the_pool(cognito: Any) -> None:
    stack, template = cognito
    pool_id, _ = single(template, POOL)
    client_id, _ = single(template, "AWS::Cognito::UserPoolClient")
    env = stack.resolve(stack.chalice_config["environment_variables"])
    assert env["CHEKA_STAFF_OIDC_ISSUER"] == {
        "Fn::Join": ["", ["https://", {"Fn::GetAtt": [pool_id, "ProviderURL"]}]]
    }
    assert env["CHEKA_STAFF_OIDC_AUDIENCE"] == {"Ref": client_id}
    assert env["CHEKA_STAFF_OIDC_ROLES_CLAIM"] == "cognito:groups"
    assert env["CHEKA_STAFF_OIDC_MFA_BY_ISSUER"] == "true"
    assert json.dumps(env["CHEKA_STAFF_OIDC_END_SESSION_URL"]).count("/logout") == 1
    outputs = template["Outputs"]
    assert {"StaffUserPoolId", "StaffIssuer", "StaffConsoleClientId", "StaffSignInDomain"} <= set(outputs)


def test_a_china_stage_has_no_pool_and_its_functions_trust_the_corporate_idp(synth: Synth) -> None:
    assert synth.settings.region in ("cn-north-1", "cn-northwest-1")
    assert of_type(synth.json, POOL) == {}
    assert of_type(synth.json, "AWS::Cognito::UserPoolClient") == {}
    functions = of_type(synth.json, "AWS::Serverless::Function")
    assert functions
    for function in functions.values():
        env = function["Properties"]["Environment"]["Variables"]
        assert env["CHEKA_STAFF_OIDC_ISSUER"] == synth.settings.staff_oidc_issuer
        assert env["CHEKA_STAFF_OIDC_ISSUER"].startswith("https://")
        assert env["CHEKA_STAFF_OIDC_AUDIENCE"] == synth.settings.staff_oidc_audience
    # The staff logouts' table is declared like every other.
    names = [t["Properties"]["TableName"] for t in of_type(synth.json, "AWS::DynamoDB::Table").values()]
    assert "cheka-prod-staff-revocations" in names


def test_a_china_stage_naming_no_issuer_is_refused_before_synthesis(tmp_path: Path) -> None:
    settings = stage_settings("prod", CHEKA_STAFF_OIDC_ISSUER="")
    with pytest.raises(ConfigurationError) as raised:
        synth_without_api(settings, tmp_path)
    assert any("CHEKA_STAFF_OIDC_ISSUER" in p and "cn-north-1" in p for p in raised.value.problems)


def test_a_pool_without_the_consoles_address_is_refused(tmp_path: Path) -> None:
    settings = stage_settings(
        "prod", CHEKA_REGION="eu-west-1", CHEKA_STAFF_OIDC_ISSUER="", CHEKA_STAFF_OIDC_AUDIENCE=""
    )
    with pytest.raises(ConfigurationError) as raised:
        synth_without_api(settings, tmp_path)
    assert any("CHEKA_STAFF_CONSOLE_URL" in p for p in raised.value.problems)
