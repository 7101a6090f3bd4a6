"""Enterprise-portal accounts, printed as figures:

1. one argon2id verification with the parameters the settings choose (``password_time_cost``,
   ``password_memory_kib``, ``password_parallelism``): median and p95 over ``--verifications`` runs, and
   the dummy verification an unknown login spends (it must cost the same);
2. the whole login through the chalice test client on moto in-process: ``POST /v1/accounts/login``
   (the password: one argon2id verification, then the code sent) and ``POST /v1/accounts/login/verify``
   (the code, the session, the token), median and p95 over ``--logins`` logins of one account, and the
   DynamoDB and KMS round trips each step makes.

The SMS resend interval is lifted (every login sends a code to the same phone); the code is read from
the local SMS drop outside the timed calls.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from common import MOTO_ENV, moto_options, moto_transactions

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.update(
    {
        **MOTO_ENV,
        "CHEKA_SMS_RESEND_SECONDS": "0",
        "CHEKA_SMS_SENDS_PER_DAY": "1000000",
    }
)

PHONE = "13812345678"
PASSWORD = "Secure#2026"
JSON = {"Content-Type": "application/json"}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def figures(values: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(values), 1), "p95_ms": round(percentile(values, 0.95), 1)}


def timed(action: Callable[[], object], runs: int) -> list[float]:
    action()  # warm-up (the dummy hash, imports)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return times


def cpu_timed(action: Callable[[], object], runs: int) -> list[float]:
    """The CPU milliseconds of each run (this process only): what one verification costs the machine
    whatever else runs on it, where the wall time grows with the load of a shared machine."""
    action()
    times = []
    for _ in range(runs):
        start = time.process_time()
        action()
        times.append((time.process_time() - start) * 1000)
    return times


def measure_verification(runs: int) -> dict[str, Any]:
    from chalicelib.core import deps
    from chalicelib.core.settings import get_settings

    s = get_settings()
    passwords = deps.password_hashing()
    hashed = passwords.hash(PASSWORD)
    return {
        "parameters": {
            "type": "argon2id",
            "time_cost": s.password_time_cost,
            "memory_kib": s.password_memory_kib,
            "parallelism": s.password_parallelism,
        },
        "verify": figures(timed(lambda: passwords.verify(hashed, PASSWORD), runs)),
        "verify (CPU time)": figures(cpu_timed(lambda: passwords.verify(hashed, PASSWORD), runs)),
        "dummy (unknown account)": figures(timed(lambda: passwords.burn(PASSWORD), runs)),
        "load_average": os.getloadavg()[0],
    }


class ApiCalls:
    """Counts botocore calls by service into the bucket of the step being timed."""

    def __init__(self) -> None:
        self.current: Counter[str] | None = None

    @contextmanager
    def counting(self) -> Iterator[None]:
        from botocore.client import BaseClient

        original = BaseClient._make_api_call
        calls = self

        def counted(client: Any, operation: str, params: Any) -> Any:
            if calls.current is not None:
                calls.current[client.meta.service_model.service_name] += 1
            return original(client, operation, params)

        BaseClient._make_api_call = counted
        try:
            yield
        finally:
            BaseClient._make_api_call = original


def measure_login(logins: int) -> dict[str, Any]:
    from chalice.test import Client

    from app import app
    from chalicelib.core import deps
    from chalicelib.core.settings import get_settings
    from chalicelib.local.bootstrap import create_resources

    create_resources(get_settings())

    def last_code() -> str:
        found = re.search(r"验证码 (\d{6})", deps.sms_drop().recent(1)[0].text)
        assert found is not None
        return found.group(1)

    calls = ApiCalls()
    steps: dict[str, list[float]] = {"password": [], "code": [], "whole": []}
    counts: dict[str, Counter[str]] = {"password": Counter(), "code": Counter()}
    with Client(app) as client, calls.counting():

        def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            response = client.http.post(path, headers=JSON, body=json.dumps(body))
            assert response.status_code in (200, 201, 202), response.body
            return dict(json.loads(response.body))

        texts = json.loads(client.http.get("/v1/account-texts").body)["documents"]
        post("/v1/accounts/sms-codes", {"phone": PHONE})
        post(
            "/v1/accounts",
            {
                "login_name": "bench_admin",
                "password": PASSWORD,
                "password_confirm": PASSWORD,
                "email": "bench@example.com",
                "phone": PHONE,
                "code": last_code(),
                "accepted": [{k: t[k] for k in ("kind", "version", "sha256")} for t in texts],
            },
        )
        for n in range(logins + 2):
            timed_run = n >= 2  # two warm-up logins
            calls.current = counts["password"] if n == 2 else None
            start = time.perf_counter()
            challenge = post("/v1/accounts/login", {"identifier": "bench_admin", "password": PASSWORD})
            password_ms = (time.perf_counter() - start) * 1000
            code = last_code()
            calls.current = counts["code"] if n == 2 else None
            start = time.perf_counter()
            post("/v1/accounts/login/verify", {"challenge_id": challenge["challenge_id"], "code": code})
            code_ms = (time.perf_counter() - start) * 1000
            calls.current = None
            if timed_run:
                steps["password"].append(password_ms)
                steps["code"].append(code_ms)
                steps["whole"].append(password_ms + code_ms)
    return {
        "logins": logins,
        "POST /v1/accounts/login (password)": {
            **figures(steps["password"]),
            "aws_calls": dict(counts["password"]),
        },
        "POST /v1/accounts/login/verify (code)": {
            **figures(steps["code"]),
            "aws_calls": dict(counts["code"]),
        },
        "whole login": figures(steps["whole"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--verifications", type=int, default=30)
    parser.add_argument("--logins", type=int, default=30)
    moto_options(parser)
    args = parser.parse_args()
    from moto import mock_aws

    context, moto_name = moto_transactions(args.stock_moto)
    with context, mock_aws():
        result: dict[str, Any] = {
            "argon2id": measure_verification(args.verifications),
            "login": measure_login(args.logins),
            "moto": moto_name,
        }
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return
    argon = result["argon2id"]
    p = argon["parameters"]
    print(
        f"argon2id t={p['time_cost']} m={p['memory_kib']} KiB p={p['parallelism']}, "
        f"{args.verifications} runs each:"
    )
    print(f"  (load average {argon['load_average']:.1f} on {os.cpu_count()} cores)")
    for name in ("verify", "verify (CPU time)", "dummy (unknown account)"):
        print(
            f"  {name:<26} median {argon[name]['median_ms']:>7.1f} ms   p95 {argon[name]['p95_ms']:>7.1f} ms"
        )
    login = result["login"]
    print(f"login through the chalice test client on {result['moto']}, {login['logins']} logins:")
    for name, row in login.items():
        if not isinstance(row, dict):
            continue
        aws = row.get("aws_calls")
        extra = f"   AWS calls {aws}" if aws is not None else ""
        print(f"  {name:<38} median {row['median_ms']:>7.1f} ms   p95 {row['p95_ms']:>7.1f} ms{extra}")


if __name__ == "__main__":
    main()
