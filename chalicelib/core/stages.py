"""The settings of a deployed stage, declared once in ``.chalice/config.json``.

A stage's ``environment_variables`` (over the file's global ones) are what its functions read at run
time; ``stage_settings`` builds the same :class:`Settings` from them for infra (what to package, which
grants, which engine function), for ``make deploy-check`` and for tests, so that what is synthesised is
what runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from chalicelib.core.config import Settings

PROJECT_DIR = Path(__file__).resolve().parents[2]


class ConfigurationError(RuntimeError):
    """The stage's settings name something it cannot run: it refuses to start."""

    def __init__(self, stage: str, problems: list[str]) -> None:
        self.problems = problems
        listed = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"the {stage} stage cannot start:\n{listed}")


def stage_environment(stage: str, project_dir: Path = PROJECT_DIR) -> dict[str, str]:
    """The environment variables ``.chalice/config.json`` gives the stage's functions."""
    config: dict[str, Any] = json.loads(
        (project_dir / ".chalice" / "config.json").read_text(encoding="utf-8")
    )
    section = config.get("stages", {}).get(stage)
    if section is None:
        raise KeyError(f"no stage {stage!r} in .chalice/config.json")
    env = {**config.get("environment_variables", {}), **section.get("environment_variables", {})}
    env.setdefault("CHEKA_STAGE", stage)
    return {key: str(value) for key, value in env.items()}


def stage_settings(stage: str, project_dir: Path = PROJECT_DIR, **overrides: str) -> Settings:
    """The stage's :class:`Settings`, from its declared environment only (nothing of this process's)."""
    from unittest import mock  # not at import: a function's init check needs only the functions below

    env = {**stage_environment(stage, project_dir), **overrides}
    with mock.patch.dict(os.environ, env, clear=True):
        return Settings()


def refuse_bad_configuration(settings: Settings) -> None:
    """Raise :class:`ConfigurationError` when the stage cannot run what its settings name."""
    problems = settings.configuration_problems()
    if problems:
        raise ConfigurationError(settings.stage, problems)
