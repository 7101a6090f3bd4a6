"""What the benchmarks of single calls share: the median of timed runs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

#: Timed runs behind each median.
RUNS = 7


def median_ms(action: Callable[[], object], runs: int = RUNS, *, warm_up: bool = True) -> float:
    """The median milliseconds of ``runs`` calls of ``action``, after one untimed call if ``warm_up``."""
    if warm_up:
        action()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)
