"""Running a local sandbox service in the foreground until SIGINT or SIGTERM (``make run`` stops it so)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType


def serve_until_signalled(stop: Callable[[], None]) -> None:
    """Block until SIGINT or SIGTERM, then call ``stop``."""
    stopped = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stopped.wait(0.5):
        pass
    stop()
