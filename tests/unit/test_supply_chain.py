"""The supply chain's checks without the network: the dependency audit's verdicts on pip-audit's JSON
report (``scripts.audit_deps``), and the hashed locks the Lambda package installs from
(``infra.packaging``)."""

from __future__ import annotations

import subprocess
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from infra.packaging import LOCKED_REQUIREMENTS, lambda_requirements, lock_path, lock_problems, locked
from scripts.audit_deps import Waiver, WaiverError, assess, audit_locks, load_waivers, main, render

PROJECT_DIR = Path(__file__).resolve().parents[2]
TODAY = date(2026, 11, 30)

#: pip-audit's ``--format json`` report, as it writes it.
VULNERABLE = {
    "dependencies": [
        {"name": "pyjwt", "version": "2.10.1", "vulns": []},
        {
            "name": "pillow",
            "version": "13.0.0",
            "vulns": [
                {
                    "id": "GHSA-aaaa-bbbb-cccc",
                    "fix_versions": ["13.0.1"],
                    "aliases": ["CVE-2026-0001"],
                    "description": "a decoder overflow",
                }
            ],
        },
    ],
    "fixes": [],
}
#: What pip-audit writes when PyPI answers the project pages but not the per-version pages.
UNREACHABLE = {
    "dependencies": [
        {
            "name": name,
            "skip_reason": f"Dependency not found on PyPI and could not be audited: {name} ({version})",
        }
        for name, version in (("pyjwt", "2.10.1"), ("pillow", "13.0.0"))
    ],
    "fixes": [],
}


def _runner(report: str, status: int = 0) -> Any:
    def run(argv: list[str], timeout: float) -> tuple[int, str, str]:
        assert "--disable-pip" in argv
        assert timeout > 0
        return status, report, ""

    return run


def test_a_known_vulnerability_fails_the_audit_and_names_the_advisory() -> None:
    import json

    audit = audit_locks(
        [Path("x.lock")], waivers={}, runner=_runner(json.dumps(VULNERABLE), 1), fetch_page=None
    )
    assert audit.failed
    text = render(audit)
    assert "VULNERABLE pillow==13.0.0: GHSA-aaaa-bbbb-cccc (fixed in 13.0.1; pip-audit)" in text
    assert "dependency audit: FAILED: 2 checked (0 against their project page), 1 vulnerable" in text


def test_an_unreachable_advisory_service_is_reported_as_skipped_and_does_not_fail() -> None:
    import json

    audit = audit_locks(
        [Path("x.lock")], waivers={}, runner=_runner(json.dumps(UNREACHABLE)), fetch_page=None
    )
    assert not audit.failed
    assert audit.skipped is not None
    assert render(audit).startswith("dependency audit: skipped: advisory service unreachable")
    assert "not checked pillow==13.0.0" in render(audit)


def test_a_pip_audit_that_hangs_is_cut_off_and_reported_as_skipped() -> None:
    def hangs(argv: list[str], timeout: float) -> tuple[int, str, str]:
        raise subprocess.TimeoutExpired(argv, timeout)

    audit = audit_locks([Path("x.lock")], timeout=3, waivers={}, runner=hangs, fetch_page=None)
    assert not audit.failed
    assert "did not finish within 3s" in render(audit)


def test_a_skipped_dependency_pinned_at_its_latest_release_is_checked_against_its_project_page() -> None:
    pages: dict[str, dict[str, Any]] = {
        # the project page's advisories cover its latest release: 13.0.0 is pinned and latest
        "pillow": {
            "info": {"version": "13.0.0"},
            "vulnerabilities": [{"id": "PYSEC-2026-9", "fixed_in": []}],
        },
        "pyjwt": {"info": {"version": "2.15.1"}, "vulnerabilities": []},
    }
    audit = assess(UNREACHABLE, {}, fetch_page=lambda name: pages.get(name), today=TODAY)
    assert [(f.package, f.id, f.source) for f in audit.findings] == [
        ("pillow", "PYSEC-2026-9", "project page")
    ]
    assert audit.checked == ["pillow==13.0.0"]
    # an older pin stays unchecked, and says why
    assert "latest, 2.15.1" in audit.unchecked["pyjwt==2.10.1"]
    assert audit.skipped is None


def test_a_waiver_with_a_reason_passes_until_its_date_and_fails_after() -> None:
    waiver = Waiver("GHSA-aaaa-bbbb-cccc", "the decoder is never given outside input", date(2026, 12, 31))
    waived = assess(VULNERABLE, {waiver.id: waiver}, today=TODAY)
    assert not waived.failed
    assert "waived pillow==13.0.0: GHSA-aaaa-bbbb-cccc until 2026-12-31" in render(waived)
    expired = assess(VULNERABLE, {waiver.id: waiver}, today=date(2027, 1, 1))
    assert expired.failed


def test_a_waiver_without_a_reason_or_a_date_is_refused(tmp_path: Path) -> None:
    no_reason = tmp_path / "no-reason.toml"
    no_reason.write_text('[[waiver]]\nid = "GHSA-x"\nuntil = 2027-01-01\n', encoding="utf-8")
    with pytest.raises(WaiverError, match="gives no reason"):
        load_waivers(no_reason)
    no_date = tmp_path / "no-date.toml"
    no_date.write_text(
        '[[waiver]]\nid = "GHSA-x"\nreason = "not reachable from any route"\n', encoding="utf-8"
    )
    with pytest.raises(WaiverError, match="no date"):
        load_waivers(no_date)
    assert load_waivers(PROJECT_DIR / "audit-waivers.toml") is not None  # the repository's own file parses


def test_the_strict_audit_fails_when_anything_went_unchecked(monkeypatch: pytest.MonkeyPatch) -> None:
    import scripts.audit_deps as audit_deps

    partial = assess(UNREACHABLE, {}, fetch_page=lambda name: None, today=TODAY)
    monkeypatch.setattr(audit_deps, "audit_locks", lambda locks, timeout: partial)
    assert main(["x.lock"]) == 0
    assert main(["x.lock", "--strict"]) == 1


# -- the hashed locks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("extra", LOCKED_REQUIREMENTS, ids=lambda e: lock_path(e, PROJECT_DIR).name)
def test_each_lock_covers_its_requirement_files_and_hashes_every_entry(extra: tuple[str, ...]) -> None:
    assert lock_problems(extra, PROJECT_DIR) == []
    lock = lock_path(extra, PROJECT_DIR).read_text(encoding="utf-8")
    entries = locked(lock)
    assert len(entries) > 10  # the whole closure, not only the direct dependencies
    assert all(hashes for _, hashes in entries.values())
    # nothing of the machine that wrote it
    assert "file://" not in lock
    assert "--find-links" not in lock
    assert lambda_requirements(extra, PROJECT_DIR).startswith("--require-hashes\n")


def test_a_stale_or_unhashed_lock_is_refused(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("# runtime\npyjwt==2.10.1\nboto3==1.44.5\n", encoding="utf-8")
    assert lock_problems((), tmp_path) == ["requirements.lock is missing: run `make lock`"]
    (tmp_path / "requirements.lock").write_text(
        "pyjwt==2.10.0 \\\n    --hash=sha256:" + "a" * 64 + "\n" + "botocore==1.44.5\n", encoding="utf-8"
    )
    problems = lock_problems((), tmp_path)
    assert "pyjwt is 2.10.1 in requirements.txt but 2.10.0 in the lock: run `make lock`" in problems
    assert "boto3 (requirements.txt) is not locked: run `make lock`" in problems
    assert "botocore has no hash" in problems
    with pytest.raises(ValueError, match="run `make lock`"):
        lambda_requirements((), tmp_path)
