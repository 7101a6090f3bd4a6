"""The engines function in the synthesised stack (``infra.engines``): a container image built from
``engines/Dockerfile`` at deploy (never at synth), its own least-privilege role, and the API role's grant
to invoke exactly it; a stage that runs no engine remotely has none.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from chalicelib.core.config import Settings
from chalicelib.core.stages import stage_settings
from tests.infra.conftest import Synth

pytestmark = pytest.mark.infra

FUNCTION = "AWS::Lambda::Function"


def synth_without_api(settings: Settings, work: Path) -> tuple[Any, dict[str, Any], Path]:
    """The stack of ``settings`` without the Chalice API (seconds, not minutes): stack, template, cdk.out."""
    from aws_cdk import App
    from aws_cdk.assertions import Template

    from infra.app import stack_name
    from infra.stack import PROJECT_DIR, ChekaStack

    outdir = work / "cdk.out"
    app = App(outdir=str(outdir))
    stack = ChekaStack(
        app, stack_name(settings), settings=settings, project_dir=PROJECT_DIR, package_api=False
    )
    app.synth()
    return stack, dict(Template.from_stack(stack).to_json()), outdir


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def engines_function(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    found = {
        k: v for k, v in of_type(template, FUNCTION).items() if v["Properties"].get("PackageType") == "Image"
    }
    assert len(found) == 1, list(found)
    return next(iter(found.items()))


def invoke_grants(template: dict[str, Any], role_id: str) -> list[Any]:
    """Resources of every ``lambda:InvokeFunction`` statement given to ``role_id`` (inline or attached)."""
    documents = [
        policy["PolicyDocument"]
        for policy in template["Resources"][role_id]["Properties"].get("Policies", [])
    ]
    documents += [
        resource["Properties"]["PolicyDocument"]
        for resource in of_type(template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in resource["Properties"]["Roles"]
    ]
    grants = []
    for document in documents:
        for statement in document["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if any(a in ("lambda:InvokeFunction", "lambda:*", "*") for a in actions):
                grants.append(statement["Resource"])
    return grants


@pytest.fixture(scope="module")
def stages(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Each stage synthesised once per module (without the API): (stack, template, cdk.out)."""
    made: dict[str, tuple[Any, dict[str, Any], Path]] = {}

    def synthesised(stage: str) -> tuple[Any, dict[str, Any], Path]:
        if stage not in made:
            made[stage] = synth_without_api(
                stage_settings(stage), tmp_path_factory.mktemp(f"engines-{stage}")
            )
        return made[stage]

    return synthesised


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_each_deployed_stage_has_its_engines_image_function_built_from_the_dockerfile(
    stage: str, stages: Any
) -> None:
    settings = stage_settings(stage)
    assert set(settings.remote_engines) == {"ocr", "faces", "liveness"}
    _, template, outdir = stages(stage)
    _, function = engines_function(template)
    props = function["Properties"]
    assert props["FunctionName"] == f"cheka-{stage}-engines"
    assert props["MemorySize"] >= 1769  # a whole vCPU: OCR is CPU-bound
    assert props["Timeout"] > settings.engines_timeout_seconds
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["Environment"]["Variables"]["CHEKA_STAGE"] == stage
    assert props["Environment"]["Variables"]["CHEKA_FACE_ENGINE"] == "remote"
    manifest = json.loads(next(outdir.glob("*.assets.json")).read_text())
    images = list(manifest["dockerImages"].values())
    assert len(images) == 1
    source = images[0]["source"]
    assert source["dockerFile"] == "engines/Dockerfile"
    assert source["platform"] == "linux/amd64"
    # The build context holds what the image copies, and none of the project's bulk
    context = outdir / source["directory"]
    present = {p.name for p in context.iterdir()}
    assert {"chalicelib", "requirements.txt", "requirements-engines.txt", "engines"} <= present
    assert not present & {".venv", ".git", "tests", "bench", "infra", "cdk.out"}
    assert (context / "chalicelib" / "engines" / "handler.py").is_file()


def test_the_engines_role_reads_only_staged_images_and_the_face_templates(stages: Any) -> None:
    _, template, _ = stages("prod")
    _, function = engines_function(template)
    role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = {
        s["Sid"]: s
        for p in template["Resources"][role_id]["Properties"]["Policies"]
        for s in p["PolicyDocument"]["Statement"]
    }
    assert set(statements) == {"Logs", "XRay", "FaceTemplates", "PiiKey", "StagedImages"}
    assert statements["StagedImages"]["Action"] == "s3:GetObject"
    assert "engine-io/*" in json.dumps(statements["StagedImages"]["Resource"])
    assert "dynamodb:Scan" not in json.dumps(statements)
    assert "cheka-prod-engines" in json.dumps(statements["Logs"]["Resource"])


def test_the_api_role_may_invoke_exactly_the_engines_function(synth: Synth) -> None:
    template = synth.json
    function_id, _ = engines_function(template)
    role_id = synth.stack.resolve(synth.stack.role.node.default_child.logical_id)
    assert invoke_grants(template, role_id) == [{"Fn::GetAtt": [function_id, "Arn"]}]
    # and the API's functions are created only once that grant is in place
    grant_id = next(
        k
        for k, v in of_type(template, "AWS::IAM::Policy").items()
        if {"Ref": role_id} in v["Properties"]["Roles"]
    )
    api_functions = of_type(template, "AWS::Serverless::Function")
    assert api_functions
    for resource in api_functions.values():
        assert grant_id in resource.get("DependsOn", [])


def test_a_stage_that_runs_no_engine_remotely_has_no_engines_function(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = stage_settings(
        "prod",
        CHEKA_REGION="us-east-1",
        CHEKA_OCR_ENGINE="local",
        CHEKA_FACE_ENGINE="rekognition",
        CHEKA_LIVENESS_ENGINE="rekognition",
    )
    assert settings.remote_engines == ()
    # Every deployed stage needs remote OCR today (so the stage refuses to start): the stack alone is tested
    monkeypatch.setattr(Settings, "configuration_problems", lambda self: [])
    stack, template, outdir = synth_without_api(settings, tmp_path)
    assert stack.engines_function is None
    assert not [
        v for v in of_type(template, FUNCTION).values() if v["Properties"].get("PackageType") == "Image"
    ]
    assert invoke_grants(template, stack.resolve(stack.role.node.default_child.logical_id)) == []
    assert not json.loads(next(outdir.glob("*.assets.json")).read_text()).get("dockerImages")


def test_synth_runs_no_docker(tmp_path: Path) -> None:
    """In a fresh process whose ``docker`` (and ``CDK_DOCKER``) only leave a mark: synth leaves none."""
    fake = tmp_path / "bin"
    fake.mkdir()
    mark = tmp_path / "docker-was-called"
    script = fake / "docker"
    script.write_text(f'#!/bin/sh\necho "$@" >> {mark}\nexit 1\n')
    script.chmod(0o755)
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from tests.infra.test_engines_stack import synth_without_api
        from chalicelib.core.stages import stage_settings
        stack, template, outdir = synth_without_api(stage_settings("prod"), Path({str(tmp_path)!r}))
        assert stack.engines_function is not None
        """
    )
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "CDK_DOCKER": str(script)}
    project = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=project, env=env, timeout=600)
    assert not mark.exists(), mark.read_text()
