"""The Lambda zip: its dependencies from a hashed lock, and its bytecode (a cold start compiles nothing).

Dependencies: ``chalice package`` installs the stage's lock (``requirements.lock``, or the lock of the
stage's provider SDKs, ``make lock``: ``scripts.lock``) with ``--require-hashes``, and every download pip
makes for it is checked against the lock's hashes (``lambda_pip``): a tampered or substituted file stops
the build. A lock that no longer covers the requirement files is refused (``lock_problems``).

Bytecode:

Lambda's task root is read-only, so an interpreter there cannot write the ``.pyc`` files it compiles:
every cold start compiles every module it imports again (about 0.6 s for the API). The zip that
``chalice package`` writes is rewritten with the bytecode of each module beside its source, compiled
by this interpreter (Chalice packages for this interpreter's version, so the runtime's matches) with
``unchecked-hash`` invalidation: the ``.pyc`` is used as is, whatever the files' timestamps in the zip.
Entries are written in name order with a fixed timestamp, so the same sources give the same zip (and
the same asset hash).
"""

from __future__ import annotations

import compileall
import contextlib
import os
import py_compile
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Timestamp of every entry of the rewritten zip (the earliest a zip can hold).
_FIXED_DATE = (1980, 1, 1, 0, 0, 0)
#: Files the functions never read, left out of the zip: ``holidays``' translations of holiday names
#: (4.7 MB of ``.mo`` files; the review deadlines ask only whether a day is a working day).
DROPPED_PREFIXES = ("holidays/locale/",)


#: The requirement files a stage's package may add to ``requirements.txt``
#: (``Settings.lambda_requirement_files``), each combination with a lock of its own.
LOCKED_REQUIREMENTS: tuple[tuple[str, ...], ...] = ((), ("requirements-authority-tencent.txt",))
#: The glibc of the Lambda runtime the package is for (Amazon Linux 2 for python3.11: 2.26).
LAMBDA_GLIBC_MINOR = 26

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;#\\]+)")
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


def lock_path(extra: tuple[str, ...], project_dir: Path) -> Path:
    """``()`` -> ``requirements.lock``; ``("requirements-authority-tencent.txt",)`` ->
    ``requirements-authority-tencent.lock``."""
    parts = [name.removeprefix("requirements-").removesuffix(".txt") for name in extra]
    return project_dir / ("-".join(["requirements", *parts]) + ".lock")


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_pins(text: str) -> dict[str, str]:
    """``name -> version`` of a requirement file's ``name==version`` lines (``-r`` lines not followed)."""
    pins: dict[str, str] = {}
    for line in text.splitlines():
        found = _PIN.match(line.strip())
        if found:
            pins[_normalized(found.group(1))] = found.group(3)
    return pins


def locked(text: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """``name -> (version, sha256 hashes)`` of a lock (continuation lines joined)."""
    entries: dict[str, tuple[str, tuple[str, ...]]] = {}
    for line in text.replace("\\\n", " ").splitlines():
        stripped = line.split(" #", 1)[0].strip()
        found = _PIN.match(stripped)
        if found:
            entries[_normalized(found.group(1))] = (found.group(3), tuple(_HASH.findall(stripped)))
    return entries


def lock_problems(extra: tuple[str, ...], project_dir: Path) -> list[str]:
    """What keeps the lock of ``requirements.txt`` + ``extra`` from being installed as the package's
    dependencies: missing, a pin it does not hold at the same version, an entry without a hash."""
    lock = lock_path(extra, project_dir)
    if not lock.is_file():
        return [f"{lock.name} is missing: run `make lock`"]
    entries = locked(lock.read_text(encoding="utf-8"))
    problems: list[str] = []
    for source in ("requirements.txt", *extra):
        for name, version in requirement_pins((project_dir / source).read_text(encoding="utf-8")).items():
            if name not in entries:
                problems.append(f"{name} ({source}) is not locked: run `make lock`")
            elif entries[name][0] != version:
                problems.append(
                    f"{name} is {version} in {source} but {entries[name][0]} in the lock: run `make lock`"
                )
    problems += [f"{name} has no hash" for name, (_, hashes) in entries.items() if not hashes]
    return problems


def lambda_requirements(extra: tuple[str, ...], project_dir: Path) -> str:
    """The ``requirements.txt`` a stage's package is built from: its lock, every hash required."""
    problems = lock_problems(extra, project_dir)
    if problems:
        raise ValueError(f"{lock_path(extra, project_dir).name}: " + "; ".join(problems))
    lock = lock_path(extra, project_dir).read_text(encoding="utf-8")
    return "--require-hashes\n" + lock


@contextlib.contextmanager
def lambda_pip(requirements: Path) -> Iterator[None]:
    """While Chalice packages ``requirements`` (a stage's lock, ``lambda_requirements``): every ``pip
    download`` it runs checks each file against the lock's hashes.

    Chalice downloads the requirements (checked: ``--require-hashes``), then downloads again, by name and
    version, a Lambda-compatible wheel for each package whose first download was not one (a wheel for a
    newer glibc than the runtime's) or the sdist to build: those downloads name no hash. A pip
    configuration with the lock as the ``download`` command's constraints file makes pip check them too
    (hashes in constraints are enforced); ``pip wheel``, which builds a checked sdist, is left alone."""
    lock = "\n".join(
        line for line in requirements.read_text(encoding="utf-8").splitlines() if not line.startswith("--")
    )
    saved = os.environ.get("PIP_CONFIG_FILE")
    with tempfile.TemporaryDirectory(prefix="cheka-pip-") as tmp:
        constraints = Path(tmp) / "lock-constraints.txt"
        constraints.write_text(lock + "\n", encoding="utf-8")
        config = Path(tmp) / "pip.conf"
        config.write_text(f"[download]\nconstraint = {constraints}\n", encoding="utf-8")
        os.environ["PIP_CONFIG_FILE"] = str(config)
        try:
            yield
        finally:
            if saved is None:
                os.environ.pop("PIP_CONFIG_FILE", None)
            else:
                os.environ["PIP_CONFIG_FILE"] = saved


def precompile_zip(path: Path) -> int:
    """Rewrite the zip at ``path`` with the bytecode of its modules; returns the ``.pyc`` files added."""
    with tempfile.TemporaryDirectory(prefix="cheka-pyc-") as tmp:
        root = Path(tmp) / "root"
        with zipfile.ZipFile(path) as original:
            modes = {info.filename: info.external_attr for info in original.infolist()}
            original.extractall(root)
        before = set(root.rglob("*.pyc"))
        compileall.compile_dir(
            root,
            quiet=2,
            legacy=False,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
        added = len(set(root.rglob("*.pyc")) - before)
        rewritten = Path(tmp) / "deployment.zip"
        with zipfile.ZipFile(rewritten, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as out:
            for file in sorted(p for p in root.rglob("*") if p.is_file()):
                name = file.relative_to(root).as_posix()
                if name.startswith(DROPPED_PREFIXES):
                    continue
                info = zipfile.ZipInfo(name, date_time=_FIXED_DATE)
                info.external_attr = modes.get(name, 0o644 << 16)
                info.compress_type = zipfile.ZIP_DEFLATED
                out.writestr(info, file.read_bytes())
        shutil.move(str(rewritten), path)
    return added


def precompiling_chalice() -> type[Any]:
    """Chalice's CDK construct, with its ``chalice package`` zip rewritten by :func:`precompile_zip`
    before the construct makes it an asset (the construct's packaging step, ``_package_app``, is the one
    place between the two)."""
    from chalice.cdk import Chalice  # imported late: it imports the chalice CLI machinery

    class PrecompilingChalice(Chalice):
        def _package_app(self) -> None:
            # Every file pip downloads for the package is checked against the stage's lock.
            with lambda_pip(Path(self.source_dir) / "requirements.txt"):
                super()._package_app()
            precompile_zip(Path(self._sam_package_dir) / "deployment.zip")

    return PrecompilingChalice
