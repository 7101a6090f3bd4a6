"""CDK entry point: ``python -m infra.app`` from the project root, or ``cdk synth`` in ``infra/``.

The stage is the ``stage`` context value (``cdk synth -c stage=prod``), else ``CHEKA_DEPLOY_STAGE``,
else ``dev``; its settings are its declaration in ``.chalice/config.json`` (``stage_settings``), nothing
of the synthesising shell's environment. The stack is environment-agnostic: no account or region is
baked into the template (the Chalice package is built for the partition of ``Settings.region``,
cn-north-1 by default).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script (``cdk`` in infra/): make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aws_cdk import App

from chalicelib.core.settings import Settings
from chalicelib.core.stages import stage_settings
from infra.stack import PROJECT_DIR, ChekaStack

DEFAULT_STAGE = "dev"
#: Settings of the stack alone, taken from the synthesising environment when set there (a JSON list:
#: ``CHEKA_ALARM_EMAILS='["ops@example.com"]'``), else from the stage's declaration.
DEPLOY_TIME_SETTINGS = ("CHEKA_ALARM_EMAILS",)


def stack_name(settings: Settings) -> str:
    return f"{settings.resource_prefix}-{settings.stage}"


def build_app(
    stage: str | None = None,
    *,
    outdir: str | None = None,
    build_dir: Path | None = None,
    settings: Settings | None = None,
) -> tuple[App, ChekaStack]:
    """The App with the stack of ``stage``.

    ``build_dir`` is where ``chalice package`` writes ``chalice.out/`` (default: the project root).
    """
    app = App(outdir=outdir) if outdir else App()
    if settings is None:
        chosen = (
            stage
            or app.node.try_get_context("stage")
            or os.environ.get("CHEKA_DEPLOY_STAGE")
            or DEFAULT_STAGE
        )
        # The stage as its functions will run it: its declaration in .chalice/config.json, and the
        # deploy-time settings the functions never read (who receives the alarms) from the environment.
        deploy_time = {name: os.environ[name] for name in DEPLOY_TIME_SETTINGS if name in os.environ}
        settings = stage_settings(str(chosen), PROJECT_DIR, **deploy_time)
    stack = ChekaStack(
        app,
        stack_name(settings),
        settings=settings,
        project_dir=PROJECT_DIR,
        build_dir=build_dir,
        description=f"cheka {settings.stage}: vehicle IoT card real-name registration",
    )
    return app, stack


def main() -> None:
    outdir = None if os.environ.get("CDK_OUTDIR") else str(PROJECT_DIR / "cdk.out")
    app, _ = build_app(outdir=outdir)
    app.synth()


if __name__ == "__main__":
    main()
