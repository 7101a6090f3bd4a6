"""The API's Lambda package of each deployed stage: lean, self-contained, and refusing a stage it cannot run.

Each stage is packaged once per session by ``chalice package`` (``scripts.lambda_package``: about 30 s the
first time on a machine, a few seconds after, when the stage's dependencies are cached) and unpacked as
Lambda unpacks it. The app is then imported from that directory alone in a fresh, isolated interpreter
(no site-packages) with the stage's declared environment and ``AWS_LAMBDA_FUNCTION_NAME`` set, so the
init check of ``app.py`` runs as in Lambda.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from chalicelib.core.stages import stage_settings
from scripts.lambda_package import (
    HEAVY_MODULES,
    UNZIPPED_LIMIT_BYTES,
    ZIPPED_LIMIT_BYTES,
    LambdaPackage,
    import_deployed_app,
)

pytestmark = pytest.mark.infra

DEPLOYED_STAGES = ("dev", "prod")


@pytest.fixture(scope="session")
def lambda_package(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[LambdaPackage, Path]]:
    """The stage's package and the directory it is unpacked in, built once per session and stage."""
    from scripts.lambda_package import build_package

    built: dict[str, tuple[LambdaPackage, Path]] = {}

    def get(stage: str) -> tuple[LambdaPackage, Path]:
        if stage not in built:
            work = tmp_path_factory.mktemp(f"package-{stage}")
            package = build_package(stage, work)
            print(f"\nchalice package --stage {stage}: {package.seconds:.1f}s")  # shown with -s
            built[stage] = (package, package.unpack(work / "task"))
        return built[stage]

    return get


@pytest.mark.parametrize("stage", DEPLOYED_STAGES)
def test_the_package_holds_no_local_engine_and_fits_lambdas_size_limits(
    lambda_package: Callable[[str], tuple[LambdaPackage, Path]], stage: str
) -> None:
    package, _ = lambda_package(stage)
    assert package.heavy_entries() == []
    top = package.top_level()
    # what the functions do need is there: the app, the framework, the runtime dependencies
    assert {"app.py", "chalicelib", "chalice", "pydantic", "pynamodb", "aws_lambda_powertools"} <= top
    assert package.zipped_bytes <= ZIPPED_LIMIT_BYTES
    assert package.unzipped_bytes <= UNZIPPED_LIMIT_BYTES
    # and every function of the stage runs from this one zip
    assert set(package.handlers().values()) == {
        "app.app",
        "app.dispatch_outbox",
        "app.run_fleet_tasks",
        "app.run_campaign_waves",
        "app.send_campaign_messages",
        "app.rotate_secrets",
        "app.sweep_outbox",
        "app.reconcile_pushes",
        "app.purge_abandoned",
        "app.purge_retention",
    }


@pytest.mark.parametrize("stage", DEPLOYED_STAGES)
def test_the_deployed_app_imports_from_its_zip_alone_with_the_stages_settings_and_loads_no_engine(
    lambda_package: Callable[[str], tuple[LambdaPackage, Path]], stage: str
) -> None:
    _, task_root = lambda_package(stage)
    report = import_deployed_app(stage, task_root)
    assert report.ok, report.output
    assert report.heavy == []
    assert not set(report.heavy) & set(HEAVY_MODULES)
    # nothing came from outside the zip and the standard library: the package is complete
    assert report.outside == []


def test_the_stage_package_carries_the_sdk_of_its_identity_authority(
    lambda_package: Callable[[str], tuple[LambdaPackage, Path]],
) -> None:
    package, _ = lambda_package("prod")
    assert stage_settings("prod").authority_kind == "tencent"
    assert "tencentcloud" in package.top_level()


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("CHEKA_FACE_ENGINE", "local"),
        ("CHEKA_OCR_ENGINE", "local"),
        ("CHEKA_LIVENESS_ENGINE", "rekognition"),  # Face Liveness is not offered in cn-north-1
    ],
)
def test_a_stage_naming_an_engine_it_cannot_run_refuses_to_start_naming_the_setting(
    lambda_package: Callable[[str], tuple[LambdaPackage, Path]], setting: str, value: str
) -> None:
    _, task_root = lambda_package("prod")
    # given prod's declared settings with one engine it cannot run
    report = import_deployed_app("prod", task_root, overrides={setting: value})
    # then Lambda's init fails with the configuration error, naming the setting, before any request
    assert not report.ok
    assert report.error_type == "ConfigurationError"
    assert report.error is not None
    assert "the prod stage cannot start" in report.error
    assert f"{setting}={value}" in report.error
    # and it failed before loading any engine
    assert report.heavy == []


def test_without_the_lambda_runtime_the_init_check_does_not_run(
    lambda_package: Callable[[str], tuple[LambdaPackage, Path]],
) -> None:
    # chalice package and the CLI import the app outside Lambda: no init check, no settings read
    _, task_root = lambda_package("prod")
    outside_lambda = {"CHEKA_FACE_ENGINE": "local", "AWS_LAMBDA_FUNCTION_NAME": ""}
    report = import_deployed_app("prod", task_root, overrides=outside_lambda)
    assert report.ok, report.output


def test_every_module_of_the_package_carries_bytecode_used_without_checking_its_source(
    lambda_package: Callable[[str], tuple[LambdaPackage, Path]],
) -> None:
    import importlib.util
    import zipfile

    package, _ = lambda_package("prod")
    with zipfile.ZipFile(package.zip_path) as z:
        names = set(z.namelist())
        sources = sorted(n for n in names if n.endswith(".py"))
        missing = [n for n in sources if importlib.util.cache_from_source(n) not in names]
        ours = [n for n in missing if n == "app.py" or n.startswith("chalicelib/")]
        assert ours == []
        # a dependency's file that is not Python 3 (a template, a test fixture) cannot be compiled
        assert len(missing) <= len(sources) // 100
        header = z.read(importlib.util.cache_from_source("chalicelib/api/http.py"))[:8]
    # PEP 552 flags: hash-based (bit 0) and check_source off (bit 1): read-only task roots never recompile
    assert int.from_bytes(header[4:8], "little") == 0b01


def test_the_package_carries_argon2_and_it_hashes_and_verifies_from_the_zip_alone(
    lambda_package: Callable[[str], tuple[LambdaPackage, Path]],
) -> None:
    import subprocess
    import sys

    _, task_root = lambda_package("prod")
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import argon2, _cffi_backend;"
        "from chalicelib.accounts.passwords import Argon2Parameters, Argon2Passwords;"
        "p = Argon2Passwords(Argon2Parameters(time_cost=1, memory_cost_kib=8192));"
        "h = p.hash('Secure#2026');"
        "assert p.verify(h, 'Secure#2026') and not p.verify(h, 'Secure#2027');"
        "assert argon2.__file__.startswith(sys.argv[1]), argon2.__file__;"
        "print('ARGON2-OK', h[:30])"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe, str(task_root)],
        cwd=task_root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "ARGON2-OK $argon2id$v=19$m=8192,t=1,p=1" in done.stdout, done.stdout + done.stderr


def test_the_package_carries_the_working_day_calendar_without_its_translations(
    lambda_package: Callable[[str], tuple[LambdaPackage, Path]],
) -> None:
    """The fleet review deadlines count China's working days (``holidays``, with the 调休 Saturdays) from
    the zip alone; the library's translations of holiday names are left out."""
    import subprocess
    import sys

    _, task_root = lambda_package("prod")
    assert (task_root / "holidays" / "countries").is_dir()
    assert not (task_root / "holidays" / "locale").exists()
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from datetime import date;"
        "from chalicelib.fleet.deadlines import china_calendar;"
        "import holidays; assert holidays.__file__.startswith(sys.argv[1]), holidays.__file__;"
        "c = china_calendar();"
        # National Day 2026 is off, the adjusted Saturday after it (10 October) is a working day
        "print('CAL', c.is_working_day(date(2026, 10, 1)), c.is_working_day(date(2026, 10, 10)),"
        " c.is_working_day(date(2026, 12, 1)))"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe, str(task_root)],
        cwd=task_root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "CAL False True True" in done.stdout, done.stdout + done.stderr
