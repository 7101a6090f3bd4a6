"""``make lint``'s dependency audit: pip-audit over the Lambda package's locks, in bounded time, saying
plainly what it could and could not check.

pip-audit asks PyPI for the advisories of each locked version (``/pypi/<name>/<version>/json``). Where
that answers, a known vulnerability fails the audit (exit 1) unless ``audit-waivers.toml`` waives its id
with a reason until a date. Where it does not (a network that reaches PyPI's index and project pages
only, as CI's and the build machines' do: pip-audit then reports each dependency as "not found" and
"No known vulnerabilities found"), this script does not pass that off as a clean audit: it asks the
project page (``/pypi/<name>/json``), whose advisories cover the latest release, for each dependency
pinned at its latest release, and prints every dependency it could not check and why. An advisory
service that cannot be reached, or a pip-audit that does not finish within ``--timeout``, is reported
as ``skipped`` and does not fail the lint (the next run checks again); ``--strict`` makes it fail.

``python -m scripts.audit_deps [--strict] [--timeout SECONDS] [LOCK ...]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROJECT_DIR = Path(__file__).resolve().parents[1]
WAIVERS_FILE = PROJECT_DIR / "audit-waivers.toml"
#: pip-audit as a whole, and each project page of the fallback.
DEFAULT_TIMEOUT_SECONDS = 60.0
PAGE_TIMEOUT_SECONDS = 5.0
PYPI_PROJECT_URL = "https://pypi.org/pypi/{name}/json"

#: Runs pip-audit (argv) within a timeout; answers (exit status, stdout, stderr).
Runner = Callable[[list[str], float], tuple[int, str, str]]
#: Fetches a PyPI project page; answers the parsed JSON, or None when it cannot be had.
PageFetcher = Callable[[str], Mapping[str, Any] | None]


class WaiverError(ValueError):
    """``audit-waivers.toml`` holds a waiver without an id, a reason or a date."""


@dataclass(frozen=True)
class Waiver:
    id: str
    reason: str
    until: date


@dataclass(frozen=True)
class Finding:
    package: str
    version: str
    id: str
    fixed_in: tuple[str, ...]
    source: str  # "pip-audit" or "project page"


@dataclass
class Audit:
    """What one run found: the findings (waived or not), and what it could not check."""

    checked: list[str] = field(default_factory=list)
    #: Of ``checked``, those checked against their project page (pip-audit could not).
    by_project_page: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    waived: list[tuple[Finding, Waiver]] = field(default_factory=list)
    unchecked: dict[str, str] = field(default_factory=dict)  # "name==version" -> why
    skipped: str | None = None  # the whole audit could not run (why)

    @property
    def failed(self) -> bool:
        return bool(self.findings)


def load_waivers(path: Path = WAIVERS_FILE) -> dict[str, Waiver]:
    """The waivers by advisory id; each must give ``id``, ``reason`` and ``until`` (a date)."""
    if not path.is_file():
        return {}
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    waivers: dict[str, Waiver] = {}
    for entry in doc.get("waiver", []):
        vuln_id, reason, until = entry.get("id"), entry.get("reason"), entry.get("until")
        if not isinstance(vuln_id, str) or not vuln_id:
            raise WaiverError(f"{path.name}: a waiver without an id: {entry}")
        if not isinstance(reason, str) or len(reason.strip()) < 10:
            raise WaiverError(f"{path.name}: waiver {vuln_id} gives no reason")
        if not isinstance(until, date):
            raise WaiverError(f"{path.name}: waiver {vuln_id} has no date to look again (until = YYYY-MM-DD)")
        waivers[vuln_id] = Waiver(vuln_id, reason.strip(), until)
    return waivers


def _record(audit: Audit, finding: Finding, waivers: Mapping[str, Waiver], today: date) -> None:
    waiver = waivers.get(finding.id)
    if waiver is not None and today <= waiver.until:
        audit.waived.append((finding, waiver))
    else:
        audit.findings.append(finding)


def assess(
    report: Mapping[str, Any],
    waivers: Mapping[str, Waiver],
    *,
    fetch_page: PageFetcher | None = None,
    today: date | None = None,
) -> Audit:
    """pip-audit's JSON report (``--format json``) judged: findings, waivers, and the dependencies it
    skipped, which ``fetch_page`` (None: no fallback) checks against their project page where they are
    pinned at the latest release."""
    today = today or date.today()
    audit = Audit()
    for dep in report.get("dependencies", []):
        name, version = str(dep.get("name")), str(dep.get("version", "?"))
        if "skip_reason" in dep:
            reason = str(dep["skip_reason"])
            if "version" not in dep:  # pip-audit names the version in its reason: "... pillow (13.0.0)"
                version = reason.rsplit("(", 1)[1].rstrip(")") if reason.endswith(")") else "?"
            audit.unchecked[f"{name}=={version}"] = reason
            continue
        audit.checked.append(f"{name}=={version}")
        for vuln in dep.get("vulns", []):
            finding = Finding(
                name, version, str(vuln["id"]), tuple(vuln.get("fix_versions", [])), "pip-audit"
            )
            _record(audit, finding, waivers, today)
    if fetch_page is not None:
        _check_project_pages(audit, fetch_page, waivers, today)
    return audit


def _check_project_pages(
    audit: Audit, fetch_page: PageFetcher, waivers: Mapping[str, Waiver], today: date
) -> None:
    for key in list(audit.unchecked):
        name, version = key.split("==", 1)
        if version == "?":
            continue
        page = fetch_page(name)
        if page is None:
            audit.unchecked[key] = "advisory service unreachable"
            continue
        latest = str(page.get("info", {}).get("version", ""))
        if latest != version:
            audit.unchecked[key] = (
                f"advisories of {version} not served here (the project page covers the latest, {latest})"
            )
            continue
        del audit.unchecked[key]
        audit.checked.append(key)
        audit.by_project_page.append(key)
        for vuln in page.get("vulnerabilities") or []:
            if vuln.get("withdrawn"):
                continue
            finding = Finding(
                name, version, str(vuln["id"]), tuple(vuln.get("fixed_in") or ()), "project page"
            )
            _record(audit, finding, waivers, today)


def run_pip_audit(argv: list[str], timeout: float) -> tuple[int, str, str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    return done.returncode, done.stdout, done.stderr


def fetch_project_page(name: str) -> Mapping[str, Any] | None:
    url = PYPI_PROJECT_URL.format(name=name)
    try:
        with urllib.request.urlopen(url, timeout=PAGE_TIMEOUT_SECONDS) as response:  # noqa: S310 # nosec B310 # https constant
            data: Mapping[str, Any] = json.loads(response.read())
    except (urllib.error.URLError, TimeoutError, OSError, ValueError):
        return None
    return data


def pip_audit_command(locks: Iterable[Path], timeout: float) -> list[str]:
    """pip-audit over hashed locks: no resolution, no virtual environment (``--disable-pip``)."""
    argv = [str(Path(sys.executable).with_name("pip-audit"))]
    for lock in locks:
        argv += ["-r", str(lock)]
    socket_timeout = max(1, int(min(15.0, timeout / 4)))
    options = ["--disable-pip", "--vulnerability-service", "pypi", "--format", "json"]
    return [*argv, *options, "--progress-spinner", "off", "--timeout", str(socket_timeout)]


def audit_locks(
    locks: list[Path],
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    waivers: Mapping[str, Waiver] | None = None,
    runner: Runner = run_pip_audit,
    fetch_page: PageFetcher | None = fetch_project_page,
) -> Audit:
    waivers = load_waivers() if waivers is None else waivers
    try:
        status, out, err = runner(pip_audit_command(locks, timeout), timeout)
    except subprocess.TimeoutExpired:
        return Audit(
            skipped=f"pip-audit did not finish within {timeout:.0f}s (advisory service unreachable?)"
        )
    except FileNotFoundError:
        return Audit(skipped="pip-audit is not installed (`make install`: requirements-dev.txt)")
    try:
        report = json.loads(out)
    except ValueError:
        last = (err.strip().splitlines() or ["no output"])[-1]
        return Audit(skipped=f"pip-audit gave no report (exit {status}): {last}")
    audit = assess(report, waivers, fetch_page=fetch_page)
    if not audit.checked and audit.unchecked:
        audit.skipped = "advisory service unreachable: no dependency could be checked"
    return audit


def render(audit: Audit) -> str:
    lines: list[str] = []
    if audit.skipped:
        lines.append(f"dependency audit: skipped: {audit.skipped}")
    for finding in audit.findings:
        fixed = ", ".join(finding.fixed_in) or "no fixed release"
        pin = f"{finding.package}=={finding.version}"
        lines.append(f"VULNERABLE {pin}: {finding.id} (fixed in {fixed}; {finding.source})")
    for finding, waiver in audit.waived:
        lines.append(
            f"waived {finding.package}=={finding.version}: {finding.id} until {waiver.until}: {waiver.reason}"
        )
    if audit.unchecked and not audit.skipped:
        lines.append(f"NOT CHECKED ({len(audit.unchecked)}): the advisory service did not answer for these")
    for key, why in sorted(audit.unchecked.items()):
        lines.append(f"  not checked {key}: {why}")
    if not audit.skipped:
        verdict = "FAILED" if audit.failed else "ok"
        lines.append(
            f"dependency audit: {verdict}: {len(audit.checked)} checked "
            f"({len(audit.by_project_page)} against their project page), {len(audit.findings)} vulnerable, "
            f"{len(audit.waived)} waived, {len(audit.unchecked)} not checked"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from infra.packaging import LOCKED_REQUIREMENTS, lock_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("locks", nargs="*", type=Path, help="default: the Lambda package's locks")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS)
    parser.add_argument("--strict", action="store_true", help="fail when anything could not be checked")
    args = parser.parse_args(argv)
    locks = args.locks or [lock_path(extra, PROJECT_DIR) for extra in LOCKED_REQUIREMENTS]
    try:
        audit = audit_locks(locks, timeout=args.timeout)
    except WaiverError as exc:
        print(f"dependency audit: {exc}")
        return 1
    print(render(audit))
    if audit.failed:
        return 1
    return 1 if args.strict and (audit.skipped or audit.unchecked) else 0


if __name__ == "__main__":
    raise SystemExit(main())
