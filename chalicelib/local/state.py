"""The running local stack's state file: ``make run`` records where it runs, the CLI finds it there.

``make run`` writes ``.local/stack.json`` (``Settings.local_state_file``, under the repository root) once
its stack is up: the runner's process id, the moto endpoint, the API, the sandboxes, the settings it was
started with (every ``CHEKA_*`` variable of its environment), the demo vehicles it seeded, and the staff
identity provider with its demo staff (passwords, TOTP secrets: the file is its owner's only); it removes
the file when it stops. ``cheka`` run without a configured endpoint reads the file and takes the stack's
settings, so ``cheka card show …`` needs no exported variable; a file left by a stack that is gone is
ignored (the runner's process is no longer there, or nothing answers on its moto port).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from chalicelib.core.config import Settings

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class LocalStack:
    """A local stack as its state file records it."""

    path: Path
    pid: int
    started_at: str
    moto: str
    api: str
    #: The ``CHEKA_*`` settings the stack was started with.
    settings: dict[str, str] = field(default_factory=dict)
    #: The demo vehicles of the seed: ``open_vins`` (to register), ``registered_vins``.
    seed: dict[str, list[str]] = field(default_factory=dict)
    #: The staff identity provider's issuer (OpenID Connect with TOTP), and its demo staff: user name,
    #: subject, name, groups, password and TOTP secret of each (``cheka staff``).
    oidc: str = ""
    staff: list[dict[str, Any]] = field(default_factory=list)

    @property
    def started(self) -> str:
        """When it started, in China time (``2026-11-29 20:15``)."""
        from chalicelib.kernel.clock import CHINA

        try:
            return datetime.fromisoformat(self.started_at).astimezone(CHINA).strftime("%Y-%m-%d %H:%M")
        except ValueError:
            return self.started_at or "?"

    def alive(self) -> bool:
        """The runner's process is there and something answers on the moto endpoint."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # another user's process: there all the same
        parts = urlsplit(self.moto)
        if not parts.hostname or not parts.port:
            return False
        with socket.socket() as sock:
            sock.settimeout(0.5)
            return sock.connect_ex((parts.hostname, parts.port)) == 0


def state_path(settings: Settings) -> Path | None:
    """The state file's path (None when the setting is empty: not recorded)."""
    if not settings.local_state_file:
        return None
    path = Path(settings.local_state_file)
    return path if path.is_absolute() else ROOT / path


def write_state(path: Path, doc: dict[str, Any]) -> None:
    """Write the state file (readable by its owner only: it holds the stack's settings)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(doc, out, ensure_ascii=False, indent=2)
    partial.replace(path)


def remove_state(path: Path, pid: int) -> None:
    """Remove the state file if it is the one ``pid`` wrote (a later stack's file stays)."""
    stack = read_state(path)
    if stack is not None and stack.pid == pid:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def read_state(path: Path) -> LocalStack | None:
    """The stack the file records; None when there is no file or it cannot be read as one."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return LocalStack(
            path=path,
            pid=int(doc["pid"]),
            started_at=str(doc.get("started_at", "")),
            moto=str(doc["moto"]),
            api=str(doc.get("api", "")),
            settings={str(k): str(v) for k, v in dict(doc.get("settings", {})).items()},
            seed={str(k): [str(v) for v in vs] for k, vs in dict(doc.get("seed", {})).items()},
            oidc=str(doc.get("oidc", "")),
            staff=[dict(member) for member in doc.get("staff", [])],
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def state_doc(
    pid: int,
    started_at: datetime,
    settings: Settings,
    environ: dict[str, str],
    seed: dict[str, Any],
    *,
    oidc: str = "",
    staff: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """What the runner records (``staff``: the demo staff with their passwords and TOTP secrets — the
    file is readable by its owner only)."""
    return {
        "pid": pid,
        "started_at": started_at.isoformat(timespec="seconds"),
        "stage": settings.stage,
        "moto": f"http://127.0.0.1:{settings.moto_port}",
        "api": f"http://127.0.0.1:{settings.api_port}",
        "sandbox_operator": f"http://127.0.0.1:{settings.sandbox_port}",
        "authority": f"http://127.0.0.1:{settings.authority_port}",
        "settings": {k: v for k, v in sorted(environ.items()) if k.startswith("CHEKA_")},
        "seed": {
            "open_vins": list(seed.get("open_vins", [])),
            "registered_vins": list(seed.get("registered_vins", [])),
        },
        "oidc": oidc,
        "staff": list(staff or []),
    }


def find_stack(settings: Settings) -> LocalStack | None:
    """The running local stack to use: only for the ``local`` stage with no endpoint configured, and only
    when the state file records a stack that is still running."""
    if settings.stage != "local" or settings.aws_endpoint_url is not None:
        return None
    path = state_path(settings)
    if path is None:
        return None
    stack = read_state(path)
    return stack if stack is not None and stack.alive() else None


def gone_stack(settings: Settings) -> LocalStack | None:
    """The stack the state file records when it is no longer running (to say so when nothing answers)."""
    if settings.stage != "local" or settings.aws_endpoint_url is not None:
        return None
    path = state_path(settings)
    stack = read_state(path) if path is not None else None
    return stack if stack is not None and not stack.alive() else None


def adopt(stack: LocalStack, environ: MutableMapping[str, str]) -> list[str]:
    """Take the stack's settings into ``environ`` (variables set there already win); the names taken."""
    taken = []
    for name, value in stack.settings.items():
        if name not in environ:
            environ[name] = value
            taken.append(name)
    return taken
