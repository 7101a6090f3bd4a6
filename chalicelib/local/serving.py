"""Serving the local stack: a sandbox service run in the foreground until SIGINT or SIGTERM (``make run``
stops it so), and, for a stack started beside a developer's own (the browser tests, ``make load``, the
benchmarks), free loopback ports and the environment of ``python -m chalicelib.local.run`` on them."""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType

#: The local stack's servers, each on the port its ``CHEKA_<NAME>_PORT`` setting names.
STACK_SERVERS = ("moto", "api", "sandbox", "authority", "oidc")

#: The per-client limits of the SMS codes lifted (sends by IP, by device and by signed-in caller, wrong
#: tries by IP, and the captcha they lead to), for a stack whose every caller is one loopback client
#: asking for many codes. The limits themselves are proved in tests/integration/test_sms_abuse.py.
ONE_LOOPBACK_CLIENT = {
    "CHEKA_SMS_SENDS_PER_IP_HOUR": "100000",
    "CHEKA_SMS_SENDS_PER_IP_DAY": "1000000",
    "CHEKA_SMS_SENDS_PER_DEVICE_HOUR": "100000",
    "CHEKA_SMS_SENDS_PER_DEVICE_DAY": "1000000",
    "CHEKA_SMS_SENDS_PER_CALLER_HOUR": "100000",
    "CHEKA_SMS_SENDS_PER_CALLER_DAY": "1000000",
    "CHEKA_SMS_WRONG_TRIES_PER_IP_HOUR": "100000",
    "CHEKA_SMS_WRONG_TRIES_PER_IP_DAY": "1000000",
    "CHEKA_CAPTCHA_AFTER_SENDS": "100000",
    "CHEKA_CAPTCHA_ISSUES_PER_IP_HOUR": "100000",
}


def serve_until_signalled(stop: Callable[[], None]) -> None:
    """Block until SIGINT or SIGTERM, then call ``stop``."""
    stopped = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stopped.wait(0.5):
        pass
    stop()


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1: all bound at once (so no two are the same), then
    released for the caller's servers to bind. Another process may take one in between, as it may any
    fixed port; what binds it then fails with "address in use"."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sockets.append(sock)
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def local_stack_env(
    ports: Mapping[str, int], state_file: Path, settings: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of ``python -m chalicelib.local.run`` as the local stage on ``ports`` (one per name
    of ``STACK_SERVERS``), with its state file (what ``cheka`` finds it by) at ``state_file``, and
    ``settings`` on top (what the run changes of the stage's settings: the limits it lifts).

    The caller's ``CHEKA_``, ``POWERTOOLS_`` and ``AWS_`` variables are left out: a test run's settings or
    a developer's AWS credentials must not reach a stack whose AWS is its own moto server. The API is one
    process that keeps the code it started with (no reloader: files may change under a run, and a
    profile sees the server itself)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHEKA_", "POWERTOOLS_", "AWS_"))}
    env.update({f"CHEKA_{name.upper()}_PORT": str(ports[name]) for name in STACK_SERVERS})
    env.update(
        {
            "CHEKA_STAGE": "local",
            "CHEKA_AWS_ENDPOINT_URL": f"http://127.0.0.1:{ports['moto']}",
            "CHEKA_LOCAL_STATE_FILE": str(state_file),
            "CHEKA_LOCAL_NO_AUTORELOAD": "1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "cn-north-1",
            "PYTHONUNBUFFERED": "1",
            **(settings or {}),
        }
    )
    return env
