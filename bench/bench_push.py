"""The push pipeline end to end for real, printed as figures beside the in-process stub of bench_outbox:

commit (card transition + outbox record, one transaction) → SQS → dispatcher (claim) → signed push
(wire encoding, SM4-GCM of the personal fields, HMAC-SM3 signature) → the sandbox operator over HTTP on
loopback (verifies, decrypts, acknowledges; decides with no delay) → its signed callback over HTTP to
our callback receiver (signature, freshness, nonce kept in DynamoDB, decryption) → the card's
transaction applied → registered.

Everything runs in one process on moto in-process (DynamoDB, SQS, KMS, Secrets Manager), with DynamoDB's
transaction behaviour (``chalicelib.local.moto_patches``, as ``make run`` and the tests); the operator
and our callback endpoint are real HTTP servers on free ports, on threads. The callback endpoint is the
use case (``CallbackReceiver.receive``) behind a plain HTTP server: API Gateway and Chalice's routing are
not in the figure, and the registration's notification of the person is not either (these cards have no
registration flow). Registrations are committed ten at a time and the queue drained between, as the
consumer runs in production, while callbacks arrive on their own threads.

Figures: throughput (registrations per second, first commit to last registration), per-card latency
(commit → registered, percentiles), and where the time goes: seconds spent at each seam (perf_counter
around it, summed over every call; the seams on other threads overlap the main thread's in wall time).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from common import MOTO_ENV, moto_options, moto_transactions

from chalicelib.local.serving import free_ports

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ.update(MOTO_ENV)

CARDS_PER_PERSON = 5  # below the one-ID limit of the operator: every registration is accepted
BATCH = 10  # registrations committed between two drains of the queue (one SQS receive's worth)

F = TypeVar("F", bound=Callable[..., Any])


class Seams:
    """Wall seconds, CPU seconds of the calling thread and calls, summed per seam, from any thread.

    Wall time at a seam includes waiting for the GIL and for moto's lock while other threads run;
    the thread's CPU time does not: it is the seam's own cost."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def add(self, seam: str, seconds: float, cpu: float | None = None) -> None:
        with self._lock:
            self.seconds[seam] += seconds
            if cpu is not None:
                self.cpu[seam] += cpu
            self.calls[seam] += 1

    def timed(self, seam: str, fn: F) -> F:
        def run(*args: Any, **kwargs: Any) -> Any:
            start, cpu = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(seam, time.perf_counter() - start, time.thread_time() - cpu)

        return run  # type: ignore[return-value]


@contextmanager
def patched(owner: Any, name: str, seams: Seams, seam: str) -> Iterator[None]:
    original = getattr(owner, name)
    setattr(owner, name, seams.timed(seam, original))
    try:
        yield
    finally:
        setattr(owner, name, original)


class CallbackEndpoint:
    """Our callback endpoint's use case behind a plain HTTP server (as the API answers it)."""

    def __init__(self, receive: Callable[[dict[str, str], bytes], Any], seams: Seams) -> None:
        from chalicelib.kernel.errors import DomainError

        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                started, cpu = time.perf_counter(), time.thread_time()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    ack = receive(dict(self.headers.items()), body)
                    status, payload = 200, ack.model_dump_json().encode()
                except DomainError as err:
                    status, payload = err.status, json.dumps({"code": err.code}).encode()
                    endpoint.refused.append(err.code)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                seams.add(
                    "platform: callback endpoint (whole request)",
                    time.perf_counter() - started,
                    time.thread_time() - cpu,
                )

        self.refused: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", free_ports(1)[0]), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def __enter__(self) -> CallbackEndpoint:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def end_to_end(count: int, timeout_seconds: float) -> dict[str, Any]:
    from bench_outbox import _holders, _import

    from chalicelib.adapters.operator.http import HttpOperatorGateway
    from chalicelib.adapters.operator.secrets import SecretsManagerKeySource
    from chalicelib.cards.lifecycle import Lifecycle
    from chalicelib.core import deps
    from chalicelib.core.aws import client
    from chalicelib.core.settings import get_settings
    from chalicelib.kernel.operators import Operator
    from chalicelib.local.bootstrap import create_resources
    from chalicelib.local.sandbox_operator import SandboxOperator
    from chalicelib.operators import callbacks as callbacks_module
    from chalicelib.operators import wire
    from chalicelib.operators.callbacks import CallbackReceiver
    from chalicelib.operators.dispatch import Dispatcher

    deps.reset()
    settings = get_settings()
    create_resources(settings)
    seams = Seams()
    repo = deps.inventory_repo()
    iccids = _import(repo, count, seed=2029)
    people = _holders((count + CARDS_PER_PERSON - 1) // CARDS_PER_PERSON)
    store = deps.outbox_store()
    queue = deps.push_queue()
    lifecycle = Lifecycle(repo, store, queue)
    keys = deps.operator_keys()
    nonces = deps.operator_nonces()

    committed_at: dict[str, float] = {}
    registered_at: dict[str, float] = {}
    done = threading.Event()
    marks = threading.Lock()

    def on_applied(message_id: str) -> None:
        with marks:
            registered_at[message_id] = time.perf_counter()
            if len(registered_at) >= count:
                done.set()

    path = settings.operator_callback_path
    receiver = CallbackReceiver(
        keys,
        seams.timed("platform: callback nonce (DynamoDB conditional put)", nonces.seen),
        seams.timed(
            "platform: callback applied to the card (reads + one transaction)", lifecycle.apply_callback
        ),
        on_applied,
        path=path,
        window_seconds=settings.operator_signature_window_seconds,
    )

    def http_result(operator: Operator, operation: str, status: int | None, seconds: float) -> None:
        seams.add("platform: push HTTP round trip (operator's handling included)", seconds, None)

    sqs = client("sqs")
    with (
        patched(wire, "encode_push", seams, "platform: push encode + SM4 + SM3 sign"),
        patched(wire, "encode_callback", seams, "operator: callback encode + SM4 + SM3 sign"),
        patched(callbacks_module, "verify_callback", seams, "platform: callback verify + decrypt (+ nonce)"),
        patched(store, "claim", seams, "platform: claim (DynamoDB conditional update)"),
        patched(store, "settle", seams, "platform: mark sent (DynamoDB conditional update)"),
        patched(queue, "acknowledge", seams, "platform: SQS delete"),
        CallbackEndpoint(receiver.receive, seams) as endpoint,
        SandboxOperator(
            SecretsManagerKeySource(client("secretsmanager"), settings.operator_secret_pattern),
            f"http://127.0.0.1:{endpoint.port}{path}",
            decision_delay_seconds=0.0,
            callback_backoff_seconds=0.05,
            seed=11,
        ) as sandbox,
    ):
        for name, seam in (
            ("receive_push", "operator: receive push (verify, decrypt)"),
            ("_decide", "operator: decide"),
            ("_post", "operator: callback HTTP round trip (our endpoint included)"),
        ):
            setattr(sandbox, name, seams.timed(seam, getattr(sandbox, name)))
        gateway = HttpOperatorGateway(
            dict.fromkeys(Operator, sandbox.url), keys, timeout_seconds=10.0, on_result=http_result
        )
        dispatcher = Dispatcher(store, gateway, queue, dead_letters=deps.dead_letter_queue())
        submit = seams.timed("platform: commit (transaction + enqueue)", lifecycle.submit_registration)
        receive = seams.timed("platform: SQS receive", sqs.receive_message)
        handle = seams.timed("platform: dispatch batch (claim, push, mark sent)", dispatcher.handle_received)

        started = time.perf_counter()
        for first in range(0, count, BATCH):
            for i in range(first, min(first + BATCH, count)):
                t0 = time.perf_counter()
                outcome = submit(iccids[i], people[i // CARDS_PER_PERSON], "bench")
                assert outcome.record_id is not None
                committed_at[outcome.record_id] = t0
            while messages := receive(QueueUrl=queue.url, MaxNumberOfMessages=10).get("Messages", []):
                handle(messages)
        all_pushed = time.perf_counter()
        if not done.wait(timeout_seconds):
            raise RuntimeError(f"{len(registered_at)} of {count} registered within {timeout_seconds:.0f} s")
        total = time.perf_counter() - started
        undelivered = [d for d in sandbox.deliveries if not d.delivered]
    registered = sum(1 for c in repo.get_cards(iccids).values() if c.state.value == "registered")
    assert registered == count, (registered, count)
    assert not undelivered, len(undelivered)
    assert not endpoint.refused, endpoint.refused[:3]
    latencies = [(registered_at[r] - committed_at[r]) * 1000 for r in committed_at]
    return {
        "records": count,
        "total_s": total,
        "push_phase_s": all_pushed - started,
        "records_per_s": count / total,
        "latency_ms": {
            "p50": _percentile(latencies, 50),
            "p90": _percentile(latencies, 90),
            "p99": _percentile(latencies, 99),
            "max": max(latencies),
            "mean": statistics.fmean(latencies),
        },
        "seams": {
            seam: {
                "seconds": seams.seconds[seam],
                "cpu_seconds": seams.cpu.get(seam),
                "calls": seams.calls[seam],
            }
            for seam in sorted(seams.seconds)
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000, help="registrations pushed end to end")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the last callback")
    parser.add_argument("--no-stub", action="store_true", help="skip the in-process stub run of bench_outbox")
    moto_options(parser)
    args = parser.parse_args()

    from bench_outbox import throughput
    from moto import mock_aws

    patch, moto_mode = moto_transactions(args.stock_moto)
    with patch:
        with mock_aws():
            real = end_to_end(args.count, args.timeout)
        stub = None
        if not args.no_stub:
            with mock_aws():
                stub = throughput(args.count)
    if args.json:
        print(json.dumps({"real": real, "stub": stub, "moto": moto_mode}))
        return
    lat = real["latency_ms"]
    print(f"push pipeline end to end, for real ({real['records']:,} registrations, {moto_mode}):")
    print(
        f"  throughput  {real['records_per_s']:7.0f} registrations/s  ({real['total_s']:.1f} s first commit "
        f"to last registration; all pushed after {real['push_phase_s']:.1f} s)"
    )
    print(
        f"  latency     commit → registered  p50 {lat['p50']:.0f} ms  p90 {lat['p90']:.0f} ms  "
        f"p99 {lat['p99']:.0f} ms  max {lat['max']:.0f} ms"
    )
    if stub is not None:
        print(
            f"  stub        {stub['records_per_s']:7.0f} registrations/s  (bench_outbox, same run: "
            "in-process operator, no wire encoding, no HTTP, callbacks applied unverified)"
        )
    print(
        "  where the time goes, per seam: wall seconds summed (threads overlap), calls, wall and CPU ms per "
        "call (CPU: the calling thread's own, without waiting for the GIL or moto's lock):"
    )
    for seam, spent in real["seams"].items():
        calls = spent["calls"] or 1
        wall_ms = spent["seconds"] / calls * 1000
        cpu = spent["cpu_seconds"]
        cpu_ms = f"{cpu / calls * 1000:6.2f}" if cpu is not None else "     -"
        print(
            f"    {seam:<64} {spent['seconds']:7.2f} s  {spent['calls']:6d} calls  "
            f"{wall_ms:6.2f} ms  cpu {cpu_ms} ms"
        )


if __name__ == "__main__":
    main()
