"""Conditional updates that take effect once and know it, whatever botocore's retries did.

botocore sends a request again when its reply was lost (a read timeout, a dropped connection). When
the first attempt had landed, the retry of a conditional update is refused by the item that attempt
changed (a code already used, a hand-off taken, a counter now full), and the caller would answer a
failure that did not happen; or the condition still holds and the update applies a second time (a
wrong try, a send or a budget counted twice).

``update_once`` writes a token of its own, made once per call, into the item's ``attempts`` string
set, on condition that the set does not hold it yet: botocore's retry sends the same request, so the
same token, and never applies twice. A refusal that came on a retry reads the item back (strongly
consistent): the token there means the update had landed, and it is answered as done. A refusal on
the first attempt is a refusal: no earlier attempt of this call can have landed.

The set stays short: a token begins with the time it was made (hex milliseconds), and once the set
holds more than ``KEEP_MAX`` tokens its oldest are deleted, leaving the newest ``KEEP`` (best effort;
a failed trim is made by the next update past the bound). A token is needed only for the seconds
botocore's retries of its own call take: it is deleted too early only if more than ``KEEP`` other
updates of the same item land within them. The items whose writes are bounded anyway (a code: its
tries and one use; a hand-off: one use) never reach the bound.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, TypeVar

from pynamodb.attributes import UnicodeSetAttribute
from pynamodb.exceptions import DoesNotExist, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.models import Model

from chalicelib.core.outbound import Unavailable

M = TypeVar("M", bound=Model)

#: Tokens left in an item's set by a trim.
KEEP = 16
#: Tokens an item's set may hold before its oldest are trimmed (32 tokens of 23 characters: < 1 KB).
KEEP_MAX = 32
_CONDITION_FAILED = "ConditionalCheckFailedException"


def new_token() -> str:
    """A token for one call: the time in hex milliseconds (so tokens sort by age), then 48 random bits."""
    return f"{int(time.time() * 1000):011x}{secrets.token_hex(6)}"


def refused(exc: UpdateError) -> bool:
    """Whether DynamoDB refused the update for its condition (not a throttle or a fault)."""
    return exc.cause_response_code == _CONDITION_FAILED


def on_retry(exc: BaseException) -> bool:
    """Whether DynamoDB's answer to the call came on one of botocore's retries of it: its first attempt
    may have landed with its reply lost. Read from the reply's ``ResponseMetadata.RetryAttempts`` on the
    botocore error PynamoDB wraps (``exc.cause`` and its ``__cause__``)."""
    seen: BaseException | None = exc
    for _ in range(4):  # UpdateError -> VerboseClientError -> ClientError
        if seen is None:
            return False
        response = getattr(seen, "response", None)
        if isinstance(response, dict) and (response.get("ResponseMetadata") or {}).get("RetryAttempts"):
            return True
        seen = getattr(seen, "cause", None) or seen.__cause__
    return False


def update_once(
    item: Model, attempts: UnicodeSetAttribute, actions: list[Action], condition: Condition | None
) -> bool:
    """Apply ``actions`` to ``item`` once, on ``condition``: True when applied (by this call's first
    attempt or its retry), False when refused. ``item`` then holds the item as stored (as after an
    ordinary ``update``). Throttles and faults go up as ``Model.update`` raises them."""
    token = new_token()
    fresh = ~attempts.contains(token)
    try:
        item.update(
            actions=[*actions, attempts.add({token})],
            condition=fresh if condition is None else condition & fresh,
        )
    except UpdateError as exc:
        if not refused(exc):
            raise
        return on_retry(exc) and _landed(item, attempts, token)
    _trim(item, attempts)
    return True


def _landed(item: Model, attempts: UnicodeSetAttribute, token: str) -> bool:
    """Whether the stored item holds ``token`` (read strongly consistent into ``item``)."""
    try:
        item.refresh(consistent_read=True)
    except DoesNotExist:
        return False
    return token in _tokens(item, attempts)


def _tokens(item: Model, attempts: UnicodeSetAttribute) -> set[str]:
    return set(getattr(item, attempts.attr_name) or ())


def _trim(item: Model, attempts: UnicodeSetAttribute) -> None:
    """Delete the oldest tokens of ``item``'s set (as just stored) when it holds more than ``KEEP_MAX``.
    Written through a copy of the key, so ``item`` keeps the values of the update it answers."""
    tokens = _tokens(item, attempts)
    if len(tokens) <= KEEP_MAX:
        return
    oldest = set(sorted(tokens)[:-KEEP])
    try:
        _key_of(item).update(actions=[attempts.delete(oldest)], condition=attempts.exists())
    except (UpdateError, Unavailable):
        return  # best effort: the next update past the bound trims again


def _key_of(item: M) -> M:
    """A new instance of ``item``'s model holding only its key."""
    model: Any = type(item)
    hash_key = getattr(item, model._hash_keyname)
    if model._range_keyname:
        return model(hash_key, getattr(item, model._range_keyname))  # type: ignore[no-any-return]
    return model(hash_key)  # type: ignore[no-any-return]
