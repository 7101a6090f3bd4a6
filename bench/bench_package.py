"""The deployed API's Lambda package: its size, and the cold import of the app from it.

The prod stage's zip is built by ``chalice package`` (``scripts.lambda_package``; its dependencies cached
per requirements text after the first build) and unpacked as Lambda unpacks it. The cold import runs in a
fresh interpreter isolated from the project's virtualenv (``-I -S``: only the unpacked zip and the
standard library), with prod's declared environment and ``AWS_LAMBDA_FUNCTION_NAME`` set, so ``app.py``'s
init check reads the stage's settings, and ``-B`` (Lambda's task root is read-only: nothing compiled at a
cold start is kept). The zip carries its modules' bytecode (``infra.packaging.precompile_zip``, as infra
packages it); the same import from a copy without it shows what that saves. The floor is the same
interpreter importing the runtime dependencies alone from the same directory (``chalice, boto3,
pydantic, pynamodb, aws_lambda_powertools``, as ``bench_foundation``), and with ``pydantic_settings``,
which the init check needs to read the settings.
Medians of interleaved runs; target app/floor <= 1.3.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.lambda_package import (
    UNZIPPED_LIMIT_BYTES,
    ZIPPED_LIMIT_BYTES,
    build_package,
    lambda_environment,
)

STAGE = "prod"
FLOOR = "import chalice, boto3, pydantic, pynamodb, aws_lambda_powertools"
FLOOR_WITH_SETTINGS = FLOOR + ", pydantic_settings"
RUNS = 9


def _timed(task_root: Path, code: str) -> float:
    probe = (
        "import sys, time; sys.path.insert(0, sys.argv[1]); t = time.perf_counter(); "
        f"{code}; print(time.perf_counter() - t)"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", probe, str(task_root)],
        cwd=task_root,
        env=lambda_environment(STAGE, task_root),
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="cheka-bench-package-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        package = build_package(STAGE, work)
        seconds = time.perf_counter() - started
        root = package.unpack(work / "task")
        source = "dependencies cached" if package.reused_dependencies else "dependencies from PyPI"
        print(
            f"{STAGE} Lambda zip: {package.zipped_bytes / 2**20:.1f} MB zipped "
            f"(limit {ZIPPED_LIMIT_BYTES / 2**20:.0f}), {package.unzipped_bytes / 2**20:.1f} MB unzipped "
            f"(limit {UNZIPPED_LIMIT_BYTES / 2**20:.0f}); chalice package {seconds:.1f} s ({source})",
            flush=True,
        )
        codes = {"app": "import app", "floor": FLOOR, "floor+settings": FLOOR_WITH_SETTINGS}
        figures: dict[str, float] = {}
        # As packaged (bytecode in the zip), then a copy without it (what chalice package alone gives).
        bare = work / "task-without-bytecode"
        shutil.copytree(root, bare, ignore=shutil.ignore_patterns("__pycache__"))
        for label, task_root in (("as packaged, bytecode in the zip", root), ("without bytecode", bare)):
            for code in codes.values():  # warm the filesystem cache
                _timed(task_root, code)
            times: dict[str, list[float]] = {name: [] for name in codes}
            for _ in range(RUNS):  # interleaved, so machine noise hits every side alike
                for name, code in codes.items():
                    times[name].append(_timed(task_root, code))
            ms = {name: statistics.median(t) * 1000 for name, t in times.items()}
            figures.update({f"{name} {label}": value for name, value in ms.items()})
            for floor in ("floor", "floor+settings"):
                print(
                    f"cold import, deployed app ({STAGE}, init check, {label}): ours {ms['app']:7.1f} ms   "
                    f"{floor} {ms[floor]:7.1f} ms   ratio {ms['app'] / ms[floor]:.2f} (target <= 1.3)",
                    flush=True,
                )
        print(
            json.dumps(
                {"zip_bytes": package.zipped_bytes, "unzipped_bytes": package.unzipped_bytes, **figures}
            )
        )


if __name__ == "__main__":
    main()
