"""The browser stories share one stack per worker, in an order the scheduler picks. A phone two stories
sign in with, or ask codes for, ties them together: the second finds the first's open flow on the same
car (and resumes it past the screen it expects) or waits out the first's code interval."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

PHONE = re.compile(r"\b1[3-9]\d{9}\b")


def test_no_two_browser_stories_use_the_same_phone() -> None:
    used: dict[str, set[str]] = defaultdict(set)
    for path in Path(__file__).parent.glob("test_*.py"):
        if path.name == Path(__file__).name:
            continue
        for phone in PHONE.findall(path.read_text(encoding="utf-8")):
            used[phone].add(path.name)
    shared = {phone: sorted(files) for phone, files in used.items() if len(files) > 1}
    assert not shared, shared
