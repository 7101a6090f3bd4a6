"""The sandbox operator over real HTTP on 127.0.0.1, keys in (moto's) Secrets Manager.

The platform side is played by the HTTP gateway (pushes, listings) and a tiny in-process receiver that
verifies each callback with ``verify_callback``, as the platform's callback endpoint does.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from chalicelib.adapters.operator.http import HttpOperatorGateway
from chalicelib.adapters.operator.secrets import (
    SecretsManagerKeySource,
    bootstrap_operator_secrets,
    rotate_operator_secret,
)
from chalicelib.cards.domain.inventory import CardFunction
from chalicelib.cards.domain.lifecycle import PushKind
from chalicelib.cards.domain.limits import HolderKind
from chalicelib.kernel.errors import DomainError
from chalicelib.kernel.operators import Operator
from chalicelib.local.sandbox_operator import SandboxOperator
from chalicelib.local.serving import free_ports
from chalicelib.operators import wire
from chalicelib.operators.callbacks import verify_callback
from chalicelib.operators.domain.messages import (
    CallbackOutcome,
    OperatorCallback,
    OperatorCardState,
    OperatorNotConfigured,
    OperatorRefused,
    OperatorUnavailable,
    PushCard,
    PushHolder,
    PushMessage,
    PushVehicle,
)
from chalicelib.operators.keys import OperatorKeysUnavailable, secret_name
from chalicelib.operators.ports import OperatorKeySource
from chalicelib.operators.signing import NonceCache

PATTERN = "cheka/test/operator/{operator}"
MOBILE = Operator.CHINA_MOBILE
ALICE = "11010519491231002X"
BOB = "110101199003074477"
FUNCTIONS = [CardFunction.EMERGENCY, CardFunction.TELEMATICS, CardFunction.DATA]
_ids = itertools.count(1)


# --------------------------------------------------------------------------- the platform's side


class CallbackReceiver:
    """The platform's callback endpoint in miniature: verifies, records, answers like the API would."""

    def __init__(self, keys: OperatorKeySource) -> None:
        self.keys = keys
        self.nonces = NonceCache()
        self.received: list[OperatorCallback] = []
        self.refused: list[str] = []
        self.fail_next = 0  # answer 503 to this many requests first
        self.requests = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver.handle(dict(self.headers.items()), body, self.path)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{wire.CALLBACK_PATH}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def handle(self, headers: dict[str, str], body: bytes, path: str) -> int:
        with self._lock:
            self.requests += 1
            if self.fail_next > 0:
                self.fail_next -= 1
                return 503
        try:
            callback = verify_callback(headers, body, self.keys, datetime.now(UTC), self.nonces, path=path)
        except DomainError as err:
            with self._lock:
                self.refused.append(err.code)
            return err.status
        with self._lock:
            self.received.append(callback)
        return 200

    def of(self, message_id: str) -> list[OperatorCallback]:
        with self._lock:
            return [c for c in self.received if c.message_id == message_id]


def _holder(id_number: str = ALICE, kind: HolderKind = HolderKind.INDIVIDUAL) -> PushHolder:
    if kind is HolderKind.ENTERPRISE:
        return PushHolder(
            kind=kind,
            name="某某汽车租赁有限公司",
            id_type="uscc",
            id_number="91350100M000100Y43",
            responsible_name="李四",
            responsible_id_type="resident_id",
            responsible_id_number=id_number,
        )
    return PushHolder(kind=kind, name="张三", id_type="resident_id", id_number=id_number, phone="13800138000")


def _platform_hash(id_number: str) -> str:
    """Stands in for the platform's keyed hash of a holder (KMS HMAC in the product)."""
    return hmac.new(b"platform-hash-key", f"resident_id:{id_number}".encode(), hashlib.sha256).hexdigest()


def _iccid(n: int, operator: Operator = MOBILE) -> str:
    prefix = {MOBILE: "898600", Operator.CHINA_UNICOM: "898601"}[operator]
    return f"{prefix}{n:013d}"


def _message(
    card: int,
    kind: PushKind = PushKind.REGISTER,
    holder: PushHolder | None = None,
    *,
    operator: Operator = MOBILE,
    iccid: str | None = None,
    functions: list[CardFunction] | None = None,
    previous: str | None = None,
) -> PushMessage:
    deregister = kind is PushKind.DEREGISTER
    holder = None if deregister else (holder or _holder())
    return PushMessage(
        message_id=f"outbox-{next(_ids):08d}",
        kind=kind,
        card=PushCard(iccid=iccid or _iccid(card), msisdn=f"14400{card:08d}", operator=operator),
        vehicle=PushVehicle(
            vin="JHMCM56557C404453", engine_no=f"E{card}", brand="红旗", model="H9", colour="黑"
        ),
        holder=holder,
        holder_id_hash=None
        if holder is None
        else _platform_hash(holder.responsible_id_number or holder.id_number),
        previous_holder_id_hash=previous,
        functions=functions or ([CardFunction.EMERGENCY] if deregister else FUNCTIONS),
        created_at=datetime.now(UTC),
    )


def _send_raw(url: str, request: wire.WireRequest) -> tuple[int, dict[str, Any]]:
    raw = urllib.request.Request(url + request.path, data=request.body or None, headers=request.headers)
    raw.method = request.method
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(raw, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())


def _until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def secrets_client() -> Iterator[Any]:
    """Secrets Manager of an embedded AWS (moto, in-process); only what these tests need, so it is quick."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        sm = boto3.session.Session().client("secretsmanager", region_name="cn-north-1")
        bootstrap_operator_secrets(sm, PATTERN)
        yield sm


@pytest.fixture
def platform_keys(secrets_client: Any) -> SecretsManagerKeySource:
    return SecretsManagerKeySource(secrets_client, PATTERN)


@pytest.fixture
def receiver(platform_keys: SecretsManagerKeySource) -> Iterator[CallbackReceiver]:
    r = CallbackReceiver(platform_keys)
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def _sandbox(secrets_client: Any, callback_url: str, **kw: Any) -> SandboxOperator:
    options: dict[str, Any] = {
        "decision_delay_seconds": 0.01,
        "callback_backoff_seconds": 0.02,
        "callback_timeout_seconds": 2.0,
        "seed": 7,
    }
    options.update(kw)
    # The operator reads the same secrets through its own loader (its own cache), as a separate party would.
    return SandboxOperator(SecretsManagerKeySource(secrets_client, PATTERN), callback_url, **options)


@pytest.fixture
def sandbox(secrets_client: Any, receiver: CallbackReceiver) -> Iterator[SandboxOperator]:
    with _sandbox(secrets_client, receiver.url) as s:
        yield s


@pytest.fixture
def gateway(platform_keys: SecretsManagerKeySource, sandbox: SandboxOperator) -> HttpOperatorGateway:
    return HttpOperatorGateway(dict.fromkeys(Operator, sandbox.url), platform_keys, timeout_seconds=2.0)


# --------------------------------------------------------------------------- keys


def test_bootstrap_creates_one_secret_per_operator_once(secrets_client: Any):
    # Given the fixture already bootstrapped: a second run creates nothing
    assert bootstrap_operator_secrets(secrets_client, PATTERN) == dict.fromkeys(Operator, False)
    names = {s["Name"] for s in secrets_client.list_secrets()["SecretList"]}
    assert {secret_name(PATTERN, op) for op in Operator} <= names
    keys = SecretsManagerKeySource(secrets_client, PATTERN)
    key_ids = {keys.current(op).key_id for op in Operator}
    assert len(key_ids) == 4  # each operator has its own keys


def test_the_loader_caches(secrets_client: Any):
    keys = SecretsManagerKeySource(secrets_client, PATTERN)
    first = keys.current(MOBILE)
    rotate_operator_secret(secrets_client, PATTERN, MOBILE)
    assert keys.current(MOBILE) is first  # cached for max_age_seconds
    keys.clear()
    assert keys.current(MOBILE).key_id != first.key_id


def test_a_missing_secret_is_reported(secrets_client: Any):
    with pytest.raises(OperatorKeysUnavailable):
        SecretsManagerKeySource(secrets_client, "cheka/nowhere/{operator}").current(MOBILE)
    with pytest.raises(ValueError, match="operator"):
        SecretsManagerKeySource(secrets_client, "cheka/test/operator")


def test_rotation_keeps_the_previous_version_usable(secrets_client: Any):
    keys = SecretsManagerKeySource(secrets_client, PATTERN, min_refresh_seconds=0)
    old = keys.current(MOBILE)
    new = rotate_operator_secret(secrets_client, PATTERN, MOBILE)
    # The receiver learns the new key id on first sight, and still accepts the old one
    assert keys.find(MOBILE, new.key_id) == new
    assert keys.find(MOBILE, old.key_id) == old
    assert keys.find(MOBILE, "k-unknown") is None


# --------------------------------------------------------------------------- push and callback


def test_push_is_acknowledged_then_decided_by_a_signed_callback(
    gateway: HttpOperatorGateway, sandbox: SandboxOperator, receiver: CallbackReceiver
):
    # Given a registration of one card
    message = _message(1, functions=[CardFunction.EMERGENCY, CardFunction.TELEMATICS])
    # When it is pushed
    receipt = gateway.push(message)
    # Then the operator acknowledges at once, without a decision yet
    assert receipt.message_id == message.message_id
    assert receipt.operator_ref.startswith("CMCC")
    assert receipt.duplicate is False
    # And later a callback arrives that verifies: accepted, with exactly the functions requested (第十四条)
    assert _until(lambda: len(receiver.of(message.message_id)) == 1)
    callback = receiver.of(message.message_id)[0]
    assert callback.outcome is CallbackOutcome.ACCEPTED
    assert callback.operator is MOBILE
    assert callback.iccid == message.card.iccid
    assert callback.functions == [CardFunction.EMERGENCY, CardFunction.TELEMATICS]
    assert receiver.refused == []
    card = sandbox.card(MOBILE, message.card.iccid)
    assert card is not None
    assert card.state is OperatorCardState.REGISTERED
    assert card.holder_id_hash == _platform_hash(ALICE)


def test_a_duplicate_push_gets_one_decision(
    gateway: HttpOperatorGateway, sandbox: SandboxOperator, receiver: CallbackReceiver
):
    message = _message(2)
    first = gateway.push(message)
    second = gateway.push(message)
    assert second.duplicate is True
    assert second.operator_ref == first.operator_ref
    assert sandbox.wait_idle()
    assert len(receiver.of(message.message_id)) == 1
    assert len(sandbox.callbacks_for(message.message_id)) == 1


def test_the_same_message_id_with_other_content_is_refused(gateway: HttpOperatorGateway):
    message = _message(3)
    gateway.push(message)
    altered = message.model_copy(update={"functions": [CardFunction.EMERGENCY]})
    with pytest.raises(OperatorRefused) as err:
        gateway.push(altered)
    assert err.value.code == "message_id_reused"


def test_a_bad_signature_is_refused_with_401(
    platform_keys: SecretsManagerKeySource, sandbox: SandboxOperator
):
    message = _message(4)
    request = wire.encode_push(message, platform_keys.current(MOBILE), now=datetime.now(UTC))
    forged = wire.WireRequest(
        request.method, request.path, request.body, {**request.headers, wire.H_SIGNATURE: "AAAA" * 11}
    )
    status, body = _send_raw(sandbox.url, forged)
    assert (status, body["code"]) == (401, "bad_signature")
    # A changed body under the original signature fails the same way
    tampered = wire.WireRequest(
        request.method, request.path, request.body.replace(b"H9", b"H5"), request.headers
    )
    assert _send_raw(sandbox.url, tampered)[0] == 401
    assert sandbox.card(MOBILE, message.card.iccid) is None


def test_a_replayed_request_is_refused_and_not_decided_twice(
    platform_keys: SecretsManagerKeySource, sandbox: SandboxOperator, receiver: CallbackReceiver
):
    message = _message(5)
    request = wire.encode_push(message, platform_keys.current(MOBILE), now=datetime.now(UTC))
    assert _send_raw(sandbox.url, request)[0] == 202
    status, body = _send_raw(sandbox.url, request)
    assert (status, body["code"]) == (409, "replayed_nonce")
    assert sandbox.wait_idle()
    assert len(receiver.of(message.message_id)) == 1


def test_a_stale_timestamp_is_refused(platform_keys: SecretsManagerKeySource, sandbox: SandboxOperator):
    late = HttpOperatorGateway(
        {MOBILE: sandbox.url}, platform_keys, clock=lambda: datetime.now(UTC) - timedelta(minutes=10)
    )
    message = _message(6)
    with pytest.raises(OperatorRefused) as err:
        late.push(message)
    assert err.value.code == "stale_timestamp"
    assert sandbox.card(MOBILE, message.card.iccid) is None


def test_a_card_of_another_operator_is_refused_with_400(gateway: HttpOperatorGateway):
    # Given a China Unicom ICCID sent to China Mobile
    message = _message(7, iccid=_iccid(7, Operator.CHINA_UNICOM))
    with pytest.raises(OperatorRefused) as err:
        gateway.push(message)
    assert err.value.code == "wrong_operator"


# --------------------------------------------------------------------------- the operator's rules


def test_the_eleventh_card_of_one_id_is_rejected(
    gateway: HttpOperatorGateway, sandbox: SandboxOperator, receiver: CallbackReceiver
):
    # Given ten cards registered to one person with one operator (第十一条)
    messages = [_message(100 + n) for n in range(11)]
    for message in messages:
        gateway.push(message)
    assert sandbox.wait_idle()
    # Then the first ten are accepted and the eleventh is rejected with the business-hall message
    outcomes = [receiver.of(m.message_id)[0].outcome for m in messages]
    assert outcomes == [CallbackOutcome.ACCEPTED] * 10 + [CallbackOutcome.REJECTED]
    rejected = receiver.of(messages[10].message_id)[0]
    assert rejected.reason_code == "cards_per_id_exceeded"
    assert rejected.reason_zh is not None
    assert "营业厅" in rejected.reason_zh
    assert rejected.reason_en is not None
    assert "business hall" in rejected.reason_en
    assert rejected.functions == []
    assert sandbox.active_cards(MOBILE, "resident_id", ALICE) == 10
    # And the limit is per operator: the same person may register a China Unicom card
    unicom = _message(111, operator=Operator.CHINA_UNICOM, iccid=_iccid(111, Operator.CHINA_UNICOM))
    gateway.push(unicom)
    # When one card is de-registered, the count frees up and a new card is accepted
    gateway.push(_message(100, PushKind.DEREGISTER))
    again = _message(112)
    gateway.push(again)
    assert sandbox.wait_idle()
    assert receiver.of(unicom.message_id)[0].outcome is CallbackOutcome.ACCEPTED
    assert receiver.of(again.message_id)[0].outcome is CallbackOutcome.ACCEPTED
    assert sandbox.active_cards(MOBILE, "resident_id", ALICE) == 10


def test_enterprise_cards_are_not_limited(
    gateway: HttpOperatorGateway, sandbox: SandboxOperator, receiver: CallbackReceiver
):
    messages = [_message(200 + n, holder=_holder(kind=HolderKind.ENTERPRISE)) for n in range(11)]
    for message in messages:
        gateway.push(message)
    assert sandbox.wait_idle()
    assert all(receiver.of(m.message_id)[0].outcome is CallbackOutcome.ACCEPTED for m in messages)


def test_a_blacklisted_id_is_rejected(
    gateway: HttpOperatorGateway, sandbox: SandboxOperator, receiver: CallbackReceiver
):
    sandbox.add_to_blacklist(BOB.lower())
    message = _message(300, holder=_holder(BOB))
    gateway.push(message)
    assert sandbox.wait_idle()
    callback = receiver.of(message.message_id)[0]
    assert callback.outcome is CallbackOutcome.REJECTED
    assert callback.reason_code == "blacklisted"
    assert callback.reason_zh
    assert callback.reason_en
    assert sandbox.active_cards(MOBILE, "resident_id", BOB) == 0


def test_a_spot_check_follows_the_acceptance(
    gateway: HttpOperatorGateway, sandbox: SandboxOperator, receiver: CallbackReceiver
):
    sandbox.spot_check_rate = 1.0
    message = _message(400)
    gateway.push(message)
    assert sandbox.wait_idle()
    callbacks = receiver.of(message.message_id)
    assert [c.outcome for c in callbacks] == [CallbackOutcome.ACCEPTED, CallbackOutcome.SPOT_CHECK]
    assert callbacks[1].reason_code == "spot_check"
    assert callbacks[0].callback_id != callbacks[1].callback_id


def test_transfer_moves_the_card_to_the_new_holder(
    gateway: HttpOperatorGateway,
    sandbox: SandboxOperator,
    receiver: CallbackReceiver,
    platform_keys: SecretsManagerKeySource,
):
    registration = _message(500)
    gateway.push(registration)
    # Registering a card someone else holds is refused: it must be transferred
    stolen = _message(500, holder=_holder(BOB))
    gateway.push(stolen)
    transfer = _message(500, PushKind.TRANSFER, holder=_holder(BOB))
    gateway.push(transfer)
    # A transfer of a card nobody holds is refused
    orphan = _message(501, PushKind.TRANSFER, holder=_holder(BOB))
    gateway.push(orphan)
    assert sandbox.wait_idle()
    assert receiver.of(stolen.message_id)[0].reason_code == "card_already_registered"
    assert receiver.of(transfer.message_id)[0].outcome is CallbackOutcome.ACCEPTED
    assert receiver.of(orphan.message_id)[0].reason_code == "card_not_registered"
    assert sandbox.active_cards(MOBILE, "resident_id", ALICE) == 0
    assert sandbox.active_cards(MOBILE, "resident_id", BOB) == 1
    card = sandbox.card(MOBILE, registration.card.iccid)
    assert card is not None
    assert card.holder_id_hash == _platform_hash(BOB)


def test_ending_a_binding_the_operator_does_not_hold_is_refused(
    gateway: HttpOperatorGateway, sandbox: SandboxOperator, receiver: CallbackReceiver
):
    # Given a card registered to Alice
    gateway.push(_message(550))
    # When the platform asks to de-register it as if Bob held it
    wrong = _message(550, PushKind.DEREGISTER, previous=_platform_hash(BOB))
    gateway.push(wrong)
    right = _message(550, PushKind.DEREGISTER, previous=_platform_hash(ALICE))
    gateway.push(right)
    assert sandbox.wait_idle()
    # Then the first is refused and the card stays Alice's until the right one comes
    assert receiver.of(wrong.message_id)[0].reason_code == "previous_holder_mismatch"
    assert receiver.of(right.message_id)[0].outcome is CallbackOutcome.ACCEPTED
    assert sandbox.active_cards(MOBILE, "resident_id", ALICE) == 0


def test_an_injected_deregistration_refusal_is_a_rejected_callback_with_its_reason_and_keeps_the_card(
    gateway: HttpOperatorGateway, sandbox: SandboxOperator, receiver: CallbackReceiver
):
    # Given a card registered to Alice, and an operator that refuses de-registrations (set over HTTP)
    gateway.push(_message(551))
    request = urllib.request.Request(
        sandbox.url + "/_sandbox/faults",
        data=json.dumps({"refuse_deregistrations": "outstanding_balance"}).encode(),
        method="POST",
    )
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=5) as resp:
        assert json.loads(resp.read())["refuse_deregistrations"] == "outstanding_balance"
    # When the platform de-registers it
    refused = _message(551, PushKind.DEREGISTER, previous=_platform_hash(ALICE))
    gateway.push(refused)
    assert sandbox.wait_idle()
    # Then the callback refuses it with the reason in Chinese, and the card stays Alice's
    (callback,) = receiver.of(refused.message_id)
    assert (callback.outcome, callback.reason_code) == (CallbackOutcome.REJECTED, "outstanding_balance")
    assert callback.reason_zh is not None
    assert "未结清费用" in callback.reason_zh
    assert sandbox.active_cards(MOBILE, "resident_id", ALICE) == 1
    # And once the fault is cleared, the next de-registration is accepted
    sandbox.faults.refuse_deregistrations = ""
    accepted = _message(551, PushKind.DEREGISTER, previous=_platform_hash(ALICE))
    gateway.push(accepted)
    assert sandbox.wait_idle()
    assert receiver.of(accepted.message_id)[0].outcome is CallbackOutcome.ACCEPTED
    assert sandbox.active_cards(MOBILE, "resident_id", ALICE) == 0


def test_the_listing_pages_through_what_the_operator_holds(
    platform_keys: SecretsManagerKeySource, sandbox: SandboxOperator, gateway: HttpOperatorGateway
):
    # Given seven cards registered and one of them de-registered
    for n in range(7):
        gateway.push(_message(600 + n, holder=_holder(BOB if n % 2 else ALICE)))
    assert sandbox.wait_idle()
    gateway.push(_message(603, PushKind.DEREGISTER))
    assert sandbox.wait_idle()
    # When the platform reads the listing three at a time
    paged = HttpOperatorGateway({MOBILE: sandbox.url}, platform_keys, listing_page_size=3)
    pages, cursor = [], None
    while True:
        records, cursor = paged.listing(MOBILE, cursor)
        pages.append(records)
        if cursor is None:
            break
    # Then every card comes once, in ICCID order, each holder as the platform's own hash
    assert [len(p) for p in pages] == [3, 3, 1]
    records = [r for p in pages for r in p]
    assert [r.iccid for r in records] == [_iccid(600 + n) for n in range(7)]
    assert records[0].holder_id_hash == _platform_hash(ALICE)
    assert records[1].holder_id_hash == _platform_hash(BOB)
    assert records[3].state is OperatorCardState.DEREGISTERED
    assert records[3].holder_id_hash is None
    assert records[3].functions == [CardFunction.EMERGENCY]
    assert all(ALICE not in r.model_dump_json() and BOB not in r.model_dump_json() for r in records)
    # And another operator's listing is empty
    assert gateway.listing(Operator.CHINA_TELECOM, None) == ([], None)


def test_a_listing_request_must_be_signed(sandbox: SandboxOperator):
    status, body = _send_raw(sandbox.url, wire.WireRequest("GET", wire.LISTING_PATH + "?limit=10", b"", {}))
    assert (status, body["code"]) == (401, "missing_auth")


# --------------------------------------------------------------------------- faults


def test_down_mode_is_unavailable_and_nothing_is_received(
    gateway: HttpOperatorGateway, sandbox: SandboxOperator
):
    sandbox.faults.down = True
    message = _message(700)
    with pytest.raises(OperatorUnavailable):
        gateway.push(message)
    # When the operator is back, the retry is the first receipt
    sandbox.faults.down = False
    assert gateway.push(message).duplicate is False


def test_an_injected_503_is_unavailable(gateway: HttpOperatorGateway, sandbox: SandboxOperator):
    sandbox.faults.failure_rate = 1.0
    message = _message(701)
    with pytest.raises(OperatorUnavailable, match="503"):
        gateway.push(message)
    sandbox.faults.failure_rate = 0.0
    assert gateway.push(message).duplicate is False


def test_a_timeout_is_unavailable_and_the_retry_finds_the_push_landed(
    platform_keys: SecretsManagerKeySource, sandbox: SandboxOperator
):
    impatient = HttpOperatorGateway({MOBILE: sandbox.url}, platform_keys, timeout_seconds=0.1)
    sandbox.faults.latency_seconds = 0.4
    message = _message(702)
    with pytest.raises(OperatorUnavailable, match="timed out"):
        impatient.push(message)
    sandbox.faults.latency_seconds = 0.0
    # The operator did receive it after all: the retry is answered as a duplicate
    assert _until(lambda: sandbox.card(MOBILE, message.card.iccid) is not None)
    assert impatient.push(message).duplicate is True


def test_faults_can_be_set_over_http(sandbox: SandboxOperator):
    request = urllib.request.Request(
        sandbox.url + "/_sandbox/faults", data=json.dumps({"failure_rate": 0.5}).encode(), method="POST"
    )
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=5) as resp:
        assert json.loads(resp.read())["failure_rate"] == 0.5
    assert sandbox.faults.failure_rate == 0.5


def test_connection_refused_is_unavailable(platform_keys: SecretsManagerKeySource):
    nowhere = HttpOperatorGateway(
        {MOBILE: f"http://127.0.0.1:{free_ports(1)[0]}"}, platform_keys, timeout_seconds=1
    )
    with pytest.raises(OperatorUnavailable):
        nowhere.push(_message(703))


def test_an_operator_without_a_url_is_not_configured(platform_keys: SecretsManagerKeySource):
    # Not a refusal: the push waits in the outbox until the stage's URL is filled in
    with pytest.raises(OperatorNotConfigured) as err:
        HttpOperatorGateway({}, platform_keys).push(_message(704))
    assert (err.value.operator, err.value.missing) == (MOBILE, "url")


def test_unknown_keys_are_refused_by_the_operator(secrets_client: Any, sandbox: SandboxOperator):
    from chalicelib.operators.keys import generate_operator_keys
    from tests.fakes.operators import StaticKeySource

    stranger = HttpOperatorGateway({MOBILE: sandbox.url}, StaticKeySource([generate_operator_keys(MOBILE)]))
    with pytest.raises(OperatorRefused) as err:
        stranger.push(_message(705))
    assert err.value.code == "unknown_key"


# --------------------------------------------------------------------------- callback delivery


def test_callbacks_are_retried_while_the_platform_fails(
    gateway: HttpOperatorGateway, sandbox: SandboxOperator, receiver: CallbackReceiver
):
    receiver.fail_next = 2
    message = _message(800)
    gateway.push(message)
    assert sandbox.wait_idle()
    delivery = next(d for d in sandbox.deliveries if d.callback.message_id == message.message_id)
    assert (delivery.delivered, delivery.attempts, delivery.status) == (True, 3, 200)
    assert len(receiver.of(message.message_id)) == 1
    assert receiver.refused == []  # each attempt was signed afresh: no replayed nonce


def test_the_operator_gives_up_when_the_platform_stays_down(
    secrets_client: Any, platform_keys: SecretsManagerKeySource
):
    down_url = f"http://127.0.0.1:{free_ports(1)[0]}{wire.CALLBACK_PATH}"
    with _sandbox(secrets_client, down_url, callback_attempts=3, callback_backoff_seconds=0.01) as lonely:
        gw = HttpOperatorGateway({MOBILE: lonely.url}, platform_keys)
        message = _message(801)
        gw.push(message)
        assert lonely.wait_idle()
        (delivery,) = lonely.deliveries
    assert (delivery.delivered, delivery.attempts, delivery.status) == (False, 3, None)
    assert delivery.callback.message_id == message.message_id


def test_rotation_mid_flight(
    secrets_client: Any,
    gateway: HttpOperatorGateway,
    sandbox: SandboxOperator,
    receiver: CallbackReceiver,
    platform_keys: SecretsManagerKeySource,
):
    # Given a push and its callback under the first keys
    before = _message(900)
    gateway.push(before)
    assert sandbox.wait_idle()
    # When the keys are rotated and a fresh platform instance signs with the new ones
    rotate_operator_secret(secrets_client, PATTERN, MOBILE)
    fresh = HttpOperatorGateway({MOBILE: sandbox.url}, SecretsManagerKeySource(secrets_client, PATTERN))
    after = _message(901)
    fresh.push(after)
    # while an old instance still signs with the previous ones
    late = _message(902)
    gateway.push(late)
    assert sandbox.wait_idle()
    # Then everything is accepted, and the callbacks (under the new keys) verify
    for message in (before, after, late):
        assert [c.outcome for c in receiver.of(message.message_id)] == [CallbackOutcome.ACCEPTED]
    assert receiver.refused == []
