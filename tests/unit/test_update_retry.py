"""Conditional updates whose first attempt landed but whose reply was lost (botocore then sends the same
request again, and the retry meets the item its own first attempt changed): each is answered as done
and counted once; a genuine second call is still refused.

A lost reply is played as in ``test_put_retry``: the call is made twice at the client, the first
answer dropped, the second (marked as a retry in its metadata, as botocore does) returned.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from pynamodb.models import Model

from chalicelib.adapters.dynamo import once
from chalicelib.adapters.dynamo.dealers import DynamoHandoffStore
from chalicelib.adapters.dynamo.models_dealers import DealerHandoffModel
from chalicelib.adapters.dynamo.models_sms import SmsCodeModel, SmsLimitModel, SmsSendsModel
from chalicelib.adapters.dynamo.once import TRIM_AT, horizon_seconds
from chalicelib.adapters.sms.dynamo import DynamoSmsCodeStore
from chalicelib.adapters.sms.limits import DynamoSmsLimitStore
from chalicelib.dealers.domain import Handoff
from chalicelib.kernel.errors import DomainError
from chalicelib.sms.codes import SmsCodeService
from chalicelib.sms.domain import SendBuckets, SmsPolicy, SmsPurpose
from chalicelib.sms.limits import Counter
from tests.fakes.clock import FakeClock
from tests.fakes.crypto import FakeHasher
from tests.fakes.sms import FakeSmsSender

PHONE = "13812345678"
# 10:00 in China (UTC+8).
T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
HOUR_END = T0 + timedelta(hours=1)


class LostReplies:
    """Loses the reply of the next ``operation`` calls of a model's table that land (optionally only
    those on ``key``): each is sent again, as botocore does after a read timeout, and the retry's answer
    is the one the caller sees. A call refused on its first attempt changed nothing: its answer stands
    and the loss waits for the next call."""

    def __init__(self, model: type[Model], monkeypatch: pytest.MonkeyPatch) -> None:
        self.client = model._get_connection().connection.client
        self.real = self.client._make_api_call
        self.pending: list[tuple[str, str | None]] = []
        self.retried = 0
        monkeypatch.setattr(self.client, "_make_api_call", self._call)

    def lose(self, operation: str, key: str | None = None) -> LostReplies:
        self.pending.append((operation, key))
        return self

    def _matches(self, operation: str, kwargs: dict[str, Any]) -> bool:
        if not self.pending or self.pending[0][0] != operation:
            return False
        key = self.pending[0][1]
        return key is None or key in repr(kwargs.get("Key") or kwargs.get("TransactItems"))

    def _call(self, operation: str, kwargs: dict[str, Any]) -> Any:
        if not self._matches(operation, kwargs):
            return self.real(operation, kwargs)
        self.real(operation, kwargs)  # refused: raises, as the service answered; else it lands
        self.pending.pop(0)
        self.retried += 1
        try:  # its reply is lost: botocore sends the same request again
            reply = self.real(operation, kwargs)
        except ClientError as exc:
            exc.response.setdefault("ResponseMetadata", {})["RetryAttempts"] = 1
            raise
        reply.setdefault("ResponseMetadata", {})["RetryAttempts"] = 1
        return reply


class Codes:
    """The SMS code service on the local stack's tables, its texts kept by a fake provider."""

    def __init__(self, policy: SmsPolicy | None = None) -> None:
        self.clock = FakeClock(T0)
        self.store = DynamoSmsCodeStore()
        self.inbox = FakeSmsSender()
        self.service = SmsCodeService(
            self.store,
            self.inbox,
            FakeHasher(),
            clock=self.clock,
            randbelow=lambda n: 246_810 % n,
            policy=policy or SmsPolicy(),
        )

    def send(self) -> str:
        self.service.send(PHONE, SmsPurpose.LOGIN)
        found = re.search(r"验证码 (\d{6})", self.inbox.sent[-1][1])
        assert found is not None
        return found.group(1)

    def stored(self) -> SmsCodeModel:
        (item,) = list(SmsCodeModel.scan())
        return item


def refusal(fn: Any, *args: Any) -> DomainError:
    with pytest.raises(DomainError) as caught:
        fn(*args)
    return caught.value


# --------------------------------------------------------------------------- SMS codes


def test_a_correct_code_whose_use_landed_with_its_reply_lost_is_accepted_and_then_used(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    codes = Codes()
    code = codes.send()
    lost = LostReplies(SmsCodeModel, monkeypatch).lose("UpdateItem")
    codes.service.check(PHONE, SmsPurpose.LOGIN, code)  # not "used": the use was this check's own
    assert lost.retried == 1
    assert codes.stored().used_at is not None
    # A genuine second check of the same code (another call) is refused: the code is spent
    assert refusal(codes.service.check, PHONE, SmsPurpose.LOGIN, code).code == "sms.no_code"


def test_a_wrong_try_whose_reply_was_lost_counts_once(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    codes = Codes(SmsPolicy(max_wrong_tries=2))
    code = codes.send()
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    LostReplies(SmsCodeModel, monkeypatch).lose("UpdateItem")
    first = refusal(codes.service.check, PHONE, SmsPurpose.LOGIN, wrong)
    assert (first.code, first.details["tries_left"]) == ("sms.code_wrong", 1)
    assert int(codes.stored().tries) == 1
    # The second wrong try (another call) counts, and burns the code
    second = refusal(codes.service.check, PHONE, SmsPurpose.LOGIN, wrong)
    assert (second.code, second.details["tries_left"]) == ("sms.code_wrong", 0)
    assert int(codes.stored().tries) == 2
    assert refusal(codes.service.check, PHONE, SmsPurpose.LOGIN, code).code == "sms.too_many_tries"


def test_a_send_whose_bucket_count_landed_with_its_reply_lost_is_sent_and_counted_once(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    codes = Codes()
    lost = LostReplies(SmsSendsModel, monkeypatch)
    # The day's first send (its counts start the day), then another past the resend interval (its counts
    # add one): each time the phone's total, then its bucket, land with their replies lost
    for sends in (1, 2):
        codes.clock.advance(seconds=61 if sends > 1 else 0)
        lost.lose("UpdateItem", "#all").lose("UpdateItem", "#login")
        codes.send()  # not "too soon" nor "daily limit": the counts the retries met were its own
        assert lost.retried == 2 * sends
        # The bucket and the phone's total, each counted once per send
        assert sorted(int(item.sent) for item in SmsSendsModel.scan()) == [sends, sends]
    # A genuine second send at once (another call) is refused by the resend interval and counts nothing
    assert refusal(codes.service.send, PHONE, SmsPurpose.LOGIN).code == "sms.too_soon"
    assert sorted(int(item.sent) for item in SmsSendsModel.scan()) == [2, 2]


def test_a_give_back_whose_reply_was_lost_gives_the_phones_total_back_too(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DynamoSmsCodeStore()
    policy = SmsPolicy()
    buckets = SendBuckets("phone-hash#login", "phone-hash#all", policy.sends_per_phone_day)
    store.reserve_send(buckets, T0, policy)
    LostReplies(SmsSendsModel, monkeypatch).lose("UpdateItem", "phone-hash#login")
    store.release_send(buckets, T0, policy)
    for key in ("phone-hash#login", "phone-hash#all"):
        quota = store.quota(key)
        assert quota is not None
        assert quota.sent == 0, key


# --------------------------------------------------------------------------- budget and client counters


def test_a_budget_take_whose_reply_was_lost_errs_on_the_safe_side_and_the_send_goes(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The budget's shards are plain conditional updates (no token set on the hottest items): a take
    retried after its first attempt landed counts one more, never fewer, and the send still goes."""
    limits = DynamoSmsLimitStore()
    LostReplies(SmsLimitModel, monkeypatch).lose("UpdateItem")
    # A shard with room for one: the retry meets it full by this take's own count and takes the next
    assert limits.take_budget([("budget#h#0", 1), ("budget#h#1", 5)], HOUR_END) == "budget#h#1"
    assert limits.tallies(["budget#h#0", "budget#h#1"]) == {"budget#h#0": 1, "budget#h#1": 1}
    # With room for more, the retry counts a second time on the same shard (one over, not under)
    LostReplies(SmsLimitModel, monkeypatch).lose("UpdateItem")
    assert limits.take_budget([("budget#h#2", 5)], HOUR_END) == "budget#h#2"
    assert limits.tallies(["budget#h#2"]) == {"budget#h#2": 2}
    # A take of full shards is refused and counts nothing
    assert limits.take_budget([("budget#h#0", 1)], HOUR_END) is None
    assert limits.tallies(["budget#h#0"]) == {"budget#h#0": 1}


def test_a_client_counters_take_whose_reply_was_lost_counts_once_and_is_answered_as_counted(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits = DynamoSmsLimitStore()
    ip = Counter("ip#a#h#2026030210", 1, HOUR_END, "ip")
    device = Counter("dev#b#d#20260302", 3, HOUR_END, "device")
    LostReplies(SmsLimitModel, monkeypatch).lose("TransactWriteItems")
    assert limits.take([ip, device]) is None  # counted, though the retry met the IP's counter full
    assert limits.tallies([ip.key, device.key]) == {ip.key: 1, device.key: 1}
    # A genuine second ask (another call) finds the IP's counter full and counts nothing
    assert limits.take([ip, device]) == ip
    assert limits.tallies([ip.key, device.key]) == {ip.key: 1, device.key: 1}


def _count_once(key: str, cap: int) -> bool:
    """One counted update of ``key`` through ``update_once`` (as a code's tries or a hand-off's use)."""
    return once.update_once(
        SmsLimitModel(key),
        SmsLimitModel.attempts,
        [SmsLimitModel.tally.add(1)],
        SmsLimitModel.tally.does_not_exist() | (SmsLimitModel.tally < cap),
    )


def test_an_update_whose_reply_was_lost_while_40_others_landed_on_its_item_counts_once(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = SmsLimitModel._get_connection().connection.client
    real = client._make_api_call
    lost = {"pending": True, "retried": 0}

    def crowded(operation: str, kwargs: dict[str, Any]) -> Any:
        if operation != "UpdateItem" or not lost["pending"]:
            return real(operation, kwargs)
        lost["pending"] = False
        real(operation, kwargs)  # lands; its reply is lost
        # Before botocore's retry goes (a read timeout later), the hot shard takes 40 other sends
        for _ in range(40):
            assert _count_once("item#3", 100)
        lost["retried"] += 1
        try:
            reply = real(operation, kwargs)
        except ClientError as exc:
            exc.response.setdefault("ResponseMetadata", {})["RetryAttempts"] = 1
            raise
        reply.setdefault("ResponseMetadata", {})["RetryAttempts"] = 1
        return reply

    monkeypatch.setattr(client, "_make_api_call", crowded)
    assert _count_once("item#3", 100)
    assert lost["retried"] == 1
    # 41 takes, each counted once: the retry found its token among the 40 newer ones
    assert int(SmsLimitModel.get("item#3", consistent_read=True).tally) == 41
    assert len(SmsLimitModel.get("item#3", consistent_read=True).attempts or ()) == 41


def test_a_token_set_drops_the_tokens_older_than_the_horizon_and_keeps_the_newer(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = once.now_ms()
    # A burst of takes a little over the horizon ago: none of them old then, so the set kept them all
    monkeypatch.setattr(once, "now_ms", lambda: now - int(horizon_seconds() * 1000) - 1000)
    for _ in range(TRIM_AT + 8):
        assert _count_once("item#2", 1000)
    assert len(SmsLimitModel.get("item#2", consistent_read=True).attempts or ()) == TRIM_AT + 8
    # Then takes now: the next one past the bound deletes every token older than the horizon
    monkeypatch.setattr(once, "now_ms", lambda: now)
    for _ in range(3):
        assert _count_once("item#2", 1000)
    item = SmsLimitModel.get("item#2", consistent_read=True)
    assert int(item.tally) == TRIM_AT + 11
    assert len(item.attempts or ()) == 3
    assert all(int(token[:11], 16) == now for token in item.attempts or ())


def test_a_token_set_never_holds_more_than_its_cap_even_within_the_horizon(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(once, "KEEP_MAX", TRIM_AT + 4)
    for _ in range(TRIM_AT + 12):
        assert _count_once("item#4", 1000)
    item = SmsLimitModel.get("item#4", consistent_read=True)
    assert int(item.tally) == TRIM_AT + 12
    assert TRIM_AT < len(item.attempts or ()) <= TRIM_AT + 4


# --------------------------------------------------------------------------- dealer hand-off


def test_a_hand_off_whose_use_landed_with_its_reply_lost_is_used_once_by_its_owner(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DynamoHandoffStore()
    handoff = Handoff(
        code_hash="handoff-hash-1",
        vin="LSVAU2180N2183294",
        dealer_code="D100",
        dealer_account_id="dealer-account-1",
        created_at=T0,
        expires_at=T0 + timedelta(minutes=10),
    )
    store.create(handoff)
    LostReplies(DealerHandoffModel, monkeypatch).lose("UpdateItem")
    assert store.use(handoff, "owner-1", T0 + timedelta(minutes=1)) is True
    used = store.get(handoff.code_hash)
    assert used is not None
    assert (used.used_by, used.used_at) == ("owner-1", T0 + timedelta(minutes=1))
    # A genuine second use (another call, the same owner at the same instant) is refused
    assert store.use(handoff, "owner-1", T0 + timedelta(minutes=1)) is False
    assert store.use(handoff, "owner-2", T0 + timedelta(minutes=2)) is False
    again = store.get(handoff.code_hash)
    assert again is not None
    assert again.used_by == "owner-1"
