"""The API's Lambda package of a stage, built by ``chalice package`` and inspected without AWS.

``build_package`` packages a copy of the app whose ``requirements.txt`` is the stage's (``requirements.txt``
plus ``Settings.lambda_requirement_files``, as ``infra.stack`` composes it), so the zip is the one a
deploy of that stage uploads. Chalice caches a package by the hash of the requirements *and* the app's
files, so any code change makes it download every wheel again (about 30 s with a warm pip cache). Here
the dependencies are kept once per requirements text (``.chalice/deployments/cheka-deps-<md5>-…zip``,
git-ignored) and the current app is put into a copy of them with Chalice's own ``inject_latest_app``
before ``chalice package`` runs, which then reuses it (a few seconds). ``fresh=True`` rebuilds from
PyPI: the same files, since the stage's requirements are its hashed lock (``make lock``).

``import_deployed_app`` imports ``app`` from the unpacked zip in a fresh interpreter that sees nothing
else (``-I -S``: no site-packages, no user site, no ``PYTHON*`` variables), with the stage's declared
environment and ``AWS_LAMBDA_FUNCTION_NAME`` set, as Lambda's init does, and reports which modules it
loaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parents[1]

#: Lambda's quotas of a function's deployment package.
ZIPPED_LIMIT_BYTES = 50 * 1024 * 1024
UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024

#: Modules the API's functions must never load: the local engines run in the engines function.
HEAVY_MODULES = (
    "numpy",
    "dlib",
    "_dlib_pybind11",
    "onnxruntime",
    "cv2",
    "rapidocr_onnxruntime",
    "rapidocr",
    "face_recognition_models",
)
#: Their distributions (the names of ``*.dist-info`` folders and ``*.libs`` of bundled shared objects).
HEAVY_DISTRIBUTIONS = (*HEAVY_MODULES, "dlib_bin", "opencv_python", "opencv_python_headless")


def python_runtime() -> str:
    """The Lambda runtime Chalice packages for: the interpreter's version (``python3.11``)."""
    return f"python{sys.version_info.major}.{sys.version_info.minor}"


def stage_requirements(stage: str, project_dir: Path = PROJECT_DIR) -> str:
    """The stage's ``requirements.txt``: the hashed lock of the runtime's dependencies plus the SDKs of the
    providers it chose (``infra.packaging.lambda_requirements``, as ``infra.stack`` packages it)."""
    from chalicelib.core.stages import stage_settings
    from infra.packaging import lambda_requirements

    settings = stage_settings(stage, project_dir)
    return lambda_requirements(tuple(settings.lambda_requirement_files), project_dir)


def package_source(stage: str, dest: Path, project_dir: Path = PROJECT_DIR) -> Path:
    """A copy of what Chalice packages (``app.py``, ``chalicelib/``, ``.chalice/config.json``) with the
    stage's requirements."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copy2(project_dir / "app.py", dest / "app.py")
    shutil.copytree(project_dir / "chalicelib", dest / "chalicelib", ignore=ignore)
    (dest / ".chalice").mkdir()
    shutil.copy2(project_dir / ".chalice" / "config.json", dest / ".chalice" / "config.json")
    (dest / "requirements.txt").write_text(stage_requirements(stage, project_dir), encoding="utf-8")
    return dest


def _top_name(entry: str) -> str:
    """``numpy-2.4.6.dist-info`` → ``numpy``; ``_dlib_pybind11.cpython-311-….so`` → ``_dlib_pybind11``."""
    return re.split(r"[.-]", entry, maxsplit=1)[0].lower()


@dataclass(frozen=True)
class LambdaPackage:
    """The deployment zip of a stage's API functions and the SAM template beside it."""

    stage: str
    zip_path: Path
    sam_template: Path
    seconds: float
    #: The dependencies came from the cache (the app was injected into them).
    reused_dependencies: bool

    @property
    def zipped_bytes(self) -> int:
        return self.zip_path.stat().st_size

    @property
    def unzipped_bytes(self) -> int:
        with zipfile.ZipFile(self.zip_path) as z:
            return sum(info.file_size for info in z.infolist())

    def top_level(self) -> set[str]:
        with zipfile.ZipFile(self.zip_path) as z:
            return {info.filename.split("/", 1)[0] for info in z.infolist()}

    def heavy_entries(self) -> list[str]:
        """Top-level entries of the zip that belong to a local engine (none in a lean package)."""
        heavy = set(HEAVY_DISTRIBUTIONS)
        return sorted(entry for entry in self.top_level() if _top_name(entry) in heavy)

    def handlers(self) -> dict[str, str]:
        """Function logical id → handler, from the SAM template ``chalice package`` wrote."""
        template = json.loads(self.sam_template.read_text(encoding="utf-8"))
        return {
            name: str(resource["Properties"]["Handler"])
            for name, resource in template["Resources"].items()
            if resource["Type"] == "AWS::Serverless::Function"
        }

    def unpack(self, dest: Path) -> Path:
        """The zip extracted where Lambda puts it (``LAMBDA_TASK_ROOT``)."""
        if dest.exists():
            shutil.rmtree(dest)
        with zipfile.ZipFile(self.zip_path) as z:
            z.extractall(dest)
        return dest


def _chalice_packager() -> Any:
    """Chalice's packager, used for the name it gives a package and to inject the app (quietly)."""
    from chalice.deploy.packager import DependencyBuilder, LambdaDeploymentPackager
    from chalice.utils import UI, OSUtils

    osutils = OSUtils()
    return LambdaDeploymentPackager(osutils, DependencyBuilder(osutils), UI(out=io.StringIO()))


def dependencies_cache(requirements: str, project_dir: Path = PROJECT_DIR) -> Path:
    digest = hashlib.md5(requirements.encode(), usedforsecurity=False).hexdigest()
    return project_dir / ".chalice" / "deployments" / f"cheka-deps-{digest}-{python_runtime()}.zip"


def _packaging_environment(region: str) -> dict[str, str]:
    """This process's environment without the app's settings (``chalice package`` imports ``app.py``
    with the stage's variables from ``.chalice/config.json``), in the stage's region."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHEKA_", "AWS_LAMBDA_"))}
    env["AWS_DEFAULT_REGION"] = region
    return env


def build_package(
    stage: str, work: Path, *, project_dir: Path = PROJECT_DIR, fresh: bool = False
) -> LambdaPackage:
    """``chalice package --stage STAGE`` of the stage's source copy under ``work``; raises
    ``RuntimeError`` with Chalice's output when packaging fails."""
    from chalicelib.core.stages import stage_settings
    from infra.packaging import lambda_pip, precompile_zip

    started = time.perf_counter()
    settings = stage_settings(stage, project_dir)
    source = package_source(stage, work / "source", project_dir)
    out = work / "chalice.out"
    if out.exists():
        shutil.rmtree(out)
    packager = _chalice_packager()
    expected = Path(packager.deployment_package_filename(str(source), python_runtime()))
    cache = dependencies_cache((source / "requirements.txt").read_text(encoding="utf-8"), project_dir)
    reused = not fresh and cache.is_file()
    if reused:
        expected.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(cache, expected)
        packager.inject_latest_app(str(expected), str(source))
    chalice = Path(sys.executable).with_name("chalice")
    with lambda_pip(source / "requirements.txt"):  # every download checked against the lock's hashes
        done = subprocess.run(
            [str(chalice), "package", "--stage", stage, str(out)],
            cwd=source,
            env=_packaging_environment(settings.region),
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"chalice package --stage {stage} failed:\n{done.stdout}\n{done.stderr}")
    # As infra's packaging does: the modules' bytecode beside them (a cold start compiles nothing).
    precompile_zip(out / "deployment.zip")
    if not reused and expected.is_file():
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(f".{os.getpid()}.partial")
        shutil.copy2(expected, partial)
        os.replace(partial, cache)
    return LambdaPackage(
        stage=stage,
        zip_path=out / "deployment.zip",
        sam_template=out / "sam.json",
        seconds=time.perf_counter() - started,
        reused_dependencies=reused,
    )


# -- the deployed app imported as Lambda's init imports it ---------------------------------------------

_IMPORT_PROBE = """
import json, sys, time
root = sys.argv[1]
sys.path.insert(0, root)
heavy = {heavy!r}
before = set(sys.modules)
started = time.perf_counter()
report = {{"ok": True}}
try:
    import app
except BaseException as exc:
    report = {{"ok": False, "error_type": type(exc).__name__, "error": str(exc)}}
report["seconds"] = time.perf_counter() - started
loaded = set(sys.modules) - before
report["modules"] = len(loaded)
report["heavy"] = sorted(m for m in loaded if m.split(".")[0] in heavy)
stdlib = (sys.base_prefix, sys.base_exec_prefix)
report["outside"] = sorted(
    name for name in loaded
    if (path := getattr(sys.modules.get(name), "__file__", None))
    and not path.startswith(root) and not path.startswith(stdlib)
)
print("IMPORT-REPORT " + json.dumps(report))
"""


@dataclass(frozen=True)
class ImportReport:
    ok: bool
    seconds: float
    modules: int
    heavy: list[str] = field(default_factory=list)
    #: Modules loaded from outside the task root and the standard library (none: the zip is complete).
    outside: list[str] = field(default_factory=list)
    error_type: str | None = None
    error: str | None = None
    output: str = ""


def lambda_environment(stage: str, task_root: Path, **overrides: str) -> dict[str, str]:
    """What a function of the stage sees at init: its declared variables (``.chalice/config.json``),
    the runtime's (function name, region, task root) and ``overrides`` on top."""
    from chalicelib.core.stages import stage_environment, stage_settings

    settings = stage_settings(stage)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        **stage_environment(stage),
        "AWS_LAMBDA_FUNCTION_NAME": f"{settings.resource_prefix}-{settings.stage}-APIHandler",
        "AWS_REGION": settings.region,
        "AWS_DEFAULT_REGION": settings.region,
        "LAMBDA_TASK_ROOT": str(task_root),
    }
    env.update(overrides)
    return env


def import_deployed_app(
    stage: str,
    task_root: Path,
    *,
    overrides: dict[str, str] | None = None,
    bytecode: bool = True,
    timeout: float = 120,
) -> ImportReport:
    """``import app`` from ``task_root`` in a fresh, isolated interpreter with the stage's environment
    (``overrides`` on top).

    ``bytecode=False`` writes no ``__pycache__`` (Lambda's task root is read-only: every cold start
    compiles what it imports)."""
    flags = ["-I", "-S"] + ([] if bytecode else ["-B"])
    probe = _IMPORT_PROBE.format(heavy=set(HEAVY_MODULES))
    done = subprocess.run(
        [sys.executable, *flags, "-c", probe, str(task_root)],
        cwd=task_root,
        env=lambda_environment(stage, task_root, **(overrides or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("IMPORT-REPORT ")), None)
    if line is None:
        return ImportReport(
            ok=False,
            seconds=0.0,
            modules=0,
            error_type="ProbeFailed",
            error=f"exit {done.returncode}",
            output=done.stdout + done.stderr,
        )
    data = json.loads(line.removeprefix("IMPORT-REPORT "))
    return ImportReport(
        ok=bool(data["ok"]),
        seconds=float(data["seconds"]),
        modules=int(data["modules"]),
        heavy=list(data["heavy"]),
        outside=list(data["outside"]),
        error_type=data.get("error_type"),
        error=data.get("error"),
        output=done.stdout + done.stderr,
    )
