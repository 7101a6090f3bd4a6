"""The wire format of the operator push: encryption, push and callback bodies, receipts, listings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.exceptions import InvalidTag

from chalicelib.cards.domain.inventory import CardFunction
from chalicelib.cards.domain.lifecycle import PushKind
from chalicelib.cards.domain.limits import HolderKind
from chalicelib.kernel.operators import Operator
from chalicelib.operators import wire
from chalicelib.operators.domain.messages import (
    CallbackOutcome,
    OperatorCallback,
    OperatorCardRecord,
    OperatorCardState,
    PushCard,
    PushHolder,
    PushMessage,
    PushReceipt,
    PushVehicle,
)
from chalicelib.operators.keys import (
    Cipher,
    Direction,
    OperatorKeys,
    OperatorKeysUnavailable,
    generate_operator_keys,
)
from chalicelib.operators.signing import NonceCache, SignatureError, SignMethod
from tests.fakes.operators import StaticKeySource

NOW = datetime(2025, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
ID_NUMBER = "11010519491231002X"


def _keys(operator: Operator = Operator.CHINA_MOBILE, **kw: object) -> OperatorKeys:
    return generate_operator_keys(operator, **kw)  # type: ignore[arg-type]


def _individual() -> PushHolder:
    return PushHolder(
        kind=HolderKind.INDIVIDUAL,
        name="张三丰",
        id_type="resident_id",
        id_number=ID_NUMBER,
        address="北京市东城区景山前街4号",
        phone="13800138000",
        id_valid_until="2035-01-01",
    )


def _message(
    kind: PushKind = PushKind.REGISTER, holder: PushHolder | None = None, **kw: object
) -> PushMessage:
    values: dict[str, object] = {
        "message_id": "outbox-000001",
        "kind": kind,
        "card": PushCard(
            iccid="89860012345678901234", msisdn="1440012345678", operator=Operator.CHINA_MOBILE
        ),
        "vehicle": PushVehicle(
            vin="JHMCM56557C404453", engine_no="K20A123", brand="红旗", model="H9", colour="黑"
        ),
        "holder": holder if holder is not None or kind is PushKind.DEREGISTER else _individual(),
        "functions": [CardFunction.EMERGENCY, CardFunction.TELEMATICS],
        "created_at": NOW,
    }
    if kind is not PushKind.DEREGISTER:
        values["holder_id_hash"] = "platform-hash-of-the-holder"
    values.update(kw)
    return PushMessage.model_validate(values)


# --------------------------------------------------------------------------- encryption


def test_sm4_gcm_matches_rfc_8998_test_vector():
    key = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    nonce = bytes.fromhex("00001234567800000000ABCD")
    aad = bytes.fromhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2")
    plaintext = bytes.fromhex("".join(c * 16 for c in "ABCDEFEA"))
    expected = (
        "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735"
        "D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D"
        "83DE3541E4C2B58177E065A9BF7B62EC"
    )
    sealed = wire.encrypt(Cipher.SM4_GCM, key, nonce, aad, plaintext)
    assert sealed.hex().upper() == expected
    assert wire.decrypt(Cipher.SM4_GCM, key, nonce, aad, sealed) == plaintext


@pytest.mark.parametrize("cipher", list(Cipher))
def test_tampering_is_detected(cipher: Cipher):
    key = bytes(range(32))[: 16 if cipher is Cipher.SM4_GCM else 32]
    sealed = bytearray(wire.encrypt(cipher, key, b"n" * 12, b"aad", b"secret"))
    sealed[0] ^= 1
    with pytest.raises(InvalidTag):
        wire.decrypt(cipher, key, b"n" * 12, b"aad", bytes(sealed))
    with pytest.raises(InvalidTag):
        wire.decrypt(cipher, key, b"n" * 12, b"other aad", wire.encrypt(cipher, key, b"n" * 12, b"aad", b"x"))


def test_seal_uses_a_fresh_nonce_every_time():
    keys = _keys()
    key = keys.to_operator.encryption_key
    assert wire.seal(keys.cipher, key, "a", "张三") != wire.seal(keys.cipher, key, "a", "张三")
    assert wire.unseal(keys.cipher, key, "a", wire.seal(keys.cipher, key, "a", "张三")) == "张三"
    with pytest.raises(wire.WireError) as err:
        wire.unseal(keys.cipher, key, "a", "not base64!")
    assert err.value.code == "undecryptable"


# --------------------------------------------------------------------------- push


@pytest.mark.parametrize(
    ("sign_method", "cipher"),
    [(SignMethod.HMAC_SM3, Cipher.SM4_GCM), (SignMethod.HMAC_SHA256, Cipher.AES_256_GCM)],
)
def test_push_round_trips(sign_method: SignMethod, cipher: Cipher):
    keys = _keys(sign_method=sign_method, cipher=cipher)
    message = _message()
    request = wire.encode_push(message, keys, now=NOW)
    assert (request.method, request.path) == ("POST", wire.PUSH_PATH)
    assert wire.decode_push(request.body, keys) == message


def test_enterprise_push_round_trips_with_the_responsible_person():
    keys = _keys()
    holder = PushHolder(
        kind=HolderKind.ENTERPRISE,
        name="福建某某汽车租赁有限公司",
        id_type="uscc",
        id_number="91350100M000100Y43",
        address="福州市鼓楼区",
        responsible_name="李四",
        responsible_id_type="resident_id",
        responsible_id_number=ID_NUMBER,
    )
    message = _message(holder=holder)
    body = wire.encode_push(message, keys, now=NOW).body
    assert wire.decode_push(body, keys) == message
    for secret in ("李四", ID_NUMBER, "福建某某汽车租赁有限公司"):
        assert secret.encode() not in body


def test_deregistration_has_no_holder_and_names_the_previous_one():
    keys = _keys()
    message = _message(
        PushKind.DEREGISTER, previous_holder_id_hash="h-old", functions=[CardFunction.EMERGENCY]
    )
    doc = json.loads(wire.encode_push(message, keys, now=NOW).body)
    assert doc["msgType"] == "REALNAME_CANCEL"
    assert doc["bizContent"]["holder"] is None
    assert doc["bizContent"]["prevHolderHash"] == "h-old"
    assert wire.decode_push(json.dumps(doc).encode(), keys) == message


def test_personal_fields_never_travel_in_clear():
    keys = _keys()
    body = wire.encode_push(_message(), keys, now=NOW).body
    holder = _individual()
    for value in (holder.name, holder.id_number, holder.address, holder.phone, holder.id_valid_until):
        assert value is not None
        assert value.encode() not in body
        assert json.dumps(value).encode() not in body  # nor \\u-escaped
    doc = json.loads(body)
    assert doc["bizContent"]["holder"]["certType"] == "resident_id"  # what kind of document is not personal
    assert doc["bizContent"]["vehicle"]["vin"] == "JHMCM56557C404453"


def test_the_push_carries_the_platforms_holder_hashes():
    keys = _keys()
    message = _message(PushKind.TRANSFER, previous_holder_id_hash="platform-hash-of-the-old-holder")
    doc = json.loads(wire.encode_push(message, keys, now=NOW).body)
    assert doc["bizContent"]["holderIdHash"] == "platform-hash-of-the-holder"
    assert doc["bizContent"]["prevHolderHash"] == "platform-hash-of-the-old-holder"
    assert wire.decode_push(json.dumps(doc).encode(), keys) == message


def test_the_push_requests_exactly_the_functions_asked_for():
    # 第十四条: minimal necessary functions; the wire neither adds nor drops any.
    keys = _keys()
    message = _message(functions=[CardFunction.EMERGENCY])
    doc = json.loads(wire.encode_push(message, keys, now=NOW).body)
    assert doc["bizContent"]["functions"] == ["emergency"]


def test_the_push_body_has_the_envelope_fields():
    keys = _keys()
    doc = json.loads(wire.encode_push(_message(), keys, now=NOW).body)
    assert doc["appId"] == keys.app_id
    assert doc["operatorCode"] == "CMCC"
    assert doc["messageId"] == "outbox-000001"
    assert doc["msgType"] == "REALNAME_REGISTER"
    assert doc["encryptMethod"] == "SM4-GCM"
    assert doc["createTime"] == "2025-05-01T20:00:00.123456+08:00"


def test_a_personal_field_moved_to_another_field_does_not_decrypt():
    keys = _keys()
    doc = json.loads(wire.encode_push(_message(), keys, now=NOW).body)
    holder = doc["bizContent"]["holder"]
    holder["custName"], holder["certAddr"] = holder["certAddr"], holder["custName"]
    with pytest.raises(wire.WireError) as err:
        wire.decode_push(json.dumps(doc).encode(), keys)
    assert err.value.code == "undecryptable"


def test_personal_fields_moved_to_another_message_do_not_decrypt():
    keys = _keys()
    doc = json.loads(wire.encode_push(_message(), keys, now=NOW).body)
    doc["messageId"] = "outbox-000002"
    with pytest.raises(wire.WireError) as err:
        wire.decode_push(json.dumps(doc).encode(), keys)
    assert err.value.code == "undecryptable"


def test_a_push_under_another_key_does_not_decrypt():
    body = wire.encode_push(_message(), _keys(), now=NOW).body
    other = _keys()
    with pytest.raises(wire.WireError) as err:
        wire.decode_push(body, other)
    assert err.value.code == "undecryptable"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d.update(version="2.0"), "version"),
        (lambda d: d.update(msgType="REALNAME_UNKNOWN"), "msgType"),
        (lambda d: d.update(operatorCode="CUCC"), "operatorCode"),
        (lambda d: d.update(encryptMethod="AES-256-GCM"), "encryptMethod"),
        (lambda d: d.update(appId="other"), "appId"),
        (lambda d: d.update(createTime="2025-05-01T12:00:00"), "createTime"),
        (lambda d: d["bizContent"].pop("iccid"), "iccid"),
        (lambda d: d["bizContent"].update(functions=["teleport"]), "functions"),
    ],
)
def test_malformed_pushes_are_refused(change, reason: str):
    keys = _keys()
    doc = json.loads(wire.encode_push(_message(), keys, now=NOW).body)
    change(doc)
    with pytest.raises(wire.WireError) as err:
        wire.decode_push(json.dumps(doc).encode(), keys)
    assert err.value.code == "malformed"
    assert reason in err.value.message


def test_unknown_fields_are_ignored():
    keys = _keys()
    doc = json.loads(wire.encode_push(_message(), keys, now=NOW).body)
    doc["extension"] = {"any": "thing"}
    assert wire.decode_push(json.dumps(doc).encode(), keys) == _message()


def test_a_card_is_pushed_only_with_its_operators_keys():
    with pytest.raises(ValueError, match="china_mobile"):
        wire.encode_push(_message(), _keys(Operator.CHINA_TELECOM), now=NOW)


def test_push_headers_carry_the_authentication():
    keys = _keys()
    request = wire.encode_push(_message(), keys, now=NOW, path="/gw" + wire.PUSH_PATH)
    assert request.headers[wire.H_OPERATOR] == "CMCC"
    assert request.headers[wire.H_KEY_ID] == keys.key_id
    assert request.headers[wire.H_TIMESTAMP] == str(int(NOW.timestamp() * 1000))
    assert request.headers[wire.H_SIGN_METHOD] == "HMAC-SM3"
    got = wire.authenticate(
        request.headers,
        request.body,
        method="POST",
        path="/gw" + wire.PUSH_PATH,
        source=StaticKeySource([keys]),
        direction=Direction.TO_OPERATOR,
        now=NOW,
        seen_nonce=NonceCache(),
    )
    assert got is keys


def test_a_push_does_not_authenticate_as_a_callback():
    keys = _keys()
    request = wire.encode_push(_message(), keys, now=NOW)
    with pytest.raises(SignatureError) as err:
        wire.authenticate(
            request.headers,
            request.body,
            method="POST",
            path=wire.PUSH_PATH,
            source=StaticKeySource([keys]),
            direction=Direction.TO_PLATFORM,
            now=NOW,
            seen_nonce=NonceCache(),
        )
    assert err.value.code == "bad_signature"


# --------------------------------------------------------------------------- callbacks


def _callback(outcome: CallbackOutcome = CallbackOutcome.REJECTED) -> OperatorCallback:
    rejected = outcome is CallbackOutcome.REJECTED
    return OperatorCallback(
        callback_id="cb-000001",
        message_id="outbox-000001",
        operator=Operator.CHINA_MOBILE,
        iccid="89860012345678901234",
        outcome=outcome,
        reason_code="blacklisted" if rejected else None,
        reason_zh="请前往营业厅办理" if rejected else None,
        reason_en="Please visit a business hall" if rejected else None,
        functions=[] if rejected else [CardFunction.EMERGENCY, CardFunction.DATA],
        decided_at=NOW,
    )


@pytest.mark.parametrize("outcome", list(CallbackOutcome))
def test_callback_round_trips(outcome: CallbackOutcome):
    keys = _keys()
    assert wire.decode_callback(
        wire.encode_callback(_callback(outcome), keys, now=NOW).body, keys
    ) == _callback(outcome)


def test_callback_content_is_encrypted():
    keys = _keys()
    body = wire.encode_callback(_callback(), keys, now=NOW).body
    doc = json.loads(body)
    assert set(doc) == {
        "version",
        "appId",
        "operatorCode",
        "callbackId",
        "messageId",
        "notifyType",
        "encryptMethod",
        "encryptedContent",
    }
    for secret in (b"blacklisted", "营业厅".encode(), b"89860012345678901234"):
        assert secret not in body


def test_callback_notify_type_must_agree_with_the_result():
    keys = _keys()
    doc = json.loads(wire.encode_callback(_callback(), keys, now=NOW).body)
    doc["notifyType"] = "SPOT_CHECK"
    with pytest.raises(wire.WireError) as err:
        wire.decode_callback(json.dumps(doc).encode(), keys)
    assert err.value.code == "malformed"


def test_callback_content_cannot_be_moved_to_another_callback():
    keys = _keys()
    doc = json.loads(wire.encode_callback(_callback(), keys, now=NOW).body)
    doc["callbackId"] = "cb-000002"
    with pytest.raises(wire.WireError) as err:
        wire.decode_callback(json.dumps(doc).encode(), keys)
    assert err.value.code == "undecryptable"


# --------------------------------------------------------------------------- receipts and errors


def test_receipt_round_trips():
    receipt = PushReceipt(message_id="outbox-000001", operator_ref="CMCC2025050100000001", duplicate=True)
    assert wire.decode_receipt(wire.encode_receipt(receipt), "outbox-000001") == receipt
    with pytest.raises(wire.WireError):
        wire.decode_receipt(wire.encode_receipt(receipt), "outbox-000002")


def test_error_bodies():
    assert wire.decode_error(wire.encode_error("bad_signature", "no"), 401) == ("bad_signature", "no")
    assert wire.decode_error(b"<html>Bad Gateway</html>", 502) == ("http_502", "<html>Bad Gateway</html>")
    assert wire.decode_error(b'{"message": "x"}', 400) == ("http_400", '{"message": "x"}')


# --------------------------------------------------------------------------- listing


def test_listing_round_trips():
    records = [
        OperatorCardRecord(
            operator=Operator.CHINA_MOBILE,
            iccid="89860012345678901234",
            state=OperatorCardState.REGISTERED,
            holder_id_hash="platform-hash-of-the-holder",
            functions=[CardFunction.EMERGENCY, CardFunction.TELEMATICS],
            message_id="outbox-000001",
            updated_at=NOW.astimezone(timezone(timedelta(hours=8))),
        ),
        OperatorCardRecord(
            operator=Operator.CHINA_MOBILE,
            iccid="89860012345678901235",
            state=OperatorCardState.DEREGISTERED,
            functions=[CardFunction.EMERGENCY],
            updated_at=NOW,
        ),
    ]
    body = wire.encode_listing(Operator.CHINA_MOBILE, records, "next")
    assert wire.decode_listing(body, Operator.CHINA_MOBILE) == (records, "next")
    with pytest.raises(wire.WireError):
        wire.decode_listing(body, Operator.CHINA_UNICOM)


def test_listing_request_is_signed_over_its_query():
    keys = _keys()
    request = wire.encode_listing_request(keys, "abc", 50, now=NOW, prefix="/gw/")
    assert request.method == "GET"
    assert request.path == "/gw/open/v1/iot/realname/cards?cursor=abc&limit=50"
    assert request.body == b""
    assert wire.parse_listing_target(request.path) == ("abc", 50)
    with pytest.raises(SignatureError):
        wire.authenticate(
            request.headers,
            b"",
            method="GET",
            path=request.path.replace("limit=50", "limit=51"),
            source=StaticKeySource([keys]),
            direction=Direction.TO_OPERATOR,
            now=NOW,
            seen_nonce=NonceCache(),
        )


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=ten"])
def test_listing_limits(query: str):
    with pytest.raises(wire.WireError):
        wire.parse_listing_target(f"{wire.LISTING_PATH}?{query}")


# --------------------------------------------------------------------------- keys


def test_keys_round_trip_through_their_secret_json_and_never_show_in_repr():
    keys = _keys()
    again = OperatorKeys.from_json(keys.to_json())
    assert again == keys
    assert keys.to_operator != keys.to_platform  # one pair per direction
    assert len(keys.to_operator.encryption_key) == 16  # SM4
    assert keys.to_operator.signing_key.hex() not in repr(keys)
    assert repr(keys.to_operator) == "DirectionKeys(<redacted>)"


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(format=2),
        lambda d: d.update(cipher="DES"),
        lambda d: d["to_operator"].update(encryption_key="AAAA"),
        lambda d: d.pop("to_platform"),
        lambda d: d.update(operator="china_satellite"),
    ],
)
def test_unusable_secrets_are_refused(change):
    doc = json.loads(_keys().to_json())
    change(doc)
    with pytest.raises(OperatorKeysUnavailable):
        OperatorKeys.from_json(json.dumps(doc))
