"""The authorization matrix: every route of the route table × every role (and no token at all) × the
caller's own resource and another party's, checked against the policy written apart from the
declarations (``tests/security/policy.py``).

- A route without a policy entry, or an entry without a route, fails; so do declared roles that differ
  from the policy's, and a public route not on the allow-list of public routes with its reason.
- No token: 401 ``auth.missing``. A role the policy does not name: 403 ``auth.forbidden`` (the gate,
  before anything is read). A role the handler refuses itself (``refused``): 403. A role it names: never
  401 nor 403 — 404 or 422 for a made-up resource or an empty body is fine, the gate is the point — and,
  with its own resource, neither 403 nor 404.
- Another party's resource: 403 or 404, and nothing of the other party (its VINs, ids, names) in the
  answer.

Everything runs in-process against one seeded embedded AWS (``tests/security/parties.py``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

import app as _app  # noqa: F401  (the route table is filled by importing the app)
from chalicelib.api.http import ROUTES, RouteSpec
from chalicelib.core.auth import Role
from tests.security.parties import Party, account, bearer, role_token, signed_in
from tests.security.policy import POLICY, PUBLIC, Resource, Rule

Api = Any

ANONYMOUS = "anonymous"
#: The principals of the matrix: no token, then each role.
PRINCIPALS: tuple[str, ...] = (ANONYMOUS, *(r.value for r in Role))
_STAFF = (Role.REVIEWER, Role.REVIEW_LEAD, Role.ADMIN, Role.AUDITOR, Role.OPERATIONS, Role.CALL_CENTRE)

#: Which of a party's resources a role's principal calls a route naming ``Resource`` with (its own).
OWN: dict[Resource, dict[Role, str]] = {
    Resource.REGISTRATION: {Role.OWNER: "registration"},
    Resource.DEREGISTRATION: {Role.OWNER: "deregistration"},
    Resource.FLOW: {Role.OWNER: "flow"},
    Resource.ACCOUNT_SESSION: {Role.ACCOUNT: "account_session"},
    Resource.AGENT: {Role.ENTERPRISE_LEGAL: "agent"},
    Resource.ENTERPRISE_CARD: {
        Role.ENTERPRISE_LEGAL: "enterprise_card",
        Role.ENTERPRISE_AGENT: "enterprise_card",
    },
    Resource.BATCH: {Role.ENTERPRISE_LEGAL: "batch", Role.ENTERPRISE_AGENT: "batch"},
    Resource.DEALER_VEHICLE: {Role.DEALER: "dealer_vehicle", **dict.fromkeys(_STAFF, "dealer_vehicle")},
    Resource.DEALER_CARD: {Role.DEALER: "dealer_card", **dict.fromkeys(_STAFF, "dealer_card")},
}
#: Which of the other party's resources stands for "another's" (the roles it is tried with).
OTHER: dict[Resource, tuple[str, tuple[Role, ...]]] = {
    Resource.REGISTRATION: ("registration", (Role.OWNER,)),
    Resource.DEREGISTRATION: ("deregistration", (Role.OWNER,)),
    Resource.FLOW: ("flow", (Role.OWNER, Role.ACCOUNT, Role.ENTERPRISE_LEGAL, Role.ENTERPRISE_AGENT)),
    Resource.ACCOUNT_SESSION: ("account_session", (Role.ACCOUNT,)),
    Resource.AGENT: ("agent", (Role.ENTERPRISE_LEGAL,)),
    Resource.ENTERPRISE_CARD: ("enterprise_card", (Role.ENTERPRISE_LEGAL, Role.ENTERPRISE_AGENT)),
    Resource.BATCH: ("batch", (Role.ENTERPRISE_LEGAL, Role.ENTERPRISE_AGENT)),
    Resource.DEALER_VEHICLE: ("dealer_vehicle", (Role.DEALER,)),
    Resource.DEALER_CARD: ("dealer_card", (Role.DEALER,)),
}
#: Made-up values for path parameters the caller owns nothing for (well-formed where a format is checked).
MADE_UP = {
    "registration_id": "0" * 32,
    "flow_id": "0" * 32,
    "session_id": "0" * 32,
    "account_id": "0" * 26,
    "batch_id": "0" * 26,
    "campaign_id": "0" * 26,
    "complaint_id": "TS20260101-000000",
    "case_id": "0" * 32,
    "check_id": "0" * 32,
    "record_id": "0" * 32,
    "receipt_no": "DJ20260101-000000",
    "iccid": "89860000000000000000",
    "vin": "LSVAA4182E2000000",
    "uscc": "91110108MA0000000A",
    "dealer_code": "D999",
    "subject": "nobody",
    "wave": "1",
    "kind": "id_front",
    "name": "vehicles.csv",
    "token": "made-up",
}
#: Bodies that pass each route's model, so that the handler itself decides about the resource.
PHONE, CODE = "13800138000", "123456"
ID = {"id_type": "resident_id", "id_number": "11010519491231002X", "name": "张三"}
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/me/registrations/{registration_id}/phone"): {"phone": PHONE, "code": CODE},
    ("POST", "/v1/me/registrations/{registration_id}/delegation"): {"owner": ID, "owner_phone": PHONE},
    ("POST", "/v1/me/registrations/{registration_id}/delegation/confirm"): {"method": "sms", "code": CODE},
    ("POST", "/v1/me/registrations/{registration_id}/possession"): {"method": "head_unit", "code": CODE},
    ("POST", "/v1/me/registrations/{registration_id}/consents"): {
        "accepted": [{"kind": "registration_agreement", "version": "1", "sha256": "0" * 64}]
    },
    ("POST", "/v1/me/deregistrations/{registration_id}/phone"): {"phone": PHONE, "code": CODE},
    ("PUT", "/v1/flows/{flow_id}/identity"): ID,
    ("POST", "/v1/flows/{flow_id}/uploads"): {"kind": "id_front", "content_type": "image/jpeg"},
    ("POST", "/v1/flows/{flow_id}/documents"): {"kind": "id_front", "key": "documents/x/id_front.jpg"},
    ("POST", "/v1/flows/{flow_id}/liveness-sessions/{session_id}/result"): {"frames": [], "nonce": "n"},
    ("POST", "/v1/flows/{flow_id}/liveness-sessions/{session_id}/preview"): {"frame": "AAAA"},
    ("POST", "/v1/flows/{flow_id}/biometric-consent"): {"version": "1", "sha256": "0" * 64},
    ("POST", "/v1/enterprise/agents/{account_id}/approve"): {},
    ("POST", "/v1/enterprise/agents/{account_id}/reject"): {"reason": "不符合要求"},
    ("POST", "/v1/enterprise/agents/{account_id}/revoke"): {"reason": "离职"},
    ("POST", "/v1/enterprise/cards/{iccid}/actual-users"): {
        **ID,
        "phone": PHONE,
        "valid_from": "2026-01-01",
    },
    ("POST", "/v1/enterprise/cards/{iccid}/actual-users/{record_id}/end"): {},
    ("POST", "/v1/enterprise/fleet/batches/{batch_id}/vehicles"): {"vins": [MADE_UP["vin"]]},
    ("POST", "/v1/enterprise/fleet/batches/{batch_id}/vehicles/csv"): {"csv": f"vin\n{MADE_UP['vin']}\n"},
    ("PUT", "/v1/enterprise/fleet/batches/{batch_id}/dealer"): {"dealer_code": "D100"},
    ("POST", "/v1/enterprise/fleet/batches/{batch_id}/responsible-phone/code"): {"phone": PHONE},
    ("PUT", "/v1/enterprise/fleet/batches/{batch_id}/responsible-phone"): {"phone": PHONE, "code": CODE},
    ("POST", "/v1/enterprise/fleet/batches/{batch_id}/consents"): {"texts": {"custody_agreement": "1"}},
    ("POST", "/v1/enterprise/fleet/batches/{batch_id}/submit"): {"company_name": "北京乙物流有限公司"},
    # Routes without a resource whose handler refuses some roles the gate lets through
    ("POST", "/v1/enterprise/fleet/batches"): {"kind": "registration"},
}
#: Routes naming a part of the caller's own resource too (made up here): the 404 that part gives.
PART_NOT_FOUND: dict[tuple[str, str], str] = {
    ("DELETE", "/v1/enterprise/fleet/batches/{batch_id}/vehicles/{vin}"): "fleet.vehicle_not_in_batch",
    ("POST", "/v1/flows/{flow_id}/liveness-sessions/{session_id}/result"): "liveness.session_unknown",
    ("POST", "/v1/flows/{flow_id}/liveness-sessions/{session_id}/preview"): "liveness.session_unknown",
    ("POST", "/v1/enterprise/cards/{iccid}/actual-users/{record_id}/end"): "actual_user.not_found",
    # The flow never went to a reviewer
    ("GET", "/v1/flows/{flow_id}/review"): "review.not_found",
}
#: Routes whose allowed call ends the caller's own sign-in: made by a principal of its own.
SPENDS_PRINCIPAL = frozenset({("POST", "/v1/accounts/me/sessions/revoke-all")})

_PARAM = re.compile(r"\{(\w+)\}")


def key(spec: RouteSpec) -> tuple[str, str]:
    return (spec.method, spec.path)


def declared() -> dict[tuple[str, str], RouteSpec]:
    return {key(spec): spec for spec in ROUTES}


def path_of(spec: RouteSpec, values: dict[str, str]) -> str:
    return _PARAM.sub(lambda m: values.get(m.group(1), MADE_UP.get(m.group(1), "x")), spec.path)


def send(
    api: Api, spec: RouteSpec, path: str, headers: dict[str, str], body: Any = None
) -> tuple[int, Any, str]:
    """Call the route; the status, the parsed answer and its raw text."""
    if body is None and spec.method in ("POST", "PUT", "PATCH"):
        body = {}
    kwargs: dict[str, Any] = {"headers": {"Content-Type": "application/json", **headers}}
    if body is not None and spec.method != "GET":
        kwargs["body"] = json.dumps(body, ensure_ascii=False)
    response = getattr(api.http, spec.method.lower())(path, **kwargs)
    raw = response.body.decode("utf-8", "replace") if isinstance(response.body, bytes) else str(response.body)
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        doc = None
    return response.status_code, doc, raw


def code_of(doc: Any) -> str | None:
    return doc.get("code") if isinstance(doc, dict) else None


# -- the table against the declarations ----------------------------------------------------------------


def test_every_route_has_a_policy_entry_and_every_entry_names_a_route() -> None:
    routes = set(declared())
    assert len(routes) == len(ROUTES), "a route is declared twice"
    assert sorted(routes - POLICY.keys()) == [], "routes without an entry in tests/security/policy.py"
    assert sorted(POLICY.keys() - routes) == [], "policy entries naming no route"


def test_the_declared_roles_are_the_policys() -> None:
    differ = {
        f"{m} {p}": (sorted(spec.roles or []), sorted(POLICY[(m, p)].roles or []))
        for (m, p), spec in declared().items()
        if (m, p) in POLICY and spec.roles != POLICY[(m, p)].roles
    }
    assert differ == {}


def test_every_public_route_is_on_the_allow_list_with_a_reason() -> None:
    public = {key(spec) for spec in ROUTES if spec.roles is None}
    assert sorted(public - PUBLIC.keys()) == []
    assert sorted(PUBLIC.keys() - public) == [], "allow-listed routes that now need a token"
    assert all(len(reason) > 10 for reason in PUBLIC.values())


def test_the_policy_names_every_resource_parameter_it_checks() -> None:
    """A route open to owners, accounts or dealers that names a registration, flow or batch in its path
    says whose it is."""
    owned = {"registration_id", "flow_id", "batch_id"}
    missing = [
        f"{m} {p}"
        for (m, p), rule in POLICY.items()
        if rule.roles is not None
        and rule.resource is None
        and owned & set(_PARAM.findall(p))
        and rule.roles - frozenset(_STAFF)
    ]
    assert missing == []


# -- the gate: every route × every principal -------------------------------------------------------------


def _gate_cases() -> Iterator[Any]:
    for spec in ROUTES:
        rule = POLICY.get(key(spec))
        principals = (ANONYMOUS,) if spec.roles is None else PRINCIPALS
        for who in principals:
            yield pytest.param(spec, rule, who, id=f"{spec.method} {spec.path} as {who}")


@pytest.mark.parametrize(("spec", "rule", "who"), list(_gate_cases()))
def test_the_gate(
    client: Api, parties: tuple[Party, Party], spec: RouteSpec, rule: Rule | None, who: str
) -> None:
    assert rule is not None, f"no policy entry for {spec.method} {spec.path}"
    mine = parties[0]
    if rule.roles is None:
        status, doc, _ = send(client, spec, path_of(spec, {}), {})
        assert code_of(doc) != "auth.missing", "a public route asked for a token"
        assert status < 500, (status, doc)
        return
    if who == ANONYMOUS:
        status, doc, _ = send(client, spec, path_of(spec, {}), {})
        assert (status, code_of(doc)) == (401, "auth.missing")
        return
    role = Role(who)
    if role not in rule.roles:
        status, doc, _ = send(client, spec, path_of(spec, {}), bearer(role_token(role)))
        assert (status, code_of(doc)) == (403, "auth.forbidden")
        return
    own_kind = OWN.get(rule.resource, {}).get(role) if rule.resource else None
    values = mine.own[own_kind] if own_kind else {}
    headers = mine.headers[role]
    if key(spec) in SPENDS_PRINCIPAL:
        headers, _ = signed_in(account(f"matrixSpent{role.value.replace('_', '')}"))
    status, doc, _ = send(client, spec, path_of(spec, values), headers, BODIES.get(key(spec)))
    if role in rule.refused:
        assert status == 403, (status, doc)
        assert code_of(doc) != "auth.forbidden"
        return
    assert status not in (401, 403), (status, doc)
    assert status < 500, (status, doc)
    if own_kind and status == 404:
        assert code_of(doc) == PART_NOT_FOUND.get(key(spec)), f"its own {own_kind} was not found: {doc}"


# -- own and another's resource -----------------------------------------------------------------------


def _other_cases() -> Iterator[Any]:
    for spec in ROUTES:
        rule = POLICY.get(key(spec))
        if rule is None or rule.resource is None or rule.roles is None:
            continue
        _, tried = OTHER[rule.resource]
        for role in tried:
            if role in rule.roles and role not in rule.refused:
                yield pytest.param(spec, rule, role, id=f"{spec.method} {spec.path} as {role.value}")


@pytest.mark.parametrize(("spec", "rule", "role"), list(_other_cases()))
def test_another_partys_resource_is_refused_and_tells_nothing_of_them(
    client: Api, parties: tuple[Party, Party], spec: RouteSpec, rule: Rule, role: Role
) -> None:
    mine, theirs = parties
    assert rule.resource is not None
    kind, _ = OTHER[rule.resource]
    status, doc, raw = send(
        client, spec, path_of(spec, theirs.own[kind]), mine.headers[role], BODIES.get(key(spec))
    )
    assert status in (403, 404), (status, doc)
    told = [s for s in theirs.secrets if s in raw and s not in theirs.own[kind].values()]
    assert told == [], f"the answer tells the other party's {told}"


# -- resources named in a body or a query, and the lists a party reads ----------------------------------

#: Routes that name another's resource in the body or the query: (route, role, what of the other party).
NAMED_ELSEWHERE: tuple[tuple[str, str, Role, str, str], ...] = (
    ("POST", "/v1/dealer/assisted-registrations", Role.DEALER, "body", "dealer_vehicle.vin"),
    ("GET", "/v1/cards", Role.DEALER, "msisdn", "dealer_card.msisdn"),
    ("POST", "/v1/me/deregistrations", Role.OWNER, "body", "registration.registration_id"),
    ("POST", "/v1/me/deregistrations", Role.OWNER, "body", "owner_vehicle.vin"),
)


@pytest.mark.parametrize(
    ("method", "path", "role", "where", "what"),
    [pytest.param(*case, id=f"{case[0]} {case[1]} {case[4]} as {case[2].value}") for case in NAMED_ELSEWHERE],
)
def test_another_partys_resource_named_in_the_body_or_query_is_refused(
    client: Api, parties: tuple[Party, Party], method: str, path: str, role: Role, where: str, what: str
) -> None:
    mine, theirs = parties
    kind, field = what.split(".")
    value = theirs.own[kind][field]
    spec = declared()[(method, path)]
    body = {field: value} if where == "body" else None
    url = path if where == "body" else f"{path}?{where}={value}"
    status, doc, raw = send(client, spec, url, mine.headers[role], body)
    assert status in (403, 404), (status, doc)
    assert [s for s in theirs.secrets if s in raw and s != value] == []


def _list_cases() -> Iterator[Any]:
    for spec in ROUTES:
        rule = POLICY.get(key(spec))
        if spec.method != "GET" or "{" in spec.path or rule is None or rule.roles is None:
            continue
        for role in sorted(rule.roles - set(_STAFF) - rule.refused):
            yield pytest.param(spec, role, id=f"GET {spec.path} as {role.value}")


@pytest.mark.parametrize(("spec", "role"), list(_list_cases()))
def test_what_a_party_reads_of_its_own_holds_nothing_of_another(
    client: Api, parties: tuple[Party, Party], spec: RouteSpec, role: Role
) -> None:
    mine, theirs = parties
    status, doc, raw = send(client, spec, spec.path, mine.headers[role])
    assert status < 500, (status, doc)
    assert [s for s in theirs.secrets if s in raw] == []
