"""What the benchmarks share: the median of timed runs, and the environment of the app on moto in-process."""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

#: The app's settings on moto in-process (set before the app is imported), its logs quiet.
MOTO_ENV = {
    "CHEKA_STAGE": "test",
    "CHEKA_AWS_ENDPOINT_URL": "",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "cn-north-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "CHEKA_LOG_LEVEL": "WARNING",
}

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


def moto_options(parser: argparse.ArgumentParser) -> None:
    """``--stock-moto`` and ``--json``, the options of every benchmark on moto in-process."""
    parser.add_argument(
        "--stock-moto",
        action="store_true",
        help="moto's own transactions (whole-table copies, unlocked) instead of DynamoDB's behaviour",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def moto_transactions(stock: bool) -> tuple[AbstractContextManager[None], str]:
    """moto as ``make run`` and the tests run it (``chalicelib.local.moto_patches``: DynamoDB's
    serialised transactions with an undo log of the touched items), or moto's own with ``--stock-moto``;
    and its name in the figures. The service logger is quietened to warnings."""
    logging.getLogger("cheka").setLevel(logging.WARNING)
    if stock:
        return nullcontext(), "stock moto"
    from chalicelib.local.moto_patches import apply

    apply()
    return nullcontext(), "moto with DynamoDB's transaction behaviour (undo log, serialised)"
