"""``make bench``: every benchmark of the project, printed as figures (never asserted in tests)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> None:
    print(f"machine: {_machine()}\n", flush=True)
    for script in (
        "bench_foundation.py",
        "bench_validators.py",
        "bench_tokens.py",
        "bench_faces.py",
        "bench_dedup.py",
        "bench_uploads.py",
        "bench_ocr.py",
        "bench_portrait.py",
        "bench_authority.py",
        "bench_registration.py",
        "bench_accounts.py",
        "bench_outbox.py",
        "bench_push.py",
        "bench_fleet.py",
        "bench_moto.py",
        "bench_package.py",
        "bench_engines.py",
        "bench_retention.py",  # 100,000 cards (its seeding of moto takes minutes)
        "bench_campaigns.py",  # 1,000,000 cards: the longest (seeding and moto's index queries)
    ):
        print(f"== {script}", flush=True)
        subprocess.run([sys.executable, str(HERE / script)], check=True)
        print(flush=True)


if __name__ == "__main__":
    main()
