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
signs them on the local stage.
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
    from schemathesis import Case
    from schemathesis.schemas import APIOperation, BaseSchema

#: Examples per operation (``make fuzz`` sets more).
EXAMPLES = int(os.environ.get("CHEKA_FUZZ_EXAMPLES", "3"))
#: Steps of the stateful run (``make fuzz`` sets more through ``CHEKA_FUZZ_STEPS``).
STEPS = int(os.environ.get("CHEKA_FUZZ_STEPS", "6"))
SEED = 20_261_130
#: The fuzzing owner's phone (no browser story signs in with it).
FUZZ_PHONE = "13700137090"

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

#: The checks every answer must pass.
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance")


def _issue(stack: Stack, role: str) -> str:
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
            status, signed = stack.call("POST", "/v1/auth/login", {"phone": FUZZ_PHONE, "code": code.group(1)})
            assert status == 200, signed
            return str(signed["token"])
        time.sleep(0.2)
    raise AssertionError("no login code reached the fuzzing owner's phone")


@dataclass
class Tokens:
    """A token per role, by role name."""

    by_role: dict[str, str]

    def for_operation(self, operation: APIOperation, turn: int) -> dict[str, str]:
        roles = operation.definition.raw.get("x-roles") or []
        if not roles:
            return {}
        role = roles[turn % len(roles)]
        return {"Authorization": f"Bearer {self.by_role[role]}"}


@pytest.fixture(scope="module")
def tokens(stack: Stack) -> Tokens:
    from chalicelib.core.auth import Role

    by_role = {role.value: _issue(stack, role.value) for role in Role if role is not Role.OWNER}
    by_role[Role.OWNER.value] = _owner_signed_in(stack)
    return Tokens(by_role)


@pytest.fixture(scope="module")
def schema(stack: Stack) -> BaseSchema:
    import schemathesis

    loaded = schemathesis.openapi.from_url(stack.api + "/openapi.json")
    loaded.config.update(base_url=stack.api)
    return loaded


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


def _operations(schema: BaseSchema) -> Iterator[APIOperation]:
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) not in LEFT_ALONE:
            yield operation


def _checks() -> list[Any]:
    from schemathesis import checks
    from schemathesis.specs.openapi import checks as openapi_checks

    found = [getattr(checks, name, None) or getattr(openapi_checks, name) for name in CHECKS]
    return found


def _fuzz(operation: APIOperation, headers: dict[str, str], findings: Findings) -> None:
    """``EXAMPLES`` valid requests and ``EXAMPLES`` invalid ones (schemathesis's negative mode) to
    ``operation``; the first failing check of each mode is recorded."""
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from schemathesis import GenerationMode

    label = f"{operation.method.upper()} {operation.path}"
    selected = _checks()
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

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
