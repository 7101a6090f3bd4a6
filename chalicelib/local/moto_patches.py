"""DynamoDB's transaction behaviour for the embedded AWS (moto): one behaviour for ``make run``, the tests
and the benchmarks. Local only: the Lambda app never imports this module.

Stock moto (5.x) differs from DynamoDB in two ways that matter here:

- ``TransactWriteItems`` deep-copies every table it touches before it starts, to roll back on failure,
  so a transaction costs time proportional to the size of its tables (real DynamoDB: constant);
- it runs unlocked and rolls back by putting those copies back, so a cancelled transaction can wipe a
  transaction (or a single write) another thread committed in the meantime; DynamoDB serialises the
  writes on an item and never loses a committed one. A conditional ``UpdateItem`` is also a
  read-then-write in moto, so two threads can both pass the same condition.

:func:`apply` replaces that with what DynamoDB does: every operation of the DynamoDB backend runs under
one (re-entrant) lock, so transactions and single-item writes are serialised; a transaction records the
items it touches before writing each one (an undo log) and, when cancelled, puts back exactly those
items. The cost of a transaction depends on its items, not on the tables' size, and a concurrent commit
is never undone. Reads are serialised too, so nobody sees the half-applied state of a transaction that
is later cancelled. A whole request runs under the lock too, its answer's serialisation included: moto
turns the stored item into the response after the backend returns it, so a read serialising an item
while a transaction on another thread writes that same item would fail with ``dictionary changed size
during iteration`` (DynamoDB answers each request from one state of the item).

Stock moto also ignores ``TransactWriteItems``'s ``ClientRequestToken``: a transaction sent again with its
token (botocore's retry of one whose reply was lost) writes a second time. DynamoDB keeps a committed
transaction's token for ten minutes: the same token with the same items is answered as done without
writing again, with other items as ``IdempotentParameterMismatchException``. :func:`apply` gives moto that
(:func:`transact_write_items`, :func:`_with_request_token`).

It also mends one race of moto's executing Step Functions backend and validates a definition once per
process (:func:`apply_stepfunctions`).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

#: Serialises every operation of every moto DynamoDB backend of this process (moto's server handles
#: requests on threads; the tests and benchmarks run writers on threads).
LOCK = threading.RLock()

#: Backend methods run under ``LOCK`` as they are (writes, and reads that must not see a cancelled
#: transaction half-applied).
_SERIALISED = (
    "put_item",
    "update_item",
    "delete_item",
    "get_item",
    "query",
    "scan",
    "batch_get_item",
    "transact_get_items",
)

_MAX_TRANSACTION_ITEMS = 100
#: How long DynamoDB keeps a committed transaction's ``ClientRequestToken`` (seconds after it completed).
TOKEN_WINDOW_SECONDS = 600.0
#: The clock of that window (a test may replace it to move past the window without waiting).
clock: Callable[[], float] = time.monotonic
#: The ``ClientRequestToken`` of the ``TransactWriteItems`` request this thread is serving (moto's handler
#: does not pass it to the backend).
_REQUEST = threading.local()
_TOKENS = "_cheka_transaction_tokens"
_OPERATIONS = frozenset({"ConditionCheck", "Put", "Delete", "Update"})
_MARK = "_cheka_dynamodb_behaviour"
_STEPFUNCTIONS_MARK = "_cheka_stepfunctions_behaviour"


def _serialised(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with LOCK:
            return method(*args, **kwargs)

    return locked


def _key_of(backend: Any, table_name: str, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
    if op_type != "Put":
        key: dict[str, Any] = op["Key"]
        return key
    table = backend.get_table(table_name)
    attrs = op["Item"]
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    return {name: attrs[name] for name in names}


def _mismatch() -> Exception:
    """DynamoDB's refusal of a ``ClientRequestToken`` sent again with other items (HTTP 400)."""
    from moto.dynamodb.exceptions import ERROR_TYPE_PREFIX, DynamodbException

    return DynamodbException(
        ERROR_TYPE_PREFIX + "IdempotentParameterMismatchException",
        "The request uses the same client token as a previous, but non-identical request.",
    )


def _digest(transact_items: list[dict[str, Any]]) -> str:
    """What a token is kept with: a digest of its request's items, so a repeat is told from a reuse."""
    text = json.dumps(transact_items, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def _kept_tokens(backend: Any, now: float) -> OrderedDict[str, tuple[str, float]]:
    """The backend's committed tokens still in their window (token -> (digest, end of window)), oldest
    first. Kept on the backend, so moto's reset of a backend forgets them with its tables."""
    tokens: OrderedDict[str, tuple[str, float]] | None = getattr(backend, _TOKENS, None)
    if tokens is None:
        tokens = OrderedDict()
        setattr(backend, _TOKENS, tokens)
    while tokens and next(iter(tokens.values()))[1] <= now:
        tokens.popitem(last=False)
    return tokens


def transact_write_items(
    backend: Any, transact_items: list[dict[str, Any]], client_request_token: str | None = None
) -> None:
    """``TransactWriteItems`` as DynamoDB runs it: all or nothing, serialised, undone item by item, and
    idempotent per ``ClientRequestToken`` (the request's own, as :func:`_with_request_token` hands it
    over, unless one is given).

    A committed transaction's token is kept for :data:`TOKEN_WINDOW_SECONDS`: within it, the same token
    with the same items is answered as done and writes nothing; with other items it is refused with
    ``IdempotentParameterMismatchException``. A cancelled or refused transaction keeps nothing: DynamoDB's
    idempotency covers a call that succeeded, and the same request sent again after a cancellation (a
    conflict, a condition) is carried out anew. ``TransactionInProgressException`` (a token whose first
    send is still committing) does not arise here: a transaction commits under ``LOCK`` before any other
    request is answered."""
    token = client_request_token if client_request_token is not None else getattr(_REQUEST, "token", None)
    with LOCK:
        digest = _digest(transact_items) if token is not None else ""
        if token is not None:
            kept = _kept_tokens(backend, clock()).get(token)
            if kept is not None:
                if kept[0] != digest:
                    raise _mismatch()
                return
        _commit(backend, transact_items)
        if token is not None:
            tokens = _kept_tokens(backend, clock())
            tokens.pop(token, None)
            tokens[token] = (digest, clock() + TOKEN_WINDOW_SECONDS)


def _with_request_token(handle: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """moto's ``TransactWriteItems`` handler, handing the request's ``ClientRequestToken`` to
    :func:`transact_write_items` (the handler calls the backend with the items alone)."""

    @functools.wraps(handle)
    def handled(self: Any) -> Any:
        _REQUEST.token = self.body.get("ClientRequestToken")
        try:
            return handle(self)
        finally:
            _REQUEST.token = None

    return handled


def _commit(backend: Any, transact_items: list[dict[str, Any]]) -> None:
    """Run one transaction: all or nothing, serialised, undone item by item."""
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    if len(transact_items) > _MAX_TRANSACTION_ITEMS:
        raise TooManyTransactionsException()
    with LOCK:
        undo: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
        targets: set[tuple[str, str]] = set()
        errors: list[tuple[str | None, str | None, dict[str, Any] | None]] = []

        def roll_back() -> None:
            for table_name, key, before in reversed(undo):
                if backend.get_item(table_name, key) is not None:
                    backend.delete_item(table_name, key)
                if before is not None:
                    backend.put_item(table_name, before)

        for item in transact_items:
            if len(item) > 1:
                roll_back()
                raise TransactWriteSingleOpException
            original: dict[str, Any] | None = None
            try:
                op_type, op = next(iter(item.items()))
                if op_type not in _OPERATIONS:
                    raise ValueError("Unsupported transaction operation")
                table_name = op["TableName"]
                key = _key_of(backend, table_name, op_type, op)
                target = (str(table_name), str(dict(sorted(key.items()))))
                if target in targets:
                    raise MultipleTransactionsException()
                targets.add(target)
                current = backend.get_item(table_name, key)
                condition = op.get("ConditionExpression")
                names = op.get("ExpressionAttributeNames")
                values = op.get("ExpressionAttributeValues")
                if condition is not None:
                    check = get_filter_expression(condition, names, values)
                    if not check.expr(current):
                        if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                            original = current.to_json()["Attributes"]
                        raise ConditionalCheckFailed(item=original)
                if op_type == "ConditionCheck":
                    errors.append((None, None, None))
                    continue
                before = copy.deepcopy(current.to_json()["Attributes"]) if current is not None else None
                undo.append((table_name, key, before))
                if op_type == "Put":
                    backend.put_item(
                        table_name,
                        op["Item"],
                        condition_expression=condition,
                        expression_attribute_names=names,
                        expression_attribute_values=values,
                    )
                elif op_type == "Delete":
                    backend.delete_item(
                        table_name,
                        key,
                        condition_expression=condition,
                        expression_attribute_names=names,
                        expression_attribute_values=values,
                    )
                else:
                    backend.update_item(
                        table_name,
                        key,
                        update_expression=op["UpdateExpression"],
                        condition_expression=condition,
                        expression_attribute_names=names,
                        expression_attribute_values=values,
                    )
                errors.append((None, None, None))
            except (MultipleTransactionsException, MockValidationException):
                roll_back()
                raise
            except ConditionalCheckFailed as exc:
                errors.append(("ConditionalCheckFailed", str(exc.message), original))
            except Exception as exc:  # moto reports any other failure as the item's cancellation reason
                errors.append((type(exc).__name__, str(exc), original))
        if any(code is not None for code, _, _ in errors):
            roll_back()
            raise TransactionCanceledException(errors)


def apply() -> None:
    """Give moto's DynamoDB backend DynamoDB's transaction behaviour (idempotent, process-wide)."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler

    apply_stepfunctions()
    apply_kms()
    if getattr(DynamoDBBackend, _MARK, False):
        return
    for name in _SERIALISED:
        setattr(DynamoDBBackend, name, _serialised(getattr(DynamoDBBackend, name)))
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign,assignment]
    DynamoHandler.transact_write_items = _with_request_token(  # type: ignore[method-assign,assignment]
        DynamoHandler.transact_write_items
    )
    DynamoHandler.call_action = _serialised(DynamoHandler.call_action)  # type: ignore[method-assign]
    setattr(DynamoDBBackend, _MARK, True)


def _started_executions(get_executions: Callable[..., Any]) -> Callable[..., Any]:
    """Step Functions: the executions whose evaluation has begun. moto makes an execution's environment
    on its own thread a moment after the start (reading the definition), and completing a task token
    looks in every execution's environment: without this, a token completed while another execution is
    starting fails with an AttributeError instead of reaching its own."""

    @functools.wraps(get_executions)
    def started(*args: Any, **kwargs: Any) -> Any:
        return [
            execution
            for execution in get_executions(*args, **kwargs)
            if getattr(getattr(execution, "exec_worker", None), "env", None) is not None
        ]

    return started


def _validated_once(validate: Callable[..., Any]) -> Callable[..., Any]:
    """Step Functions: a definition is validated (parsed) once per process. Parsing the fleet review's
    definition costs moto about a third of a second, and every test's embedded AWS creates the state
    machine again; an execution still parses its definition itself."""
    valid: set[str] = set()

    def validated(definition: str) -> None:
        if definition not in valid:
            validate(definition=definition)
            valid.add(definition)

    return validated


def apply_stepfunctions() -> None:
    """Give moto's executing Step Functions backend the fix of :func:`_started_executions` and the
    validation of :func:`_validated_once` (idempotent)."""
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    if getattr(StepFunctionsParserBackend, _STEPFUNCTIONS_MARK, False):
        return
    StepFunctionsParserBackend._get_executions = _started_executions(  # type: ignore[method-assign]
        StepFunctionsParserBackend._get_executions
    )
    StepFunctionsParserBackend._validate_definition = staticmethod(  # type: ignore[method-assign]
        _validated_once(StepFunctionsParserBackend._validate_definition)
    )
    setattr(StepFunctionsParserBackend, _STEPFUNCTIONS_MARK, True)


#: Key specs whose moto key never uses its asymmetric private key (encrypt/decrypt, data keys, MACs).
_SYMMETRIC_SPECS = frozenset({"SYMMETRIC_DEFAULT", "HMAC_224", "HMAC_256", "HMAC_384", "HMAC_512"})
_KMS_MARK = "_cheka_kms_behaviour"


class _KeyOnFirstUse:
    """moto's private key of a key, generated only when something asks for it (sign, verify, the public
    key): moto makes a 2048-bit RSA key for every key, symmetric ones included, which is most of the cost
    of the embedded AWS's set-up (every test creates the stage's keys afresh); their encryption never
    reads it."""

    def __init__(self, make: Callable[[str], Any], key_spec: str) -> None:
        self._make, self._spec, self._key = make, key_spec, None

    def __getattr__(self, name: str) -> Any:
        if self._key is None:
            self._key = self._make(self._spec)
        return getattr(self._key, name)


def apply_kms() -> None:
    """Give moto's KMS keys a private key made on first use (:class:`_KeyOnFirstUse`; idempotent)."""
    from moto.kms import models

    if getattr(models, _KMS_MARK, False):
        return
    make = models.generate_private_key  # type: ignore[attr-defined]

    def generate(key_spec: str) -> Any:
        return _KeyOnFirstUse(make, key_spec) if key_spec in _SYMMETRIC_SPECS else make(key_spec)

    models.generate_private_key = generate  # type: ignore[attr-defined]
    setattr(models, _KMS_MARK, True)


_SERVER_MARK = "_cheka_server_behaviour"


def apply_server() -> None:
    """moto's server finds the service of every request it serves among its own modules, which it lists
    by reading its package folder and asking, entry by entry, whether each is a folder: about 300 file
    system calls a request, done twice (an eighth of the server's CPU time under ``make load``). The
    package does not change while the server runs: the list is read once (idempotent)."""
    from moto import backends

    if getattr(backends, _SERVER_MARK, False):
        return
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    setattr(backends, _SERVER_MARK, True)


def applied() -> bool:
    from moto.dynamodb.models import DynamoDBBackend

    return bool(getattr(DynamoDBBackend, _MARK, False))
