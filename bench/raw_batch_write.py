"""The floor of the import benchmark: raw ``batch_write_item`` of the items an import writes.

Run by ``bench_foundation.py`` with the stage's environment; prints the seconds the writes took.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import time
from datetime import UTC, datetime
from typing import Any

from chalicelib.cards.inventory import parse_inventory
from chalicelib.core.aws import client
from chalicelib.core.settings import get_settings
from chalicelib.local.bootstrap import create_resources

create_resources(get_settings())
settings = get_settings()
rows = parse_inventory(Path(sys.argv[1]).read_bytes(), "csv", max_rows=10**7)
at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+0000")
vehicles, cards, history = {}, [], []
for _, r in rows:
    vehicles[r["vin"]] = {
        "vin": {"S": r["vin"]},
        "engine_no": {"S": r["engine_no"]},
        "brand": {"S": r["brand"]},
        "model": {"S": r["model"]},
        "colour": {"S": r["colour"]},
        "production_date": {"S": r["production_date"]},
        "dealer_code": {"S": r["dealer_code"]},
        "created_at": {"S": at},
        "updated_at": {"S": at},
    }
    cards.append(
        {
            "iccid": {"S": r["iccid"]},
            "msisdn": {"S": r["msisdn"]},
            "operator": {"S": "china_mobile"},
            "vin": {"S": r["vin"]},
            "state": {"S": "unregistered"},
            "functions": {"L": [{"S": "emergency"}]},
            "version": {"N": "1"},
            "created_at": {"S": at},
            "updated_at": {"S": at},
        }
    )
    history.append(
        {
            "iccid": {"S": r["iccid"]},
            "seq": {"N": "1"},
            "at": {"S": at},
            "event": {"S": "imported"},
            "to_state": {"S": "unregistered"},
            "actor": {"S": "bench"},
        }
    )
ddb = client("dynamodb")
start = time.perf_counter()
for table, items in (("vehicles", list(vehicles.values())), ("cards", cards), ("card-history", history)):
    name = settings.table_name(table)
    for i in range(0, len(items), 25):
        request: Any = {name: [{"PutRequest": {"Item": item}} for item in items[i : i + 25]]}
        while request:
            request = ddb.batch_write_item(RequestItems=request).get("UnprocessedItems") or None
print(time.perf_counter() - start)
