"""What every table model shares: the unbound base (names and endpoint set by ``models.bind``) and
``TableSpec``, how a model becomes a table in the local bootstrap and in infra."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from pynamodb.expressions.condition import Condition
from pynamodb.models import Model

M = TypeVar("M", bound=Model)


def utc_aware(at: datetime) -> datetime:
    """``at`` as read back from a table: a naive datetime is UTC."""
    return at if at.tzinfo else at.replace(tzinfo=UTC)


_loader: Any = None
#: Longest one attempt of a table call may take (connect + read timeout), set by ``bound_connections``.
_attempt_seconds: float | None = None


def _session_with_shared_loader() -> Any:
    """A botocore session for a table's connection whose data loader is shared by every connection.

    PynamoDB makes one botocore session per model (and thread), and a new session parses the DynamoDB
    service model and the endpoint data again: about a tenth of a second per table on its first call,
    in a cold function as in each test's fresh store. The loader caches what it has parsed, so sharing
    it parses them once per process."""
    global _loader
    from botocore.loaders import create_loader
    from botocore.session import get_session

    if _loader is None:
        _loader = create_loader()
    session = get_session()
    session.register_component("data_loader", _loader)
    if _attempt_seconds is not None:
        from chalicelib.core.outbound import register_hooks

        register_hooks(session, _attempt_seconds)
    return session


def _lifting_retryable(make_api_call: Any) -> Any:
    """PynamoDB's ``Connection._make_api_call`` raising ``outbound.Unavailable`` for a throttle, a
    timeout, a dropped connection or a 5xx (which PynamoDB would wrap in ``PutError``… like a failed
    condition): an adapter's ``except PutError`` then only ever sees a refusal, and the API answers the
    rest with 503. A cancelled transaction is not lifted (``_cancelled_transaction``): its reasons are
    the adapter's to read."""

    def call(self: Any, operation_name: str, operation_kwargs: dict[str, Any]) -> Any:
        try:
            return make_api_call(self, operation_name, operation_kwargs)
        except Exception as exc:
            from chalicelib.core.outbound import Unavailable, kind_of

            lift = not isinstance(exc, Unavailable) and not _cancelled_transaction(exc)
            if lift and kind_of(exc) is not None:
                raise Unavailable("dynamodb", exc) from exc
            if operation_name == "PutItem" and _put_landed_before_its_retry(self, operation_kwargs, exc):
                return {}
            if _start_key_refused(operation_name, operation_kwargs, exc):
                raise _bad_cursor() from exc
            raise

    call.lifts_retryable = True  # type: ignore[attr-defined]
    return call


def _cancelled_transaction(exc: BaseException) -> bool:
    """Whether ``exc`` is a cancelled transaction: left to the adapter, whose retry loop reads its
    cancellation reasons (``TransactionConflict``, ``ThrottlingError``: try again; a failed condition:
    a concurrent change). Unhandled, the API still answers a retryable one with 503."""
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, dict) else None
    return isinstance(error, dict) and error.get("Code") == "TransactionCanceledException"


def _start_key_refused(operation: str, kwargs: dict[str, Any], exc: BaseException) -> bool:
    """Whether DynamoDB refused a page's start key: a forged or foreign page cursor decodes to a key that
    is not one of the table's or index's, and the service answers ``ValidationException``."""
    if operation not in ("Query", "Scan") or "ExclusiveStartKey" not in kwargs:
        return False
    response = getattr(exc, "response", None) or getattr(exc.__cause__, "response", None)
    return isinstance(response, dict) and (response.get("Error") or {}).get("Code") == "ValidationException"


def _bad_cursor() -> Exception:
    from chalicelib.kernel.errors import BadRequest

    return BadRequest("request.cursor", "分页游标无效", "The page cursor is invalid", field="cursor")


def _put_landed_before_its_retry(connection: Any, kwargs: dict[str, Any], exc: BaseException) -> bool:
    """Whether a conditional ``PutItem`` refused on a retry was refused by its own first attempt.

    botocore tries a call again after a read timeout or a dropped connection; when the first attempt
    had landed and only its answer was lost, the retry finds the item already written and its condition
    (``attribute_not_exists`` of a create, the version of a save) fails. The item is read back (strongly
    consistent): when it is exactly the item this call wrote, the put happened and is answered as such,
    rather than as a concurrent change (409) or a duplicate.

    Only versioned items (a ``version`` attribute: registrations, flows…) are read back. A guard item
    (a nonce, a captcha, a counter) carries no version: two requests putting the same guard write the
    same item, and the second must be refused, not told it had written it."""
    cause = exc.__cause__
    response = getattr(cause, "response", None)
    if not isinstance(response, dict):
        return False
    if (response.get("Error") or {}).get("Code") != "ConditionalCheckFailedException":
        return False
    if not (response.get("ResponseMetadata") or {}).get("RetryAttempts"):
        return False
    item = kwargs.get("Item")
    table = kwargs.get("TableName")
    if not isinstance(item, dict) or not isinstance(table, str):
        return False
    if "version" not in item:  # a guard (a nonce, a captcha, a limit): finding it is the refusal
        return False
    try:
        meta = connection.get_meta_table(table)
        names = [meta.hash_keyname] + ([meta.range_keyname] if meta.range_keyname else [])
        key = {name: item[name] for name in names}
        stored = connection.client.get_item(TableName=table, Key=key, ConsistentRead=True)
    except Exception:  # the read-back is best effort: the refusal stands
        return False
    return bool(stored.get("Item") == item)


def share_botocore_loader() -> None:
    """Make PynamoDB's connections share one botocore data loader and lift retryable failures out of
    its error wrapping (idempotent; ``models.bind`` calls it)."""
    import pynamodb.connection.base as connection_base

    connection_base.get_session = _session_with_shared_loader  # type: ignore[attr-defined]
    connection = connection_base.Connection
    if not getattr(connection._make_api_call, "lifts_retryable", False):
        connection._make_api_call = _lifting_retryable(connection._make_api_call)  # type: ignore[method-assign]


def bound_connections(meta: Any, settings: Any) -> None:
    """Bound a model's connection (its ``Meta``) as every outbound call is (``chalicelib.core.outbound``):
    ``outbound_connect_timeout_seconds``, ``outbound_read_timeout_seconds`` and
    ``outbound_max_attempts`` attempts in botocore's standard retry mode (PynamoDB's own default waits
    15 s to connect and 30 s per reply, four attempts: two minutes on a store that stopped answering),
    each attempt checked against the request's deadline."""
    global _attempt_seconds
    meta.connect_timeout_seconds = settings.outbound_connect_timeout_seconds
    meta.read_timeout_seconds = settings.outbound_read_timeout_seconds
    meta.max_retry_attempts = settings.outbound_max_attempts - 1
    _attempt_seconds = settings.outbound_connect_timeout_seconds + settings.outbound_read_timeout_seconds


class Unbound(Model):
    class Meta:
        table_name = "unbound"
        billing_mode = "PAY_PER_REQUEST"


@dataclass(frozen=True)
class TableSpec:
    """How a model becomes a table: its short name and TTL attribute (if any)."""

    short_name: str
    model: type[Model]
    ttl_attribute: str | None = None


def scan_upto(model: type[M], condition: Condition, limit: int) -> list[M]:
    """Up to ``limit`` items matching ``condition``, scanned a page of 100 at a time (housekeeping only:
    the tables scanned are kept small by TTL)."""
    found: list[M] = []
    for item in model.scan(condition, page_size=100):
        found.append(item)
        if len(found) >= limit:
            break
    return found
