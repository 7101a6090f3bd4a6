"""The import contract in pyproject.toml (run by `make lint`) holds, and it really fails when broken."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(tree / "pyproject.toml")],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "chalicelib", tmp_path / "chalicelib", ignore=shutil.ignore_patterns("web"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_tree_keeps_every_import_contract() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("verification/domain/flows.py", "import boto3", "Domains and the kernel are pure"),
        (
            "cards/domain/inventory.py",
            "from chalicelib.adapters import crypto",
            "Domains and the kernel are pure",
        ),
        ("kernel/errors.py", "from chalicelib.core import settings", "Domains and the kernel are pure"),
        (
            "registration/domain/registrations.py",
            "from chalicelib.registration import ports",
            "Domains and the kernel are pure",
        ),
        ("cards/inventory.py", "import pynamodb", "Use cases reach the outside world only through ports"),
        ("operators/dispatch.py", "from chalicelib.core import deps", "Use cases reach the outside world"),
        ("adapters/crypto.py", "from chalicelib.api import http", "Entry points over the composition root"),
        ("verification/face.py", "from chalicelib.registration import submit", "Entry points over the"),
        (
            "consents/domain.py",
            "from chalicelib.verification import flows",
            "Domains and the kernel are pure",
        ),
    ],
)
def test_an_import_against_the_direction_breaks_the_build(
    tree_copy: Path, module: str, line: str, contract: str
) -> None:
    target = tree_copy / "chalicelib" / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    result = _lint(tree_copy)
    assert result.returncode != 0
    broken = result.stdout.split("Broken contracts", 1)[1]
    assert contract in broken
