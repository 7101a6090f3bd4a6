"""``outbound.error_code_in`` reads AWS's answer through whatever wraps it: the ``Unavailable`` the store
adapters raise over PynamoDB's error over botocore's ``ClientError``; and only through what an error was
raised from, never through the error being handled when another was raised."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from pynamodb.exceptions import TransactWriteError, UpdateError

from chalicelib.core.outbound import Unavailable, error_code_in


def _aws(code: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": 400}}, "UpdateItem"
    )


def _lifted(pynamo: Exception) -> Unavailable:
    """``pynamo`` as the store adapters lift it: an ``Unavailable`` raised from it."""
    try:
        raise Unavailable("dynamodb", pynamo) from pynamo
    except Unavailable as exc:
        return exc


def test_a_code_is_found_through_unavailable_over_pynamodb_over_the_client_error() -> None:
    lifted = _lifted(UpdateError("update failed", cause=_aws("TransactionConflictException")))
    assert error_code_in(lifted, "TransactionConflictException")
    assert not error_code_in(lifted, "TransactionInProgressException")


def test_a_code_is_found_on_the_client_error_itself_and_on_pynamodbs_error() -> None:
    assert error_code_in(_aws("TransactionInProgressException"), "TransactionInProgressException")
    wrapped = TransactWriteError("transaction failed", cause=_aws("TransactionInProgressException"))
    assert error_code_in(wrapped, "TransactionInProgressException")


def test_an_error_raised_while_another_was_handled_does_not_carry_the_others_code() -> None:
    def handles_badly() -> None:
        try:
            raise _aws("TransactionConflictException")
        except ClientError:
            raise ValueError("a bug in the handler") from None

    with pytest.raises(ValueError, match="a bug in the handler") as bug:
        handles_badly()
    assert bug.value.__context__ is not None
    assert not error_code_in(bug.value, "TransactionConflictException")


def test_an_error_with_no_answer_from_aws_has_no_code() -> None:
    assert not error_code_in(TimeoutError("timed out"), "TransactionConflictException")
    assert not error_code_in(UpdateError("update failed"), "TransactionConflictException")
