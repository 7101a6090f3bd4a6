"""Signing of the operator interface: HMAC-SM3/HMAC-SHA256, the replay window, and callback verification."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes

from chalicelib.cards.domain.inventory import CardFunction
from chalicelib.kernel.errors import BadRequest, Conflict, Unauthenticated
from chalicelib.kernel.operators import Operator
from chalicelib.operators import signing, wire
from chalicelib.operators.callbacks import verify_callback
from chalicelib.operators.domain.messages import CallbackOutcome, OperatorCallback
from chalicelib.operators.keys import (
    Cipher,
    Direction,
    OperatorKeys,
    OperatorKeysUnavailable,
    generate_operator_keys,
)
from chalicelib.operators.signing import NonceCache, SignatureError, SignMethod
from tests.fakes.operators import StaticKeySource

NOW = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
KEY = b"k" * 32


def _sm3(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize()


def _request(**overrides: object) -> dict[str, object]:
    request: dict[str, object] = {
        "method": "POST",
        "path": "/open/v1/iot/realname/push",
        "timestamp": signing.timestamp_ms(NOW),
        "nonce": "0123456789abcdef0123456789abcdef",
        "body": b'{"messageId":"m1"}',
    }
    request.update(overrides)
    return request


def _verify(
    signature: str, *, now: datetime = NOW, seen=None, sign_method=SignMethod.HMAC_SM3, key=KEY, **req
):
    signing.verify(
        sign_method,
        key,
        signature=signature,
        now=now,
        seen_nonce=seen or NonceCache(),
        **_request(**req),  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------- primitives


def test_sm3_is_the_real_sm3():
    # GB/T 32905-2016 Appendix A, example 1.
    assert _sm3(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


def test_hmac_sm3_matches_the_rfc_2104_construction():
    # Given a key shorter than SM3's 64-byte block, HMAC is H((K^opad) || H((K^ipad) || m)).
    key, message = b"operator-signing-key", b"POST\n/path\n1\nnonce\nabc"
    padded = key.ljust(64, b"\0")
    inner = _sm3(bytes(b ^ 0x36 for b in padded) + message)
    expected = _sm3(bytes(b ^ 0x5C for b in padded) + inner)

    assert signing.mac(SignMethod.HMAC_SM3, key, message) == expected


def test_hmac_sha256_matches_rfc_4231_case_2():
    mac = signing.mac(SignMethod.HMAC_SHA256, b"Jefe", b"what do ya want for nothing?")
    assert mac.hex() == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_canonical_string_is_method_path_timestamp_nonce_body_digest():
    text = signing.canonical_string("post", "/a?b=1", "1746100800000", "n" * 16, b"{}").decode()
    assert text.split("\n") == [
        "POST",
        "/a?b=1",
        "1746100800000",
        "n" * 16,
        hashlib.sha256(b"{}").hexdigest(),
    ]


# --------------------------------------------------------------------------- sign and verify


@pytest.mark.parametrize("method", list(SignMethod))
def test_a_signed_request_verifies(method: SignMethod):
    signature = signing.sign(method, KEY, **_request())  # type: ignore[arg-type]
    _verify(signature, sign_method=method)


@pytest.mark.parametrize(
    "tamper",
    [
        {"method": "PUT"},
        {"path": "/open/v1/iot/realname/cards"},
        {"body": b'{"messageId":"m2"}'},
        {"nonce": "fedcba9876543210fedcba9876543210"},
        {"timestamp": signing.timestamp_ms(NOW + timedelta(seconds=1))},
        {"key": b"x" * 32},
        {"sign_method": SignMethod.HMAC_SHA256},
    ],
    ids=lambda t: next(iter(t)),
)
def test_any_change_breaks_the_signature(tamper: dict[str, object]):
    signature = signing.sign(SignMethod.HMAC_SM3, KEY, **_request())  # type: ignore[arg-type]
    with pytest.raises(SignatureError) as err:
        _verify(signature, **tamper)  # type: ignore[arg-type]
    assert err.value.code == "bad_signature"


def test_a_signature_that_is_not_base64_is_refused():
    with pytest.raises(SignatureError) as err:
        _verify("not base64!")
    assert err.value.code == "bad_signature"


@pytest.mark.parametrize(
    ("field", "value"), [("timestamp", "2025-05-01"), ("nonce", "short"), ("nonce", "a b" * 8)]
)
def test_malformed_timestamp_or_nonce_is_missing_auth(field: str, value: str):
    signature = signing.sign(SignMethod.HMAC_SM3, KEY, **_request(**{field: value}))  # type: ignore[arg-type]
    with pytest.raises(SignatureError) as err:
        _verify(signature, **{field: value})  # type: ignore[arg-type]
    assert err.value.code == "missing_auth"


@pytest.mark.parametrize("skew", [300, -300])
def test_timestamp_at_the_edge_of_the_window_is_accepted(skew: int):
    signature = signing.sign(SignMethod.HMAC_SM3, KEY, **_request())  # type: ignore[arg-type]
    _verify(signature, now=NOW + timedelta(seconds=skew))


@pytest.mark.parametrize("skew", [301, -301, 3600])
def test_timestamp_outside_the_window_is_stale(skew: int):
    signature = signing.sign(SignMethod.HMAC_SM3, KEY, **_request())  # type: ignore[arg-type]
    with pytest.raises(SignatureError) as err:
        _verify(signature, now=NOW + timedelta(seconds=skew))
    assert err.value.code == "stale_timestamp"


def test_a_replayed_nonce_is_refused_and_scoped():
    # Given one nonce store
    seen: list[str] = []
    cache = NonceCache()

    def record(value: str) -> bool:
        seen.append(value)
        return cache(value)

    signature = signing.sign(SignMethod.HMAC_SM3, KEY, **_request())  # type: ignore[arg-type]
    # When the same request comes twice
    _verify(signature, seen=record)
    with pytest.raises(SignatureError) as err:
        _verify(signature, seen=record)
    # Then the second is a replay, and the nonce was recorded with its (empty) scope
    assert err.value.code == "replayed_nonce"
    assert seen == [":0123456789abcdef0123456789abcdef"] * 2


def test_the_nonce_is_not_recorded_for_a_bad_signature_or_a_stale_request():
    calls: list[str] = []

    def record(value: str) -> bool:
        calls.append(value)
        return False

    good = signing.sign(SignMethod.HMAC_SM3, KEY, **_request())  # type: ignore[arg-type]
    with pytest.raises(SignatureError):
        _verify(base64.b64encode(b"x" * 32).decode(), seen=record)
    with pytest.raises(SignatureError):
        _verify(good, seen=record, now=NOW + timedelta(hours=1))
    assert calls == []


def test_verify_compares_in_constant_time(monkeypatch: pytest.MonkeyPatch):
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    _verify(signing.sign(SignMethod.HMAC_SM3, KEY, **_request()))  # type: ignore[arg-type]
    assert len(compared) == 1


# --------------------------------------------------------------------------- nonce cache


def test_nonce_cache_forgets_after_its_ttl():
    clock = [0.0]
    cache = NonceCache(600, clock=lambda: clock[0])
    assert cache("a") is False
    assert cache("a") is True
    clock[0] = 599
    assert cache("a") is True
    clock[0] = 601
    assert cache("a") is False  # forgotten: the timestamp window refuses such a request anyway
    assert len(cache) == 1


def test_nonce_cache_is_bounded():
    cache = NonceCache(600, max_entries=3, clock=lambda: 0.0)
    for n in "abcd":
        cache(n)
    assert len(cache) == 3
    assert cache("a") is False  # the oldest went first


# --------------------------------------------------------------------------- callback verification


def _keys(operator: Operator = Operator.CHINA_UNICOM, **kw: object) -> OperatorKeys:
    return generate_operator_keys(operator, **kw)  # type: ignore[arg-type]


def _callback(operator: Operator = Operator.CHINA_UNICOM) -> OperatorCallback:
    return OperatorCallback(
        callback_id="cb-0001",
        message_id="msg-00000001",
        operator=operator,
        iccid="8986011234567890123",
        outcome=CallbackOutcome.REJECTED,
        reason_code="cards_per_id_exceeded",
        reason_zh="请前往营业厅办理",
        reason_en="Please visit a business hall",
        decided_at=NOW,
    )


def test_verify_callback_answers_the_decoded_callback():
    keys = _keys()
    request = wire.encode_callback(_callback(), keys, now=NOW)
    got = verify_callback(request.headers, request.body, StaticKeySource([keys]), NOW, NonceCache())
    assert got == _callback()


def test_verify_callback_reads_headers_in_any_case():
    keys = _keys()
    request = wire.encode_callback(_callback(), keys, now=NOW)
    lowered = {k.lower(): v for k, v in request.headers.items()}
    assert (
        verify_callback(lowered, request.body, StaticKeySource([keys]), NOW, NonceCache()).callback_id
        == "cb-0001"
    )


def _refusal(keys: OperatorKeys, headers: dict[str, str], body: bytes, **kw: object) -> Exception:
    source = kw.pop("source", StaticKeySource([keys]))
    with pytest.raises((Unauthenticated, Conflict, BadRequest)) as err:
        verify_callback(headers, body, source, kw.pop("now", NOW), kw.pop("seen", NonceCache()), **kw)  # type: ignore[arg-type]
    return err.value


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"X-Signature": base64.b64encode(b"0" * 32).decode()}, "bad_signature"),
        ({"X-Operator-Code": "XXXX"}, "unknown_operator"),
        ({"X-Key-Id": "k-old"}, "unknown_key"),
        ({"X-App-Id": "someone-else"}, "unknown_app"),
        ({"X-Sign-Method": "HMAC-SHA256"}, "sign_method_mismatch"),
        ({"X-Nonce": ""}, "unsigned"),
    ],
)
def test_verify_callback_refuses_bad_authentication_with_401(change: dict[str, str], code: str):
    keys = _keys()
    request = wire.encode_callback(_callback(), keys, now=NOW)
    err = _refusal(keys, {**request.headers, **change}, request.body)
    assert isinstance(err, Unauthenticated)
    assert (err.code, err.status) == (f"operator_callback.{code}", 401)
    assert err.message_zh
    assert err.message_en


def test_verify_callback_refuses_an_operator_without_keys():
    keys = _keys()
    request = wire.encode_callback(_callback(), keys, now=NOW)
    err = _refusal(
        keys, request.headers, request.body, source=StaticKeySource([_keys(Operator.CHINA_MOBILE)])
    )
    assert err.code == "operator_callback.unknown_operator"  # type: ignore[attr-defined]


def test_verify_callback_refuses_a_callback_signed_with_the_push_key():
    # Given a callback signed with the platform→operator key (someone holding only that key)
    keys = _keys()
    body = wire.encode_callback_body(_callback(), keys)
    headers = wire.sign_headers(
        keys, Direction.TO_OPERATOR, method="POST", path=wire.CALLBACK_PATH, body=body, now=NOW
    )
    err = _refusal(keys, headers, body)
    assert err.code == "operator_callback.bad_signature"  # type: ignore[attr-defined]


def test_verify_callback_refuses_another_path():
    keys = _keys()
    request = wire.encode_callback(_callback(), keys, now=NOW, path="/api/v1/operator/callbacks")
    err = _refusal(keys, request.headers, request.body)
    assert err.code == "operator_callback.bad_signature"  # type: ignore[attr-defined]
    assert verify_callback(
        request.headers,
        request.body,
        StaticKeySource([keys]),
        NOW,
        NonceCache(),
        path="/api/v1/operator/callbacks",
    )


def test_verify_callback_refuses_a_stale_timestamp_with_401():
    keys = _keys()
    request = wire.encode_callback(_callback(), keys, now=NOW - timedelta(minutes=6))
    err = _refusal(keys, request.headers, request.body)
    assert isinstance(err, Unauthenticated)
    assert err.code == "operator_callback.stale_timestamp"


def test_verify_callback_refuses_a_replay_with_409():
    keys = _keys()
    request = wire.encode_callback(_callback(), keys, now=NOW)
    nonces = NonceCache()
    verify_callback(request.headers, request.body, StaticKeySource([keys]), NOW, nonces)
    err = _refusal(keys, request.headers, request.body, seen=nonces)
    assert isinstance(err, Conflict)
    assert (err.code, err.status) == ("operator_callback.replayed_nonce", 409)


def test_verify_callback_refuses_content_under_another_encryption_key_with_400():
    # Given a correctly signed callback whose content was encrypted with a key the platform does not hold
    keys = _keys()
    other = _keys()
    sealed_elsewhere = wire.encode_callback_body(_callback(), replace(keys, to_platform=other.to_platform))
    headers = wire.sign_headers(
        keys, Direction.TO_PLATFORM, method="POST", path=wire.CALLBACK_PATH, body=sealed_elsewhere, now=NOW
    )
    err = _refusal(keys, headers, sealed_elsewhere)
    assert isinstance(err, BadRequest)
    assert err.code == "operator_callback.undecryptable"


def test_verify_callback_refuses_a_signed_but_malformed_body_with_400():
    keys = _keys()
    body = b'{"version": "1.0"}'
    headers = wire.sign_headers(
        keys, Direction.TO_PLATFORM, method="POST", path=wire.CALLBACK_PATH, body=body, now=NOW
    )
    err = _refusal(keys, headers, body)
    assert isinstance(err, BadRequest)
    assert err.code == "operator_callback.malformed"


def test_verify_callback_works_with_aes_and_hmac_sha256_too():
    keys = _keys(sign_method=SignMethod.HMAC_SHA256, cipher=Cipher.AES_256_GCM)
    request = wire.encode_callback(_callback(), keys, now=NOW)
    got = verify_callback(request.headers, request.body, StaticKeySource([keys]), NOW, NonceCache())
    assert got.functions == []
    assert got.reason_code == "cards_per_id_exceeded"


def test_static_key_source_says_when_it_has_no_keys():
    with pytest.raises(OperatorKeysUnavailable):
        StaticKeySource([]).current(Operator.CHINA_MOBILE)


def test_accepted_callback_carries_the_opened_functions():
    keys = _keys()
    accepted = _callback().model_copy(
        update={
            "outcome": CallbackOutcome.ACCEPTED,
            "reason_code": None,
            "reason_zh": None,
            "reason_en": None,
            "functions": [CardFunction.EMERGENCY, CardFunction.TELEMATICS],
        }
    )
    request = wire.encode_callback(accepted, keys, now=NOW)
    got = verify_callback(request.headers, request.body, StaticKeySource([keys]), NOW, NonceCache())
    assert got.functions == [CardFunction.EMERGENCY, CardFunction.TELEMATICS]
