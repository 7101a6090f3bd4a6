"""The sandbox operator: a real local HTTP server standing in for the four operators' push interfaces.

It speaks the wire format of ``chalicelib.operators.wire`` with the keys the platform uses
(Secrets Manager, or given directly), and behaves as the regulation asks an operator to:

- checks the signature, the timestamp window and the nonce of every request (401 with a code; a
  replayed nonce 409), decrypts the personal fields, refuses a card that is not its own (400);
- is idempotent on ``messageId``: the first push gets ``202``, a repeat ``200`` with
  ``duplicate: true`` and no second decision (the same id with other content: ``409``);
- decides asynchronously, ``decision_delay_seconds`` after the receipt, in arrival order, and POSTs a
  signed, encrypted callback to the platform, retrying with backoff while the platform is down;
- 一证多卡 (第十一条): an individual holds at most ``cards_per_id_limit`` (10) active cards per
  operator; the next is rejected with ``cards_per_id_exceeded`` and a message to visit a business hall.
  Companies are not counted (the article limits 个人用户);
- refuses ID numbers on its ``blacklist`` (``blacklisted``); it keeps ID numbers only as hashes under
  a key of its own;
- 抽查 (第十条): after an acceptance, with probability ``spot_check_rate``, sends a second
  ``SPOT_CHECK`` callback asking for the registration's evidence (or at once: ``spot_check``, or
  ``POST /_sandbox/spot-checks`` from loopback); the OEM's answer (a ``SPOT_CHECK_ANSWER`` push) is
  kept in ``spot_check_answers`` by the spot check's callback id and acknowledged with an ``ACCEPTED``
  callback;
- 实际使用人 (第九条(四)): an ``ACTUAL_USER_CHANGE`` push on a card registered here is kept in
  ``actual_users`` (by ICCID, in arrival order) and accepted; on a card not registered here it is
  refused (``actual_user_card_not_registered``), and a blacklisted ID is refused (``blacklisted``);
- de-registration frees the holder's count; a transfer moves the card to the new holder (checked like
  a registration) and frees the old one; either is refused (``previous_holder_mismatch``) when it names
  a previous holder other than the one the card is registered to here;
- lists what it holds per card (signed ``GET``, paginated) for reconciliation, each holder as the
  platform's hash that the registering push carried;
- answers a status query of one message (signed ``GET``) from what it decided: ``UNKNOWN`` for a push
  it never received (or forgot), ``RECEIVED`` while undecided, ``DECIDED`` with its result callback.

Fault injection for tests and benchmarks: ``failure_rate`` (503), ``latency_seconds`` (before answering),
``down`` (connections dropped unanswered), ``drop_callbacks`` (decided, never told) and
``forget_pushes`` (a receipt, then nothing), ``refuse_deregistrations`` (a de-registration refused with a
reason); changeable at run time in-process (``faults``) or through the
unsigned loopback endpoint ``POST /_sandbox/faults``. State lives in memory: a restart forgets all.
It is one module because it is one simulated party: its HTTP handler, state and callback sender share
that state and run as one process.

    python -m chalicelib.local.sandbox_operator --port 8010 \\
        --callback-url http://127.0.0.1:8000/v1/operator/callbacks
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import heapq
import http.client
import itertools
import json
import logging
import random
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from chalicelib.cards.domain.inventory import CardFunction
from chalicelib.cards.domain.lifecycle import PushKind
from chalicelib.cards.domain.limits import HolderKind
from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.errors import InvalidField
from chalicelib.kernel.operators import Operator
from chalicelib.kernel.validators import iccid as validate_iccid
from chalicelib.local.serving import serve_until_signalled
from chalicelib.operators import wire
from chalicelib.operators.domain.messages import (
    CallbackOutcome,
    OperatorCallback,
    OperatorCardRecord,
    OperatorCardState,
    PushHolder,
    PushMessage,
    PushReceipt,
    PushStatus,
    PushStatusState,
    SpotCheckAnswer,
)
from chalicelib.operators.keys import Direction, OperatorKeys
from chalicelib.operators.ports import OperatorKeySource
from chalicelib.operators.signing import DEFAULT_WINDOW_SECONDS, NonceCache, SignatureError

log = logging.getLogger("cheka.sandbox_operator")

CARDS_PER_ID_LIMIT = 10
_MAX_BODY = 1024 * 1024
_RETRYABLE_4XX = frozenset({408, 425, 429})

#: reason_code → (Chinese, English): what the platform shows the person.
REASONS: dict[str, tuple[str, str]] = {
    "cards_per_id_exceeded": (
        "您的证件在本运营商名下已有{limit}张在用车联网卡，已达一证多卡上限。"
        "根据《车联网卡实名登记实施细则（试行）》第十一条，请本人携带有效身份证件前往运营商指定营业厅办理。",
        "Your ID already holds {limit} active vehicle cards with this operator, the most allowed online. "
        "Under Article 11 of the vehicle card real-name rules, please visit one of the operator's designated "
        "business halls in person with your ID document to register more cards.",
    ),
    "blacklisted": (
        "该证件暂不能在线办理车联网卡实名登记，请本人携带有效身份证件前往运营商营业厅办理。",
        "This ID cannot register vehicle cards online. "
        "Please visit one of the operator's business halls in person with your ID document.",
    ),
    "card_already_registered": (
        "该车联网卡已登记在他人名下，请办理过户。",
        "This card is registered to someone else: it can only be transferred.",
    ),
    "card_not_registered": (
        "该车联网卡尚未实名登记，不能办理过户。",
        "This card is not registered, so it cannot be transferred.",
    ),
    "previous_holder_mismatch": (
        "该车联网卡的登记人与运营商记录不一致，请联系车企客服核实。",
        "The card's registered holder differs from the operator's records: "
        "please contact the carmaker to check.",
    ),
    "outstanding_balance": (
        "该卡存在未结清费用，请结清后再办理注销。",
        "The card has an outstanding balance: settle it before de-registering.",
    ),
    "actual_user_card_not_registered": (
        "该车联网卡在运营商处尚未实名登记，不能登记实际使用人。",
        "This card is not registered with the operator, so no actual user can be recorded for it.",
    ),
    "spot_check": (
        "运营商抽查（第十条）：请提交该卡实名登记的证件与查验材料。",
        "Operator spot check (Article 10): "
        "please provide the registration's documents and verification records.",
    ),
}


@dataclass
class SandboxFaults:
    """Injected faults; plain attributes, change them at any time."""

    failure_rate: float = 0.0  # share of signed requests answered 503
    latency_seconds: float = 0.0  # added before every signed request is answered
    down: bool = False  # signed requests: the connection is dropped without an answer
    drop_callbacks: bool = False  # decisions are taken but their callbacks never leave (lost callbacks)
    forget_pushes: bool = False  # pushes get their receipt but are never kept (lost after the receipt)
    #: Pushes refused at once with this code and a 400 (e.g. ``unknown_card``, ``malformed``); "" for none.
    refuse_pushes: str = ""
    #: De-registrations decided as refused (a ``REJECTED`` callback) with this ``REASONS`` code; "" for none.
    refuse_deregistrations: str = ""


@dataclass(frozen=True)
class Delivery:
    """One callback's delivery to the platform."""

    callback: OperatorCallback
    status: int | None  # the platform's last answer; None: it never answered
    attempts: int
    delivered: bool


@dataclass
class _Card:
    state: OperatorCardState
    holder_key: str | None  # the sandbox's own keyed hash of the holder's ID: the cards_per_id key
    holder_ref: str | None  # the platform's hash the push carried: what the listing shows
    counted: bool  # holds one of the holder's cards_per_id slots (individuals only)
    functions: list[CardFunction]
    message_id: str
    updated_at: datetime


@dataclass(frozen=True)
class _Job:
    keys: OperatorKeys
    message: PushMessage


@dataclass
class _OperatorState:
    cards: dict[str, _Card] = field(default_factory=dict)
    counts: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    received: dict[str, tuple[str, str]] = field(default_factory=dict)  # message id → (digest, operator ref)


class SandboxOperator:
    """The four operators in one in-process server; ``start()`` binds (port 0: an ephemeral one)."""

    def __init__(
        self,
        keys: OperatorKeySource,
        callback_url: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        operators: Iterable[Operator] = tuple(Operator),
        decision_delay_seconds: float = 0.2,
        spot_check_rate: float = 0.0,
        blacklist: Iterable[str] = (),
        cards_per_id_limit: int = CARDS_PER_ID_LIMIT,
        faults: SandboxFaults | None = None,
        callback_attempts: int = 5,
        callback_backoff_seconds: float = 0.2,
        callback_timeout_seconds: float = 5.0,
        window_seconds: int = DEFAULT_WINDOW_SECONDS,
        seed: int | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._keys = keys
        self.callback_url = callback_url
        parts = urlsplit(callback_url)
        self._callback_path = parts.path + (f"?{parts.query}" if parts.query else "")
        self._host = host
        self._port = port
        self.operators = frozenset(operators)
        self.decision_delay_seconds = decision_delay_seconds
        self.spot_check_rate = spot_check_rate
        self.cards_per_id_limit = cards_per_id_limit
        self.faults = faults or SandboxFaults()
        self._attempts = callback_attempts
        self._backoff = callback_backoff_seconds
        self._callback_timeout = callback_timeout_seconds
        self._window = window_seconds
        self._random = random.Random(seed)  # a simulation, not security: seedable
        self._clock = clock
        self._hash_key = secrets.token_bytes(32)  # ID numbers are kept only as hashes under this key
        self._blacklist = {self._number_hash(n) for n in blacklist}

        self._lock = threading.Lock()
        self._state: dict[Operator, _OperatorState] = {op: _OperatorState() for op in Operator}
        self._nonces = NonceCache(2 * window_seconds)
        self._refs = itertools.count(1)
        self.callbacks: list[OperatorCallback] = []  # every callback decided, in order
        #: 抽查: the OEM's answers, by the spot check's callback id (the answer's ``check_ref``).
        self.spot_check_answers: dict[str, SpotCheckAnswer] = {}
        #: 实际使用人: the actual-user pushes accepted, by ICCID, in arrival order.
        self.actual_users: dict[str, list[PushMessage]] = defaultdict(list)
        self.deliveries: list[Delivery] = []

        self._queue: list[tuple[float, int, _Job]] = []
        self._seq = itertools.count()
        self._pending = 0
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._executor: ThreadPoolExecutor | None = None
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the sandbox operator is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def start(self) -> SandboxOperator:
        server = _Server((self._host, self._port), _Handler)
        server.sandbox = self
        self._server = server
        self._stopping.clear()
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="sandbox-callback")
        self._threads = [
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True),
            threading.Thread(target=self._run_decisions, daemon=True, name="sandbox-decisions"),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        self._threads = []

    def __enter__(self) -> SandboxOperator:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until every received push was decided and its callbacks delivered (or given up)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    # ------------------------------------------------------------------ inspection (tests, local use)

    def add_to_blacklist(self, id_number: str) -> None:
        with self._lock:
            self._blacklist.add(self._number_hash(id_number))

    def card(self, operator: Operator, iccid: str) -> OperatorCardRecord | None:
        with self._lock:
            card = self._state[operator].cards.get(iccid)
            return None if card is None else _record(operator, iccid, card)

    def received(self, operator: Operator) -> list[str]:
        """Message ids of the pushes ``operator`` acknowledged, in the order they arrived."""
        with self._lock:
            return list(self._state[operator].received)

    def active_cards(self, operator: Operator, id_type: str, id_number: str) -> int:
        holder = self._number_hash(id_number, id_type)
        with self._lock:
            return self._state[operator].counts.get(holder, 0)

    def injected_failure(self) -> bool:
        """Whether this request draws an injected 503 (``faults.failure_rate``)."""
        rate = self.faults.failure_rate
        return rate > 0 and self._random.random() < rate

    def spot_check(
        self,
        operator: Operator,
        iccid: str,
        message_id: str,
        *,
        answer_by: datetime | None = None,
        deliver: bool = True,
    ) -> OperatorCallback:
        """抽查 (第十条) now: a ``SPOT_CHECK`` callback on the card's registering push ``message_id``,
        with the deadline ``answer_by``; delivered to the platform (unless ``deliver`` is False: the
        caller sends it) and answered with its ``(status)`` in ``deliveries``."""
        zh, en = REASONS["spot_check"]
        callback = OperatorCallback(
            callback_id=wire.new_callback_id(),
            message_id=message_id,
            operator=operator,
            iccid=iccid,
            outcome=CallbackOutcome.SPOT_CHECK,
            reason_code="spot_check",
            reason_zh=zh,
            reason_en=en,
            decided_at=self._clock(),
            answer_by=answer_by,
        )
        with self._lock:
            self.callbacks.append(callback)
        if deliver:
            self._deliver(self._keys.current(operator), callback)
        return callback

    def spot_check_request(self, body: bytes) -> tuple[int, bytes]:
        """``POST /_sandbox/spot-checks`` (loopback, unsigned: the sandbox's own control):
        ``{"operator": "china_mobile", "iccid", "messageId", "answerBy": ISO time | null}`` sends a spot
        check to the platform now; answers its callback id and whether the platform took it."""
        try:
            doc = json.loads(body or b"{}")
            operator = Operator(doc["operator"])
            iccid, message_id = str(doc["iccid"]), str(doc["messageId"])
            answer_by = datetime.fromisoformat(doc["answerBy"]) if doc.get("answerBy") else None
        except (ValueError, TypeError, KeyError, AttributeError):
            return 400, wire.encode_error("malformed", "expected {operator, iccid, messageId, answerBy?}")
        if answer_by is not None and answer_by.tzinfo is None:
            return 400, wire.encode_error("malformed", "answerBy has no UTC offset")
        callback = self.spot_check(operator, iccid, message_id, answer_by=answer_by)
        with self._lock:
            delivery = next(d for d in reversed(self.deliveries) if d.callback is callback)
        answer = {
            "callbackId": callback.callback_id,
            "delivered": delivery.delivered,
            "status": delivery.status,
        }
        return 200, json.dumps(answer).encode()

    def callbacks_for(self, message_id: str) -> list[OperatorCallback]:
        with self._lock:
            return [c for c in self.callbacks if c.message_id == message_id]

    # ------------------------------------------------------------------ requests

    def _number_hash(self, id_number: str, id_type: str = "") -> str:
        text = f"{id_type}:{id_number.strip().upper()}"
        return hashlib.blake2b(text.encode(), key=self._hash_key).hexdigest()

    def _authenticate(self, headers: dict[str, str], body: bytes, method: str, path: str) -> OperatorKeys:
        keys = wire.authenticate(
            headers,
            body,
            method=method,
            path=path,
            source=self._keys,
            direction=Direction.TO_OPERATOR,
            now=self._clock(),
            seen_nonce=self._nonces,
            window_seconds=self._window,
        )
        if keys.operator not in self.operators:
            raise SignatureError("unknown_operator", "this sandbox does not stand in for that operator")
        return keys

    def receive_push(self, headers: dict[str, str], body: bytes, path: str) -> tuple[int, bytes]:
        """Answer one push: ``(status, body)``."""
        try:
            keys = self._authenticate(headers, body, "POST", path)
        except SignatureError as exc:
            return wire.refusal_status(exc.code), wire.encode_error(exc.code, exc.message)
        try:
            message = wire.decode_push(body, keys)
        except wire.WireError as exc:
            return 400, wire.encode_error(exc.code, exc.message)
        refusal = self._refusal(keys.operator, message)
        if refusal is None and self.faults.refuse_pushes:
            refusal = (self.faults.refuse_pushes, "refused by an injected fault")
        if refusal is not None:
            return 400, wire.encode_error(*refusal)
        digest = hashlib.sha256(message.model_dump_json().encode()).hexdigest()
        code = wire.OPERATOR_CODES[keys.operator]
        with self._lock:
            state = self._state[keys.operator]
            seen = state.received.get(message.message_id)
            if seen is None:
                ref = f"{code}{self._clock():%Y%m%d}{next(self._refs):08d}"
                if self.faults.forget_pushes:
                    receipt = PushReceipt(message_id=message.message_id, operator_ref=ref)
                    return 202, wire.encode_receipt(receipt)
                state.received[message.message_id] = (digest, ref)
                self._schedule(_Job(keys, message))  # under the lock: decisions keep arrival order
                return 202, wire.encode_receipt(PushReceipt(message_id=message.message_id, operator_ref=ref))
        if seen[0] != digest:
            return 409, wire.encode_error("message_id_reused", "this messageId came with other content")
        receipt = PushReceipt(message_id=message.message_id, operator_ref=seen[1], duplicate=True)
        return 200, wire.encode_receipt(receipt)

    @staticmethod
    def _refusal(operator: Operator, message: PushMessage) -> tuple[str, str] | None:
        """A synchronous refusal of a push that can never be decided (400)."""
        try:
            card_operator = validate_iccid(message.card.iccid).operator
        except InvalidField as exc:
            return "malformed", f"iccid: {exc.code}"
        if card_operator is not operator:
            return "wrong_operator", "the card's ICCID belongs to another operator"
        if message.kind is PushKind.SPOT_CHECK_ANSWER:
            if message.spot_check is None:
                return "malformed", "a spot check answer needs its spotCheck"
        elif message.kind is PushKind.ACTUAL_USER:
            if message.actual_user is None or message.holder is None:
                return "malformed", "an actual user needs its actualUser and holder"
        elif message.kind is not PushKind.DEREGISTER:
            if message.holder is None:
                return "malformed", f"a {message.kind.value} needs a holder"
            if not message.functions:
                return "malformed", "functions: at least one function must be requested"
        return None

    def receive_listing(self, headers: dict[str, str], path: str) -> tuple[int, bytes]:
        try:
            keys = self._authenticate(headers, b"", "GET", path)
            cursor, limit = wire.parse_listing_target(path)
            after = _decode_cursor(cursor)
        except SignatureError as exc:
            return wire.refusal_status(exc.code), wire.encode_error(exc.code, exc.message)
        except wire.WireError as exc:
            return 400, wire.encode_error(exc.code, exc.message)
        with self._lock:
            cards = self._state[keys.operator].cards
            iccids = sorted(i for i in cards if after is None or i > after)
            page = [_record(keys.operator, i, cards[i]) for i in iccids[:limit]]
        next_cursor = _encode_cursor(page[-1].iccid) if len(iccids) > limit else None
        return 200, wire.encode_listing(keys.operator, page, next_cursor)

    def receive_status(self, headers: dict[str, str], path: str) -> tuple[int, bytes]:
        """Answer a status query of one message from what was received and decided."""
        try:
            keys = self._authenticate(headers, b"", "GET", path)
            message_id = wire.parse_status_target(path)
        except SignatureError as exc:
            return wire.refusal_status(exc.code), wire.encode_error(exc.code, exc.message)
        except wire.WireError as exc:
            return 400, wire.encode_error(exc.code, exc.message)
        with self._lock:
            known = message_id in self._state[keys.operator].received
            decided = [
                c
                for c in self.callbacks
                if c.message_id == message_id
                and c.operator is keys.operator
                and c.outcome is not CallbackOutcome.SPOT_CHECK
            ]
        if decided:
            answer = PushStatus(
                message_id=message_id,
                operator=keys.operator,
                state=PushStatusState.DECIDED,
                decision=decided[-1],
            )
        else:
            state = PushStatusState.RECEIVED if known else PushStatusState.UNKNOWN
            answer = PushStatus(message_id=message_id, operator=keys.operator, state=state)
        return 200, wire.encode_status(answer, keys)

    # ------------------------------------------------------------------ decisions

    def _schedule(self, job: _Job) -> None:
        with self._cond:
            due = time.monotonic() + self.decision_delay_seconds
            heapq.heappush(self._queue, (due, next(self._seq), job))
            self._pending += 1
            self._cond.notify_all()

    def _run_decisions(self) -> None:
        # One thread decides, in arrival order, so the 11th card of an ID is the one refused;
        # delivery (slow, retried) runs on the executor.
        while True:
            with self._cond:
                while not self._stopping.is_set():
                    if self._queue and self._queue[0][0] <= time.monotonic():
                        break
                    self._cond.wait(
                        None if not self._queue else max(0.0, self._queue[0][0] - time.monotonic())
                    )
                if self._stopping.is_set():
                    return
                _, _, job = heapq.heappop(self._queue)
            try:
                callbacks = self._decide(job.keys, job.message)
            except Exception:
                log.exception("sandbox decision failed for message %s", job.message.message_id)
                self._done()
                continue
            executor = self._executor
            if executor is None:
                self._done()
                continue
            try:
                executor.submit(self._deliver_all, job.keys, callbacks)
            except RuntimeError:  # shutting down
                self._done()

    def _done(self) -> None:
        with self._cond:
            self._pending -= 1
            self._cond.notify_all()

    def _callback(
        self,
        operator: Operator,
        message: PushMessage,
        outcome: CallbackOutcome,
        *,
        reason: str | None = None,
        functions: list[CardFunction] | None = None,
    ) -> OperatorCallback:
        zh, en = REASONS[reason] if reason else (None, None)
        if reason == "cards_per_id_exceeded" and zh and en:
            zh, en = zh.format(limit=self.cards_per_id_limit), en.format(limit=self.cards_per_id_limit)
        return OperatorCallback(
            callback_id=wire.new_callback_id(),
            message_id=message.message_id,
            operator=operator,
            iccid=message.card.iccid,
            outcome=outcome,
            reason_code=reason,
            reason_zh=zh,
            reason_en=en,
            functions=functions or [],
            decided_at=self._clock(),
        )

    def _holder_refusal(
        self, state: _OperatorState, holder: PushHolder, holder_key: str, own: bool
    ) -> str | None:
        """Why ``holder`` may not take one more card (``own``: the card already counts for them)."""
        numbers = [holder.id_number, holder.responsible_id_number]
        if any(n and self._number_hash(n) in self._blacklist for n in numbers):
            return "blacklisted"
        individual = holder.kind is HolderKind.INDIVIDUAL
        if individual and not own and state.counts.get(holder_key, 0) >= self.cards_per_id_limit:
            return "cards_per_id_exceeded"
        return None

    def _decide(self, keys: OperatorKeys, message: PushMessage) -> list[OperatorCallback]:
        operator = keys.operator
        now = self._clock()
        reason: str | None
        with self._lock:
            state = self._state[operator]
            iccid = message.card.iccid
            card = state.cards.get(iccid)
            active = card is not None and card.state is OperatorCardState.REGISTERED
            previous = message.previous_holder_id_hash
            if message.kind is PushKind.SPOT_CHECK_ANSWER:
                # The answer to a spot check: kept, acknowledged; the card does not change.
                assert message.spot_check is not None  # checked at receipt
                self.spot_check_answers[message.spot_check.check_ref] = message.spot_check
                decided = [self._callback(operator, message, CallbackOutcome.ACCEPTED)]
            elif message.kind is PushKind.ACTUAL_USER:
                # The actual user of a card registered here: kept beside the card, which does not change.
                assert message.holder is not None  # checked at receipt
                if self._number_hash(message.holder.id_number) in self._blacklist:
                    reason = "blacklisted"
                elif not active:
                    reason = "actual_user_card_not_registered"
                else:
                    reason = None
                    self.actual_users[iccid].append(message)
                outcome = CallbackOutcome.ACCEPTED if reason is None else CallbackOutcome.REJECTED
                decided = [self._callback(operator, message, outcome, reason=reason)]
            elif previous and active and card is not None and card.holder_ref and card.holder_ref != previous:
                # The platform means to end someone else's binding than the one held here.
                reason = "previous_holder_mismatch"
                decided = [self._callback(operator, message, CallbackOutcome.REJECTED, reason=reason)]
            elif message.kind is PushKind.DEREGISTER and self.faults.refuse_deregistrations in REASONS:
                reason = self.faults.refuse_deregistrations
                decided = [self._callback(operator, message, CallbackOutcome.REJECTED, reason=reason)]
            elif message.kind is PushKind.DEREGISTER:
                # Ending a binding that is already gone is accepted: the card ends where it was asked to.
                self._release(state, card)
                functions = [CardFunction.EMERGENCY]
                state.cards[iccid] = _Card(
                    OperatorCardState.DEREGISTERED, None, None, False, functions, message.message_id, now
                )
                decided = [self._callback(operator, message, CallbackOutcome.ACCEPTED, functions=functions)]
            else:
                holder = message.holder
                assert holder is not None  # checked at receipt
                holder_key = self._number_hash(holder.id_number, holder.id_type)
                same = active and card is not None and card.holder_key == holder_key
                if message.kind is PushKind.REGISTER and active and not same:
                    reason = "card_already_registered"
                elif message.kind is PushKind.TRANSFER and not active:
                    reason = "card_not_registered"
                else:
                    reason = self._holder_refusal(state, holder, holder_key, own=same)
                if reason is not None:
                    decided = [self._callback(operator, message, CallbackOutcome.REJECTED, reason=reason)]
                else:
                    if not same:
                        self._release(state, card)
                    counted = holder.kind is HolderKind.INDIVIDUAL
                    if counted and not same:
                        state.counts[holder_key] += 1
                    functions = list(message.functions)  # exactly what was asked: 最小必要 (第十四条)
                    state.cards[iccid] = _Card(
                        OperatorCardState.REGISTERED,
                        holder_key,
                        message.holder_id_hash,
                        counted,
                        functions,
                        message.message_id,
                        now,
                    )
                    decided = [
                        self._callback(operator, message, CallbackOutcome.ACCEPTED, functions=functions)
                    ]
                    if self._random.random() < self.spot_check_rate:
                        decided.append(
                            self._callback(operator, message, CallbackOutcome.SPOT_CHECK, reason="spot_check")
                        )
            self.callbacks.extend(decided)
        for cb in decided:
            log.info(
                "sandbox %s %s %s: %s %s",
                operator.value,
                message.kind.value,
                iccid,
                cb.outcome.value,
                cb.reason_code or "",
            )
        return decided

    @staticmethod
    def _release(state: _OperatorState, card: _Card | None) -> None:
        if (
            card is not None
            and card.state is OperatorCardState.REGISTERED
            and card.counted
            and card.holder_key
        ):
            state.counts[card.holder_key] -= 1
            if state.counts[card.holder_key] <= 0:
                del state.counts[card.holder_key]

    # ------------------------------------------------------------------ callbacks

    def _deliver_all(self, keys: OperatorKeys, callbacks: list[OperatorCallback]) -> None:
        try:
            if self.faults.drop_callbacks:
                for callback in callbacks:
                    self._record(Delivery(callback, None, 0, delivered=False))
                return
            for callback in callbacks:
                self._deliver(keys, callback)
        except Exception:
            log.exception("sandbox callback delivery failed")
        finally:
            self._done()

    def _deliver(self, keys: OperatorKeys, callback: OperatorCallback) -> None:
        status: int | None = None
        attempt = 0
        for attempt in range(1, self._attempts + 1):
            request = wire.encode_callback(callback, keys, now=self._clock(), path=self._callback_path)
            status = self._post(request)
            if status is not None and (200 <= status < 300 or status == 409):  # 409: already received
                self._record(Delivery(callback, status, attempt, delivered=True))
                return
            if status is not None and 400 <= status < 500 and status not in _RETRYABLE_4XX:
                break  # refused: re-sending the same content will not help
            if attempt < self._attempts and self._stopping.wait(self._backoff * 2 ** (attempt - 1)):
                break
        log.warning("sandbox callback %s not delivered (last status %s)", callback.callback_id, status)
        self._record(Delivery(callback, status, attempt, delivered=False))

    def _post(self, request: wire.WireRequest) -> int | None:
        http_request = urllib.request.Request(  # noqa: S310 - the platform's configured callback URL
            self.callback_url, data=request.body, headers=request.headers, method=request.method
        )
        try:
            with self._opener.open(http_request, timeout=self._callback_timeout) as response:
                response.read()
                return int(response.status)
        except urllib.error.HTTPError as err:
            err.close()
            return int(err.code)
        except (OSError, http.client.HTTPException):
            return None

    def _record(self, delivery: Delivery) -> None:
        with self._lock:
            self.deliveries.append(delivery)


def _record(operator: Operator, iccid: str, card: _Card) -> OperatorCardRecord:
    return OperatorCardRecord(
        operator=operator,
        iccid=iccid,
        state=card.state,
        holder_id_hash=card.holder_ref,
        functions=list(card.functions),
        message_id=card.message_id,
        updated_at=card.updated_at,
    )


def _encode_cursor(iccid: str) -> str:
    return base64.urlsafe_b64encode(iccid.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise wire.WireError("malformed", "cursor is not one this operator gave out") from None


# --------------------------------------------------------------------------- HTTP


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # socketserver's 5 drops connections under a burst of pushes
    sandbox: SandboxOperator


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "cheka-sandbox-operator/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _reply(self, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", wire.CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except ConnectionError:  # the client gave up (timed out) before the answer: as a real gateway
            self.close_connection = True

    def _answer(self, work: Callable[[], tuple[int, bytes]], what: str) -> None:
        try:
            status, body = work()
        except Exception:
            log.exception("sandbox %s failed", what)
            status, body = 500, wire.encode_error("internal", "the sandbox failed")
        self._reply(status, body)

    def _body(self) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._reply(411, wire.encode_error("length_required", "Content-Length is required"))
            return None
        if length < 0 or length > _MAX_BODY:
            self.close_connection = True
            self._reply(413, wire.encode_error("too_large", f"bodies are limited to {_MAX_BODY} bytes"))
            return None
        return self.rfile.read(length)

    def _faulted(self) -> bool:
        """Apply injected faults to a signed request; True when it was answered (or dropped)."""
        faults = self.server.sandbox.faults
        if faults.down:
            self.close_connection = True  # no answer at all: the client sees the connection drop
            return True
        if faults.latency_seconds > 0:
            time.sleep(faults.latency_seconds)
        if self.server.sandbox.injected_failure():
            self.close_connection = True
            self._reply(503, wire.encode_error("unavailable", "injected failure"), {"Retry-After": "1"})
            return True
        return False

    def _headers(self) -> dict[str, str]:
        return dict(self.headers.items())

    def do_GET(self) -> None:
        sandbox = self.server.sandbox
        route = urlsplit(self.path).path
        if route == "/health":
            self._reply(200, json.dumps({"status": "ok"}).encode())
        elif route == "/_sandbox/faults":
            self._reply(200, json.dumps(asdict(sandbox.faults)).encode())
        elif route.endswith(wire.LISTING_PATH):
            if self._faulted():
                return
            self._answer(lambda: sandbox.receive_listing(self._headers(), self.path), "listing")
        elif route.endswith(wire.STATUS_PATH):
            if self._faulted():
                return
            self._answer(lambda: sandbox.receive_status(self._headers(), self.path), "status")
        else:
            self._reply(404, wire.encode_error("not_found", "no such endpoint"))

    def do_POST(self) -> None:
        sandbox = self.server.sandbox
        route = urlsplit(self.path).path
        if route == "/_sandbox/faults":
            if self.client_address[0] not in ("127.0.0.1", "::1"):
                self._reply(403, wire.encode_error("forbidden", "faults are set from loopback only"))
                return
            body = self._body()
            if body is None:
                return
            try:
                changes = json.loads(body or b"{}")
                for name in ("failure_rate", "latency_seconds"):
                    if name in changes:
                        setattr(sandbox.faults, name, float(changes[name]))
                for flag in ("down", "drop_callbacks", "forget_pushes"):
                    if flag in changes:
                        setattr(sandbox.faults, flag, bool(changes[flag]))
                if "refuse_pushes" in changes:
                    sandbox.faults.refuse_pushes = str(changes["refuse_pushes"] or "")
                if "refuse_deregistrations" in changes:
                    sandbox.faults.refuse_deregistrations = str(changes["refuse_deregistrations"] or "")
            except (ValueError, TypeError, AttributeError):
                self._reply(400, wire.encode_error("malformed", "expected a JSON object of faults"))
                return
            self._reply(200, json.dumps(asdict(sandbox.faults)).encode())
        elif route == "/_sandbox/spot-checks":
            if self.client_address[0] not in ("127.0.0.1", "::1"):
                self._reply(403, wire.encode_error("forbidden", "spot checks are asked from loopback only"))
                return
            body = self._body()
            if body is None:
                return
            payload: bytes = body
            self._answer(lambda: sandbox.spot_check_request(payload), "spot check")
        elif route.endswith(wire.PUSH_PATH):
            if self._faulted():
                return
            body = self._body()
            if body is None:
                return
            self._answer(lambda: sandbox.receive_push(self._headers(), body, self.path), "push")
        else:
            self._reply(404, wire.encode_error("not_found", "no such endpoint"))


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> None:
    from chalicelib.adapters.operator.secrets import SecretsManagerKeySource, bootstrap_operator_secrets
    from chalicelib.core.aws import client
    from chalicelib.core.settings import get_settings

    settings = get_settings()
    parser = argparse.ArgumentParser(description="The sandbox operator (local stand-in for the operators).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=settings.sandbox_port)
    parser.add_argument("--callback-url", default=f"http://127.0.0.1:{settings.api_port}{wire.CALLBACK_PATH}")
    parser.add_argument(
        "--secret-pattern",
        default=f"{settings.resource_prefix}/{settings.stage}/operator/{{operator}}",
        help="Secrets Manager name of each operator's keys ({operator} is filled in); created when missing",
    )
    parser.add_argument("--decision-delay", type=float, default=1.0, help="seconds before deciding")
    parser.add_argument("--spot-check-rate", type=float, default=0.0)
    parser.add_argument("--cards-per-id", type=int, default=CARDS_PER_ID_LIMIT)
    parser.add_argument(
        "--blacklist", action="append", default=[], help="an ID number to refuse (repeatable)"
    )
    parser.add_argument("--failure-rate", type=float, default=0.0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--down", action="store_true")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(message)s")

    secrets_client = client("secretsmanager")
    bootstrap_operator_secrets(secrets_client, args.secret_pattern)
    sandbox = SandboxOperator(
        SecretsManagerKeySource(secrets_client, args.secret_pattern),
        args.callback_url,
        host=args.host,
        port=args.port,
        decision_delay_seconds=args.decision_delay,
        spot_check_rate=args.spot_check_rate,
        blacklist=args.blacklist,
        cards_per_id_limit=args.cards_per_id,
        faults=SandboxFaults(failure_rate=args.failure_rate, latency_seconds=args.latency, down=args.down),
        seed=args.seed,
    ).start()
    print(f"sandbox operator on {sandbox.url} → callbacks to {args.callback_url}", flush=True)
    serve_until_signalled(sandbox.stop)


if __name__ == "__main__":
    main()
