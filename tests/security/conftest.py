"""One embedded AWS per module for the security tests: the matrix seeds it once and calls every route
against it (a fresh stack per test would cost more than the whole matrix)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

#: Settings that let one client send as many codes and open as many flows as the matrix needs.
_UNLIMITED = {
    "CHEKA_SMS_RESEND_SECONDS": "0",
    "CHEKA_CAPTCHA_AFTER_SENDS": "1000000",
    "CHEKA_SMS_SENDS_PER_PHONE_PURPOSE_DAY": "1000",
    "CHEKA_SMS_SENDS_PER_PHONE_DAY": "2000",
    "CHEKA_SMS_SENDS_PER_IP_HOUR": "1000000",
    "CHEKA_SMS_SENDS_PER_IP_DAY": "1000000",
    "CHEKA_SMS_SENDS_PER_DEVICE_HOUR": "1000000",
    "CHEKA_SMS_SENDS_PER_DEVICE_DAY": "1000000",
    "CHEKA_OPEN_REGISTRATIONS_PER_OWNER": "1000",
    "CHEKA_OPEN_FLOWS_PER_OWNER": "1000",
}


@pytest.fixture(scope="module")
def stack(identity_authority: Any) -> Iterator[None]:
    """Every resource of the stage in one embedded AWS, as the ``aws`` fixture makes it, for a module."""
    from moto import mock_aws

    from chalicelib.core import deps
    from chalicelib.core.settings import get_settings
    from chalicelib.local.bootstrap import create_resources, stop_executions

    with pytest.MonkeyPatch.context() as patch:
        # One client calls every route: the limits on a client, a phone and an owner are not the point
        for name, value in _UNLIMITED.items():
            patch.setenv(name, value)
        deps.reset()
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            deps.reset()
            create_resources(get_settings())
            yield
            stop_executions(get_settings())
        deps.reset()


@pytest.fixture(scope="module")
def client(stack: None) -> Iterator[Any]:
    """The app in-process (``chalice.test.Client``) on the module's stack."""
    from chalice.test import Client

    from app import app

    with Client(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def parties(client: Any) -> tuple[Any, Any]:
    """Parties A and B seeded on the module's stack (``tests/security/parties.py``)."""
    from tests.security.parties import seed

    return seed(client)
