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

The set is trimmed by age, not by count: a token is needed for as long as botocore may still send its
call again, however many other updates land on the item meanwhile (a count-bound trim could drop a token
before its retry came, and the retry would count a second time). A token begins with the time it was
made (hex milliseconds); once the set holds more than ``TRIM_AT`` tokens and ``TRIM_BATCH`` of them are
older than ``horizon_seconds()`` (the longest one call's attempts can take: connect and read timeouts
times the attempts, plus botocore's backoff between them, never under ``MIN_HORIZON_SECONDS``), those
are deleted. So a set holds about the updates of one horizon, which every update of the item writes
again: this suits items written a few times a minute at most (a code: its sends, tries and one use; a
phone's send buckets; a hand-off: one use), not the SMS budget's shards (a dozen a second), which stay
plain conditional updates (``adapters.sms.limits``). The newest ``KEEP_MAX`` is a hard cap, a guard on
the item's size (1,000 tokens of 23 characters, about 25 KB): past it, the oldest go even within the
horizon. A trim is best effort: a failed one is made by a later update.
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

#: Tokens an item's set holds before any is trimmed (32 tokens of 23 characters: < 1 KB).
TRIM_AT = 32
#: Tokens past the horizon a trim waits for (one trim deletes many: a hot item is not written twice an
#: update).
TRIM_BATCH = 16
#: The newest tokens a set keeps at most, whatever their age (about 25 KB: a guard on the item's size).
KEEP_MAX = 1000
#: The shortest horizon: a token is kept at least this long.
MIN_HORIZON_SECONDS = 60.0
#: botocore's standard retry mode waits at most this long before each attempt after the first.
_BOTOCORE_MAX_BACKOFF_SECONDS = 20.0
#: Slack for the clocks of the functions writing one item (tokens carry the writer's time).
_CLOCK_SLACK_SECONDS = 10.0
_CONDITION_FAILED = "ConditionalCheckFailedException"


def now_ms() -> int:
    """The time tokens carry, in milliseconds."""
    return int(time.time() * 1000)


def horizon_seconds() -> float:
    """How long a token is kept: longer than one call's attempts can take (each connects and waits for
    its reply: ``outbound_connect_timeout_seconds`` + ``outbound_read_timeout_seconds``, times
    ``outbound_max_attempts``, with botocore's backoff before each attempt after the first), plus slack
    for the writers' clocks; never under ``MIN_HORIZON_SECONDS``."""
    from chalicelib.core.settings import get_settings

    settings = get_settings()
    attempts = settings.outbound_max_attempts
    per_attempt = settings.outbound_connect_timeout_seconds + settings.outbound_read_timeout_seconds
    longest = per_attempt * attempts + _BOTOCORE_MAX_BACKOFF_SECONDS * (attempts - 1)
    return max(MIN_HORIZON_SECONDS, longest + _CLOCK_SLACK_SECONDS)


def new_token() -> str:
    """A token for one call: the time in hex milliseconds (so tokens sort by age), then 48 random bits."""
    return f"{now_ms():011x}{secrets.token_hex(6)}"


def _made_ms(token: str) -> int:
    """When ``token`` was made (milliseconds); 0 for one that does not begin with a time (trimmed first)."""
    try:
        return int(token[:11], 16)
    except ValueError:
        return 0


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
    """Delete the tokens of ``item``'s set (as just stored) older than ``horizon_seconds()``, once it
    holds more than ``TRIM_AT`` and ``TRIM_BATCH`` of them are that old, and any past the newest
    ``KEEP_MAX``. Written through a copy of the key, so ``item`` keeps the values of the update it
    answers."""
    tokens = _tokens(item, attempts)
    if len(tokens) <= TRIM_AT:
        return
    since = now_ms() - int(horizon_seconds() * 1000)
    stale = {token for token in tokens if _made_ms(token) < since}
    past_cap = set(sorted(tokens)[:-KEEP_MAX]) if len(tokens) > KEEP_MAX else set()
    if len(stale) < TRIM_BATCH and not past_cap:
        return
    try:
        _key_of(item).update(actions=[attempts.delete(stale | past_cap)], condition=attempts.exists())
    except (UpdateError, Unavailable):
        return  # best effort: a later update trims again


def _key_of(item: M) -> M:
    """A new instance of ``item``'s model holding only its key."""
    model: Any = type(item)
    hash_key = getattr(item, model._hash_keyname)
    if model._range_keyname:
        return model(hash_key, getattr(item, model._range_keyname))  # type: ignore[no-any-return]
    return model(hash_key)  # type: ignore[no-any-return]
