"""Schemathesis against the running stack's ``/openapi.json``: every route, as each role, never a 500,
every answer as the document declares it (status, content type, body schema).

Each operation is fuzzed with a fixed seed, derandomized, ``CHEKA_FUZZ_EXAMPLES`` examples (3 in
``make test``; ``make fuzz`` sets more), as a role it admits (the roles of each route taken in turn, so
every role is used) or anonymously when it is public. The stateful run follows the document's
``links`` from a created registration and a created campaign to their follow-up routes.

The stack is shared with the browser stories of this worker, which may run after this file: what the
fuzz may not do is listed in ``LEFT_ALONE`` with the reason (codes sent by SMS to phones, sign-outs of
the tokens it uses, campaign waves that reach the seeded owners). The owner signs in by SMS with a
phone of its own; the other roles get tokens of their own subjects, signed as ``cheka token issue``
signs them on the local stage. Those of the account roles (account, enterprise_*) and the dealer carry no
live account session, enterprise or dealer code, so their routes answer them 401/403: the fuzz checks
those refusals, not what lies behind them (the authorization matrix does that).
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.conftest import Stack

if TYPE_CHECKING:
    from schemathesis.schemas import BaseSchema

#: Schemathesis's operation and case (generic in four types the tests do not use).
Operation = Any
Case = Any

#: Examples per operation (``make fuzz`` sets more).
EXAMPLES = int(os.environ.get("CHEKA_FUZZ_EXAMPLES", "3"))
#: Scenarios and steps of the stateful run (``make fuzz`` sets more).
SCENARIOS = max(EXAMPLES, 10)
STEPS = int(os.environ.get("CHEKA_FUZZ_STEPS", "8"))
SEED = 20_261_130
#: The fuzzing owner's phone (no browser story signs in with it).
FUZZ_PHONE = "13700137090"
#: Seed of the fuzz's own synthetic vehicle (``chalicelib.local.synthetic``; the demo seed is another).
FUZZ_INVENTORY_SEED = 18_181

#: Operations the fuzz leaves alone on the shared stack, and why.
LEFT_ALONE: dict[tuple[str, str], str] = {
    ("POST", "/v1/auth/sms-codes"): "sends codes to whatever phone is drawn, counted against this client",
    ("POST", "/v1/accounts/sms-codes"): "sends codes to whatever phone is drawn",
    ("POST", "/v1/accounts/password-reset"): "sends a code to the phone of a drawn login name",
    ("POST", "/v1/accounts/login"): "sends a login code to the account's phone",
    ("POST", "/v1/auth/logout"): "would end the fuzzing owner's session",
    ("POST", "/v1/auth/sessions/revoke-all"): "would end the fuzzing owner's sessions",
    ("POST", "/v1/accounts/logout"): "would end the fuzzing account's session",
    ("POST", "/v1/accounts/me/sessions/revoke-all"): "would end the fuzzing account's sessions",
    ("POST", "/v1/staff/logout"): "would end the fuzzing staff member's sign-in",
    ("POST", "/v1/campaigns/{campaign_id}/waves/{wave}/run"): "a wave sends SMS to the seeded owners",
}

#: Operations fuzzed with invalid bodies only, and why (their valid requests are the stateful run's).
INVALID_ONLY: dict[tuple[str, str], str] = {
    ("POST", "/v1/campaigns"): "a valid campaign may schedule a wave that texts the seeded owners soon; "
    "the stateful run creates one whose only wave falls two years out",
}

#: The checks every answer must pass.
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)


def _issue(role: str) -> str:
    """A token of ``role`` for a subject of the fuzz's own, signed with the local stage's key."""
    from chalicelib.core.auth import Role, issue_token
    from chalicelib.core.settings import get_settings

    return issue_token(get_settings(), f"fuzz-{role}", [Role(role)], ttl_seconds=3600)


def _owner_signed_in(stack: Stack) -> str:
    """The fuzzing owner's token, through the SMS login (the code read from the stack's SMS drop)."""
    masked = FUZZ_PHONE[:3] + "****" + FUZZ_PHONE[-4:]
    status, sent = stack.call("POST", "/v1/auth/sms-codes", {"phone": FUZZ_PHONE, "purpose": "login"})
    assert status in (200, 201, 202), sent
    for _ in range(50):
        status, drop = stack.call("GET", "/v1/dev/sms-drop?limit=100", token=stack.admin_token)
        assert status == 200, drop
        texts = [m["text"] for m in drop["messages"] if m.get("phone") == masked]
        if texts:
            code = re.search(r"验证码\s*(\d{4,8})", texts[0])
            assert code, texts[0]
            status, signed = stack.call(
                "POST", "/v1/auth/login", {"phone": FUZZ_PHONE, "code": code.group(1)}
            )
            assert status == 200, signed
            return str(signed["token"])
        time.sleep(0.2)
    raise AssertionError("no login code reached the fuzzing owner's phone")


@dataclass
class Tokens:
    """A token per role, by role name."""

    by_role: dict[str, str]

    def for_operation(self, operation: Operation, turn: int | None = None) -> dict[str, str]:
        """The headers of a caller ``operation`` admits: its roles taken in turn (``turn``), or, without
        one, the role most likely to get past authorization (the owner, then the admin)."""
        roles = operation.definition.raw.get("x-roles") or []
        if not roles:
            return {}
        if turn is not None:
            role = roles[turn % len(roles)]
        else:
            role = next((r for r in ("owner", "admin", "operations") if r in roles), roles[0])
        return {"Authorization": f"Bearer {self.by_role[role]}"}


@pytest.fixture(scope="module")
def tokens(stack: Stack) -> Tokens:
    from chalicelib.core.auth import Role

    by_role = {role.value: _issue(role.value) for role in Role if role is not Role.OWNER}
    by_role[Role.OWNER.value] = _owner_signed_in(stack)
    return Tokens(by_role)


@pytest.fixture(scope="module")
def schema(stack: Stack) -> BaseSchema:
    import schemathesis

    loaded = schemathesis.openapi.from_url(stack.api + "/openapi.json")
    loaded.config.update(base_url=stack.api)
    return loaded.exclude(name=[f"{method} {path}" for method, path in LEFT_ALONE])


@dataclass
class Findings:
    """What the fuzz found, for the assertion and the summary ``make fuzz`` prints."""

    requests: Counter[str] = field(default_factory=Counter)
    failures: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        total = sum(self.requests.values())
        lines = [f"fuzz: {len(self.requests)} operations, {total} requests, {len(self.failures)} failing"]
        lines += [f"  {label}: {message}" for label, message in sorted(self.failures.items())]
        return "\n".join(lines)


def _operations(schema: BaseSchema) -> Iterator[Operation]:
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid operation fails the run
        if (operation.method.upper(), operation.path) not in LEFT_ALONE:
            yield operation


def _checks() -> list[Any]:
    from schemathesis import checks
    from schemathesis.specs.openapi import checks as openapi_checks

    return [getattr(checks, name, None) or getattr(openapi_checks, name) for name in CHECKS]


def _fuzz(operation: Operation, headers: dict[str, str], findings: Findings) -> None:
    """``EXAMPLES`` valid requests and ``EXAMPLES`` invalid ones (schemathesis's negative mode) to
    ``operation``; the first failing check of each mode is recorded."""
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    label = f"{operation.method.upper()} {operation.path}"
    selected = _checks()
    # Only a JSON body has rules to break: a path or query parameter is any string to the document.
    has_body = "application/json" in (operation.definition.raw.get("requestBody") or {}).get("content", {})
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if has_body else (GenerationMode.POSITIVE,)
    if (operation.method.upper(), operation.path) in INVALID_ONLY:
        modes = (GenerationMode.NEGATIVE,)
    for mode in modes:

        @seed(SEED)
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            print_blob=False,
        )
        @given(case=operation.as_strategy(generation_mode=mode, headers=headers))
        def run(case: Case) -> None:
            findings.requests[label] += 1
            case.call_and_validate(checks=selected, timeout=30)

        try:
            run()
        except Unsatisfiable:  # no request of this mode can be made (nothing in it to get wrong)
            continue
        except Exception as exc:  # each failing operation is reported, and the others still run
            findings.failures[f"{label} ({mode.value})"] = f"{type(exc).__name__}: {str(exc).strip()[:1500]}"


def test_every_route_answers_as_documented_and_never_500(
    stack: Stack, schema: BaseSchema, tokens: Tokens
) -> None:
    findings = Findings()
    for turn, operation in enumerate(_operations(schema)):
        _fuzz(operation, tokens.for_operation(operation, turn), findings)
    print(findings.summary())
    assert not findings.failures, findings.summary()
    status, health = stack.call("GET", "/health")
    assert status == 200, health


def _vehicle_of_its_own(stack: Stack) -> str:
    """The VIN of a synthetic vehicle the admin imports for the fuzz (no browser story knows it)."""
    import csv
    import io
    import urllib.request

    from chalicelib.local.synthetic import inventory_csv

    text = inventory_csv(1, seed=FUZZ_INVENTORY_SEED)
    request = urllib.request.Request(
        stack.api + "/v1/admin/inventory/imports",
        data=text.encode(),
        method="POST",
        headers={"Content-Type": "text/csv", "Authorization": f"Bearer {stack.admin_token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # loopback stack
        assert response.status in (200, 201), response.read()
    return str(next(csv.DictReader(io.StringIO(text)))["vin"])


def _creating_bodies(vin: str) -> dict[str, dict[str, Any]]:
    """Valid bodies of the creating routes the stateful run starts from (what it then follows is
    fuzzed): a campaign whose only wave falls two years out, a registration of the fuzz's own car."""
    from datetime import date, timedelta

    deadline = (date.today() + timedelta(days=730)).isoformat()
    return {
        "POST /v1/campaigns": {
            "name": "fuzz",
            "deadline": deadline,
            "waves": [1],
            "template": "尾号{vin_tail}的车联网卡请实名登记：{link}",
            "channels": ["sms"],
            "rate_per_second": 1,
        },
        "POST /v1/me/registrations": {"vin": vin},
        "POST /v1/flows": {"purpose": "registration"},
    }


#: The families the stateful run follows: a created campaign (as the admin), a created registration,
#: de-registration and verification flow (as the owner), through the document's links.
STATEFUL_PATHS = r"^/v1/(campaigns|me/registrations|me/deregistrations|flows)(/|$)"


def test_created_resources_are_followed_through_their_links(
    stack: Stack, schema: BaseSchema, tokens: Tokens
) -> None:
    from hypothesis import HealthCheck, Phase, settings
    from hypothesis.errors import FlakyFailure, FlakyStrategyDefinition

    linked = schema.include(path_regex=STATEFUL_PATHS)
    creating = _creating_bodies(_vehicle_of_its_own(stack))
    selected = _checks()
    steps: Counter[str] = Counter()

    class Machine(linked.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: Case) -> None:
            # The case's own Authorization (drawn from the security scheme) gives way to the role's.
            case.headers = {**(case.headers or {}), **tokens.for_operation(case.operation)}
            label = f"{case.operation.method.upper()} {case.operation.path}"
            if label in creating:
                case.body = dict(creating[label])

        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            return {"timeout": 30}

        def validate_response(
            self, response: Any, case: Case, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            steps[f"{case.operation.method.upper()} {case.operation.path} {response.status_code}"] += 1
            case.validate_response(response, checks=selected, transport_kwargs=kwargs)

    budget = settings(
        max_examples=SCENARIOS,
        stateful_step_count=STEPS,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    try:
        Machine.run(settings=budget)
    except FlakyFailure as flaky:  # a failure that did not repeat on replay is a failure all the same
        raise flaky.exceptions[0] from flaky
    except FlakyStrategyDefinition:
        # A live server is not replayable: a step answered differently the second time (a registration
        # resumed, not created) and Hypothesis stops there. Every step run so far passed its checks.
        pass
    print("stateful:", dict(sorted(steps.items())))
    # Something was created and followed (the fuzz's own car: 201 the first time, 200 once resumed).
    created = ("POST /v1/campaigns 201", "POST /v1/me/registrations 201", "POST /v1/me/registrations 200")
    assert any(steps[label] for label in created), steps
    status, health = stack.call("GET", "/health")
    assert status == 200, health
