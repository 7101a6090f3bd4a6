"""Foundation benchmarks: cold import of the Lambda app, and inventory import against its raw floor.

Each figure is the median of several runs, printed beside a floor measured in the same run:
- cold import of ``app.py`` in a fresh interpreter vs importing its runtime dependencies alone
  (target ratio app/floor <= 1.3);
- ``cheka import-inventory`` of 10,000 rows vs raw ``batch_write_item`` of the same items into the same
  local store (a moto server on loopback), each run on fresh tables (target ratio floor/ours >= 0.7).
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from chalicelib.local.serving import free_ports

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
FLOOR_IMPORTS = "import chalice, boto3, pydantic, pynamodb, aws_lambda_powertools"


#: Where both sides' bytecode is kept (primed by the first run of each): a deployed package carries its
#: bytecode, and the floor's packages have theirs from pip, so the app is timed with its own cached too,
#: whatever ``PYTHONDONTWRITEBYTECODE`` says on the machine and whether the tree has ``__pycache__``.
_PYCACHE = Path(tempfile.gettempdir()) / "cheka-bench-pycache"


def _timed_import(code: str, *, write_bytecode: bool = False) -> float:
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(_PYCACHE)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not write_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    out = subprocess.run(
        [PY, "-c", f"import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return float(out.stdout.strip().splitlines()[-1])


def cold_import(runs: int = 9) -> dict[str, Any]:
    # Warm the filesystem cache and write both sides' bytecode under the prefix (not into the tree).
    _timed_import("import app", write_bytecode=True)
    _timed_import(FLOOR_IMPORTS, write_bytecode=True)
    app_times, floor_times = [], []
    for _ in range(runs):  # interleaved, so machine noise hits both sides alike
        app_times.append(_timed_import("import app"))
        floor_times.append(_timed_import(FLOOR_IMPORTS))
    app_ms, floor_ms = statistics.median(app_times) * 1000, statistics.median(floor_times) * 1000
    return {
        "name": "cold import app.py",
        "ours_ms": app_ms,
        "floor_ms": floor_ms,
        "ratio": app_ms / floor_ms,
        "target": "<= 1.3",
    }


def _wait(port: int) -> None:
    for _ in range(150):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("moto server did not start")


def _env(port: int, prefix: str) -> dict[str, str]:
    return {
        **os.environ,
        "CHEKA_STAGE": "local",
        "CHEKA_AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "CHEKA_RESOURCE_PREFIX": prefix,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }


RAW_WRITER = Path(__file__).with_name("raw_batch_write.py")


def inventory_import(rows: int = 10_000, runs: int = 3) -> dict[str, Any]:
    from chalicelib.local.synthetic import inventory_csv

    port = free_ports(1)[0]
    moto = subprocess.Popen(
        [PY, "-m", "chalicelib.local.moto_server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait(port)
        with tempfile.TemporaryDirectory() as tmp:
            csv_path = Path(tmp) / "inventory.csv"
            csv_path.write_text(inventory_csv(rows, seed=99), encoding="utf-8")
            ours, floor = [], []
            cheka = str(Path(PY).parent / "cheka")
            for run in range(runs):
                raw_env = _env(port, f"raw{run}")
                floor.append(
                    float(
                        subprocess.run(
                            [PY, str(RAW_WRITER), str(csv_path)],
                            env=raw_env,
                            cwd=ROOT,
                            check=True,
                            capture_output=True,
                            text=True,
                        )
                        .stdout.strip()
                        .splitlines()[-1]
                    )
                )
                env = _env(port, f"ours{run}")
                subprocess.run([cheka, "bootstrap"], env=env, check=True, capture_output=True)
                start = time.perf_counter()
                done = subprocess.run(
                    [cheka, "import-inventory", str(csv_path)], env=env, capture_output=True, text=True
                )
                ours.append(time.perf_counter() - start)
                report = json.loads(done.stdout)
                assert report["cards_created"] == rows, report
    finally:
        moto.terminate()
        try:
            moto.wait(timeout=5)
        except subprocess.TimeoutExpired:  # the werkzeug server can linger on open connections
            moto.kill()
            moto.wait()
    ours_s, floor_s = statistics.median(ours), statistics.median(floor)
    return {
        "name": f"import-inventory {rows} rows",
        "ours_ms": ours_s * 1000,
        "floor_ms": floor_s * 1000,
        "ratio": floor_s / ours_s,
        "target": ">= 0.7",
        "rows_per_s": rows / ours_s,
    }


def main() -> None:
    for result in (cold_import(), inventory_import()):
        extra = f"  ({result['rows_per_s']:.0f} rows/s)" if "rows_per_s" in result else ""
        print(
            f"{result['name']:<34} ours {result['ours_ms']:9.1f} ms   floor {result['floor_ms']:9.1f} ms   "
            f"ratio {result['ratio']:.2f} (target {result['target']}){extra}",
            flush=True,
        )


if __name__ == "__main__":
    main()
