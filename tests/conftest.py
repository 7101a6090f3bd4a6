"""Shared fixtures. The test stage talks to moto in-process (``mock_aws``), never to a network endpoint."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# Settings are read from the environment once: set the test stage before anything imports them.
os.environ.update(
    {
        "CHEKA_STAGE": "test",
        "CHEKA_AWS_ENDPOINT_URL": "",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "cn-north-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_DEV": "false",
        # Every test client is one IP: the per-client SMS limits and the captcha are tested where they
        # are set strict (tests/integration/test_sms_abuse.py), not met by every test that signs in.
        "CHEKA_SMS_SENDS_PER_IP_HOUR": "100000",
        "CHEKA_SMS_SENDS_PER_IP_DAY": "1000000",
        "CHEKA_SMS_SENDS_PER_DEVICE_HOUR": "100000",
        "CHEKA_SMS_SENDS_PER_DEVICE_DAY": "1000000",
        "CHEKA_CAPTCHA_AFTER_SENDS": "100000",
        "CHEKA_SMS_SENDS_PER_CALLER_HOUR": "100000",
        "CHEKA_SMS_SENDS_PER_CALLER_DAY": "1000000",
        "CHEKA_SMS_WRONG_TRIES_PER_IP_HOUR": "100000",
        "CHEKA_SMS_WRONG_TRIES_PER_IP_DAY": "1000000",
    }
)


@pytest.fixture(scope="session")
def identity_authority() -> Iterator[Any]:
    """The test stage's identity authority: the sandbox service on a free loopback port, holding one
    synthetic citizen — the person of ``tests/synthetic_documents.py`` with the face photo the
    whole-flow tests put on the card. Any other identity is unknown to it, as in production."""
    from chalicelib.local.documents import PERSON_ID_NUMBER, PERSON_NAME
    from chalicelib.local.sandbox_authority import Citizen, SandboxAuthority
    from tests.face_photos import CARD_PORTRAIT, FACES

    portrait = FACES / CARD_PORTRAIT
    with SandboxAuthority() as sandbox:
        sandbox.register(
            Citizen(
                name=PERSON_NAME,
                id_number=PERSON_ID_NUMBER,
                portrait=portrait.read_bytes() if portrait.is_file() else None,
            )
        )
        os.environ["CHEKA_AUTHORITY_URL"] = sandbox.url
        yield sandbox
        os.environ.pop("CHEKA_AUTHORITY_URL", None)


@pytest.fixture
def aws(identity_authority: Any) -> Iterator[None]:
    """A fresh embedded AWS with every resource of the stage created by the same bootstrap as ``make run``,
    and the sandbox identity authority (``identity_authority``) as the stage's authority."""
    from moto import mock_aws

    from chalicelib.core import deps
    from chalicelib.core.settings import get_settings
    from chalicelib.local.bootstrap import create_resources, stop_executions

    # Step Functions run the real ASL (the fleet review workflow), as the embedded AWS of ``make run`` does;
    # executions still running are stopped before the embedded AWS goes.
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        deps.reset()
        create_resources(get_settings())
        yield
        stop_executions(get_settings())
    deps.reset()


@pytest.fixture
def api(aws: None) -> Iterator[object]:
    from chalice.test import Client

    from app import app

    with Client(app) as client:
        yield client


@pytest.fixture
def token() -> Callable[..., str]:
    from chalicelib.core.auth import Role, issue_token
    from chalicelib.core.settings import get_settings

    def make(*roles: str, subject: str = "tester", ttl: int | None = None) -> str:
        return issue_token(get_settings(), subject, [Role(r) for r in roles], ttl_seconds=ttl)

    return make


@pytest.fixture
def auth(token: Callable[..., str]) -> Callable[..., dict[str, str]]:
    def headers(*roles: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token(*roles)}", **extra}

    return headers


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Everything the service logger writes (its JSON lines) during the test."""
    from chalicelib.core.observability import logger

    stream = io.StringIO()
    handler: Any = logger.registered_handler
    # Swapped, not ``setStream``: that flushes the old stream, which may be a test's captured stdout
    # closed since the logger was first built under it.
    old, handler.stream = handler.stream, stream
    yield stream
    handler.stream = old


@pytest.fixture(scope="session", autouse=True)
def dynamodb_transactions() -> None:
    """Every test's moto behaves as DynamoDB does with transactions (``chalicelib.local.moto_patches``:
    serialised, undone item by item, never undoing a concurrent commit), as ``make run`` and the
    benchmarks do."""
    from chalicelib.local.moto_patches import apply

    apply()
