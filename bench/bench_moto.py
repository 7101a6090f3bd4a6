"""The embedded DynamoDB's transaction cost against the table's size, printed as figures:

the median milliseconds of one two-item ``TransactWriteItems`` (a put and a conditional update, as the
outbox commits) on a table of a few items and on a large one, with moto as ``make run``, the tests and
the benchmarks run it (``chalicelib.local.moto_patches``: an undo log of the touched items) and with
stock moto (which deep-copies every table the transaction touches first). Also a cancelled one (its
condition fails), which stock moto rolls back by putting the copies back.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import MOTO_ENV

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.update(MOTO_ENV)

TABLE = "bench-moto"


def _fill(ddb: Any, size: int) -> None:
    for start in range(0, size, 25):
        requests = [
            {"PutRequest": {"Item": {"pk": {"S": f"item-{i}"}, "v": {"S": "x" * 200}, "n": {"N": "0"}}}}
            for i in range(start, min(start + 25, size))
        ]
        ddb.batch_write_item(RequestItems={TABLE: requests})


def _transaction(n: int, *, fail: bool) -> list[dict[str, Any]]:
    return [
        {"Put": {"TableName": TABLE, "Item": {"pk": {"S": f"new-{n}"}, "v": {"S": "y"}}}},
        {
            "Update": {
                "TableName": TABLE,
                "Key": {"pk": {"S": "item-0"}},
                "UpdateExpression": "SET n = n + :one",
                "ConditionExpression": "n >= :zero" if not fail else "n < :zero",
                "ExpressionAttributeValues": {":one": {"N": "1"}, ":zero": {"N": "0"}},
            }
        },
    ]


def measure(sizes: list[int], samples: int) -> dict[str, dict[str, float]]:
    import boto3
    from moto import mock_aws

    figures: dict[str, dict[str, float]] = {}
    for size in sizes:
        with mock_aws():
            ddb = boto3.client("dynamodb", region_name="cn-north-1")
            ddb.create_table(
                TableName=TABLE,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
            _fill(ddb, size)
            committed, cancelled = [], []
            for n in range(samples):
                start = time.perf_counter()
                ddb.transact_write_items(TransactItems=_transaction(n, fail=False))
                committed.append((time.perf_counter() - start) * 1000)
                start = time.perf_counter()
                with contextlib.suppress(ddb.exceptions.TransactionCanceledException):
                    ddb.transact_write_items(TransactItems=_transaction(samples + n, fail=True))
                cancelled.append((time.perf_counter() - start) * 1000)
            figures[str(size)] = {
                "committed_ms": statistics.median(committed),
                "cancelled_ms": statistics.median(cancelled),
            }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,20000", help="table sizes (items), comma-separated")
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--stock-moto", action="store_true", help="measure stock moto only")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.stock_moto:
        print(json.dumps(measure(sizes, args.samples)))
        return
    from chalicelib.local.moto_patches import apply

    apply()
    ours = measure(sizes, args.samples)
    # Stock moto in a process of its own (the patch is process-wide), with fewer samples: it is slow.
    stock_run = subprocess.run(
        [
            sys.executable,
            __file__,
            "--stock-moto",
            "--sizes",
            args.sizes,
            "--samples",
            str(max(3, args.samples // 6)),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    stock = json.loads(stock_run.stdout.strip().splitlines()[-1])
    if args.json:
        print(json.dumps({"dynamodb_behaviour": ours, "stock": stock}))
        return
    print("one two-item TransactWriteItems (put + conditional update), median ms, by table size:")
    print(
        f"  {'items':>8}  {'ours: commit':>13}  {'ours: cancel':>13}  "
        f"{'stock: commit':>14}  {'stock: cancel':>14}"
    )
    for size in sizes:
        o, s = ours[str(size)], stock[str(size)]
        print(
            f"  {size:>8,}  {o['committed_ms']:13.2f}  {o['cancelled_ms']:13.2f}  "
            f"{s['committed_ms']:14.2f}  {s['cancelled_ms']:14.2f}"
        )


if __name__ == "__main__":
    main()
