"""The embedded DynamoDB behaves as DynamoDB does with transactions (``chalicelib.local.moto_patches``,
applied for every test by ``tests/conftest.py``, by ``make run``'s moto server and by the benchmarks):
a cancelled transaction undoes its own writes and nothing else, even while other threads commit, and a
transaction sent again with its ``ClientRequestToken`` is answered as DynamoDB answers it."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from chalicelib.local import moto_patches
from chalicelib.local.moto_patches import applied

TABLE = "moto-behaviour"


def _client() -> Any:
    return boto3.client("dynamodb", region_name="cn-north-1")


@pytest.fixture
def table() -> Iterator[Any]:
    with mock_aws():
        ddb = _client()
        ddb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield ddb


def _put(pk: str, **attrs: str) -> dict[str, Any]:
    item = {"pk": {"S": pk}, **{k: {"S": v} for k, v in attrs.items()}}
    return {"Put": {"TableName": TABLE, "Item": item}}


def _must_not_exist(pk: str) -> dict[str, Any]:
    return {
        "ConditionCheck": {
            "TableName": TABLE,
            "Key": {"pk": {"S": pk}},
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }


def _get(ddb: Any, pk: str) -> dict[str, Any] | None:
    item: dict[str, Any] | None = ddb.get_item(TableName=TABLE, Key={"pk": {"S": pk}}).get("Item")
    return item


def test_the_tests_run_on_the_patched_backend() -> None:
    assert applied()


def test_a_cancelled_transaction_undoes_its_own_writes_and_reports_why(table: Any) -> None:
    # Given an item the transaction will overwrite, and one that makes its last check fail
    table.put_item(TableName=TABLE, Item={"pk": {"S": "kept"}, "v": {"S": "before"}})
    table.put_item(TableName=TABLE, Item={"pk": {"S": "blocker"}})
    table.put_item(TableName=TABLE, Item={"pk": {"S": "updated"}, "v": {"S": "before"}})
    # When a transaction writes a new item, overwrites one, updates another, then fails its check
    with pytest.raises(ClientError) as info:
        table.transact_write_items(
            TransactItems=[
                _put("new", v="written"),
                _put("kept", v="after"),
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": {"pk": {"S": "updated"}},
                        "UpdateExpression": "SET v = :v",
                        "ExpressionAttributeValues": {":v": {"S": "changed"}},
                    }
                },
                _must_not_exist("blocker"),
            ]
        )
    # Then it is cancelled with the failing item's reason at its index, as DynamoDB reports it
    assert info.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = [r["Code"] for r in info.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "None", "ConditionalCheckFailed"]
    # And none of its writes is left
    assert _get(table, "new") is None
    assert _get(table, "kept") == {"pk": {"S": "kept"}, "v": {"S": "before"}}
    assert _get(table, "updated") == {"pk": {"S": "updated"}, "v": {"S": "before"}}


def test_a_cancelled_transaction_leaves_concurrent_commits_intact(table: Any) -> None:
    # Given a table large enough that stock moto's whole-table copy takes a while
    for start in range(0, 1500, 25):
        table.transact_write_items(
            TransactItems=[_put(f"bulk-{i}", v="x" * 50) for i in range(start, start + 25)]
        )
    table.put_item(TableName=TABLE, Item={"pk": {"S": "blocker"}})
    rounds, committers = 6, 4
    committed: list[str] = []
    failures: list[BaseException] = []
    for round_no in range(rounds):
        barrier = threading.Barrier(committers + 1)

        def cancelled(barrier: threading.Barrier, round_no: int) -> None:
            ddb = _client()
            barrier.wait()
            try:
                ddb.transact_write_items(
                    TransactItems=[_put(f"doomed-{round_no}", v="no"), _must_not_exist("blocker")]
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "TransactionCanceledException":
                    failures.append(exc)
            else:
                failures.append(AssertionError("the doomed transaction committed"))

        def committer(barrier: threading.Barrier, round_no: int, n: int) -> None:
            ddb = _client()
            barrier.wait()
            for k in range(5):
                pk = f"commit-{round_no}-{n}-{k}"
                try:
                    ddb.transact_write_items(TransactItems=[_put(pk, v="yes"), _put(pk + "-twin", v="yes")])
                except BaseException as exc:
                    failures.append(exc)
                    return
                committed.append(pk)

        # When, each round, one transaction is cancelled while four threads commit theirs
        threads = [threading.Thread(target=cancelled, args=(barrier, round_no))]
        threads += [
            threading.Thread(target=committer, args=(barrier, round_no, n)) for n in range(committers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    # Then every commit is there, twin and all, and no write of a cancelled transaction is
    assert failures == []
    assert len(committed) == rounds * committers * 5
    missing = [pk for pk in committed if _get(table, pk) is None or _get(table, pk + "-twin") is None]
    assert missing == []
    assert all(_get(table, f"doomed-{r}") is None for r in range(rounds))


def test_concurrent_conditional_writes_on_one_item_let_exactly_one_through(table: Any) -> None:
    # Given eight writers claiming the same item at the same moment (a claim, as the outbox does)
    barrier = threading.Barrier(8)
    winners: list[int] = []
    refusals: list[str] = []

    def claim(n: int) -> None:
        ddb = _client()
        barrier.wait()
        for _ in range(20):
            try:
                ddb.update_item(
                    TableName=TABLE,
                    Key={"pk": {"S": "lease"}},
                    UpdateExpression="SET owner_id = :me",
                    ConditionExpression="attribute_not_exists(owner_id)",
                    ExpressionAttributeValues={":me": {"S": str(n)}},
                )
            except ClientError as exc:
                refusals.append(exc.response["Error"]["Code"])
            else:
                winners.append(n)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # Then exactly one claim passed, and the item names it
    assert len(winners) == 1
    assert refusals == ["ConditionalCheckFailedException"] * (8 * 20 - 1)
    assert _get(table, "lease") == {"pk": {"S": "lease"}, "owner_id": {"S": str(winners[0])}}


def test_reads_of_an_item_that_transactions_on_other_threads_keep_growing_answer_one_state_of_it(
    table: Any,
) -> None:
    # Given an item of 1,500 attributes that four threads grow by one attribute per transaction, while four
    # others read it, with threads switched every 10 µs so that a read meets a write often
    base = {f"b_{i}": {"S": "y"} for i in range(1500)}
    table.put_item(TableName=TABLE, Item={"pk": {"S": "busy"}, "n": {"N": "0"}, **base})
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    writers, readers, rounds = 4, 4, 25
    barrier = threading.Barrier(writers + readers)
    failures: list[BaseException] = []
    seen: list[int] = []

    def write(n: int) -> None:
        ddb = _client()
        barrier.wait()
        for k in range(rounds):
            try:
                ddb.transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": TABLE,
                                "Key": {"pk": {"S": "busy"}},
                                "UpdateExpression": f"SET a_{n}_{k} = :v ADD n :one",
                                "ExpressionAttributeValues": {":v": {"S": "x" * 20}, ":one": {"N": "1"}},
                            }
                        }
                    ]
                )
            except BaseException as exc:
                failures.append(exc)
                return

    def read() -> None:
        ddb = _client()
        barrier.wait()
        for _ in range(rounds * 2):
            try:
                item = _get(ddb, "busy")
            except BaseException as exc:
                failures.append(exc)
                return
            assert item is not None
            # one state: the count is the number of attributes the transactions added up to it
            seen.append(int(item["n"]["N"]))
            if len(item) - 1502 != int(item["n"]["N"]):
                failures.append(AssertionError(f"a half-applied item: {len(item)} attributes, n={item['n']}"))

    # When they run at once
    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    threads += [threading.Thread(target=read) for _ in range(readers)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join(timeout=120)
    finally:
        sys.setswitchinterval(interval)
    # Then every read answered, and each answer was one whole state of the item
    assert failures == []
    assert len(seen) == readers * rounds * 2
    final = _get(table, "busy")
    assert final is not None
    assert final["n"] == {"N": str(writers * rounds)}


def _count_up(pk: str) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": TABLE,
            "Key": {"pk": {"S": pk}},
            "UpdateExpression": "ADD n :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
    }


def _count(ddb: Any, pk: str) -> int | None:
    item = _get(ddb, pk)
    return None if item is None else int(item["n"]["N"])


def test_a_transaction_sent_again_with_its_token_is_answered_as_done_and_writes_once(table: Any) -> None:
    # Given a transaction that counts up and writes an item, committed with a token
    token = "f5-repeat-0001"
    items = [_count_up("counter"), _put("record", v="first")]
    table.transact_write_items(TransactItems=items, ClientRequestToken=token)
    # When it is sent twice more with the same token and the same items (a retry after a lost reply)
    second = table.transact_write_items(TransactItems=items, ClientRequestToken=token)
    table.transact_write_items(TransactItems=items, ClientRequestToken=token)
    # Then each repeat succeeds, and the counter counted once
    assert second["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert _count(table, "counter") == 1
    assert _get(table, "record") == {"pk": {"S": "record"}, "v": {"S": "first"}}


def test_a_repeat_within_the_window_does_not_undo_a_later_write(table: Any) -> None:
    # Given a committed transaction that put an item, then a later write that changed it
    token = "f5-repeat-0002"
    table.transact_write_items(TransactItems=[_put("record", v="first")], ClientRequestToken=token)
    table.put_item(TableName=TABLE, Item={"pk": {"S": "record"}, "v": {"S": "later"}})
    # When the transaction is sent again with its token
    table.transact_write_items(TransactItems=[_put("record", v="first")], ClientRequestToken=token)
    # Then the later write stands: the repeat wrote nothing
    assert _get(table, "record") == {"pk": {"S": "record"}, "v": {"S": "later"}}


def test_the_same_token_with_other_items_is_refused_as_a_parameter_mismatch_and_writes_nothing(
    table: Any,
) -> None:
    # Given a transaction committed with a token
    token = "f5-mismatch-0001"
    table.transact_write_items(TransactItems=[_count_up("counter")], ClientRequestToken=token)
    # When the same token comes with other items
    with pytest.raises(ClientError) as info:
        table.transact_write_items(
            TransactItems=[_count_up("counter"), _put("other", v="x")], ClientRequestToken=token
        )
    # Then DynamoDB's refusal (a client error, 400), and neither item was written
    assert info.value.response["Error"]["Code"] == "IdempotentParameterMismatchException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert _count(table, "counter") == 1
    assert _get(table, "other") is None


def test_transactions_without_a_given_token_each_write(table: Any) -> None:
    # Given the same transaction sent three times without a token of the caller's (botocore fills a new
    # one in each call)
    for _ in range(3):
        table.transact_write_items(TransactItems=[_count_up("counter")])
    # Then each call wrote
    assert _count(table, "counter") == 3


def test_the_backend_without_any_token_writes_every_call(table: Any) -> None:
    # Given the backend called directly, with no request token at all
    from moto.dynamodb.models import dynamodb_backends

    backend = dynamodb_backends["123456789012"]["cn-north-1"]
    items = [_count_up("counter")]
    # When the same items are sent twice
    moto_patches.transact_write_items(backend, items)
    moto_patches.transact_write_items(backend, items)
    # Then both wrote
    assert _count(table, "counter") == 2


def test_a_cancelled_transactions_token_is_not_kept_so_the_repeat_is_carried_out_anew(table: Any) -> None:
    # Given a transaction cancelled by its condition, with a token
    token = "f5-cancelled-0001"
    table.put_item(TableName=TABLE, Item={"pk": {"S": "blocker"}})
    items = [_count_up("counter"), _must_not_exist("blocker")]
    with pytest.raises(ClientError) as first:
        table.transact_write_items(TransactItems=items, ClientRequestToken=token)
    assert first.value.response["Error"]["Code"] == "TransactionCanceledException"
    # When what refused it is gone and the same request is sent again with the same token
    table.delete_item(TableName=TABLE, Key={"pk": {"S": "blocker"}})
    table.transact_write_items(TransactItems=items, ClientRequestToken=token)
    # Then it is carried out (it wrote once), and from then on its token answers as done
    table.transact_write_items(TransactItems=items, ClientRequestToken=token)
    assert _count(table, "counter") == 1


def test_a_token_past_its_ten_minutes_is_a_new_request(table: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a transaction committed with a token, at a moment of the store's clock
    now = [1_000.0]
    monkeypatch.setattr(moto_patches, "clock", lambda: now[0])
    token = "f5-window-0001"
    table.transact_write_items(TransactItems=[_count_up("counter")], ClientRequestToken=token)
    # When it is sent again just inside the window, then past it
    now[0] += moto_patches.TOKEN_WINDOW_SECONDS - 1
    table.transact_write_items(TransactItems=[_count_up("counter")], ClientRequestToken=token)
    assert _count(table, "counter") == 1
    now[0] += 2
    table.transact_write_items(TransactItems=[_count_up("counter")], ClientRequestToken=token)
    # Then the one past it is a new request: it wrote
    assert _count(table, "counter") == 2
