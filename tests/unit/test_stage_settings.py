"""The stages declared in .chalice/config.json, and what a stage refuses to start with."""

from __future__ import annotations

import pytest

from chalicelib.core.stages import PROJECT_DIR, ConfigurationError, refuse_bad_configuration, stage_settings


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_each_declared_stage_can_run_what_it_names(stage: str) -> None:
    settings = stage_settings(stage)
    assert settings.stage == stage
    assert settings.configuration_problems() == []
    assert set(settings.remote_engines) == {"ocr", "faces", "liveness"}
    assert settings.engines_function == f"cheka-{stage}-engines"


def test_stage_settings_ignore_the_callers_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHEKA_FACE_ENGINE", "local")
    assert stage_settings("prod").face_engine == "remote"


@pytest.mark.parametrize("setting", ["CHEKA_OCR_ENGINE", "CHEKA_FACE_ENGINE", "CHEKA_LIVENESS_ENGINE"])
def test_a_deployed_stage_with_an_in_process_engine_refuses_to_start(setting: str) -> None:
    settings = stage_settings("prod", PROJECT_DIR, **{setting: "local"})
    with pytest.raises(ConfigurationError) as raised:
        refuse_bad_configuration(settings)
    assert any(problem.startswith(f"{setting}=local") for problem in raised.value.problems)
    assert "prod stage cannot start" in str(raised.value)


def test_rekognition_is_refused_where_the_region_does_not_offer_it() -> None:
    china = stage_settings("prod", CHEKA_FACE_ENGINE="rekognition", CHEKA_LIVENESS_ENGINE="rekognition")
    problems = china.configuration_problems()
    assert any("CHEKA_FACE_ENGINE=rekognition" in p and "cn-north-1" in p for p in problems)
    assert any("CHEKA_LIVENESS_ENGINE=rekognition" in p for p in problems)
    abroad = stage_settings(
        "prod",
        CHEKA_REGION="eu-west-1",
        CHEKA_FACE_ENGINE="rekognition",
        CHEKA_LIVENESS_ENGINE="rekognition",
    )
    assert abroad.configuration_problems() == []


def test_the_frame_burst_liveness_check_needs_its_risk_accepted_on_a_deployed_stage() -> None:
    settings = stage_settings("dev", CHEKA_ACCEPT_LOCAL_LIVENESS_RISK="false")
    (problem,) = settings.configuration_problems()
    assert problem.startswith("CHEKA_LIVENESS_ENGINE=remote")
    assert "ACCEPT_LOCAL_LIVENESS_RISK" in problem


def test_an_operator_url_under_an_unknown_name_is_a_configuration_problem() -> None:
    settings = stage_settings("prod", CHEKA_OPERATOR_BASE_URLS='{"cmcc": "https://op.example"}')
    (problem,) = settings.configuration_problems()
    assert "'cmcc'" in problem
    assert "china_mobile" in problem
