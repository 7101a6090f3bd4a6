"""The models of the staff sign-in routes (``chalicelib.api.staff``): the console's sign-in settings, who
is signed in, the logout. Loaded on their first use: a cold start builds none of them."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from chalicelib.api.models import ApiModel


class StaffSignInConfig(ApiModel):
    issuer: str = Field(description="The OpenID Connect issuer staff sign in at")
    client_id: str | None = Field(description="The console's client id at the issuer")
    authorization_endpoint: str | None
    token_endpoint: str | None
    end_session_endpoint: str | None = Field(description="Where the console ends the IdP's session")
    scopes: list[str]


class StaffMe(ApiModel):
    subject: str = Field(description="The staff member's subject at the issuer")
    roles: list[str]
    issuer: str | None
    mfa: str | None = Field(description="How the second factor showed: amr:<value>, acr:<value>, issuer")
    expires_at: datetime | None
    from_identity_provider: bool = Field(description="False: a local stage's own token (`cheka token`)")


class StaffSignedOut(ApiModel):
    signed_out: bool
    revoked: bool = Field(description="The token (and its IdP session) is refused from now on")
    end_session_endpoint: str | None = Field(
        description="Send the browser here to end the session at the IdP too (None: it names none)"
    )
