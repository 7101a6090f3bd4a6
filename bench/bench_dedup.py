"""Face de-duplication (一脸多证): the cost of one search of the local face index at 10k and 100k faces.

The bound faces are synthetic: random unit vectors of 128 floats (the size of a dlib descriptor; the
search's cost does not depend on their values), each under its own identity hash.

- warm search: the index holds every template in memory; a search reads the store once (what changed
  in the last minute: nothing here, the faces were bound an hour before) and scans the matrix exactly.
  Median time per search, and store reads per search.
- cold load: the first search of a process reads every template from the store, decrypts each
  descriptor and builds the matrix. In memory (``MemoryTemplateStore``) at 10k and 100k; on DynamoDB
  (moto in-process, the descriptors sealed with the KMS data key as in production) at 10k, with the
  store requests counted and the read capacity such a load consumes.

Run: ``python bench/bench_dedup.py``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import MOTO_ENV, median_ms

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SIZES = (10_000, 100_000)
DYNAMO_SIZE = 10_000
SEARCHES = 25
#: When the synthetic faces were bound: an hour ago, so a search reads only what changed since (a
#: search in the minute after a bind reads that bind again, and skips it).
BOUND_AT_MS = time.time_ns() // 1_000_000 - 3_600_000


def _descriptors(count: int, seed: int = 7) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(count, 128)).astype(np.float32)
    normed: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return normed


def _warm(size: int) -> None:
    from chalicelib.adapters.faces.index_local import LocalFaceIndex
    from chalicelib.adapters.faces.local import LocalFaceEngine
    from chalicelib.adapters.faces.templates import MemoryTemplateStore, Template
    from chalicelib.verification.domain.faces import DEFAULT_FACE_THRESHOLD

    store = MemoryTemplateStore(clock=lambda: BOUND_AT_MS)
    for n, vector in enumerate(_descriptors(size)):
        store.put(Template(template_id=f"f{n}", person_hash=f"p{n}", engine="dlib-resnet", descriptor=vector))
    index = LocalFaceIndex(LocalFaceEngine(), store)
    start = time.perf_counter()
    index.refresh()
    load_ms = (time.perf_counter() - start) * 1000
    probes = iter(_descriptors(SEARCHES + 1, seed=size))
    reads = store.reads
    search_ms = median_ms(lambda: index.search_descriptor(next(probes), DEFAULT_FACE_THRESHOLD, 10), SEARCHES)
    per_search = (store.reads - reads) / (SEARCHES + 1)
    print(
        f"{size:>7,} faces: search {search_ms:.1f} ms (median of {SEARCHES}), "
        f"{per_search:.0f} store read per search; cold load from memory {load_ms:.0f} ms; "
        f"matrix {size * 128 * 4 / 1e6:.0f} MB"
    )


def _dynamo(size: int) -> None:
    os.environ.update(MOTO_ENV)
    from moto import mock_aws

    from chalicelib.adapters.dynamo.models import bind
    from chalicelib.adapters.faces.index_local import LocalFaceIndex
    from chalicelib.adapters.faces.local import LocalFaceEngine
    from chalicelib.adapters.faces.templates import DynamoTemplateStore, Template
    from chalicelib.core import deps
    from chalicelib.core.aws import client
    from chalicelib.core.settings import get_settings
    from chalicelib.local.bootstrap import create_resources

    with mock_aws():
        deps.reset()
        settings = get_settings()
        create_resources(settings)
        bind(settings)
        writer = DynamoTemplateStore(deps.field_cipher(), clock=lambda: BOUND_AT_MS)
        start = time.perf_counter()
        for n, vector in enumerate(_descriptors(size)):
            writer.put(
                Template(
                    template_id=f"f{n:06d}", person_hash=f"p{n}", engine="dlib-resnet", descriptor=vector
                )
            )
        write_s = time.perf_counter() - start
        item = client("dynamodb").get_item(
            TableName=settings.table_name("face-templates"), Key={"template_id": {"S": "f000000"}}
        )["Item"]
        item_bytes = sum(len(name) + _size(value) for name, value in item.items())
        store = DynamoTemplateStore(deps.field_cipher())
        index = LocalFaceIndex(LocalFaceEngine(), store)
        start = time.perf_counter()
        index.refresh()
        load_s = time.perf_counter() - start
        load_reads = store.reads
        probes = iter(_descriptors(SEARCHES + 1, seed=1))
        search_ms = median_ms(lambda: index.search_descriptor(next(probes), 55.0, 10), SEARCHES)
        per_search = (store.reads - load_reads) / (SEARCHES + 1)
    deps.reset()
    rcu = size * item_bytes / 4096 / 2
    print(
        f"DynamoDB (moto), {size:,} faces: cold load {load_s:.1f} s in {load_reads} query pages "
        f"(about {item_bytes} bytes per item: {rcu:,.0f} read units, eventually consistent); "
        f"then search {search_ms:.1f} ms with {per_search:.0f} query per search (moto scans the whole "
        f"index for a query: its time is moto's); ({size:,} binds took {write_s:.0f} s)"
    )
    print(
        f"  at 100,000 faces: {100_000 // 500} query pages, about {100_000 * item_bytes / 4096 / 2:,.0f} "
        "read units per cold load"
    )


def _size(value: dict[str, Any]) -> int:
    """DynamoDB's size of an attribute value (binary: its bytes; string: UTF-8; map: names + values)."""
    (kind, inner), *_ = value.items()
    if kind == "B":
        return len(inner)
    if kind in ("S", "N"):
        return len(str(inner).encode())
    if kind == "M":
        return 3 + sum(len(name) + 1 + _size(v) for name, v in inner.items())
    if kind == "L":
        return 3 + sum(1 + _size(v) for v in inner)
    return 1


def run(*, dynamo_only: bool = False) -> None:
    """Every figure; ``dynamo_only`` (``--dynamo-only``) only the DynamoDB one."""
    for size in () if dynamo_only else SIZES:
        _warm(size)
    _dynamo(DYNAMO_SIZE)


if __name__ == "__main__":
    run(dynamo_only="--dynamo-only" in sys.argv)
