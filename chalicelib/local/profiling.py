"""Profiling a local server process while it is under load, for the load benchmark (``bench/load``).

Off unless ``CHEKA_LOCAL_PROFILE`` names a folder. Then the process (``chalice local``, the moto server)
starts yappi on its first SIGUSR1 and, on the next, stops it and writes what it saw to that folder:
``<name>-<pid>.txt`` (the functions by their own time and by their time including calls, and the time
summed by package) and ``<name>-<pid>.pstat`` (for ``snakeviz`` or ``pstats``). All threads are profiled
(both servers answer each request on a thread of its own). The clock is CPU time unless
``CHEKA_LOCAL_PROFILE_CLOCK=wall`` (wall time shows lock waits; CPU time shows what keeps a core busy).

An external sampler (py-spy) cannot read another process's memory in every sandbox; this needs nothing
but the process itself.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections import defaultdict
from pathlib import Path
from types import FrameType
from typing import Any

#: The folder profiles are written to; unset: no profiling, no signal handler.
PROFILE_ENV = "CHEKA_LOCAL_PROFILE"
CLOCK_ENV = "CHEKA_LOCAL_PROFILE_CLOCK"
#: Rows of each table of the text report.
TOP = 40


def profile_on_signal(name: str) -> None:
    """When ``CHEKA_LOCAL_PROFILE`` is set, SIGUSR1 starts and then stops and writes a profile of this
    process (``name`` begins the files' names)."""
    folder = os.environ.get(PROFILE_ENV)
    if not folder:
        return
    import yappi  # the load benchmark's requirement (requirements-load.txt), not the app's

    clock = "wall" if os.environ.get(CLOCK_ENV) == "wall" else "cpu"
    started: list[float] = []

    def toggle(_signum: int, _frame: FrameType | None) -> None:
        if not started:
            yappi.clear_stats()
            yappi.set_clock_type(clock)
            yappi.start(builtins=False, profile_threads=True)
            started.append(time.monotonic())
            return
        yappi.stop()
        seconds = time.monotonic() - started.pop()
        stats = yappi.get_func_stats()
        target = Path(folder) / f"{name}-{os.getpid()}"
        target.parent.mkdir(parents=True, exist_ok=True)
        stats.save(str(target.with_suffix(".pstat")), type="pstat")
        rows = [_row(s) for s in stats]
        target.with_suffix(".txt").write_text(report(name, clock, seconds, rows))
        yappi.clear_stats()

    signal.signal(signal.SIGUSR1, toggle)


def _row(stat: Any) -> tuple[str, int, float, float]:
    """(where, calls, own seconds, seconds with calls) of one of yappi's function stats."""
    return f"{stat.module}:{stat.lineno} {stat.name}", int(stat.ncall), float(stat.tsub), float(stat.ttot)


_SITE = re.compile(r"site-packages/([^/]+)/")
_PROJECT = re.compile(r"/(chalicelib|app)(?:/([^/.]+))?")


def package_of(where: str) -> str:
    """The package a function's file belongs to: a site-packages top-level package, the project's
    ``chalicelib.<context>``, or the standard library's module file."""
    site = _SITE.search(where)
    if site:
        return site.group(1)
    project = _PROJECT.search(where)
    if project:
        return project.group(1) + (f".{project.group(2)}" if project.group(2) else "")
    return "stdlib:" + Path(where.split(":", 1)[0]).stem


def report(name: str, clock: str, seconds: float, rows: list[tuple[str, int, float, float]]) -> str:
    """The text report of one profile: by package, by own time, by time with calls."""
    by_package: dict[str, float] = defaultdict(float)
    for where, _calls, own, _total in rows:
        by_package[package_of(where)] += own
    busy = sum(by_package.values()) or 1.0
    lines = [f"{name}: {clock} time over {seconds:.1f} s of wall time; {busy:.2f} s profiled in all", ""]
    lines.append("own time by package:")
    for package, own in sorted(by_package.items(), key=lambda kv: -kv[1])[:TOP]:
        lines.append(f"  {own:9.2f} s  {100 * own / busy:5.1f} %  {package}")
    for title, key in (("own time", 2), ("time with calls", 3)):
        lines.append("")
        lines.append(f"functions by {title}:")
        for row in sorted(rows, key=lambda r: -float(r[key]))[:TOP]:
            lines.append(f"  {float(row[key]):9.2f} s  {row[1]:9d} calls  {row[0]}")
    return "\n".join(lines) + "\n"
