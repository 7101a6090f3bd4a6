"""The identity authority call against the sandbox service over HTTP (loopback), through the adapter the
product uses: p50 / p95 milliseconds of

- ``verify_identity`` (name + number; the check run after the ID front is read), a known and an unknown
  identity;
- ``compare_portrait`` (the live capture against the authoritative portrait with the local dlib engine,
  the portrait ``obama_video_1080p.jpg``, the live capture ``obama_1.jpg`` 626×1200 JPEG);
- ``verify_identity`` with 1 s of injected latency and a 0.5 s timeout, 0 retries (what an outage
  costs the person before the 503).

Run: ``python bench/bench_authority.py``. The portrait figures are skipped (said so) when the shared
photos or dlib are absent.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"
NAME, NUMBER, UNKNOWN = "王小明", "110101199003076632", "110101199003071233"


def percentiles(action: Callable[[], object], runs: int) -> tuple[float, float]:
    """p50 and p95 milliseconds of ``runs`` calls, after one untimed call."""
    action()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]


def main() -> None:
    os.environ.update({"POWERTOOLS_LOG_LEVEL": "ERROR", "CHEKA_LOG_LEVEL": "ERROR"})  # outages are measured
    from chalicelib.adapters.authority.sandbox import SandboxIdentityAuthority
    from chalicelib.local.sandbox_authority import Citizen, SandboxAuthority
    from chalicelib.verification.domain.authority import AuthorityResult

    portrait = FACES / "obama_video_1080p.jpg"
    live = FACES / "obama_1.jpg"
    with SandboxAuthority() as sandbox:
        sandbox.register(
            Citizen(
                name=NAME, id_number=NUMBER, portrait=portrait.read_bytes() if portrait.is_file() else None
            )
        )
        authority = SandboxIdentityAuthority(sandbox.url, timeout_seconds=30.0)
        assert authority.verify_identity(NAME, "resident_id", NUMBER).result is AuthorityResult.MATCH
        p50, p95 = percentiles(lambda: authority.verify_identity(NAME, "resident_id", NUMBER), 200)
        print(f"verify_identity, known identity     p50 {p50:6.2f} ms   p95 {p95:6.2f} ms   (200 calls)")
        p50, p95 = percentiles(lambda: authority.verify_identity(NAME, "resident_id", UNKNOWN), 200)
        print(f"verify_identity, unknown identity   p50 {p50:6.2f} ms   p95 {p95:6.2f} ms   (200 calls)")
        if portrait.is_file() and live.is_file():
            try:
                jpeg = live.read_bytes()
                answer = authority.compare_portrait(NAME, NUMBER, jpeg)
                p50, p95 = percentiles(lambda: authority.compare_portrait(NAME, NUMBER, jpeg), 15)
                print(
                    f"compare_portrait (dlib)            p50 {p50:6.1f} ms   p95 {p95:6.1f} ms   "
                    f"(15 calls; {answer.result.value}, similarity {answer.similarity})"
                )
            except ImportError as err:
                print(f"compare_portrait skipped: {err}")
        else:
            print(f"compare_portrait skipped: face photos not found at {FACES}")
        sandbox.faults.latency_seconds = 1.0
        slow = SandboxIdentityAuthority(sandbox.url, timeout_seconds=0.5, retries=0)
        p50, p95 = percentiles(lambda: slow.verify_identity(NAME, "resident_id", NUMBER), 5)
        print(f"verify_identity, 1 s latency, 0.5 s timeout: p50 {p50:6.0f} ms (unavailable, 5 calls)")


if __name__ == "__main__":
    main()
