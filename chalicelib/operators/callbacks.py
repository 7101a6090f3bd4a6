"""The operators' callbacks (运营商回调): who sent it, is it fresh, what does it say, and its effect.

``verify_callback`` turns a received request into an ``OperatorCallback`` or refuses it with a domain
error (stable code, Chinese and English message). ``CallbackReceiver.receive`` is the whole use case:
verified, decoded, applied to the card (the cards context's answer use case; duplicates by
``callback_id`` are ignored there), then the registration hears of an applied outcome.

Status codes:

================================  ======  ==================================================================
code                              status  meaning
================================  ======  ==================================================================
``operator_callback.unsigned``    401     an authentication header is missing or malformed
``…unknown_operator``             401     the operator code is unknown, or no keys are configured for it
``…unknown_key``                  401     the key id is neither the current nor the previous version
``…unknown_app``                  401     the application id is not ours
``…sign_method_mismatch``         401     not the signing method agreed for the key (no downgrade)
``…bad_signature``                401     the signature does not match the request
``…stale_timestamp``              401     the timestamp is outside the window (±300 s by default)
``…replayed_nonce``               409     the nonce was already used within the window
``…malformed``                    400     authentic, but the body is not a callback we can read
``…undecryptable``                400     authentic, but the content does not decrypt with our key
================================  ======  ==================================================================

Why these statuses: a stale timestamp is answered like a bad signature (401) because such a request
cannot be proven fresh, so it is not authenticated; the sender should sign again with its clock checked.
A replayed nonce is the one failure of an authentic request: 409 tells the sender this exact request
was already received (a sender retrying signs again with a new nonce, so it never sees 409 for a
callback that still needs delivering). The sandbox operator treats 409 as delivered and other 4xx as
final; 5xx (e.g. Secrets Manager unreachable) as retryable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from chalicelib.cards.views import CallbackResult
from chalicelib.core.metric_names import Metric
from chalicelib.core.observability import emit, logger
from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.errors import BadRequest, Conflict, DomainError, Unauthenticated
from chalicelib.operators import wire
from chalicelib.operators.domain.messages import CallbackOutcome, OperatorCallback
from chalicelib.operators.domain.outbox import CallbackNote
from chalicelib.operators.keys import Direction
from chalicelib.operators.ports import OperatorKeySource
from chalicelib.operators.signing import DEFAULT_WINDOW_SECONDS, SignatureError
from chalicelib.operators.views import CallbackAck

_PREFIX = "operator_callback"


#: code → (Chinese, English). Messages name the problem, never a value from the request.
_MESSAGES: dict[str, tuple[str, str]] = {
    "unsigned": (
        "回调缺少签名信息或格式错误",
        "The callback's authentication headers are missing or malformed",
    ),
    "unknown_operator": ("未知的运营商或未配置该运营商的密钥", "Unknown operator, or no keys for it"),
    "unknown_key": ("回调使用的密钥版本无效", "The callback's key id is not a current or previous key"),
    "unknown_app": ("回调的应用标识不正确", "The callback's application id is not ours"),
    "sign_method_mismatch": (
        "回调的签名算法与约定不一致",
        "The callback's signing method is not the one agreed for the key",
    ),
    "bad_signature": ("回调签名校验失败", "The callback's signature does not match"),
    "stale_timestamp": (
        "回调时间戳超出允许范围，请校准时钟后重新签名发送",
        "The callback's timestamp is outside the allowed window: check the clock and sign again",
    ),
    "replayed_nonce": (
        "该回调请求已收到（随机数重复）",
        "This callback request was already received (nonce reused)",
    ),
    "malformed": ("回调内容格式错误", "The callback's content cannot be read"),
    "undecryptable": ("回调内容无法解密", "The callback's content does not decrypt with the agreed key"),
}


#: SignatureError codes that are renamed for the platform's vocabulary.
_RENAMED = {"missing_auth": "unsigned"}


def _error(code: str, detail: str | None = None) -> DomainError:
    zh, en = _MESSAGES[code]
    details = {"reason": detail} if detail else None
    status = wire.refusal_status(code)
    if status == 409:
        return Conflict(f"{_PREFIX}.{code}", zh, en, details=details)
    if status == 400:
        return BadRequest(f"{_PREFIX}.{code}", zh, en, details=details)
    return Unauthenticated(f"{_PREFIX}.{code}", zh, en, details=details)


def verify_callback(
    headers: Mapping[str, str],
    body: bytes,
    keys: OperatorKeySource,
    now: datetime,
    seen_nonce: Callable[[str], bool],
    *,
    method: str = "POST",
    path: str = wire.CALLBACK_PATH,
    window_seconds: int = DEFAULT_WINDOW_SECONDS,
) -> OperatorCallback:
    """The authenticated, decrypted callback; raises ``Unauthenticated``/``Conflict``/``BadRequest``.

    ``seen_nonce(value)`` records ``value`` (``"<operator>:<nonce>"``) and answers whether it had been
    seen; it is called only for a correctly signed, fresh request, and must remember values for twice
    the window (e.g. a DynamoDB conditional put with a TTL of ``2 * window_seconds``). ``path`` is the
    request target the operator signed: the callback URL's path as configured at the operator.
    """
    try:
        operator_keys = wire.authenticate(
            headers,
            body,
            method=method,
            path=path,
            source=keys,
            direction=Direction.TO_PLATFORM,
            now=now,
            seen_nonce=seen_nonce,
            window_seconds=window_seconds,
        )
    except SignatureError as exc:
        raise _error(_RENAMED.get(exc.code, exc.code)) from None
    try:
        return wire.decode_callback(body, operator_keys)
    except wire.WireError as exc:
        raise _error(exc.code, exc.message) from None


class CallbackReceiver:
    """The callback endpoint's use case: ``receive`` takes the request as received, answers the ack."""

    def __init__(
        self,
        keys: OperatorKeySource,
        seen_nonce: Callable[[str], bool],
        apply: Callable[[OperatorCallback], CallbackResult],
        on_applied: Callable[[str], None],
        *,
        spot_check: Callable[[OperatorCallback], CallbackResult] | None = None,
        path: str = wire.CALLBACK_PATH,
        window_seconds: int = DEFAULT_WINDOW_SECONDS,
        clock: Clock = utc_now,
    ):
        """``apply`` is the cards context's answer use case; ``on_applied(message_id)`` tells the
        registration of an applied outcome (the person hears of it: 确认登记结果 by SMS). ``spot_check``
        takes a spot check (抽查, 第十条) instead of ``apply``: it opens the OEM's case, or refuses one
        it cannot (an unknown card) with a domain error the operator is answered with."""
        self._keys = keys
        self._seen_nonce = seen_nonce
        self._apply = apply
        self._on_applied = on_applied
        self._spot_check = spot_check
        self._path = path
        self._window = window_seconds
        self._clock = clock

    def receive(self, headers: Mapping[str, str], body: bytes) -> CallbackAck:
        """Verify, decode and apply one callback, or refuse it with a domain error."""
        callback = verify_callback(
            headers,
            body,
            self._keys,
            self._clock(),
            self._seen_nonce,
            path=self._path,
            window_seconds=self._window,
        )
        if callback.outcome is CallbackOutcome.SPOT_CHECK and self._spot_check is not None:
            result = self._spot_check(callback)
        else:
            result = self._apply(callback)
        emit(Metric.CALLBACK_RECEIVED, operator=callback.operator.value, outcome=result.note.value)
        if result.note is CallbackNote.APPLIED:
            if callback.outcome.value in ("accepted", "rejected"):
                decided = (
                    Metric.PUSH_ACCEPTED if callback.outcome.value == "accepted" else Metric.PUSH_REFUSED
                )
                emit(decided, operator=callback.operator.value)
            self._notify(result)
        return CallbackAck(
            received=True,
            callback_id=result.callback_id,
            note=result.note.value,
            state=result.state.value if result.state else None,
        )

    def _notify(self, result: CallbackResult) -> None:
        """The callback is answered whatever becomes of the notification."""
        try:
            self._on_applied(result.message_id)
        except Exception:
            logger.exception("result notification failed", extra={"callback": result.callback_id})
