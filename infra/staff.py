"""Staff sign-in on AWS: the stage's Cognito user pool where the region offers user pools.

Staff (reviewers, admins, auditors, operations) sign in at one OpenID Connect issuer per stage; the API
verifies its access tokens against its JWKS (``chalicelib.core.oidc``). Where the region has Cognito user
pools and the stage names no issuer of its own (``Settings.staff_idp == "cognito"``), this creates:

- a user pool with no self sign-up (administrators create staff), MFA REQUIRED by TOTP only (no SMS
  codes), a long password policy, threat protection (the Plus feature plan: compromised credentials,
  adaptive authentication), retained on stack deletion;
- one group per staff role (``reviewer``, ``admin``, ``auditor``, ``operations``): the ``cognito:groups``
  claim the API maps to roles;
- the console's app client: public (no secret; the console runs in the browser and uses PKCE), the
  authorization-code grant only, its redirect and sign-out URLs the console's address
  (``staff_console_url``), access and ID tokens of 15 minutes, refresh tokens of 12 hours, token
  revocation on;
- the hosted sign-in domain ``<prefix>-<stage>-staff``.

The functions are told the pool's issuer, the client id, the groups claim, that the pool itself requires
the second factor (Cognito's access tokens carry no ``amr``), and the hosted domain's ``/logout``.

In the China regions Cognito user pools are not offered: the stage names the car maker's corporate IdP in
``.chalice/config.json`` (``CHEKA_STAFF_OIDC_*``) and nothing is created here; a stage naming neither is
refused before synthesis (``Settings.staff_sign_in_problems``).
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cognito as cognito

from chalicelib.core.config import Settings
from chalicelib.core.oidc import STAFF_GROUP_ALIASES, STAFF_ROLE_NAMES

#: Token lifetimes of the console's app client.
ACCESS_TOKEN_MINUTES = 15
ID_TOKEN_MINUTES = 15
REFRESH_TOKEN_HOURS = 12
#: The groups claim of Cognito's tokens.
COGNITO_GROUPS_CLAIM = "cognito:groups"

#: The group of a role named otherwise than the role (``review_lead``: ``review-leads``).
STAFF_GROUP_NAMES = {role: group for group, role in STAFF_GROUP_ALIASES.items()}

_ROLE_DESCRIPTIONS = {
    "reviewer": "人工审核 (review cases, personal data in clear with a reason)",
    "review_lead": "审核组长 (fleet cases escalated past their deadline)",
    "admin": "OEM administration (inventory, operators' settings)",
    "auditor": "审计 (evidence, exports, the personal-data read log)",
    "operations": "Operations (outbox, operators, campaigns)",
    "call_centre": "外呼 (the backfill campaigns' call list, phones in clear with a reason)",
}


@dataclass(frozen=True)
class StaffUserPool:
    pool: cognito.UserPool
    client: cognito.UserPoolClient
    domain: cognito.UserPoolDomain
    groups: dict[str, cognito.CfnUserPoolGroup]

    @property
    def issuer(self) -> str:
        """``https://cognito-idp.<region>.amazonaws.com/<pool id>`` (the attribute has no scheme)."""
        return "https://" + self.pool.user_pool_provider_url

    def function_environment(self) -> dict[str, str]:
        """The settings that point the API at the pool (``CHEKA_STAFF_OIDC_*``)."""
        return {
            "CHEKA_STAFF_OIDC_ISSUER": self.issuer,
            "CHEKA_STAFF_OIDC_AUDIENCE": self.client.user_pool_client_id,
            "CHEKA_STAFF_OIDC_ROLES_CLAIM": COGNITO_GROUPS_CLAIM,
            "CHEKA_STAFF_OIDC_ROLE_MAP": "{}",  # the groups are named as our roles
            "CHEKA_STAFF_OIDC_MFA_BY_ISSUER": "true",  # MFA REQUIRED on the pool, no amr in its tokens
            "CHEKA_STAFF_OIDC_END_SESSION_URL": self.domain.base_url() + "/logout",
        }


def add_staff_sign_in(stack: Stack, settings: Settings) -> StaffUserPool | None:
    """The stage's Cognito user pool for staff, or None where the stage names its own issuer."""
    if settings.staff_idp != "cognito":
        return None
    console = settings.staff_console_url
    if not console or not console.startswith("https://"):
        raise ValueError("CHEKA_STAFF_CONSOLE_URL (https) is needed for the staff pool's app client")
    pool = cognito.UserPool(
        stack,
        "StaffUserPool",
        user_pool_name=f"{settings.resource_prefix}-{settings.stage}-staff",
        self_sign_up_enabled=False,
        sign_in_aliases=cognito.SignInAliases(username=True, email=True),
        sign_in_case_sensitive=False,
        mfa=cognito.Mfa.REQUIRED,
        mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
        enable_sms_role=False,
        password_policy=cognito.PasswordPolicy(
            min_length=14,
            require_lowercase=True,
            require_uppercase=True,
            require_digits=True,
            require_symbols=True,
            temp_password_validity=Duration.days(3),
        ),
        account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
        feature_plan=cognito.FeaturePlan.PLUS,
        standard_threat_protection_mode=cognito.StandardThreatProtectionMode.FULL_FUNCTION,
        deletion_protection=True,
        removal_policy=RemovalPolicy.RETAIN,
    )
    groups = {
        role: cognito.CfnUserPoolGroup(
            stack,
            f"StaffGroup{role.title().replace('_', '')}",
            user_pool_id=pool.user_pool_id,
            group_name=STAFF_GROUP_NAMES.get(role, role),
            description=_ROLE_DESCRIPTIONS[role],
        )
        for role in sorted(STAFF_ROLE_NAMES)
    }
    client = pool.add_client(
        "StaffConsoleClient",
        user_pool_client_name=f"{settings.resource_prefix}-{settings.stage}-console",
        generate_secret=False,
        auth_flows=cognito.AuthFlow(user_srp=False, user_password=False, admin_user_password=False),
        o_auth=cognito.OAuthSettings(
            flows=cognito.OAuthFlows(authorization_code_grant=True, implicit_code_grant=False),
            scopes=[cognito.OAuthScope.OPENID, cognito.OAuthScope.PROFILE, cognito.OAuthScope.EMAIL],
            callback_urls=[console],
            logout_urls=[console],
        ),
        supported_identity_providers=[cognito.UserPoolClientIdentityProvider.COGNITO],
        access_token_validity=Duration.minutes(ACCESS_TOKEN_MINUTES),
        id_token_validity=Duration.minutes(ID_TOKEN_MINUTES),
        refresh_token_validity=Duration.hours(REFRESH_TOKEN_HOURS),
        enable_token_revocation=True,
        prevent_user_existence_errors=True,
    )
    domain = pool.add_domain(
        "StaffHostedDomain",
        cognito_domain=cognito.CognitoDomainOptions(
            domain_prefix=f"{settings.resource_prefix}-{settings.stage}-staff"
        ),
    )
    CfnOutput(stack, "StaffUserPoolId", value=pool.user_pool_id)
    made = StaffUserPool(pool=pool, client=client, domain=domain, groups=groups)
    CfnOutput(stack, "StaffIssuer", value=made.issuer)
    CfnOutput(stack, "StaffConsoleClientId", value=client.user_pool_client_id)
    CfnOutput(stack, "StaffSignInDomain", value=domain.base_url())
    return made
