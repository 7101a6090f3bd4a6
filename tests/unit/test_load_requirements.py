"""``requirements-load.txt`` (what ``make load`` installs) pins locust, yappi and everything they bring,
each to one exact version, so that the load benchmark runs on the same code on every machine."""

from __future__ import annotations

import importlib.metadata as metadata
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = Path(__file__).resolve().parents[2]
LOAD = PROJECT / "requirements-load.txt"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([A-Za-z0-9.+!-]+)$")


def requirement_lines(path: Path) -> list[str]:
    """The requirement lines of ``path``, comments and blank lines dropped."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def pins(path: Path) -> dict[str, str]:
    """Every ``name==version`` of ``path`` and of the files it includes (``-r``), by canonical name."""
    found: dict[str, str] = {}
    for line in requirement_lines(path):
        if line.startswith("-r "):
            found.update(pins(path.parent / line[3:].strip()))
            continue
        match = _PIN.match(line)
        if match:
            found[canonicalize_name(match.group(1))] = match.group(3)
    return found


def installed_closure(*roots: str) -> dict[str, str]:
    """The installed distributions ``roots`` need on this machine (their requirements, followed with
    the extras asked for and the environment markers evaluated), with their versions."""
    closure: dict[str, str] = {}
    pending: list[tuple[str, tuple[str, ...]]] = [(root, ()) for root in roots]
    while pending:
        name, extras = pending.pop()
        key = canonicalize_name(name)
        if key in closure:
            continue
        distribution = metadata.distribution(name)
        closure[key] = distribution.version
        for text in distribution.requires or []:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": extra}) for extra in ("", *extras)):
                pending.append((requirement.name, tuple(requirement.extras)))
    return closure


def test_every_requirement_of_the_load_file_is_an_include_or_an_exact_pin() -> None:
    lines = requirement_lines(LOAD)
    assert "-r requirements-dev.txt" in lines
    loose = [line for line in lines if not line.startswith("-r ") and not _PIN.match(line)]
    assert loose == []
    names = [canonicalize_name(match.group(1)) for line in lines if (match := _PIN.match(line))]
    assert len(names) == len(set(names))
    assert {"locust", "yappi", "gevent", "flask", "pyzmq"} <= set(names)


def test_the_load_file_pins_what_locust_and_yappi_bring_at_the_versions_installed() -> None:
    try:
        metadata.distribution("locust")
    except metadata.PackageNotFoundError:
        pytest.skip("locust is not installed here (only `make load` installs it)")
    pinned = pins(LOAD)
    needed = installed_closure("locust", "yappi")
    assert sorted(set(needed) - set(pinned)) == []
    assert {name: pinned[name] for name in needed} == needed
