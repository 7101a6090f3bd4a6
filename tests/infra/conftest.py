"""Synthesises the CDK app once per session, offline, in temporary directories.

``chalice package`` (run by Chalice's CDK construct) writes ``chalice.out/`` into the working directory and
the cloud assembly goes to ``cdk.out``: both live under a session temporary directory, never in the
project. (Chalice caches the Lambda dependencies in ``.chalice/deployments/``, which is git-ignored.)
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest

# jsii prints a large end-of-life banner on every start under node 20 (the machine's node); it says
# nothing about the stack. Silenced for node 20 only: a newer unsupported node still gets the warning.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

#: The synthesised stage. Stages are a closed set in settings (local/test/dev/prod) and the stack refuses
#: the local-only ones, so the tests synthesise ``prod``: the stage with the strictest settings, as
#: ``.chalice/config.json`` declares it (``stage_settings``), as ``cdk synth`` builds it.
STAGE: Final = "prod"


@dataclass(frozen=True)
class Synth:
    settings: Any  # chalicelib.core.settings.Settings
    stack: Any  # infra.stack.ChekaStack
    template: Any  # aws_cdk.assertions.Template
    json: dict[str, Any]
    seconds: float
    work: Path  # holds build/chalice.out and cdk.out


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    from aws_cdk.assertions import Template

    from chalicelib.core.stages import stage_settings
    from infra.app import build_app

    work = tmp_path_factory.mktemp("infra")
    cwd = Path.cwd()
    os.chdir(work)  # anything written relative to the working directory stays in the tmp dir
    try:
        started = time.perf_counter()
        settings = stage_settings(STAGE)
        app, stack = build_app(settings=settings, outdir=str(work / "cdk.out"), build_dir=work / "build")
        app.synth()
        template = Template.from_stack(stack)
        seconds = time.perf_counter() - started
    finally:
        os.chdir(cwd)
    print(f"\ncdk synth (chalice package included): {seconds:.1f}s")  # shown with -s
    json = dict(template.to_json())
    return Synth(settings=settings, stack=stack, template=template, json=json, seconds=seconds, work=work)
