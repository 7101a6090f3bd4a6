"""Helpers of the Given/When/Then stories of the unit tier."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.kernel.errors import DomainError


def refusal(action: Callable[..., Any], *args: Any, **kwargs: Any) -> DomainError:
    """The domain error ``action(*args, **kwargs)`` raises (the test fails if it raises none)."""
    with pytest.raises(DomainError) as caught:
        action(*args, **kwargs)
    return caught.value
