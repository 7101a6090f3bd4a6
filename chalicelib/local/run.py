"""``make run``: the whole product on this machine, on an embedded AWS (moto server on loopback).

Starts moto, creates every resource, seeds demo data, starts ``chalice local`` and the worker, prints
what is where, and stops everything on Ctrl-C. State lives in moto's memory: a restart starts clean.
The staff identity provider (``chalicelib.local.oidc_provider``: OpenID Connect with TOTP, one demo
staff member per staff role) runs in this process on ``CHEKA_OIDC_PORT``; ``chalice local`` is started
trusting it as its staff issuer.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from chalicelib.core.settings import Settings
from chalicelib.local.state import remove_state, state_doc, state_path, write_state

if TYPE_CHECKING:
    from chalicelib.local.oidc_provider import RunningProvider
    from chalicelib.local.staff_users import DemoStaff

ROOT = Path(__file__).resolve().parents[2]


def _wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"nothing answered on 127.0.0.1:{port} within {timeout:.0f}s")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def main() -> None:
    settings = Settings()
    for label, port in (
        ("moto", settings.moto_port),
        ("api", settings.api_port),
        ("sandbox", settings.sandbox_port),
        ("authority", settings.authority_port),
        ("oidc", settings.oidc_port),
    ):
        if not _port_free(port):
            raise SystemExit(
                f"port {port} ({label}) is in use: set CHEKA_{label.upper()}_PORT or stop that process"
            )
    env = {
        **os.environ,
        "CHEKA_STAGE": "local",
        "CHEKA_AWS_ENDPOINT_URL": f"http://127.0.0.1:{settings.moto_port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": settings.region,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.update(env)
    bin_dir = Path(sys.executable).parent
    children: list[subprocess.Popen[bytes]] = []
    started_at = datetime.now(UTC)
    state_file = state_path(settings)
    # The staff identity provider (OpenID Connect + TOTP) runs in this process; the API trusts it.
    staff, idp = _start_staff_idp(settings)
    env.update(idp.api_env)
    os.environ.update(idp.api_env)

    def stop(*_: object) -> None:
        if state_file is not None:
            remove_state(state_file, os.getpid())
        idp.running.stop()
        # Each child leads its own process group: chalice local's reloader forks a server process
        # that must go down with it.
        for proc in reversed(children):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in children:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        print(
            "\nstopped: moto, chalice local, the worker, the sandbox operator and the sandbox authority "
            "are down, and so is the staff identity provider (state is gone)."
        )
        sys.exit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    children.append(
        subprocess.Popen(
            # moto's server with DynamoDB's transaction behaviour (the tests' and benchmarks' too)
            [
                sys.executable,
                "-m",
                "chalicelib.local.moto_server",
                "-H",
                "127.0.0.1",
                "-p",
                str(settings.moto_port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    )
    _wait_for_port(settings.moto_port)
    # Step Functions in moto run the real ASL only when asked to.
    request = urllib.request.Request(
        f"http://127.0.0.1:{settings.moto_port}/moto-api/config",
        data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
        method="POST",
    )
    urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 # nosec B310 # loopback moto server

    print("creating resources and seeding demo data …", flush=True)
    seeded = subprocess.run(
        [str(bin_dir / "cheka"), "seed"], env=env, check=True, capture_output=True, text=True
    ).stdout
    seed_doc = json.loads(seeded)
    token = subprocess.run(
        [
            str(bin_dir / "cheka"),
            "token",
            "issue",
            "--subject",
            "bootstrap-admin",
            "--role",
            "admin",
            "--ttl",
            "86400",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()

    children.append(
        subprocess.Popen(
            # chalice local, answering unknown paths in the error model (chalicelib.local.gateway)
            [
                sys.executable,
                "-m",
                "chalicelib.local.gateway",
                "local",
                "--host",
                "127.0.0.1",
                "--port",
                str(settings.api_port),
                "--stage",
                "local",
                # A test's stack keeps the code it started with (no restart while files change under it).
                *(["--no-autoreload"] if os.environ.get("CHEKA_LOCAL_NO_AUTORELOAD") == "1" else []),
            ],
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
    )
    children.append(
        subprocess.Popen(
            [sys.executable, "-m", "chalicelib.local.worker"], cwd=ROOT, env=env, start_new_session=True
        )
    )
    children.append(
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chalicelib.local.sandbox_operator",
                "--port",
                str(settings.sandbox_port),
                "--callback-url",
                f"http://127.0.0.1:{settings.api_port}{settings.operator_callback_path}",
                "--decision-delay",
                str(settings.sandbox_decision_delay_seconds),
                "--spot-check-rate",
                "0.05",
            ],
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
    )
    children.append(
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chalicelib.local.sandbox_authority",
                "--port",
                str(settings.authority_port),
            ],
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
    )
    _wait_for_port(settings.api_port, timeout=60)
    _wait_for_port(settings.authority_port)
    api = f"http://127.0.0.1:{settings.api_port}"
    if state_file is not None:
        # What `cheka` reads to find this stack without exported variables.
        write_state(
            state_file,
            state_doc(
                os.getpid(),
                started_at,
                settings,
                dict(os.environ),
                seed_doc,
                oidc=idp.running.issuer,
                staff=[member.state() for member in staff],
            ),
        )
    vin = seed_doc["registered_vins"][0] if seed_doc["registered_vins"] else seed_doc["first_vin"]
    print(
        f"""
cheka is running (stage local; state is in memory — `make seed` re-seeds, a restart starts clean)

  open        {api}/                 landing page: the H5, demo VINs, SMS drop, health, routes
  H5          {api}/h5               the owner's mobile client (registration, de-registration)
  portal      {api}/portal           the enterprise portal (accounts, real-name, agents, sessions)
  API         {api}/openapi.json
  AWS (moto)  http://127.0.0.1:{settings.moto_port}     tables, bucket, KMS keys
  worker      running (outbox dispatch, outbox sweep, purge of abandoned flows, retention purge,
              health-watch)
  SMS         .venv/bin/cheka sms drop     (codes and results are kept here, not sent)
  CLI         .venv/bin/cheka …            finds this stack by itself (recorded in {state_file or "-"})
  operator    http://127.0.0.1:{settings.sandbox_port}     sandbox operator (decides pushes, calls back)
  authority   http://127.0.0.1:{settings.authority_port}     sandbox identity authority (synthetic citizens;
              faults: .venv/bin/cheka authority faults --down / --latency 5 / --wrong-rate 1)

staff sign-in (password + TOTP code; new passwords and TOTP secrets at each start)
  console     {api}/console
  provider    {idp.running.issuer}     (OpenID Connect; the API trusts it)
{_staff_lines(staff)}
  TOTP code   .venv/bin/cheka staff totp reviewer     (or add the secret to an authenticator app)

bootstrap admin token (24 h):
  export TOKEN={token}

try:
  .venv/bin/cheka demo-csv --vehicles 1000 --out /tmp/inventory.csv
  .venv/bin/cheka import-inventory /tmp/inventory.csv
  curl -s -H "Authorization: Bearer $TOKEN" {api}/v1/vehicles/{vin}
  .venv/bin/cheka demo-id-card --portrait <a photo of you> --out /tmp/card
      (a new invented identity each time, registered with the sandbox authority; type in what it prints)
  then register one of these unregistered vehicles in the H5: {", ".join(seed_doc.get("open_vins", [])[:3])}
      (show you hold it with the code its head unit shows: the page shows the sandbox's code, and so does
      .venv/bin/cheka vehicle head-unit VIN)
  sign in to the H5 with {seed_doc.get("demo_owner_phone", "-")}: its cars in service, not registered (补登记)

Ctrl-C stops everything.
""",
        flush=True,
    )
    while True:
        for proc in children:
            if proc.poll() is not None:
                print(f"a process exited ({proc.args!r}, code {proc.returncode}); stopping", file=sys.stderr)
                stop()
        time.sleep(1)


@dataclass(frozen=True)
class _StaffIdp:
    running: RunningProvider
    #: The API's settings that make it trust the provider (CHEKA_STAFF_OIDC_*).
    api_env: dict[str, str]


def _start_staff_idp(settings: Settings) -> tuple[list[DemoStaff], _StaffIdp]:
    """Invent the demo staff (one per staff role) and start the local OIDC provider for them."""
    from chalicelib.local.oidc_provider import LocalOidcProvider, api_environment, console_client, serve
    from chalicelib.local.staff_users import StaffDirectory, invent_demo_staff

    staff = invent_demo_staff()
    issuer = f"http://127.0.0.1:{settings.oidc_port}"
    client = console_client(f"http://127.0.0.1:{settings.api_port}")
    provider = LocalOidcProvider(
        issuer=issuer,
        audience=client.client_id,
        users=StaffDirectory([member.user() for member in staff]),
        clients=[client],
    )
    running = serve(provider, settings.oidc_port)
    return staff, _StaffIdp(running=running, api_env=api_environment(issuer, client.client_id))


def _staff_lines(staff: list[DemoStaff]) -> str:
    return "\n".join(
        f"  {member.username:<11} password {member.password}   TOTP secret {member.totp_secret}"
        for member in staff
    )


if __name__ == "__main__":
    main()
