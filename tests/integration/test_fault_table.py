"""The owner's registration under fault: each adapter's failure injected at each step that uses it.

One registration is walked through the API on the embedded AWS (the store, the bucket, KMS, the queues
and the sandbox identity authority real; OCR, faces and liveness the unit tests' fakes, so that the
walk takes seconds). Before each step is taken, every fault of that step's rows is injected in turn —
the store throttled, timed out or changed under the step (a conditional check failing), S3, KMS, an
engine, the SMS provider, the identity authority or the operator failing — and the step is tried: the
person gets a retryable error (503 with ``Retry-After``, or the step's own documented code) and every
table and every object of the documents bucket (the SMS and head-unit drops included) is as it was, but
for what the step documents (``STEP_EFFECTS``, ``ROW_EFFECTS``). Then the step is taken without the
fault and succeeds: a failure poisons nothing (``GAPS`` lists the rows that still do, ``HALF_WRITES``
the refusals that leave a write the step taken again completes: strict xfails, so a fix shows).
The walk runs once (a module fixture records every row's outcome); each row is its own test,
``fault-step``.

AWS faults are raised where botocore sends a request (``Endpoint.make_request``): the exceptions a
real service gives (``ClientError`` with its code, ``ReadTimeoutError``), as the last attempt's (no
botocore retry here). A fault strikes the first matching call; the store's throttling (``INDEXED``) is
then tried at the second, the third… write of the step, until the step runs whole without meeting one
(that run is the step's own), so a failure after a step's first writes is checked too. A lost reply
(``store-lost-reply``) makes the write and then times out reading its answer: the person is answered
503, at most that write stays (every table it named: a transaction is one write), and the step taken
again completes. Engine, SMS, authority and operator faults are raised by their adapters as those raise
them when their service fails.
``CHEKA_FAULT_TABLE_EXPLORE=1`` (with ``-s``) prints each row, the calls each step makes and its time.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import io
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from chalicelib.core import deps
from chalicelib.verification.domain.documents import DocumentKind

OWNER = "owner-faults"
PHONE = "13912340000"
REG = "/v1/me/registrations"

#: DynamoDB operations that write, and that read.
STORE_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"})
STORE_READS = frozenset({"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"})
#: The synthetic ID card's front is this wide (the back a little wider).
FRONT_WIDTH = 856


@dataclass
class Fault:
    """One fault: its name, where it strikes, and what it raises (a function of the call)."""

    name: str
    #: AWS faults: (service, operations); the others are installed by ``install``.
    service: str | None = None
    operations: frozenset[str] = frozenset()
    raise_: Callable[[str], BaseException] | None = None
    install: Callable[[pytest.MonkeyPatch, Fault], None] | None = None
    #: Statuses the person may get (503 unless the step documents its own).
    statuses: tuple[int, ...] = (503,)
    #: AWS faults: the matching call that fails (1: the first), the others pass; None: every one.
    at: int | None = None
    #: AWS faults: the call is made (its write lands) and only its reply is lost.
    lands: bool = False
    #: The tables the landed write wrote (a transaction's every table: one write all the same).
    landed: set[str] = field(default_factory=set)
    struck: int = 0
    #: Matching calls met so far.
    seen: int = 0


def aws_error(code: str, status: int) -> Callable[[str], BaseException]:
    def make(operation: str) -> BaseException:
        response: Any = {
            "Error": {"Code": code, "Message": code},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        error: BaseException = ClientError(response, operation)
        return error

    return make


def changed_meanwhile(operation: str) -> BaseException:
    """A conditional write refused because another request changed the item (a transaction says so
    in its cancellation reasons)."""
    if operation == "TransactWriteItems":
        response: Any = {
            "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
            "CancellationReasons": [{"Code": "ConditionalCheckFailed", "Message": "changed"}],
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }
        cancelled: BaseException = ClientError(response, operation)
        return cancelled
    return aws_error("ConditionalCheckFailedException", 400)(operation)


def read_timeout(operation: str) -> BaseException:
    error: BaseException = ReadTimeoutError(endpoint_url=f"https://aws.invalid/{operation}")
    return error


def _engine_timeout(
    kind: str, methods: tuple[str, ...], getter: Callable[[], Any]
) -> Callable[[pytest.MonkeyPatch, Fault], None]:
    """The engine times out as the remote engines' client reports it (``engine.unavailable``)."""

    def install(mp: pytest.MonkeyPatch, fault: Fault) -> None:
        from chalicelib.verification.domain.engines import engine_unavailable

        engine = getter()

        def timed_out(*_: Any, **__: Any) -> Any:
            fault.struck += 1
            raise engine_unavailable(kind, "timeout", 20)

        for method in methods:
            mp.setattr(engine, method, timed_out)

    return install


def _sms_down(mp: pytest.MonkeyPatch, fault: Fault) -> None:
    from chalicelib.sms.domain import send_failed

    def failed(*_: Any, **__: Any) -> str:
        fault.struck += 1
        raise send_failed()

    mp.setattr(deps.sms_sender(), "send", failed)


def _authority_down(mp: pytest.MonkeyPatch, fault: Fault) -> None:
    import urllib.error

    authority = deps.identity_authority()

    def refused(*_: Any, **__: Any) -> Any:
        fault.struck += 1
        raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))

    mp.setattr(authority._opener, "open", refused)  # type: ignore[attr-defined]
    mp.setattr(authority, "_sleep", lambda _seconds: None)


def _operator_down(mp: pytest.MonkeyPatch, fault: Fault) -> None:
    from chalicelib.operators.domain.messages import OperatorUnavailable

    gateway = deps.operator_gateway()

    def down(*_: Any, **__: Any) -> Any:
        fault.struck += 1
        raise OperatorUnavailable("connection refused")

    mp.setattr(gateway, "push", down)


FAULTS: dict[str, Callable[[], Fault]] = {
    "store-throttled": lambda: Fault(
        "store-throttled",
        "dynamodb",
        STORE_WRITES,
        aws_error("ProvisionedThroughputExceededException", 400),
    ),
    "store-read-timeout": lambda: Fault("store-read-timeout", "dynamodb", STORE_READS, read_timeout),
    "store-changed": lambda: Fault(
        "store-changed", "dynamodb", STORE_WRITES, changed_meanwhile, statuses=(409,)
    ),
    # the write lands and its reply is lost (botocore's last attempt timed out reading it)
    "store-lost-reply": lambda: Fault(
        "store-lost-reply", "dynamodb", STORE_WRITES, read_timeout, at=1, lands=True
    ),
    "s3-put": lambda: Fault("s3-put", "s3", frozenset({"PutObject"}), aws_error("SlowDown", 503)),
    "s3-get": lambda: Fault("s3-get", "s3", frozenset({"GetObject"}), aws_error("InternalError", 500)),
    "kms-encrypt": lambda: Fault(
        "kms-encrypt", "kms", frozenset({"GenerateDataKey"}), aws_error("KMSInternalException", 500)
    ),
    "kms-decrypt": lambda: Fault(
        "kms-decrypt", "kms", frozenset({"Decrypt"}), aws_error("KeyUnavailableException", 500)
    ),
    "kms-mac": lambda: Fault(
        "kms-mac", "kms", frozenset({"GenerateMac"}), aws_error("ThrottlingException", 400)
    ),
    "ocr-timeout": lambda: Fault("ocr-timeout", install=_engine_timeout("ocr", ("read",), deps.ocr_engine)),
    "face-timeout": lambda: Fault(
        "face-timeout", install=_engine_timeout("faces", ("detect", "compare"), deps.face_engine)
    ),
    "liveness-timeout": lambda: Fault(
        "liveness-timeout", install=_engine_timeout("liveness", ("judge",), deps.liveness_engine)
    ),
    "sms-down": lambda: Fault("sms-down", install=_sms_down),
    "authority-down": lambda: Fault("authority-down", install=_authority_down),
    "queue-down": lambda: Fault(
        "queue-down", "sqs", frozenset({"SendMessage"}), read_timeout, statuses=(200, 503)
    ),
    # the push is the outbox consumer's: an operator down schedules its retry (the message is handled)
    "operator-down": lambda: Fault("operator-down", install=_operator_down, statuses=(200,)),
}
STORE = ("store-throttled", "store-read-timeout", "store-changed")
#: The store's faults and a lost reply (at a step whose first write the person may simply send again).
STORE_LOST = (*STORE, "store-lost-reply")
#: Faults tried at each matching call of a step in turn (the first, the second… until the step runs
#: whole without meeting one: that run is the step's own); the others strike the first matching call.
INDEXED = frozenset({"store-throttled"})


@contextlib.contextmanager
def injected(fault: Fault) -> Iterator[None]:
    """``fault`` in force for the duration (every cached data key forgotten first, as in a new process,
    so that a KMS fault meets a call)."""
    from botocore.endpoint import Endpoint

    cipher = deps.field_cipher()
    cipher._current = None  # type: ignore[attr-defined]
    cipher._unwrapped.clear()  # type: ignore[attr-defined]
    with pytest.MonkeyPatch.context() as mp:
        if fault.install is not None:
            fault.install(mp, fault)
        else:
            original = Endpoint.make_request

            def faulty(endpoint: Endpoint, operation_model: Any, request_dict: Any) -> Any:
                service = operation_model.service_model.service_name
                if service == fault.service and operation_model.name in fault.operations:
                    fault.seen += 1
                    if fault.at is None or fault.seen == fault.at:
                        if fault.lands:
                            original(endpoint, operation_model, request_dict)
                            fault.landed |= _tables_written(request_dict)
                        fault.struck += 1
                        assert fault.raise_ is not None
                        raise fault.raise_(operation_model.name)
                return original(endpoint, operation_model, request_dict)

            mp.setattr(Endpoint, "make_request", faulty)
        yield


def _tables_written(request_dict: Any) -> set[str]:
    """The DynamoDB tables a write request names (each item of a transaction's)."""
    body = request_dict.get("body") or b"{}"
    sent = json.loads(body.decode() if isinstance(body, bytes) else body)
    names = {sent["TableName"]} if "TableName" in sent else set()
    for action in sent.get("TransactItems", []):
        names |= {part["TableName"] for part in action.values() if "TableName" in part}
    for name in sent.get("RequestItems", {}):
        names.add(name)
    return names


@contextlib.contextmanager
def recorded(calls: set[str]) -> Iterator[None]:
    """Every AWS call made meanwhile, as ``service:Operation``, added to ``calls``."""
    from botocore.endpoint import Endpoint

    original = Endpoint.make_request

    def recording(endpoint: Endpoint, operation_model: Any, request_dict: Any) -> Any:
        calls.add(f"{operation_model.service_model.service_name}:{operation_model.name}")
        return original(endpoint, operation_model, request_dict)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Endpoint, "make_request", recording)
        yield


def snapshot() -> dict[str, Any]:
    """Every item of every table and every object version of the documents bucket (the SMS drop and
    the head-unit drop included)."""
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    from chalicelib.core.aws import client
    from chalicelib.core.settings import get_settings

    settings = get_settings()
    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][settings.region]
    state: dict[str, Any] = {
        f"table:{name}": sorted(
            json.dumps(item.to_json(), sort_keys=True, default=str) for item in table.all_items()
        )
        for name, table in backend.tables.items()
    }
    listed = client("s3").list_object_versions(Bucket=settings.documents_bucket)
    state["bucket"] = sorted(
        f"{v['Key']}@{v.get('VersionId')}:{v.get('ETag', 'marker')}"
        for v in [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]
    )
    return state


def changed(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What differs between two snapshots: table names and bucket keys."""
    out = [
        name
        for name in sorted(set(before) | set(after))
        if name != "bucket" and before.get(name) != after.get(name)
    ]
    added = set(after["bucket"]) - set(before["bucket"])
    removed = set(before["bucket"]) - set(after["bucket"])
    out += [f"+{k.split('@')[0]}" for k in sorted(added)] + [f"-{k.split('@')[0]}" for k in sorted(removed)]
    return out


def _jpeg(width: int, height: int, seed: int) -> bytes:
    """A photo of noise (as large as a real photo of its size; the fake engines read it as told)."""
    import random

    from PIL import Image

    noise = random.Random(seed).randbytes(width * height * 3)
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), noise).save(out, format="JPEG", quality=85)
    return out.getvalue()


def _frames(count: int) -> list[bytes]:
    """The liveness burst: small JPEG frames (the fake engines judge them as configured)."""
    return [_jpeg(320, 240, 40 * i) for i in range(count)]


def _id_lines() -> tuple[list[Any], list[Any]]:
    """What the OCR engine reads on the synthetic ID card: the front, then the back."""
    from chalicelib.verification.domain.readings import TextLine
    from tests.synthetic_documents import PERSON_ADDRESS, PERSON_ID_NUMBER, PERSON_NAME

    front = ["姓名", PERSON_NAME, "性别", "男", "民族", "汉", "出生", "1990年3月7日", "住址", PERSON_ADDRESS]
    front += ["公民身份号码", PERSON_ID_NUMBER]
    back = [
        "中华人民共和国",
        "居民身份证",
        "签发机关",
        "北京市公安局东城分局",
        "有效期限",
        "2020.06.01-2040.06.01",
    ]
    return [TextLine(text=t, confidence=0.99) for t in front], [
        TextLine(text=t, confidence=0.99) for t in back
    ]


def _fixed(value: Any) -> Callable[[], Any]:
    """A ``deps`` getter that always gives ``value`` (``deps.reset`` may clear it)."""
    return functools.lru_cache(maxsize=1)(lambda: value)


def use_fake_engines(mp: pytest.MonkeyPatch, sandbox: Any) -> None:
    """OCR, faces, liveness and the face index as the unit tests' fakes (the adapters under test here
    are the store, S3, KMS, SMS, the authority and the operators; the engines' own faults are raised
    where their adapters raise them). The sandbox authority compares portraits with the fake too."""
    from tests.fakes.faces import FakeFaceIndex
    from tests.fakes.verification import FakeFaceEngine, FakeLivenessEngine, FakeOcr

    front, back = _id_lines()

    class SidesOcr(FakeOcr):
        """Reads the front's lines on a photo as wide as the front, else the back's (the stored photo
        is re-encoded: its bytes are not the upload's)."""

        def read(self, image: bytes) -> list[Any]:
            from PIL import Image

            self.reads += 1
            return list(front if Image.open(io.BytesIO(image)).width == FRONT_WIDTH else back)

    ocr = SidesOcr()
    faces = FakeFaceEngine()
    mp.setattr(deps, "ocr_engine", _fixed(ocr))
    mp.setattr(deps, "face_engine", _fixed(faces))
    mp.setattr(deps, "liveness_engine", _fixed(FakeLivenessEngine()))
    mp.setattr(deps, "face_index", _fixed(FakeFaceIndex()))
    mp.setattr(sandbox, "_engine", faces)


@dataclass
class Walk:
    """The registration walked: the API, the owner's headers and what each step hands the next."""

    api: Any
    me: dict[str, str]
    vin: str
    reg_id: str = ""
    flow_id: str = ""
    code: str = ""
    session: dict[str, Any] = field(default_factory=dict)
    frames: list[str] = field(default_factory=list)
    key: str = ""
    record_ids: list[str] = field(default_factory=list)
    photos: dict[DocumentKind, bytes] = field(default_factory=dict)


def _call(w: Walk, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    from tests.integration.test_verification_api import call

    return call(w.api, method, path, w.me, body)


def _act_start(w: Walk) -> tuple[int, Any]:
    status, body = _call(w, "post", REG, {"vin": w.vin})
    if status in (200, 201):
        w.reg_id = body["registration_id"]
    return status, body


def _prepare_phone(w: Walk) -> None:
    text = deps.sms_drop().recent(1)[0].text
    w.code = "".join(ch for ch in text.split("验证码")[1] if ch.isdigit())[:6]


def _new_code(w: Walk) -> None:
    """Ask for another code (the one sent was used up by a step that then failed) and read it."""
    status, sent = _call(w, "post", "/v1/auth/sms-codes", {"phone": PHONE, "purpose": "owner_phone"})
    assert status == 202, sent
    _prepare_phone(w)


def _prepare_possession(w: Walk) -> None:
    w.code = deps.vehicle_channel().recent(w.vin, 1)[0].code


def _act_possession(w: Walk) -> tuple[int, Any]:
    status, body = _call(w, "post", f"{REG}/{w.reg_id}/possession", {"method": "head_unit", "code": w.code})
    if status == 200:
        w.flow_id = body["flow_id"]
    return status, body


def _identity(w: Walk) -> dict[str, str]:
    from tests.synthetic_documents import PERSON_ADDRESS, PERSON_ID_NUMBER, PERSON_NAME

    return {
        "id_type": "resident_id",
        "id_number": PERSON_ID_NUMBER,
        "name": PERSON_NAME,
        "address": PERSON_ADDRESS,
    }


def _consent_body(w: Walk) -> dict[str, Any]:
    _, texts = _call(w, "get", "/v1/consents")
    doc = next(d for d in texts["documents"] if d["kind"] == "biometric_consent")
    return {"version": doc["version"], "sha256": doc["sha256"], "client": {"ua": "test"}}


def _prepare_upload(kind: DocumentKind) -> Callable[[Walk], None]:
    def prepare(w: Walk) -> None:
        from chalicelib.core.aws import client
        from chalicelib.core.settings import get_settings

        body = {"kind": kind.value, "content_type": "image/jpeg"}
        status, post = _call(w, "post", f"/v1/flows/{w.flow_id}/uploads", body)
        assert status == 201, post
        w.key = post["key"]
        bucket = get_settings().documents_bucket
        client("s3").put_object(Bucket=bucket, Key=w.key, Body=w.photos[kind], ContentType="image/jpeg")

    return prepare


def _act_liveness_start(w: Walk) -> tuple[int, Any]:
    status, body = _call(w, "post", f"/v1/flows/{w.flow_id}/liveness-sessions")
    if status == 201:
        w.session = dict(body)
    return status, body


def _prepare_face(w: Walk) -> None:
    if not w.frames:
        w.frames = [base64.b64encode(frame).decode() for frame in _frames(3)]


def _new_liveness_session(w: Walk) -> None:
    """Start another liveness session (the one handed out was spent by a step that then failed)."""
    status, body = _act_liveness_start(w)
    assert status == 201, body


def _act_face(w: Walk) -> tuple[int, Any]:
    from tests.integration.test_verification_api import send_burst

    status, body = send_burst(w.api, w.me, w.flow_id, w.session, w.frames)
    if status == 200 and body.get("passed") is not True:
        return 299, body  # answered, but the face did not pass: not the step's success
    return status, body


def _act_consents(w: Walk) -> tuple[int, Any]:
    _, texts = _call(w, "get", "/v1/consents")
    accepted = [
        {"kind": d["kind"], "version": d["version"], "sha256": d["sha256"]} for d in texts["documents"]
    ]
    return _call(w, "post", f"{REG}/{w.reg_id}/consents", {"accepted": accepted, "client": {"ua": "test"}})


def _act_submit(w: Walk) -> tuple[int, Any]:
    status, body = _call(w, "post", f"{REG}/{w.reg_id}/submit")
    if status == 200 and body.get("step") != "pending":
        return 299, body  # answered, but not submitted (a claim left taken): not the step's success
    return status, body


def _sweep_claims(w: Walk) -> None:
    """The stuck-submission sweep once the claim's lease has passed (a submission whose request failed
    after its claim is settled by it, never by a second submit meanwhile: its push may be in flight)."""
    from chalicelib.kernel.clock import utc_now

    submission = deps.registration_service().submission
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(submission, "_clock", lambda: utc_now() + timedelta(minutes=10))
        deps.registration_service().recover_stuck()


def _prepare_push(w: Walk) -> None:
    from chalicelib.adapters.dynamo.models_outbox import OutboxModel

    w.record_ids = [r.record_id for r in OutboxModel.scan() if r.kind == "register"]
    assert w.record_ids, "the submit left no push in the outbox"


def _act_push(w: Walk) -> tuple[int, Any]:
    """The outbox consumer handling the registration's push, as Lambda delivers it: 200 when every
    message was handled (sent, or its retry scheduled), 503 when a message is left for redelivery."""
    from chalicelib.operators.dispatch import message_body

    records = [{"messageId": rid, "receiptHandle": rid, "body": message_body(rid)} for rid in w.record_ids]
    result = deps.dispatcher().handle_batch(records)
    failed = result["batchItemFailures"]
    return (503 if failed else 200), result


@dataclass(frozen=True)
class Step:
    name: str
    act: Callable[[Walk], tuple[int, Any]]
    #: The step's success (the first); a start resumes the registration a fault let through (200).
    ok: int | tuple[int, ...]
    faults: tuple[str, ...] = ()
    prepare: Callable[[Walk], None] | None = None
    #: What the person does when the step, tried again after its faults, is refused (a finding).
    recover: Callable[[Walk], None] | None = None
    #: What the platform does after a refusal before the person tries again (a sweep).
    settle: Callable[[Walk], None] | None = None


STEPS: tuple[Step, ...] = (
    Step("start", _act_start, (201, 200), STORE_LOST),
    Step(
        "confirm-vehicle",
        lambda w: _call(w, "post", f"{REG}/{w.reg_id}/confirm-vehicle", {}),
        200,
        STORE_LOST,
    ),
    Step(
        "sms-code",
        lambda w: _call(w, "post", "/v1/auth/sms-codes", {"phone": PHONE, "purpose": "owner_phone"}),
        202,
        ("store-throttled", "store-changed", "kms-mac", "s3-put", "sms-down"),
    ),
    Step(
        "phone",
        lambda w: _call(w, "post", f"{REG}/{w.reg_id}/phone", {"phone": PHONE, "code": w.code}),
        200,
        (*STORE, "kms-mac", "kms-encrypt"),
        prepare=_prepare_phone,
        recover=_new_code,
    ),
    Step(
        "head-unit-code",
        lambda w: _call(w, "post", f"{REG}/{w.reg_id}/possession/head-unit-code"),
        202,
        (*STORE, "kms-decrypt", "kms-mac", "s3-put"),
    ),
    Step("possession", _act_possession, 200, (*STORE, "kms-mac"), prepare=_prepare_possession),
    Step(
        "identity",
        lambda w: _call(w, "put", f"/v1/flows/{w.flow_id}/identity", _identity(w)),
        200,
        (*STORE_LOST, "kms-encrypt", "kms-mac"),
    ),
    Step(
        "biometric-consent",
        lambda w: _call(w, "post", f"/v1/flows/{w.flow_id}/biometric-consent", _consent_body(w)),
        200,
        STORE_LOST,
    ),
    Step(
        "upload-front",
        lambda w: _call(w, "post", f"/v1/flows/{w.flow_id}/documents", {"kind": "id_front", "key": w.key}),
        201,
        (*STORE_LOST, "s3-get", "s3-put", "face-timeout"),
        prepare=_prepare_upload(DocumentKind.ID_FRONT),
        recover=_prepare_upload(DocumentKind.ID_FRONT),
    ),
    Step(
        "ocr-front",
        lambda w: _call(w, "post", f"/v1/flows/{w.flow_id}/ocr/id_front"),
        200,
        (*STORE, "s3-get", "ocr-timeout", "kms-encrypt", "authority-down"),
    ),
    Step(
        "upload-back",
        lambda w: _call(w, "post", f"/v1/flows/{w.flow_id}/documents", {"kind": "id_back", "key": w.key}),
        201,
        ("store-throttled", "s3-put"),
        prepare=_prepare_upload(DocumentKind.ID_BACK),
        recover=_prepare_upload(DocumentKind.ID_BACK),
    ),
    Step(
        "ocr-back",
        lambda w: _call(w, "post", f"/v1/flows/{w.flow_id}/ocr/id_back"),
        200,
        ("store-throttled", "s3-get", "ocr-timeout"),
    ),
    Step("liveness-start", _act_liveness_start, 201, STORE_LOST),
    Step(
        "face",
        _act_face,
        200,
        (
            *STORE,
            "s3-get",
            "s3-put",
            "kms-decrypt",
            "liveness-timeout",
            "face-timeout",
            "authority-down",
            "kms-encrypt",
        ),
        prepare=_prepare_face,
        recover=_new_liveness_session,
    ),
    Step("consents", _act_consents, 200, STORE_LOST),
    Step(
        "submit",
        _act_submit,
        200,
        (*STORE_LOST, "kms-mac", "kms-decrypt", "queue-down"),
        settle=_sweep_claims,
    ),
    Step("push", _act_push, 200, ("store-throttled", "operator-down"), prepare=_prepare_push),
)


def oks(step: Step) -> tuple[int, ...]:
    return step.ok if isinstance(step.ok, tuple) else (step.ok,)


@dataclass
class Outcome:
    status: int
    body: Any
    struck: int
    changes: list[str]
    allowed: tuple[int, ...]
    #: The registration's status after the refusal (None before it exists).
    registration: str | None = None
    #: The matching call that failed (None: every one).
    at: int | None = None
    lands: bool = False
    #: The tables the landed write wrote.
    landed: set[str] = field(default_factory=set)


@dataclass
class Table:
    #: Each row's outcomes: one per matching call failed (``INDEXED``), else one.
    outcomes: dict[tuple[str, str], list[Outcome]] = field(default_factory=dict)
    #: Each step's answer without a fault (status, body), in walk order.
    steps: dict[str, tuple[int, Any]] = field(default_factory=dict)
    calls: dict[str, set[str]] = field(default_factory=dict)
    stopped: str | None = None
    #: Steps refused when tried again after their faults (the answer), taken after ``recover``.
    recovered: dict[str, tuple[int, Any]] = field(default_factory=dict)


def _try_order(name: str, step: Step) -> int:
    fault = FAULTS[name]()
    if set(ROW_ANSWERS.get((name, step.name), fault.statuses)) & set(oks(step)):
        return 2
    return 1 if fault.lands else 0


@pytest.fixture(scope="module")
def table(identity_authority: Any) -> Table:
    """The walk, once: before each step every fault of its rows is tried, then the step is taken."""
    from chalice.test import Client
    from moto import mock_aws

    from app import app
    from chalicelib.cards.inventory import import_inventory
    from chalicelib.core.auth import Role, issue_token
    from chalicelib.core.settings import get_settings
    from chalicelib.local.bootstrap import create_resources, stop_executions
    from chalicelib.local.synthetic import inventory_rows

    explore = os.environ.get("CHEKA_FAULT_TABLE_EXPLORE") == "1"
    result = Table()
    began = time.perf_counter()

    def lap(what: str) -> None:
        if explore:
            print(f"\n{what}: {time.perf_counter() - began:.2f}s")

    with (
        pytest.MonkeyPatch.context() as mp,
        mock_aws(config={"stepfunctions": {"execute_state_machine": True}}),
    ):
        mp.setenv("CHEKA_SMS_RESEND_SECONDS", "0")
        deps.reset()
        lap("moto")
        create_resources(get_settings())
        lap("resources")
        rows = list(inventory_rows(1, seed=181))
        report = import_inventory(list(enumerate(rows, start=2)), deps.inventory_repo(), actor="test")
        assert report.errors == []
        token = issue_token(get_settings(), OWNER, [Role("owner")])
        me = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        photos = {DocumentKind.ID_FRONT: _jpeg(FRONT_WIDTH, 540, 1), DocumentKind.ID_BACK: _jpeg(860, 540, 2)}
        use_fake_engines(mp, identity_authority)
        lap("inventory and photos")
        with Client(app) as api:
            walk = Walk(api, me, rows[0]["vin"], photos=photos)
            for step in STEPS:
                if step.prepare is not None:
                    step.prepare(walk)
                after: dict[str, Any] | None = None  # a row's "after" is the next row's "before"
                clean: tuple[int, Any] | None = None  # the step's own run, once taken
                calls: set[str] = set()
                step_began = time.perf_counter()
                # Each fault once (an indexed one at the first matching call), then the indexed ones
                # at the second call, the third… until the step runs whole without meeting one.
                # A lost reply goes last of the first pass: the write it lands may complete the step.
                # (and before a fault the step may pass: that one completes it).
                first = sorted(step.faults, key=lambda f: _try_order(f, step))
                tries = [(f, 1 if f in INDEXED else None) for f in first]
                tries += [(f, 2) for f in step.faults if f in INDEXED]
                while tries and clean is None:
                    name, at = tries.pop(0)
                    fault = FAULTS[name]()
                    if at is not None:
                        fault.at = at
                    before = after if after is not None else snapshot()
                    calls = set()
                    step_began = time.perf_counter()
                    with injected(fault), recorded(calls):
                        status, body = step.act(walk)
                    if at is not None and at > 1 and fault.struck == 0:
                        clean = (status, body)  # no call left to fail: the step ran whole
                        break
                    stored = deps.registration_service().store.get(walk.reg_id) if walk.reg_id else None
                    outcome = Outcome(
                        status,
                        body,
                        fault.struck,
                        changed(before, after := snapshot()),
                        ROW_ANSWERS.get((name, step.name), fault.statuses),
                        stored.status.value if stored is not None else None,
                        fault.at,
                        fault.lands,
                        set(fault.landed),
                    )
                    result.outcomes.setdefault((name, step.name), []).append(outcome)
                    if explore:
                        row = f"{name}@{step.name}#{fault.at}"
                        print(f"  {row}: {status} struck={fault.struck} {str(body)[:160]}")
                        print(f"    changes: {outcome.changes}")
                    if step.settle is not None:
                        step.settle(walk)
                        after = None
                    if at is not None and at > 1:
                        if status in oks(step):  # taken despite the fault: the step is done
                            clean = (status, body)
                        elif at < MAX_INDEX:
                            tries.append((name, at + 1))
                if clean is None:
                    calls = set()
                    step_began = time.perf_counter()
                    with recorded(calls):
                        clean = step.act(walk)
                status, body = clean
                result.calls[step.name] = calls
                result.steps[step.name] = (status, body)
                if explore:
                    print(f"\n{step.name}: {status} {time.perf_counter() - step_began:.2f}s {sorted(calls)}")
                if status not in oks(step) and step.recover is not None:
                    result.recovered[step.name] = (status, body)
                    step.recover(walk)
                    status, body = step.act(walk)
                    result.steps[step.name] = (status, body)
                if status not in oks(step):
                    result.stopped = step.name
                    break
                lap(step.name)
        stop_executions(get_settings())
    deps.reset()
    return result


#: What a refused step may leave behind, by design (table short names, bucket prefixes): the car's head
#: unit shows its code before the code is recorded (the next send replaces it); the evidence log keeps
#: every check made (an authority or engine that could not answer included).
STEP_EFFECTS: dict[str, tuple[str, ...]] = {
    "head-unit-code": ("dev/head-unit/",),
    "face": ("evidence",),
}
#: The same for one row: an SMS code is stored and its send counted before the provider is asked (a
#: failed send still counts against the limits; the next send replaces the code); an ID read is kept
#: when the authority cannot check it (reading again asks again), the failed check in the evidence.
ROW_EFFECTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("s3-put", "sms-code"): ("sms-codes", "sms-limits", "sms-sends"),
    ("sms-down", "sms-code"): ("sms-codes", "sms-limits", "sms-sends"),
    ("store-throttled", "sms-code"): ("sms-codes", "sms-limits", "sms-sends"),
    ("store-throttled", "ocr-front"): ("evidence",),
    ("store-throttled", "ocr-back"): ("evidence",),
    # the consumer's claim on a push stays until its lease passes (the redelivered message takes it again)
    ("store-throttled", "push"): ("outbox",),
    ("authority-down", "ocr-front"): ("evidence", "flows"),
    # the photo's write landed (its reply lost): the clean copy it records stays with it
    ("store-lost-reply", "upload-front"): ("documents/",),
}
#: Rows whose documented answer is not the fault's default.
ROW_ANSWERS: dict[tuple[str, str], tuple[int, ...]] = {
    # the code was used by a concurrent request: "no code" (422) tells the person to ask for another
    ("store-changed", "phone"): (422,),
    # the send's limits are conditional on the counts: a refused condition is a limit reached (429)
    ("store-changed", "sms-code"): (429,),
    # the open-registrations count is conditional: a refused condition is read as the limit reached
    ("store-changed", "start"): (429,),
    # the claim lost to a concurrent change: answered with the registration as it stands (to submit)
    ("store-changed", "submit"): (299,),
}
#: Most matching calls one step is tried with a fault at (a bound on a loop that should end sooner).
MAX_INDEX = 30
#: Faults that still spend what the person had (known gaps, left open): strict, so a fix shows.
GAPS: dict[tuple[str, str], str] = {}
#: Rows whose refusal leaves a write behind that the step, taken again, completes (known half-writes,
#: left open): strict, so a fix shows.
HALF_WRITES: dict[tuple[str, str], str] = {}


def _gap_marks(fault: str, step: str) -> list[Any]:
    reason = GAPS.get((fault, step)) or HALF_WRITES.get((fault, step))
    return [pytest.mark.xfail(strict=True, reason=reason)] if reason else []


ROWS = [
    pytest.param(fault, step.name, id=f"{fault}-{step.name}", marks=_gap_marks(fault, step.name))
    for step in STEPS
    for fault in step.faults
]


#: A submission refused after its claim was taken leaves the claim (the registration and its flow marked
#: as being submitted) until the sweep settles it after its lease; refused before, it leaves nothing.
CLAIM_EFFECTS = ("registrations", "flows")


def allowed(fault: str, step: str, change: str, claimed: bool = False) -> bool:
    tokens = STEP_EFFECTS.get(step, ()) + ROW_EFFECTS.get((fault, step), ())
    tokens += CLAIM_EFFECTS if claimed else ()
    if change.startswith("table:"):
        return any(change.endswith(f"-{t}") for t in tokens)
    return any(change[1:].startswith(t) for t in tokens)


def test_the_walk_without_faults_completes(table: Table) -> None:
    assert table.stopped is None, (table.stopped, table.steps[table.stopped] if table.stopped else None)
    assert list(table.steps) == [s.name for s in STEPS]


@pytest.mark.parametrize(
    "step",
    [
        pytest.param(s.name, marks=[m for f, g in GAPS if g == s.name for m in _gap_marks(f, g)])
        for s in STEPS
    ],
)
def test_after_its_faults_the_step_succeeds(table: Table, step: str) -> None:
    """No fault poisons the step: taken again without it, it succeeds as it stands."""
    assert step in table.steps, f"the walk stopped at {table.stopped}"
    assert step not in table.recovered, table.recovered[step]


@pytest.mark.parametrize(("fault", "step"), ROWS)
def test_a_fault_gets_a_retryable_answer_and_leaves_the_store_as_it_was(
    table: Table, fault: str, step: str
) -> None:
    outcomes = table.outcomes.get((fault, step))
    assert step in table.steps, f"the walk stopped at {table.stopped} before {step}"
    assert outcomes, f"{fault} never met a call at {step}: {sorted(table.calls.get(step, ()))}"
    for outcome in outcomes:
        at = f"{fault} at call {outcome.at}"
        assert outcome.struck > 0, at
        assert outcome.status in outcome.allowed, (at, outcome.status, outcome.body)
        if outcome.status == 503 and step != "push":
            assert outcome.body["details"]["retry_after_seconds"] > 0, (at, outcome.body)
            assert outcome.body["message_zh"]
            assert outcome.body["message_en"]
        if outcome.status not in oks(next(s for s in STEPS if s.name == step)):
            # refused: nothing written but what the step documents (one that succeeded did its whole
            # work); a write whose reply was lost stays (the step, taken again, completes it)
            claimed = step == "submit" and outcome.registration == "submitting"
            unexpected = [c for c in outcome.changes if not allowed(fault, step, c, claimed)]
            if outcome.lands:  # only the tables the landed write named (a transaction's, all of them)
                assert outcome.landed, at
                unexpected = [c for c in unexpected if c.removeprefix("table:") not in outcome.landed]
            assert unexpected == [], (at, unexpected)
            if step == "submit":  # open again, or claimed until the sweep settles it
                assert outcome.registration in ("open", "submitting"), (at, outcome.registration)
