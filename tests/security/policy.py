"""Who may call each route, written down apart from the route declarations (SPEC, README's route table):
the authorization matrix (``test_authorization_matrix``) checks the declarations and the behaviour
against it, so a route added without an entry here, or declared with other roles, fails the build.

An entry gives the roles the route's gate lets through (``roles``; None: public, then the route must be
in ``PUBLIC`` with the reason it needs no token), the roles that pass the gate but that the handler
itself refuses with 403 (``refused``: e.g. only an enterprise's legal person decides its agents), and,
for a route naming a resource in its path, whose resource it is (``resource``): the caller's own only,
checked by calling it with another party's (403 or 404, nothing of theirs in the answer) and with one's
own (neither 403 nor 404).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from chalicelib.core.auth import Role

OWNER = Role.OWNER
ACCOUNT = Role.ACCOUNT
LEGAL = Role.ENTERPRISE_LEGAL
AGENT = Role.ENTERPRISE_AGENT
DEALER = Role.DEALER
REVIEWER = Role.REVIEWER
LEAD = Role.REVIEW_LEAD
ADMIN = Role.ADMIN
AUDITOR = Role.AUDITOR
OPERATIONS = Role.OPERATIONS
CALL_CENTRE = Role.CALL_CENTRE


def roles(*granted: Role) -> frozenset[Role]:
    return frozenset(granted)


#: A person verifying themselves: an owner, an enterprise's legal person or agent.
PERSONS = roles(OWNER, LEGAL, AGENT)
#: A signed-in portal account, whatever it became since (the enterprise routes re-check in the store).
PORTAL = roles(ACCOUNT, LEGAL, AGENT)
#: The reviewers' side of the OEM.
REVIEW = roles(REVIEWER, LEAD, ADMIN, AUDITOR)
#: Who looks cards and vehicles up (a dealer only its own).
LOOKUP = roles(ADMIN, AUDITOR, DEALER, REVIEWER, LEAD)
#: Every role there is.
EVERYONE = frozenset(Role)
#: Staff, as the staff identity provider grants them.
STAFF = roles(REVIEWER, LEAD, ADMIN, AUDITOR, OPERATIONS, CALL_CENTRE)


class Resource(StrEnum):
    """Whose a resource named in a path is."""

    #: An owner's own registration (``/v1/me/registrations/{registration_id}``).
    REGISTRATION = "registration"
    #: An owner's own de-registration.
    DEREGISTRATION = "deregistration"
    #: The verification flow of the person who opened it (or of their account).
    FLOW = "flow"
    #: A sign-in session of the portal account itself.
    ACCOUNT_SESSION = "account_session"
    #: An applicant or agent of the caller's own enterprise.
    AGENT = "agent"
    #: A card the caller's enterprise holds.
    ENTERPRISE_CARD = "enterprise_card"
    #: A fleet batch of the caller's enterprise.
    BATCH = "batch"
    #: A vehicle sold through the dealer's own code (staff: any).
    DEALER_VEHICLE = "dealer_vehicle"
    #: A card of a vehicle sold through the dealer's own code (staff: any).
    DEALER_CARD = "dealer_card"


@dataclass(frozen=True)
class Rule:
    roles: frozenset[Role] | None
    resource: Resource | None = None
    refused: frozenset[Role] = frozenset()


def public() -> Rule:
    return Rule(None)


#: Every public route, with why it needs no token.
PUBLIC: dict[tuple[str, str], str] = {
    ("POST", "/v1/accounts/sms-codes"): "a sign-up code goes to a phone before any account exists",
    ("POST", "/v1/accounts"): "signing up creates the account (the SMS code proves the phone)",
    ("POST", "/v1/accounts/login"): "signing in: password first",
    ("POST", "/v1/accounts/login/verify"): "signing in: then the SMS code of the challenge",
    ("POST", "/v1/accounts/refresh"): "the refresh token itself is the credential",
    ("POST", "/v1/accounts/logout"): "the refresh token itself is the credential",
    ("POST", "/v1/accounts/password-reset"): "a forgotten password: the code goes to the account's phone",
    ("POST", "/v1/accounts/password-reset/confirm"): "the code sent to the account's phone is the credential",
    ("POST", "/v1/auth/sms-codes"): "an owner's login code goes to a phone before any token exists",
    ("POST", "/v1/captcha"): "the challenge solved before an SMS code is sent, before any sign-in",
    ("POST", "/v1/auth/login"): "the SMS code is the credential",
    ("POST", "/v1/auth/refresh"): "the refresh token itself is the credential",
    ("POST", "/v1/auth/logout"): "the refresh token itself is the credential",
    ("GET", "/v1/dev/sms-drop"): "local stages only (404 elsewhere): the codes the page shows",
    ("GET", "/v1/dev/head-unit/{vin}"): "local stages only (404 elsewhere): the sandbox head unit's code",
    ("POST", "/v1/sms/replies"): "the SMS provider's callback: signed with the stage's key, not a token",
    ("GET", "/v1/console/documents/{token}"): "the token is a signed, short-lived link made for one reader",
    ("GET", "/v1/help"): "the service phone and hours, shown before sign-in",
    ("GET", "/v1/account-texts"): "the user agreement and privacy policy, accepted before sign-in",
    ("GET", "/h5"): "the owner's client page",
    ("GET", "/h5/{name}"): "the owner's client's static files",
    ("GET", "/portal"): "the enterprise portal's page",
    ("GET", "/portal/{name}"): "the enterprise portal's static files",
    ("GET", "/console"): "the console's page (staff sign in from it)",
    ("GET", "/console/{name}"): "the console's static files",
    ("GET", "/web/common/{name}"): "the clients' shared static files",
    ("POST", "/v1/operator/callbacks"): "the operator's answer: signed, timestamped and nonce-checked",
    ("GET", "/v1/consents"): "the consent texts, read before they are accepted",
    ("GET", "/v1/staff/config"): "where the console starts staff sign-in (issuer, client id, endpoints)",
    ("GET", "/health"): "status only for the public; the checks need an admin token",
    ("GET", "/openapi.json"): "the API's description",
    ("GET", "/"): "the landing page",
}

_CAMPAIGN_READERS = roles(ADMIN, AUDITOR, OPERATIONS)
_CAMPAIGN_WRITERS = roles(ADMIN, OPERATIONS)
_SESSION = Resource.ACCOUNT_SESSION

POLICY: dict[tuple[str, str], Rule] = {
    **{key: public() for key in PUBLIC},
    # The portal account itself
    ("GET", "/v1/accounts/me"): Rule(roles(ACCOUNT)),
    ("PATCH", "/v1/accounts/me"): Rule(roles(ACCOUNT)),
    ("GET", "/v1/accounts/me/sessions"): Rule(roles(ACCOUNT)),
    ("DELETE", "/v1/accounts/me/sessions/{session_id}"): Rule(roles(ACCOUNT), _SESSION),
    ("POST", "/v1/accounts/me/sessions/revoke-all"): Rule(roles(ACCOUNT)),
    ("POST", "/v1/accounts/me/password"): Rule(roles(ACCOUNT)),
    ("GET", "/v1/accounts/me/real-name"): Rule(roles(ACCOUNT)),
    ("POST", "/v1/accounts/me/real-name"): Rule(roles(ACCOUNT)),
    ("POST", "/v1/accounts/me/real-name/review"): Rule(roles(ACCOUNT)),
    # The read log
    ("GET", "/v1/audit/reads"): Rule(roles(AUDITOR)),
    # The owner's sign-in and backfill
    ("POST", "/v1/auth/sessions/revoke-all"): Rule(roles(OWNER)),
    ("GET", "/v1/me/backfill"): Rule(roles(OWNER)),
    ("POST", "/v1/me/backfill/opt-out"): Rule(roles(OWNER)),
    ("DELETE", "/v1/me/backfill/opt-out"): Rule(roles(OWNER)),
    # Campaigns and their call lists
    ("GET", "/v1/campaigns/{campaign_id}/calls"): Rule(roles(ADMIN, AUDITOR, CALL_CENTRE, OPERATIONS)),
    ("GET", "/v1/campaigns/{campaign_id}/calls.csv"): Rule(roles(ADMIN, CALL_CENTRE)),
    ("POST", "/v1/campaigns/{campaign_id}/calls/{wave}/{iccid}/outcome"): Rule(
        roles(ADMIN, CALL_CENTRE, OPERATIONS)
    ),
    ("POST", "/v1/campaigns"): Rule(_CAMPAIGN_WRITERS),
    ("GET", "/v1/campaigns"): Rule(roles(ADMIN, AUDITOR, CALL_CENTRE, OPERATIONS)),
    ("GET", "/v1/campaigns/targets/count"): Rule(_CAMPAIGN_READERS),
    ("GET", "/v1/campaigns/{campaign_id}"): Rule(_CAMPAIGN_READERS),
    ("POST", "/v1/campaigns/{campaign_id}/pause"): Rule(_CAMPAIGN_WRITERS),
    ("POST", "/v1/campaigns/{campaign_id}/resume"): Rule(_CAMPAIGN_WRITERS),
    ("POST", "/v1/campaigns/{campaign_id}/stop"): Rule(_CAMPAIGN_WRITERS),
    ("POST", "/v1/campaigns/{campaign_id}/waves/{wave}/run"): Rule(_CAMPAIGN_WRITERS),
    ("GET", "/v1/campaigns/{campaign_id}/progress"): Rule(_CAMPAIGN_READERS),
    # Complaints
    ("POST", "/v1/me/complaints"): Rule(PERSONS),
    ("GET", "/v1/me/complaints"): Rule(PERSONS),
    ("GET", "/v1/admin/complaints"): Rule(roles(ADMIN, REVIEWER)),
    ("POST", "/v1/admin/complaints/{complaint_id}/answer"): Rule(roles(ADMIN, REVIEWER)),
    # Document links of the console
    ("POST", "/v1/console/document-links"): Rule(roles(AUDITOR, LEAD, REVIEWER)),
    # Dealers
    ("POST", "/v1/admin/dealers/{dealer_code}/accounts"): Rule(roles(ADMIN)),
    ("GET", "/v1/admin/dealers/{dealer_code}/accounts"): Rule(roles(ADMIN)),
    ("POST", "/v1/admin/dealers/{dealer_code}/accounts/{account_id}/disable"): Rule(roles(ADMIN)),
    ("POST", "/v1/admin/dealers/{dealer_code}/accounts/{account_id}/enable"): Rule(roles(ADMIN)),
    ("GET", "/v1/dealer/vehicles"): Rule(roles(DEALER)),
    ("POST", "/v1/dealer/assisted-registrations"): Rule(roles(DEALER)),
    ("POST", "/v1/dealer/handoffs/redeem"): Rule(roles(OWNER)),
    # Enterprises and their agents
    ("POST", "/v1/enterprise/agent-applications"): Rule(PORTAL),
    ("GET", "/v1/enterprise/agent-applications"): Rule(PORTAL),
    ("GET", "/v1/enterprise"): Rule(PORTAL, refused=roles(ACCOUNT)),
    ("GET", "/v1/enterprise/agents"): Rule(PORTAL, refused=roles(ACCOUNT, AGENT)),
    ("POST", "/v1/enterprise/agents/{account_id}/approve"): Rule(
        PORTAL, Resource.AGENT, refused=roles(ACCOUNT, AGENT)
    ),
    ("POST", "/v1/enterprise/agents/{account_id}/reject"): Rule(
        PORTAL, Resource.AGENT, refused=roles(ACCOUNT, AGENT)
    ),
    ("POST", "/v1/enterprise/agents/{account_id}/revoke"): Rule(
        PORTAL, Resource.AGENT, refused=roles(ACCOUNT, AGENT)
    ),
    ("GET", "/v1/enterprise/actions"): Rule(PORTAL, refused=roles(ACCOUNT)),
    ("GET", "/v1/admin/enterprises/{uscc}/actions"): Rule(roles(AUDITOR)),
    ("GET", "/v1/enterprise/vehicles"): Rule(PORTAL, refused=roles(ACCOUNT)),
    ("GET", "/v1/enterprise/cards/{iccid}/actual-users"): Rule(
        PORTAL | REVIEW, Resource.ENTERPRISE_CARD, refused=roles(ACCOUNT)
    ),
    ("POST", "/v1/enterprise/cards/{iccid}/actual-users"): Rule(
        PORTAL, Resource.ENTERPRISE_CARD, refused=roles(ACCOUNT)
    ),
    ("POST", "/v1/enterprise/cards/{iccid}/actual-users/{record_id}/end"): Rule(
        PORTAL, Resource.ENTERPRISE_CARD, refused=roles(ACCOUNT)
    ),
    # Entrances
    ("POST", "/v1/me/vin-scan"): Rule(PERSONS),
    # Fleet batches of an enterprise
    ("POST", "/v1/enterprise/fleet/batches"): Rule(PORTAL, refused=roles(ACCOUNT)),
    ("GET", "/v1/enterprise/fleet/batches"): Rule(PORTAL, refused=roles(ACCOUNT)),
    ("GET", "/v1/enterprise/fleet/batches/{batch_id}"): Rule(PORTAL, Resource.BATCH, refused=roles(ACCOUNT)),
    ("POST", "/v1/enterprise/fleet/batches/{batch_id}/vehicles"): Rule(
        PORTAL, Resource.BATCH, refused=roles(ACCOUNT)
    ),
    ("POST", "/v1/enterprise/fleet/batches/{batch_id}/vehicles/csv"): Rule(
        PORTAL, Resource.BATCH, refused=roles(ACCOUNT)
    ),
    ("DELETE", "/v1/enterprise/fleet/batches/{batch_id}/vehicles/{vin}"): Rule(
        PORTAL, Resource.BATCH, refused=roles(ACCOUNT)
    ),
    ("GET", "/v1/enterprise/fleet/batches/{batch_id}/dealers"): Rule(
        PORTAL, Resource.BATCH, refused=roles(ACCOUNT)
    ),
    ("PUT", "/v1/enterprise/fleet/batches/{batch_id}/dealer"): Rule(
        PORTAL, Resource.BATCH, refused=roles(ACCOUNT)
    ),
    ("POST", "/v1/enterprise/fleet/batches/{batch_id}/responsible-phone/code"): Rule(
        PORTAL, Resource.BATCH, refused=roles(ACCOUNT)
    ),
    ("PUT", "/v1/enterprise/fleet/batches/{batch_id}/responsible-phone"): Rule(
        PORTAL, Resource.BATCH, refused=roles(ACCOUNT)
    ),
    ("POST", "/v1/enterprise/fleet/batches/{batch_id}/consents"): Rule(
        PORTAL, Resource.BATCH, refused=roles(ACCOUNT)
    ),
    ("POST", "/v1/enterprise/fleet/batches/{batch_id}/submit"): Rule(
        PORTAL, Resource.BATCH, refused=roles(ACCOUNT)
    ),
    ("POST", "/v1/enterprise/fleet/batches/{batch_id}/resubmit"): Rule(
        PORTAL, Resource.BATCH, refused=roles(ACCOUNT)
    ),
    ("GET", "/v1/enterprise/fleet/templates/{name}"): Rule(PORTAL),
    # Fleet review cases
    ("GET", "/v1/fleet-cases"): Rule(REVIEW),
    ("GET", "/v1/fleet-cases/{batch_id}"): Rule(REVIEW),
    ("POST", "/v1/fleet-cases/{batch_id}/decision"): Rule(roles(ADMIN, LEAD, REVIEWER)),
    ("GET", "/v1/fleet-cases/{batch_id}/history"): Rule(REVIEW),
    ("GET", "/v1/fleet-reasons"): Rule(REVIEW),
    ("PUT", "/v1/admin/staff/{subject}/affiliations"): Rule(roles(ADMIN)),
    ("GET", "/v1/admin/staff/{subject}/affiliations"): Rule(roles(ADMIN, AUDITOR, LEAD)),
    # Inventory, cards and vehicles
    ("POST", "/v1/inventory/in-service"): Rule(roles(ADMIN, OPERATIONS)),
    ("POST", "/v1/admin/inventory/imports"): Rule(roles(ADMIN)),
    ("GET", "/v1/vehicles/{vin}"): Rule(LOOKUP, Resource.DEALER_VEHICLE),
    ("GET", "/v1/cards/{iccid}"): Rule(LOOKUP, Resource.DEALER_CARD),
    ("GET", "/v1/cards"): Rule(LOOKUP),
    ("GET", "/v1/cards/{iccid}/history"): Rule(LOOKUP, Resource.DEALER_CARD),
    ("POST", "/v1/admin/cards/{iccid}/transfer"): Rule(roles(ADMIN)),
    ("POST", "/v1/admin/vehicles/{vin}/transfers"): Rule(roles(ADMIN)),
    ("POST", "/v1/admin/vehicles/{vin}/scrap"): Rule(roles(ADMIN)),
    ("POST", "/v1/admin/vehicles/{vin}/swap"): Rule(roles(ADMIN)),
    ("GET", "/v1/admin/outbox"): Rule(roles(ADMIN, AUDITOR)),
    ("POST", "/v1/admin/outbox/{record_id}/retry"): Rule(roles(ADMIN)),
    # The owner's registrations and de-registrations
    ("POST", "/v1/me/registrations"): Rule(roles(OWNER)),
    ("GET", "/v1/me/registrations"): Rule(roles(OWNER)),
    **{
        (method, f"/v1/me/registrations/{{registration_id}}{step}"): Rule(roles(OWNER), Resource.REGISTRATION)
        for method, step in (
            ("GET", ""),
            ("POST", "/confirm-vehicle"),
            ("POST", "/phone"),
            ("POST", "/delegation"),
            ("POST", "/delegation/code"),
            ("POST", "/delegation/confirm"),
            ("POST", "/delegation/owner-check"),
            ("POST", "/possession/head-unit-code"),
            ("POST", "/possession"),
            ("POST", "/contest"),
            ("POST", "/transfer"),
            ("POST", "/consents"),
            ("POST", "/submit"),
        )
    },
    ("POST", "/v1/me/deregistrations"): Rule(roles(OWNER)),
    ("GET", "/v1/me/deregistrations/{registration_id}"): Rule(roles(OWNER), Resource.DEREGISTRATION),
    ("POST", "/v1/me/deregistrations/{registration_id}/phone"): Rule(roles(OWNER), Resource.DEREGISTRATION),
    ("POST", "/v1/me/deregistrations/{registration_id}/submit"): Rule(roles(OWNER), Resource.DEREGISTRATION),
    ("GET", "/v1/me/vehicles"): Rule(roles(OWNER)),
    ("GET", "/v1/admin/receipts/{receipt_no}"): Rule(roles(ADMIN, AUDITOR, REVIEWER)),
    # Verification flows: the person's own (an account's for its real-name authentication)
    ("POST", "/v1/flows"): Rule(PERSONS | roles(ACCOUNT)),
    **{
        (method, f"/v1/flows/{{flow_id}}{step}"): Rule(PERSONS | roles(ACCOUNT), Resource.FLOW)
        for method, step in (
            ("GET", ""),
            ("PUT", "/identity"),
            ("POST", "/uploads"),
            ("POST", "/documents"),
            ("POST", "/ocr/{kind}"),
            ("POST", "/readings/{kind}"),
            ("POST", "/authority-check"),
            ("POST", "/liveness-sessions"),
            ("POST", "/liveness-sessions/{session_id}/result"),
            ("POST", "/liveness-sessions/{session_id}/preview"),
            ("POST", "/review"),
            ("POST", "/biometric-consent"),
            ("GET", "/review"),
        )
    },
    # Manual review, evidence, spot checks
    ("GET", "/v1/review-cases"): Rule(roles(REVIEWER)),
    ("GET", "/v1/review-cases/{case_id}"): Rule(roles(REVIEWER)),
    ("POST", "/v1/review-cases/{case_id}/decision"): Rule(roles(REVIEWER)),
    ("GET", "/v1/flows/{flow_id}/evidence"): Rule(roles(AUDITOR, REVIEWER)),
    ("GET", "/v1/spot-checks"): Rule(roles(AUDITOR, REVIEWER)),
    ("GET", "/v1/spot-checks/{check_id}"): Rule(roles(AUDITOR, REVIEWER)),
    ("POST", "/v1/spot-checks/{check_id}/answer"): Rule(roles(REVIEWER)),
    # Staff sign-in
    ("GET", "/v1/staff/me"): Rule(STAFF),
    ("POST", "/v1/staff/logout"): Rule(STAFF),
    # Anyone signed in
    ("POST", "/v1/validate/{kind}"): Rule(EVERYONE),
    ("GET", "/v1/me"): Rule(EVERYONE),
}
