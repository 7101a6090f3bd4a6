"""A conditional put whose first attempt landed but whose answer was lost (botocore then tries again and
the retry's condition fails on the item the first attempt wrote) is answered as the put it was; a put
refused by someone else's item stays refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import PutError
from pynamodb.models import Model

from chalicelib.adapters.dynamo.base import share_botocore_loader


class Thing(Model):
    class Meta:
        table_name = "put-retry-things"
        region = "cn-north-1"

    thing_id = UnicodeAttribute(hash_key=True)
    version = NumberAttribute()
    note = UnicodeAttribute()


@pytest.fixture
def things() -> Iterator[None]:
    from moto import mock_aws

    share_botocore_loader()
    with mock_aws():
        Thing._connection = None
        Thing.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
        yield
    Thing._connection = None


def _retried_after_each_put(monkeypatch: pytest.MonkeyPatch, *, first_lands: bool) -> None:
    """Every PutItem is sent twice, as botocore does after a read timeout: the first attempt lands (or
    not) and its answer is lost; the retry's answer is the one the caller sees."""
    client = Thing._get_connection().connection.client
    real = client._make_api_call

    def twice(operation: str, kwargs: dict[str, Any]) -> Any:
        if operation != "PutItem":
            return real(operation, kwargs)
        if first_lands:
            real(operation, kwargs)
        try:
            return real(operation, kwargs)
        except ClientError as exc:
            exc.response.setdefault("ResponseMetadata", {})["RetryAttempts"] = 1
            raise

    monkeypatch.setattr(client, "_make_api_call", twice)


def test_a_create_whose_first_attempt_landed_before_its_retry_is_answered_as_created(
    things: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _retried_after_each_put(monkeypatch, first_lands=True)
    Thing("t1", version=1, note="mine").save(condition=Thing.thing_id.does_not_exist())
    assert Thing.get("t1", consistent_read=True).note == "mine"


def test_a_versioned_save_whose_first_attempt_landed_before_its_retry_is_answered_as_saved(
    things: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    Thing("t2", version=1, note="first").save()
    _retried_after_each_put(monkeypatch, first_lands=True)
    Thing("t2", version=2, note="second").save(condition=Thing.version == 1)
    assert Thing.get("t2", consistent_read=True).note == "second"


def test_a_create_refused_on_a_retry_by_someone_elses_item_stays_refused(
    things: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    Thing("t3", version=1, note="theirs").save()
    _retried_after_each_put(monkeypatch, first_lands=False)
    with pytest.raises(PutError):
        Thing("t3", version=1, note="mine").save(condition=Thing.thing_id.does_not_exist())
    assert Thing.get("t3", consistent_read=True).note == "theirs"


class Guard(Model):
    """A guard item (a nonce, a captcha): no version; whoever puts it first holds it."""

    class Meta:
        table_name = "put-retry-guards"
        region = "cn-north-1"

    guard_id = UnicodeAttribute(hash_key=True)
    note = UnicodeAttribute()


def test_a_guard_without_a_version_refused_on_a_retry_is_not_read_back_and_stays_refused(
    things: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two requests putting the same guard write the same item: the second is refused even when its
    refusal comes on botocore's retry (the read-back would take the other's item for its own)."""
    Guard._connection = None
    Guard.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
    Guard("nonce-1", note="same").save(condition=Guard.guard_id.does_not_exist())
    client = Guard._get_connection().connection.client
    real = client._make_api_call
    reads: list[str] = []

    def retried(operation: str, kwargs: dict[str, Any]) -> Any:
        if operation == "GetItem":
            reads.append(kwargs["TableName"])
        if operation != "PutItem":
            return real(operation, kwargs)
        try:
            return real(operation, kwargs)
        except ClientError as exc:
            exc.response.setdefault("ResponseMetadata", {})["RetryAttempts"] = 1
            raise

    monkeypatch.setattr(client, "_make_api_call", retried)
    with pytest.raises(PutError):
        Guard("nonce-1", note="same").save(condition=Guard.guard_id.does_not_exist())
    assert reads == []
    Guard._connection = None


def test_a_page_start_key_dynamodb_refuses_is_a_bad_cursor_not_a_500(
    things: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forged cursor decodes to a start key that is no key of the table: DynamoDB answers
    ValidationException (moto accepts any key, so the refusal is DynamoDB's, played at the client)."""
    from chalicelib.kernel.errors import BadRequest

    client = Thing._get_connection().connection.client
    real = client._make_api_call

    def refuse_start_keys(operation: str, kwargs: dict[str, Any]) -> Any:
        if operation in ("Query", "Scan") and "ExclusiveStartKey" in kwargs:
            raise ClientError(
                {"Error": {"Code": "ValidationException", "Message": "The provided starting key is invalid"}},
                operation,
            )
        return real(operation, kwargs)

    monkeypatch.setattr(client, "_make_api_call", refuse_start_keys)
    with pytest.raises(BadRequest) as refused:
        list(Thing.query("t1", last_evaluated_key={"nope": {"S": "x"}}))
    assert (refused.value.code, refused.value.status) == ("request.cursor", 400)
    assert list(Thing.query("t1")) == []  # without a start key the query goes as before
