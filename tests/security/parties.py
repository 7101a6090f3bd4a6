"""Two parties, A and B, each with one principal per role and a resource of each kind, seeded once in one
embedded AWS for the authorization matrix: owners with a registration and a verification flow, portal
accounts with two sessions, enterprises with a legal person, an approved agent, a pending applicant and
a fleet batch, and dealers with the vehicles sold through their codes. Staff roles are tokens of our own
issuer (the test stage accepts them), one per role.

Accounts are written through the accounts service and signed in by opening their sessions directly (no
SMS is sent: the matrix is about the gate, not about sign-in); what the routes themselves create — a
registration, a flow, an application, a batch — is created through the API.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from chalicelib.core import deps
from chalicelib.core.auth import Role, issue_token
from chalicelib.core.settings import get_settings
from tests.integration.test_agents_api import make_legal, make_natural

Api = Any

#: The two enterprises (USCCs with valid check characters) and their registered names.
ENTERPRISES = {
    "A": ("91310000MA1FL0000N", "上海甲运输有限公司（车队）"),
    "B": ("91110108MA0000000A", "北京乙物流有限公司"),
}
DEALERS = {"A": "D100", "B": "D200"}
#: Phones of the parties' accounts (one per account: a phone holds a few accounts at most).
_PHONES = iter(f"139{n:08d}" for n in range(10_000_100, 10_000_200))


@dataclass
class Party:
    """One side of the matrix: a principal per role (headers) and the resources it owns."""

    name: str
    headers: dict[Role, dict[str, str]] = field(default_factory=dict)
    #: The values its own resources put in a path, by parameter name, per resource kind.
    own: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Strings of its own that must never appear in an answer to the other party.
    secrets: list[str] = field(default_factory=list)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def role_token(role: Role, subject: str | None = None) -> str:
    """A token of our own issuer carrying ``role`` alone (the test stage accepts staff roles in it)."""
    return issue_token(get_settings(), subject or f"matrix-{role.value}", [role])


def call(api: Api, method: str, path: str, headers: dict[str, str], body: Any = None) -> tuple[int, Any]:
    kwargs: dict[str, Any] = {"headers": headers}
    if body is not None:
        kwargs["body"] = json.dumps(body, ensure_ascii=False)
    response = getattr(api.http, method.lower())(path, **kwargs)
    try:
        return response.status_code, json.loads(response.body) if response.body else None
    except (ValueError, UnicodeDecodeError):
        return response.status_code, None


def account(login_name: str, *, dealer_code: str | None = None) -> str:
    """A new portal account written through the accounts service: its id."""
    from chalicelib.accounts.domain import Account, AccountKind, new_account_id
    from chalicelib.kernel.clock import utc_now
    from chalicelib.kernel.personal import mask_phone

    accounts = deps.accounts()
    phone = next(_PHONES)
    if dealer_code is not None:
        return accounts.create_dealer_account(login_name, phone, None, dealer_code).account_id
    created = Account(
        account_id=new_account_id(),
        login_name=login_name,
        kind=AccountKind.UNVERIFIED,
        phone_hash=accounts._phone_hash(phone, []),
        created_at=utc_now(),
        phone_masked=mask_phone(phone),
        email_masked="",
    )
    accounts._store.create(created, phone=phone, email=None, password_hash=None)
    return created.account_id


def signed_in(account_id: str) -> tuple[dict[str, str], str]:
    """Headers of a new session of the account (its roles as they are now), and the session's id."""
    from chalicelib.sessions.domain import SessionKind

    accounts = deps.accounts()
    found = accounts.get(account_id)
    assert found is not None
    issued = deps.sessions().open(SessionKind.ENTERPRISE, account_id, sorted(accounts.roles_of(found)))
    roles, claims = accounts.token_grant(found, issued.session.session_id)
    token = issue_token(get_settings(), account_id, roles, claims=claims)
    return bearer(token), issued.session.session_id


def seed_inventory(api: Api) -> dict[str, list[dict[str, str]]]:
    """Vehicles sold by each party's dealer, and one each for the parties' owners to register."""
    from chalicelib.local.synthetic import inventory_rows

    rows = list(inventory_rows(8, seed=1818))
    dealers = ("D100", "D100", "D200", "D200", "D900", "D900", "D900", "D900")
    for row, dealer in zip(rows, dealers, strict=True):
        row["dealer_code"] = dealer
    status, report = call(api, "POST", "/v1/admin/inventory/imports", bearer(role_token(Role.ADMIN)), rows)
    assert status == 200, report
    return {"A": rows[0:2], "B": rows[2:4], "owners": rows[4:6], "enterprises": rows[6:8]}


def deregistration(owner: str, row: dict[str, str]) -> str:
    """An open de-registration of the owner's car, written as the service opens one for a car registered
    through them (the registration itself, with its face check, is not the matrix's business): its id."""
    from datetime import timedelta

    from chalicelib.adapters.dynamo.registrations import DynamoRegistrationRepository
    from chalicelib.kernel.clock import utc_now
    from chalicelib.registration.domain.registrations import (
        Registration,
        RegistrationKind,
        RegistrationStatus,
    )

    deps.registration_service()  # binds the tables
    now = utc_now()
    opened = Registration(
        registration_id=f"r{uuid.uuid4().hex}",
        owner=owner,
        kind=RegistrationKind.DEREGISTRATION,
        vin=row["vin"],
        iccids=[row["iccid"]],
        status=RegistrationStatus.OPEN,
        version=1,
        confirmed_at=now,
        created_at=now,
        updated_at=now,
        expires_at=now + timedelta(hours=1),
    )
    DynamoRegistrationRepository(deps.field_cipher()).create(opened)
    return opened.registration_id


def enterprise_card(batch_id: str, uscc: str, company: str, row: dict[str, str]) -> str:
    """The card of ``row`` submitted for registration to the enterprise by its fleet batch, as an
    approved batch leaves it (the holder is the batch's enterprise party): its ICCID."""
    from chalicelib.cards.holders import holder_from_party
    from chalicelib.fleet.apply import enterprise_party_id
    from chalicelib.kernel.personal import IdType, Party, PartyKind

    enterprise = Party(
        party_id=enterprise_party_id(batch_id),
        kind=PartyKind.ENTERPRISE,
        id_type=IdType.USCC,
        id_number=uscc,
        name=company,
    )
    responsible = Party(id_type=IdType.RESIDENT_ID, id_number="110101199003074477", name="王责任")
    for party in (enterprise, responsible):
        deps.party_repo().put(party)
    holder = holder_from_party(enterprise, deps.keyed_hasher(), responsible)
    (outcome,) = deps.lifecycle().submit_registrations([row["iccid"]], holder, "matrix")
    assert outcome.record_id is not None
    return row["iccid"]


def seed(api: Api) -> tuple[Party, Party]:
    """Both parties with every principal and resource (see the module's docstring)."""
    stock = seed_inventory(api)
    parties = (Party("A"), Party("B"))
    for index, party in enumerate(parties):
        n = party.name
        uscc, company = ENTERPRISES[n]
        owner_row, dealer_rows = stock["owners"][index], stock[n]
        # An owner with a registration and a verification flow of their own
        owner = bearer(issue_token(get_settings(), f"owner-matrix-{n}", [Role.OWNER]))
        party.headers[Role.OWNER] = owner
        status, registration = call(api, "POST", "/v1/me/registrations", owner, {"vin": owner_row["vin"]})
        assert status == 201, registration
        party.own["registration"] = {"registration_id": registration["registration_id"]}
        status, flow = call(api, "POST", "/v1/flows", owner, {"purpose": "registration"})
        assert status == 201, flow
        party.own["flow"] = {"flow_id": flow["flow_id"]}
        party.own["owner_vehicle"] = {"vin": owner_row["vin"]}
        party.own["deregistration"] = {"registration_id": deregistration(f"owner-matrix-{n}", owner_row)}
        party.secrets += [owner_row["vin"], registration["registration_id"], flow["flow_id"]]
        party.secrets.append(party.own["deregistration"]["registration_id"])
        # A natural-person account with a second session (the one it ends itself)
        natural = account(f"matrixPerson{n}")
        make_natural(natural)
        party.headers[Role.ACCOUNT], _ = signed_in(natural)
        _, spare = signed_in(natural)
        party.own["account_session"] = {"session_id": spare}
        party.secrets.append(spare)
        # The enterprise: its legal person, an approved agent, a pending applicant, a fleet batch
        legal = account(f"matrixLegal{n}")
        make_legal(legal, uscc, company)
        party.headers[Role.ENTERPRISE_LEGAL], _ = signed_in(legal)
        agent = account(f"matrixAgent{n}")
        make_natural(agent)
        applicant = account(f"matrixApplicant{n}")
        make_natural(applicant)
        for who in (agent, applicant):
            status, applied = call(
                api,
                "POST",
                "/v1/enterprise/agent-applications",
                signed_in(who)[0],
                {"company_name": company, "uscc": uscc},
            )
            assert status == 201, applied
        status, approved = call(
            api, "POST", f"/v1/enterprise/agents/{agent}/approve", party.headers[Role.ENTERPRISE_LEGAL], {}
        )
        assert status == 200, approved
        party.headers[Role.ENTERPRISE_AGENT], _ = signed_in(agent)
        party.own["agent"] = {"account_id": applicant}
        status, batch = call(
            api,
            "POST",
            "/v1/enterprise/fleet/batches",
            party.headers[Role.ENTERPRISE_LEGAL],
            {"kind": "registration"},
        )
        assert status == 201, batch
        party.own["batch"] = {"batch_id": batch["batch_id"]}
        held = stock["enterprises"][index]
        party.own["enterprise_card"] = {"iccid": enterprise_card(batch["batch_id"], uscc, company, held)}
        party.secrets += [held["vin"], held["iccid"]]
        party.secrets += [uscc, company, batch["batch_id"], f"matrixApplicant{n}", f"matrixAgent{n}"]
        # A dealer account and the vehicles sold through its code
        dealer = account(f"matrixDealer{n}", dealer_code=DEALERS[n])
        party.headers[Role.DEALER], _ = signed_in(dealer)
        party.own["dealer_vehicle"] = {"vin": dealer_rows[0]["vin"]}
        party.own["dealer_card"] = {"iccid": dealer_rows[0]["iccid"], "msisdn": dealer_rows[0]["msisdn"]}
        party.secrets += [r[f] for r in dealer_rows for f in ("vin", "iccid", "msisdn")]
        # Staff: one token per role (the same for both parties: staff see every party's)
        for role in (
            Role.REVIEWER,
            Role.REVIEW_LEAD,
            Role.ADMIN,
            Role.AUDITOR,
            Role.OPERATIONS,
            Role.CALL_CENTRE,
        ):
            party.headers[role] = bearer(role_token(role))
    return parties
