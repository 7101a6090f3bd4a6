"""Token verification per request: a staff access token of an OpenID Connect issuer (RS256 and ES256,
JWKS cached), the first verification that fetches the discovery document and the JWKS (cold), and our
own HS256 tokens beside them — through ``chalicelib.core.auth.authenticate``, as every request does.

The issuer is served on a loopback port (keys generated here); the revocation check of a staff request
(one DynamoDB ``GetItem``, ``chalicelib.api.staff``) is not in these figures: it is a table read like
any other (see ``bench_moto.py``), replaced here by an in-memory set.

Run: ``python bench/bench_tokens.py [--count 5000] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ.setdefault("CHEKA_STAGE", "test")


def _timings(action: Callable[[], object], count: int) -> list[float]:
    action()  # warm
    times = []
    for _ in range(count):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1_000_000)
    return times


def _figures(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    median = statistics.median(ordered)
    return {
        "median_us": round(median, 1),
        "p95_us": round(ordered[int(len(ordered) * 0.95) - 1], 1),
        "per_second": round(1_000_000 / median),
    }


def run(count: int) -> dict[str, Any]:
    from chalicelib.core import auth, oidc
    from chalicelib.core.auth import Role, authenticate, issue_token
    from chalicelib.core.config import Settings
    from tests.fakes.oidc_issuer import AUDIENCE, running_issuer

    revoked: set[str] = set()
    auth.install_staff_revocation_check(revoked.__contains__)
    results: dict[str, Any] = {"count": count}
    with running_issuer() as issuer:
        settings = Settings(
            stage="test",
            token_secret="bench-secret",  # type: ignore[arg-type]
            staff_oidc_issuer=issuer.issuer,
            staff_oidc_audience=AUDIENCE,
            staff_oidc_roles_claim="groups",
        )
        plain = Settings(stage="test", token_secret="bench-secret")  # type: ignore[arg-type]
        rs256 = "Bearer " + issuer.token(groups=["reviewer"], exp=int(time.time()) + 3600)
        es256 = "Bearer " + issuer.token(algorithm="ES256", groups=["reviewer"], exp=int(time.time()) + 3600)
        ours = "Bearer " + issue_token(settings, "owner-1", [Role.OWNER])
        ours_plain = "Bearer " + issue_token(plain, "owner-1", [Role.OWNER])

        cold = []
        for _ in range(9):  # the first verification of a fresh verifier: discovery + JWKS fetched
            oidc.reset()
            start = time.perf_counter()
            authenticate(settings, rs256)
            cold.append((time.perf_counter() - start) * 1000)
        results["staff_cold_first_ms"] = round(statistics.median(cold), 2)
        verifier = oidc.verifier(settings)
        results["staff_rs256"] = _figures(_timings(lambda: authenticate(settings, rs256), count))
        results["staff_es256"] = _figures(_timings(lambda: authenticate(settings, es256), count))
        results["jwks_fetches_while_warm"] = verifier.jwks_fetches - 1
        results["ours_hs256_staff_issuer_set"] = _figures(
            _timings(lambda: authenticate(settings, ours), count)
        )
        results["ours_hs256"] = _figures(_timings(lambda: authenticate(plain, ours_plain), count))
    auth.install_staff_revocation_check(None)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="verifications per figure")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    results = run(args.count)
    if args.json:
        print(json.dumps(results))
        return
    print(f"token verification through authenticate(), {args.count} per figure (µs per request)")
    rows = (
        ("staff token RS256, JWKS cached", results["staff_rs256"]),
        ("staff token ES256, JWKS cached", results["staff_es256"]),
        ("our HS256 token (staff issuer configured)", results["ours_hs256_staff_issuer_set"]),
        ("our HS256 token (no staff issuer)", results["ours_hs256"]),
    )
    for name, figures in rows:
        print(
            f"  {name:44} median {figures['median_us']:8.1f}  p95 {figures['p95_us']:8.1f}"
            f"  {figures['per_second']:>7}/s"
        )
    print(
        f"  staff token, cold (discovery + JWKS fetched from a loopback issuer): median "
        f"{results['staff_cold_first_ms']} ms; JWKS fetches while warm: {results['jwks_fetches_while_warm']}"
    )


if __name__ == "__main__":
    main()
