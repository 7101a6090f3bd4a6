"""The wire format of the operator push interface (车联网卡数据推送接口): the one module that knows it.

The operators' own interface text (《车联网卡数据推送接口技术方案》) is not public. This format follows
the shape of the Chinese operators' open-platform APIs: JSON bodies with ``appId``, an operator code,
``messageId``, a ``bizContent`` whose personal fields are encrypted, and a signature over method, path,
timestamp, nonce and body digest carried in headers. Swapping in an operator's real format means
rewriting this module only: the platform speaks ``PushMessage``/``OperatorCallback`` (``port``).

Headers (every request, both directions)::

    X-App-Id         the platform's application id at the operator
    X-Operator-Code  CMCC | CUCC | CTCC | CBN
    X-Key-Id         which version of the shared keys signed and encrypted the request
    X-Timestamp      milliseconds since the epoch
    X-Nonce          16-64 characters [0-9A-Za-z_-], never reused within the window
    X-Sign-Method    HMAC-SM3 | HMAC-SHA256 (must be the one agreed for the key: no downgrade)
    X-Signature      base64 HMAC of the canonical string (``signing.canonical_string``)

Push (platform → operator, ``POST {base}/open/v1/iot/realname/push``)::

    {"version": "1.0", "appId": "cheka", "operatorCode": "CMCC", "msgType": "REALNAME_REGISTER",
     "messageId": "…", "createTime": "2025-05-01T20:00:00.000000+08:00", "encryptMethod": "SM4-GCM",
     "bizContent": {"iccid": "…", "msisdn": "…",
                    "vehicle": {"vin": "…", "engineNo": "…", "brand": "…", "model": "…", "colour": "…"},
                    "holder": {"custType": "individual", "certType": "resident_id",
                               "custName": "<enc>", "certNum": "<enc>", "certAddr": "<enc>|null",
                               "contactPhone": "<enc>|null", "certExpireDate": "<enc>|null",
                               "respName": "<enc>|null", "respCertType": "…|null",
                               "respCertNum": "<enc>|null"} | null,
                    "holderIdHash": "…|null", "prevHolderHash": "…|null",
                    "functions": ["emergency", "telematics"]}}

``msgType``: ``REALNAME_REGISTER`` | ``REALNAME_CANCEL`` (de-registration) | ``REALNAME_TRANSFER`` |
``SPOT_CHECK_ANSWER`` (the OEM's answer to a spot check, 抽查 第十条: ``holder`` is null and
``bizContent`` carries ``"spotCheck": {"checkRef": "<the spot check's callbackId>", "verdict":
"CONFIRMED" | "DISCREPANCY", "note": "<enc>|null", "late": false, "dueTime": "…", "answerTime": "…"}``;
``late`` says the answer came after the deadline; the operator acknowledges it with an ``ACCEPTED``
result callback for the answer's ``messageId``) | ``ACTUAL_USER_CHANGE`` (实际使用人 of an enterprise's
card, 第九条(四): ``holder`` is the actual user — ``custType`` ``individual``, the name, ID and phone
encrypted as a holder's — and ``bizContent`` carries ``"actualUser": {"recordRef": "…", "validFrom":
"2025-05-01", "validTo": "…|null", "endedRef": "<the record this one ends>|null"}``; the card's
registration does not change; the operator answers ``ACCEPTED`` or ``REJECTED`` with a reason).
``functions`` is exactly what the card should have once accepted (最小必要, 第十四条). Each ``<enc>`` is
base64(12-byte nonce ‖ ciphertext ‖ 16-byte tag) under the platform→operator encryption key, with
associated data ``version|operatorCode|messageId|fieldName``: a value moved to another message or
field does not decrypt. ``holderIdHash``/``prevHolderHash`` are the platform's keyed hashes of the new
and the old holder's ID (never the number); the operator keeps the first with the card.

Answers: ``202 {"code": "ok", "messageId", "operatorRef", "duplicate": false}``; a repeated
``messageId`` gets ``200`` with ``duplicate: true``; a refusal ``4xx {"code", "message"}``.

Callback (operator → platform, ``POST {platform}/v1/operator/callbacks``)::

    {"version": "1.0", "appId": "cheka", "operatorCode": "CMCC", "callbackId": "…", "messageId": "…",
     "notifyType": "RESULT" | "SPOT_CHECK", "encryptMethod": "SM4-GCM", "encryptedContent": "<enc>"}

``encryptedContent`` (operator→platform encryption key, associated data
``version|operatorCode|callbackId|encryptedContent``) holds ``{"iccid", "result": "ACCEPTED" |
"REJECTED" | "SPOT_CHECK", "reasonCode", "reasonZh", "reasonEn", "functions", "decideTime"}``: which
card was refused and why says something about a person, so all of it is encrypted. A ``SPOT_CHECK``
(抽查, 第十条) names the registering push's ``messageId`` and may carry ``"answerBy"`` (the deadline of
the OEM's answer; absent, the platform's ``spot_check_answer_days`` apply).

Status query (platform → operator, ``GET {base}/open/v1/iot/realname/status?messageId=…``, signed over
the path with its query and an empty body), for a push whose callback never came::

    {"code": "ok", "operatorCode": "CMCC", "messageId": "…", "status": "UNKNOWN" | "RECEIVED" | "DECIDED",
     "result": <the decision's callback body, as above> | null}

``UNKNOWN``: the operator never received the message; ``RECEIVED``: not decided yet; ``DECIDED``:
``result`` is the callback the operator sent (or would send), with its ``callbackId``: the platform
applies it as it applies a callback, so a late callback is a duplicate.

Listing (platform → operator, ``GET {base}/open/v1/iot/realname/cards?cursor=…&limit=…``, signed over
the path with its query and an empty body)::

    {"code": "ok", "operatorCode": "CMCC", "nextCursor": "…|null",
     "records": [{"iccid", "state": "registered|deregistered", "holderIdHash", "functions", "messageId",
                  "updateTime"}]}

``holderIdHash`` is the one the registering push carried: the platform compares it with its own, and
the operator never needs the platform's hashing key.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlencode, urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher as CryptoCipher
from cryptography.hazmat.primitives.ciphers import algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from chalicelib.cards.domain.inventory import CardFunction
from chalicelib.cards.domain.lifecycle import PushKind
from chalicelib.kernel.clock import CHINA
from chalicelib.kernel.operators import Operator
from chalicelib.operators import signing
from chalicelib.operators.domain.messages import (
    ActualUserPeriod,
    CallbackOutcome,
    OperatorCallback,
    OperatorCardRecord,
    OperatorCardState,
    PushCard,
    PushHolder,
    PushMessage,
    PushReceipt,
    PushStatus,
    PushStatusState,
    PushVehicle,
    SpotCheckAnswer,
)
from chalicelib.operators.keys import Cipher, Direction, OperatorKeys, OperatorKeysUnavailable
from chalicelib.operators.ports import OperatorKeySource
from chalicelib.operators.signing import DEFAULT_WINDOW_SECONDS, SignatureError

WIRE_VERSION = "1.0"


PUSH_PATH = "/open/v1/iot/realname/push"


LISTING_PATH = "/open/v1/iot/realname/cards"


#: The status query of one message (a push whose callback never came).
STATUS_PATH = "/open/v1/iot/realname/status"


#: Where the operator sends callbacks on the platform (the path is part of what is signed).
CALLBACK_PATH = "/v1/operator/callbacks"


CONTENT_TYPE = "application/json; charset=utf-8"


H_APP_ID = "X-App-Id"


H_OPERATOR = "X-Operator-Code"


H_KEY_ID = "X-Key-Id"


H_TIMESTAMP = "X-Timestamp"


H_NONCE = "X-Nonce"


H_SIGN_METHOD = "X-Sign-Method"


H_SIGNATURE = "X-Signature"


OPERATOR_CODES: dict[Operator, str] = {
    Operator.CHINA_MOBILE: "CMCC",
    Operator.CHINA_UNICOM: "CUCC",
    Operator.CHINA_TELECOM: "CTCC",
    Operator.CHINA_BROADNET: "CBN",
}


_OPERATORS_BY_CODE = {code: op for op, code in OPERATOR_CODES.items()}


_MSG_TYPES: dict[PushKind, str] = {
    PushKind.REGISTER: "REALNAME_REGISTER",
    PushKind.DEREGISTER: "REALNAME_CANCEL",
    PushKind.TRANSFER: "REALNAME_TRANSFER",
    PushKind.SPOT_CHECK_ANSWER: "SPOT_CHECK_ANSWER",
    PushKind.ACTUAL_USER: "ACTUAL_USER_CHANGE",
}


_KINDS_BY_MSG_TYPE = {v: k for k, v in _MSG_TYPES.items()}


_NONCE_BYTES = 12


_TAG_BYTES = 16


_M = TypeVar("_M", bound=BaseModel)


class WireError(Exception):
    """A body that cannot be read: ``malformed`` (shape, version, fields) or ``undecryptable``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class WireRequest:
    """One HTTP request ready to send: ``path`` is the request target (path and query) that was signed."""

    method: str
    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class _Wire(BaseModel):
    # Unknown fields are ignored: an operator may add fields without breaking the reader.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")


class _WireVehicle(_Wire):
    vin: str
    engine_no: str
    brand: str
    model: str
    colour: str


class _WireHolder(_Wire):
    cust_type: str
    cert_type: str
    cust_name: str
    cert_num: str
    cert_addr: str | None = None
    contact_phone: str | None = None
    cert_expire_date: str | None = None
    resp_name: str | None = None
    resp_cert_type: str | None = None
    resp_cert_num: str | None = None


class _WireSpotCheck(_Wire):
    check_ref: str
    verdict: str
    note: str | None = None
    late: bool = False
    due_time: str
    answer_time: str


class _WireActualUser(_Wire):
    record_ref: str
    valid_from: str
    valid_to: str | None = None
    ended_ref: str | None = None


class _WirePushContent(_Wire):
    iccid: str
    msisdn: str
    vehicle: _WireVehicle
    holder: _WireHolder | None = None
    holder_id_hash: str | None = None
    prev_holder_hash: str | None = None
    functions: list[str]
    spot_check: _WireSpotCheck | None = None
    actual_user: _WireActualUser | None = None


class _WirePush(_Wire):
    version: str
    app_id: str
    operator_code: str
    msg_type: str
    message_id: str
    create_time: str
    encrypt_method: str
    biz_content: _WirePushContent


class _WireCallbackContent(_Wire):
    iccid: str
    result: str
    reason_code: str | None = None
    reason_zh: str | None = None
    reason_en: str | None = None
    functions: list[str] = []
    decide_time: str
    answer_by: str | None = None


class _WireCallback(_Wire):
    version: str
    app_id: str
    operator_code: str
    callback_id: str
    message_id: str
    notify_type: str
    encrypt_method: str
    encrypted_content: str


class _WireReceipt(_Wire):
    code: str
    message: str = ""
    message_id: str
    operator_ref: str
    duplicate: bool = False


class _WireStatus(_Wire):
    code: str
    operator_code: str
    message_id: str
    status: str
    result: _WireCallback | None = None


class _WireCardRecord(_Wire):
    iccid: str
    state: str
    holder_id_hash: str | None = None
    functions: list[str] = []
    message_id: str | None = None
    update_time: str


class _WireListing(_Wire):
    code: str
    operator_code: str
    records: list[_WireCardRecord]
    next_cursor: str | None = None


#: PushHolder attribute → wire name, for the personal fields (encrypted).
_PERSONAL_FIELDS: dict[str, str] = {
    "name": "cust_name",
    "id_number": "cert_num",
    "address": "cert_addr",
    "phone": "contact_phone",
    "id_valid_until": "cert_expire_date",
    "responsible_name": "resp_name",
    "responsible_id_number": "resp_cert_num",
}


#: PushHolder attribute → wire name, for the fields sent in clear (document types, holder kind).
_CLEAR_FIELDS: dict[str, str] = {
    "kind": "cust_type",
    "id_type": "cert_type",
    "responsible_id_type": "resp_cert_type",
}


def _dumps(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def _wire_time(moment: datetime) -> str:
    return moment.astimezone(CHINA).isoformat(timespec="microseconds")


def _parse_time(text: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise WireError("malformed", f"{name} is not an ISO-8601 time") from None
    if moment.tzinfo is None:
        raise WireError("malformed", f"{name} has no UTC offset")
    return moment


def encrypt(cipher: Cipher, key: bytes, nonce: bytes, aad: bytes, plaintext: bytes) -> bytes:
    """AEAD encryption: ciphertext ‖ 16-byte tag (SM4-GCM as in RFC 8998, or AES-256-GCM)."""
    if cipher is Cipher.AES_256_GCM:
        return AESGCM(key).encrypt(nonce, plaintext, aad)
    enc = CryptoCipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    enc.authenticate_additional_data(aad)
    return enc.update(plaintext) + enc.finalize() + enc.tag


def decrypt(cipher: Cipher, key: bytes, nonce: bytes, aad: bytes, data: bytes) -> bytes:
    """Inverse of :func:`encrypt`; raises ``cryptography.exceptions.InvalidTag`` on any tampering."""
    if cipher is Cipher.AES_256_GCM:
        return AESGCM(key).decrypt(nonce, data, aad)
    if len(data) < _TAG_BYTES:
        raise InvalidTag
    dec = CryptoCipher(algorithms.SM4(key), modes.GCM(nonce, data[-_TAG_BYTES:])).decryptor()
    dec.authenticate_additional_data(aad)
    return dec.update(data[:-_TAG_BYTES]) + dec.finalize()


def seal(cipher: Cipher, key: bytes, aad: str, text: str) -> str:
    nonce = os.urandom(_NONCE_BYTES)
    return base64.b64encode(nonce + encrypt(cipher, key, nonce, aad.encode(), text.encode())).decode()


def unseal(cipher: Cipher, key: bytes, aad: str, sealed: str) -> str:
    try:
        raw = base64.b64decode(sealed, validate=True)
        if len(raw) < _NONCE_BYTES + _TAG_BYTES:
            raise InvalidTag
        return decrypt(cipher, key, raw[:_NONCE_BYTES], aad.encode(), raw[_NONCE_BYTES:]).decode()
    except (binascii.Error, ValueError, InvalidTag):
        raise WireError("undecryptable", "an encrypted field does not decrypt with the agreed key") from None


def sign_headers(
    keys: OperatorKeys,
    direction: Direction,
    *,
    method: str,
    path: str,
    body: bytes,
    now: datetime,
    nonce: str | None = None,
) -> dict[str, str]:
    """The authentication headers of one request from the ``direction`` side."""
    timestamp = signing.timestamp_ms(now)
    nonce = nonce or signing.new_nonce()
    signature = signing.sign(
        keys.sign_method,
        keys.direction(direction).signing_key,
        method=method,
        path=path,
        timestamp=timestamp,
        nonce=nonce,
        body=body,
    )
    return {
        H_APP_ID: keys.app_id,
        H_OPERATOR: OPERATOR_CODES[keys.operator],
        H_KEY_ID: keys.key_id,
        H_TIMESTAMP: timestamp,
        H_NONCE: nonce,
        H_SIGN_METHOD: keys.sign_method.value,
        H_SIGNATURE: signature,
    }


def authenticate(
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str,
    path: str,
    source: OperatorKeySource,
    direction: Direction,
    now: datetime,
    seen_nonce: Callable[[str], bool],
    window_seconds: int = DEFAULT_WINDOW_SECONDS,
) -> OperatorKeys:
    """Check a received request's headers and signature; answer the keys it was made with.

    ``direction`` is the sender's (``TO_PLATFORM`` for a callback). Raises ``SignatureError``.
    """
    lowered = {k.lower(): v for k, v in headers.items()}

    def need(name: str) -> str:
        value = lowered.get(name.lower())
        if not value:
            raise SignatureError("missing_auth", f"header {name} is missing")
        return value

    code = need(H_OPERATOR)
    operator = _OPERATORS_BY_CODE.get(code)
    if operator is None:
        raise SignatureError("unknown_operator", "unknown operator code")
    key_id = need(H_KEY_ID)
    try:
        keys = source.find(operator, key_id)
    except OperatorKeysUnavailable:
        raise SignatureError("unknown_operator", "no keys are configured for this operator") from None
    if keys is None:
        raise SignatureError("unknown_key", "the key id is not current nor previous")
    if need(H_APP_ID) != keys.app_id:
        raise SignatureError("unknown_app", "unknown application id")
    if need(H_SIGN_METHOD) != keys.sign_method.value:
        raise SignatureError("sign_method_mismatch", f"this key signs with {keys.sign_method.value}")
    signing.verify(
        keys.sign_method,
        keys.direction(direction).signing_key,
        method=method,
        path=path,
        timestamp=need(H_TIMESTAMP),
        nonce=need(H_NONCE),
        body=body,
        signature=need(H_SIGNATURE),
        now=now,
        seen_nonce=seen_nonce,
        nonce_scope=operator.value,
        window_seconds=window_seconds,
    )
    return keys


def refusal_status(code: str) -> int:
    """The HTTP status a receiver answers a refused request with, by ``SignatureError``/``WireError``
    code: a replayed nonce 409 (this exact request was received), an unreadable body 400, the rest 401."""
    if code == "replayed_nonce":
        return 409
    if code in ("malformed", "undecryptable"):
        return 400
    return 401


def check_envelope(
    version: str, operator_code: str, app_id: str, encrypt_method: str, keys: OperatorKeys
) -> str:
    """The body's envelope agrees with the keys that authenticated the request: wire version, operator,
    application and encryption method. Answers the operator code; raises ``WireError``."""
    code = OPERATOR_CODES[keys.operator]
    if version != WIRE_VERSION:
        raise WireError("malformed", f"version {version!r} is not {WIRE_VERSION}")
    if operator_code != code:
        raise WireError("malformed", "operatorCode does not match the signing operator")
    if app_id != keys.app_id:
        raise WireError("malformed", "appId does not match the signing application")
    if encrypt_method != keys.cipher.value:
        raise WireError("malformed", f"encryptMethod must be {keys.cipher.value}")
    return code


def _signed(
    keys: OperatorKeys, direction: Direction, method: str, path: str, body: bytes, now: datetime
) -> WireRequest:
    headers = sign_headers(keys, direction, method=method, path=path, body=body, now=now)
    if body:
        headers["Content-Type"] = CONTENT_TYPE
    return WireRequest(method=method, path=path, body=body, headers=headers)


def _push_aad(code: str, message_id: str, wire_name: str) -> str:
    return f"{WIRE_VERSION}|{code}|{message_id}|{to_camel(wire_name)}"


def encode_push_body(message: PushMessage, keys: OperatorKeys) -> bytes:
    if message.card.operator is not keys.operator:
        raise ValueError(
            f"card of {message.card.operator.value} pushed with the keys of {keys.operator.value}"
        )
    code = OPERATOR_CODES[keys.operator]
    enc_key = keys.to_operator.encryption_key
    holder: dict[str, Any] | None = None
    if message.holder is not None:
        holder = {}
        for attr, wire_name in _CLEAR_FIELDS.items():
            value = getattr(message.holder, attr)
            holder[wire_name] = None if value is None else str(value)
        for attr, wire_name in _PERSONAL_FIELDS.items():
            value = getattr(message.holder, attr)
            aad = _push_aad(code, message.message_id, wire_name)
            holder[wire_name] = None if value is None else seal(keys.cipher, enc_key, aad, value)
    vehicle = message.vehicle
    wire = _WirePush(
        version=WIRE_VERSION,
        app_id=keys.app_id,
        operator_code=code,
        msg_type=_MSG_TYPES[message.kind],
        message_id=message.message_id,
        create_time=_wire_time(message.created_at),
        encrypt_method=keys.cipher.value,
        biz_content=_WirePushContent(
            iccid=message.card.iccid,
            msisdn=message.card.msisdn,
            vehicle=_WireVehicle(
                vin=vehicle.vin,
                engine_no=vehicle.engine_no,
                brand=vehicle.brand,
                model=vehicle.model,
                colour=vehicle.colour,
            ),
            holder=None if holder is None else _WireHolder.model_validate(holder),
            holder_id_hash=message.holder_id_hash,
            prev_holder_hash=message.previous_holder_id_hash,
            functions=[f.value for f in message.functions],
            spot_check=_spot_check_wire(message, keys, code),
            actual_user=_actual_user_wire(message),
        ),
    )
    doc = wire.model_dump(by_alias=True, mode="json")
    if doc["bizContent"]["spotCheck"] is None:
        del doc["bizContent"]["spotCheck"]  # only a spot check's answer carries it
    if doc["bizContent"]["actualUser"] is None:
        del doc["bizContent"]["actualUser"]  # only an actual user's push carries it
    return _dumps(doc)


def _actual_user_wire(message: PushMessage) -> _WireActualUser | None:
    period = message.actual_user
    if period is None:
        return None
    return _WireActualUser(
        record_ref=period.record_ref,
        valid_from=period.valid_from.isoformat(),
        valid_to=period.valid_to.isoformat() if period.valid_to else None,
        ended_ref=period.ended_ref,
    )


def _actual_user_of(content: _WireActualUser) -> ActualUserPeriod:
    return _model(
        ActualUserPeriod,
        {
            "record_ref": content.record_ref,
            "valid_from": content.valid_from,
            "valid_to": content.valid_to,
            "ended_ref": content.ended_ref,
        },
    )


_SPOT_CHECK_NOTE = "spot_check_note"


def _spot_check_wire(message: PushMessage, keys: OperatorKeys, code: str) -> _WireSpotCheck | None:
    answer = message.spot_check
    if answer is None:
        return None
    aad = _push_aad(code, message.message_id, _SPOT_CHECK_NOTE)
    note = (
        None if answer.note is None else seal(keys.cipher, keys.to_operator.encryption_key, aad, answer.note)
    )
    return _WireSpotCheck(
        check_ref=answer.check_ref,
        verdict=answer.verdict.value.upper(),
        note=note,
        late=answer.late,
        due_time=_wire_time(answer.due_at),
        answer_time=_wire_time(answer.answered_at),
    )


def _spot_check_of(
    content: _WireSpotCheck, keys: OperatorKeys, code: str, message_id: str
) -> SpotCheckAnswer:
    aad = _push_aad(code, message_id, _SPOT_CHECK_NOTE)
    note = (
        None
        if content.note is None
        else unseal(keys.cipher, keys.to_operator.encryption_key, aad, content.note)
    )
    return _model(
        SpotCheckAnswer,
        {
            "check_ref": content.check_ref,
            "verdict": content.verdict.lower(),
            "note": note,
            "late": content.late,
            "due_at": _parse_time(content.due_time, "dueTime"),
            "answered_at": _parse_time(content.answer_time, "answerTime"),
        },
    )


def encode_push(
    message: PushMessage, keys: OperatorKeys, *, now: datetime, path: str = PUSH_PATH
) -> WireRequest:
    """The signed request that delivers ``message`` (``path``: the push path, after any base-URL prefix)."""
    return _signed(keys, Direction.TO_OPERATOR, "POST", path, encode_push_body(message, keys), now)


def decode_push(body: bytes, keys: OperatorKeys) -> PushMessage:
    """The operator's reading of an authenticated push (the sandbox uses it). Raises ``WireError``."""
    try:
        wire = _WirePush.model_validate_json(body)
    except ValidationError as exc:
        raise WireError("malformed", _first_error(exc)) from None
    code = check_envelope(wire.version, wire.operator_code, wire.app_id, wire.encrypt_method, keys)
    kind = _KINDS_BY_MSG_TYPE.get(wire.msg_type)
    if kind is None:
        raise WireError("malformed", f"unknown msgType {wire.msg_type!r}")
    content = wire.biz_content
    holder: PushHolder | None = None
    if content.holder is not None:
        values: dict[str, Any] = {}
        for attr, wire_name in _CLEAR_FIELDS.items():
            values[attr] = getattr(content.holder, wire_name)
        for attr, wire_name in _PERSONAL_FIELDS.items():
            sealed = getattr(content.holder, wire_name)
            aad = _push_aad(code, wire.message_id, wire_name)
            values[attr] = (
                None if sealed is None else unseal(keys.cipher, keys.to_operator.encryption_key, aad, sealed)
            )
        holder = _model(PushHolder, values)
    spot_check = None
    if content.spot_check is not None:
        spot_check = _spot_check_of(content.spot_check, keys, code, wire.message_id)
    if (kind is PushKind.SPOT_CHECK_ANSWER) != (spot_check is not None):
        raise WireError("malformed", "spotCheck comes with a SPOT_CHECK_ANSWER, and only with it")
    actual_user = None if content.actual_user is None else _actual_user_of(content.actual_user)
    if (kind is PushKind.ACTUAL_USER) != (actual_user is not None):
        raise WireError("malformed", "actualUser comes with an ACTUAL_USER_CHANGE, and only with it")
    return _model(
        PushMessage,
        {
            "message_id": wire.message_id,
            "kind": kind,
            "card": PushCard(iccid=content.iccid, msisdn=content.msisdn, operator=keys.operator),
            "vehicle": _model(PushVehicle, content.vehicle.model_dump()),
            "holder": holder,
            "previous_holder_id_hash": content.prev_holder_hash,
            "holder_id_hash": content.holder_id_hash,
            "functions": content.functions,
            "created_at": _parse_time(wire.create_time, "createTime"),
            "spot_check": spot_check,
            "actual_user": actual_user,
        },
    )


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "body"
    return f"{where}: {err['msg']}"


def _model(cls: type[_M], values: Mapping[str, Any]) -> _M:
    try:
        return cls.model_validate(values)
    except ValidationError as exc:
        raise WireError("malformed", _first_error(exc)) from None


def encode_receipt(receipt: PushReceipt) -> bytes:
    wire = _WireReceipt(
        code="ok",
        message="duplicate" if receipt.duplicate else "accepted",
        message_id=receipt.message_id,
        operator_ref=receipt.operator_ref,
        duplicate=receipt.duplicate,
    )
    return _dumps(wire.model_dump(by_alias=True, mode="json"))


def decode_receipt(body: bytes, message_id: str) -> PushReceipt:
    try:
        wire = _WireReceipt.model_validate_json(body)
    except ValidationError as exc:
        raise WireError("malformed", _first_error(exc)) from None
    if wire.code != "ok":
        raise WireError("malformed", f"receipt code {wire.code!r}")
    if wire.message_id != message_id:
        raise WireError("malformed", "the receipt names another message")
    return PushReceipt(message_id=wire.message_id, operator_ref=wire.operator_ref, duplicate=wire.duplicate)


def encode_error(code: str, message: str) -> bytes:
    return _dumps({"code": code, "message": message})


def decode_error(body: bytes, status: int) -> tuple[str, str]:
    """``(code, message)`` of a refusal; ``http_<status>`` when the body says nothing usable."""
    try:
        doc = json.loads(body)
        code, message = doc.get("code"), doc.get("message")
        if isinstance(code, str) and code:
            return code, message if isinstance(message, str) else ""
    except (ValueError, AttributeError):
        pass
    return f"http_{status}", body[:200].decode("utf-8", "replace")


def _callback_aad(code: str, callback_id: str) -> str:
    return f"{WIRE_VERSION}|{code}|{callback_id}|encryptedContent"


def encode_callback_body(callback: OperatorCallback, keys: OperatorKeys) -> bytes:
    if callback.operator is not keys.operator:
        raise ValueError("callback encoded with another operator's keys")
    code = OPERATOR_CODES[keys.operator]
    content = _WireCallbackContent(
        iccid=callback.iccid,
        result=callback.outcome.value.upper(),
        reason_code=callback.reason_code,
        reason_zh=callback.reason_zh,
        reason_en=callback.reason_en,
        functions=[f.value for f in callback.functions],
        decide_time=_wire_time(callback.decided_at),
        answer_by=None if callback.answer_by is None else _wire_time(callback.answer_by),
    )
    content_doc = content.model_dump(by_alias=True, mode="json")
    if content_doc["answerBy"] is None:
        del content_doc["answerBy"]  # only a spot check may name a deadline
    sealed = seal(
        keys.cipher,
        keys.to_platform.encryption_key,
        _callback_aad(code, callback.callback_id),
        _dumps(content_doc).decode(),
    )
    wire = _WireCallback(
        version=WIRE_VERSION,
        app_id=keys.app_id,
        operator_code=code,
        callback_id=callback.callback_id,
        message_id=callback.message_id,
        notify_type="SPOT_CHECK" if callback.outcome is CallbackOutcome.SPOT_CHECK else "RESULT",
        encrypt_method=keys.cipher.value,
        encrypted_content=sealed,
    )
    return _dumps(wire.model_dump(by_alias=True, mode="json"))


def encode_callback(
    callback: OperatorCallback, keys: OperatorKeys, *, now: datetime, path: str = CALLBACK_PATH
) -> WireRequest:
    """The signed request the operator sends to the platform's callback endpoint."""
    return _signed(keys, Direction.TO_PLATFORM, "POST", path, encode_callback_body(callback, keys), now)


def decode_callback(body: bytes, keys: OperatorKeys) -> OperatorCallback:
    """The platform's reading of an authenticated callback. Raises ``WireError``."""
    try:
        wire = _WireCallback.model_validate_json(body)
    except ValidationError as exc:
        raise WireError("malformed", _first_error(exc)) from None
    return _callback_of(wire, keys)


def _callback_of(wire: _WireCallback, keys: OperatorKeys) -> OperatorCallback:
    code = check_envelope(wire.version, wire.operator_code, wire.app_id, wire.encrypt_method, keys)
    text = unseal(
        keys.cipher,
        keys.to_platform.encryption_key,
        _callback_aad(code, wire.callback_id),
        wire.encrypted_content,
    )
    try:
        content = _WireCallbackContent.model_validate_json(text)
    except ValidationError as exc:
        raise WireError("malformed", _first_error(exc)) from None
    try:
        outcome = CallbackOutcome(content.result.lower())
    except ValueError:
        raise WireError("malformed", f"unknown result {content.result!r}") from None
    expected_notify = "SPOT_CHECK" if outcome is CallbackOutcome.SPOT_CHECK else "RESULT"
    if wire.notify_type != expected_notify:
        raise WireError("malformed", "notifyType does not agree with the result")
    return _model(
        OperatorCallback,
        {
            "callback_id": wire.callback_id,
            "message_id": wire.message_id,
            "operator": keys.operator,
            "iccid": content.iccid,
            "outcome": outcome,
            "reason_code": content.reason_code,
            "reason_zh": content.reason_zh,
            "reason_en": content.reason_en,
            "functions": content.functions,
            "decided_at": _parse_time(content.decide_time, "decideTime"),
            "answer_by": None if content.answer_by is None else _parse_time(content.answer_by, "answerBy"),
        },
    )


def status_target(message_id: str, *, prefix: str = "") -> str:
    """The request target of one status query (what is signed)."""
    return f"{prefix.rstrip('/')}{STATUS_PATH}?{urlencode({'messageId': message_id})}"


def encode_status_request(
    keys: OperatorKeys, message_id: str, *, now: datetime, prefix: str = ""
) -> WireRequest:
    return _signed(keys, Direction.TO_OPERATOR, "GET", status_target(message_id, prefix=prefix), b"", now)


def parse_status_target(target: str) -> str:
    """The ``messageId`` a status query asks about. Raises ``WireError``."""
    values = parse_qs(urlsplit(target).query).get("messageId", [])
    if len(values) != 1 or not 8 <= len(values[0]) <= 64:
        raise WireError("malformed", "messageId: one message id of 8-64 characters")
    return values[0]


def encode_status(status: PushStatus, keys: OperatorKeys) -> bytes:
    """The operator's answer to a status query (the decision sealed as its callback is)."""
    result = None
    if status.decision is not None:
        result = json.loads(encode_callback_body(status.decision, keys))
    doc = {
        "code": "ok",
        "operatorCode": OPERATOR_CODES[keys.operator],
        "messageId": status.message_id,
        "status": status.state.value.upper(),
        "result": result,
    }
    return _dumps(doc)


def decode_status(body: bytes, message_id: str, keys: OperatorKeys) -> PushStatus:
    """The platform's reading of a status answer. Raises ``WireError``."""
    try:
        wire = _WireStatus.model_validate_json(body)
    except ValidationError as exc:
        raise WireError("malformed", _first_error(exc)) from None
    if wire.code != "ok" or wire.operator_code != OPERATOR_CODES[keys.operator]:
        raise WireError("malformed", "the status answer is not this operator's")
    if wire.message_id != message_id:
        raise WireError("malformed", "the status answer names another message")
    try:
        state = PushStatusState(wire.status.lower())
    except ValueError:
        raise WireError("malformed", f"unknown status {wire.status!r}") from None
    decision = None
    if state is PushStatusState.DECIDED:
        if wire.result is None:
            raise WireError("malformed", "a decided message comes with its result")
        decision = _callback_of(wire.result, keys)
        if decision.message_id != message_id or decision.outcome is CallbackOutcome.SPOT_CHECK:
            raise WireError("malformed", "the result is not this message's decision")
    return PushStatus(message_id=message_id, operator=keys.operator, state=state, decision=decision)


def new_callback_id() -> str:
    return f"cb{secrets.token_hex(15)}"


def listing_target(cursor: str | None, limit: int, *, prefix: str = "") -> str:
    """The request target of one listing page (what is signed)."""
    query = {"limit": str(limit)}
    if cursor:
        query["cursor"] = cursor
    return f"{prefix.rstrip('/')}{LISTING_PATH}?{urlencode(sorted(query.items()))}"


def encode_listing_request(
    keys: OperatorKeys, cursor: str | None, limit: int, *, now: datetime, prefix: str = ""
) -> WireRequest:
    return _signed(keys, Direction.TO_OPERATOR, "GET", listing_target(cursor, limit, prefix=prefix), b"", now)


def parse_listing_target(target: str, *, max_limit: int = 1000) -> tuple[str | None, int]:
    """``(cursor, limit)`` of a listing request target. Raises ``WireError``."""
    query = parse_qs(urlsplit(target).query)
    cursor = query.get("cursor", [None])[0]
    try:
        limit = int(query.get("limit", ["100"])[0])
    except ValueError:
        raise WireError("malformed", "limit must be an integer") from None
    if not 1 <= limit <= max_limit:
        raise WireError("malformed", f"limit must be 1-{max_limit}")
    return cursor, limit


def encode_listing(
    operator: Operator, records: Sequence[OperatorCardRecord], next_cursor: str | None
) -> bytes:
    wire = _WireListing(
        code="ok",
        operator_code=OPERATOR_CODES[operator],
        next_cursor=next_cursor,
        records=[
            _WireCardRecord(
                iccid=r.iccid,
                state=r.state.value,
                holder_id_hash=r.holder_id_hash,
                functions=[f.value for f in r.functions],
                message_id=r.message_id,
                update_time=_wire_time(r.updated_at),
            )
            for r in records
        ],
    )
    return _dumps(wire.model_dump(by_alias=True, mode="json"))


def decode_listing(body: bytes, operator: Operator) -> tuple[list[OperatorCardRecord], str | None]:
    try:
        wire = _WireListing.model_validate_json(body)
    except ValidationError as exc:
        raise WireError("malformed", _first_error(exc)) from None
    if wire.code != "ok" or wire.operator_code != OPERATOR_CODES[operator]:
        raise WireError("malformed", "the listing is not this operator's")
    records = []
    for r in wire.records:
        try:
            state = OperatorCardState(r.state)
            functions = [CardFunction(f) for f in r.functions]
        except ValueError as exc:
            raise WireError("malformed", str(exc)) from None
        records.append(
            OperatorCardRecord(
                operator=operator,
                iccid=r.iccid,
                state=state,
                holder_id_hash=r.holder_id_hash,
                functions=functions,
                message_id=r.message_id,
                updated_at=_parse_time(r.update_time, "updateTime"),
            )
        )
    return records, wire.next_cursor
