"""``make lock``: the hashed locks the Lambda package installs from.

``requirements.txt`` stays the human list (direct dependencies, pinned). Each lock holds the whole closure
of what a stage's package installs, every version exact and every distribution file's ``sha256``, written
by ``pip-compile --generate-hashes`` (pip-tools) on the Lambda runtime's Python version:

- ``requirements.lock``: ``requirements.txt`` (stages whose providers need no SDK of their own);
- ``requirements-authority-tencent.lock``: ``requirements.txt`` and ``requirements-authority-tencent.txt``
  (stages whose identity authority is Tencent Cloud: ``Settings.lambda_requirement_files``).

The package build (``infra.packaging.lambda_requirements``) installs from the stage's lock with
``--require-hashes`` and refuses a lock that no longer covers the requirement files (``lock_problems``):
change a pin, run ``make lock``, commit both. ``python -m scripts.lock [--check]``: ``--check`` only
reports stale locks (exit 1), offline.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra.packaging import LOCKED_REQUIREMENTS, lock_path, lock_problems

PROJECT_DIR = Path(__file__).resolve().parents[1]

HEADER = """\
# The Lambda package's dependencies, locked: every version exact, every file's sha256 (`make lock`
# writes this from {sources}; the package installs it with --require-hashes). Do not edit by hand.
"""


def compile_lock(extra: tuple[str, ...], project_dir: Path = PROJECT_DIR) -> Path:
    """Write the lock of ``requirements.txt`` plus ``extra`` with pip-compile; answers its path."""
    sources = ("requirements.txt", *extra)
    out = lock_path(extra, project_dir)
    with tempfile.TemporaryDirectory(prefix="cheka-lock-") as tmp:
        compiled = Path(tmp) / out.name
        if out.exists():  # pip-compile keeps the pins it finds there unless a requirement moved
            compiled.write_text(out.read_text(encoding="utf-8"), encoding="utf-8")
        subprocess.run(
            [
                str(Path(sys.executable).with_name("pip-compile")),
                "--quiet",
                "--generate-hashes",
                "--allow-unsafe",
                "--strip-extras",
                "--no-header",
                "--no-emit-index-url",
                "--no-emit-find-links",
                "--no-emit-trusted-host",
                "--annotation-style=line",
                "--output-file",
                str(compiled),
                *sources,
            ],
            cwd=project_dir,
            check=True,
        )
        body = compiled.read_text(encoding="utf-8")
    out.write_text(HEADER.format(sources=" + ".join(sources)) + body, encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report locks that are stale")
    args = parser.parse_args(argv)
    stale = 0
    for extra in LOCKED_REQUIREMENTS:
        if not args.check:
            print(f"locking {lock_path(extra, PROJECT_DIR).name} …", flush=True)
            compile_lock(extra)
        problems = lock_problems(extra, PROJECT_DIR)
        for problem in problems:
            print(f"{lock_path(extra, PROJECT_DIR).name}: {problem}")
        stale += bool(problems)
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
