"""SMS abuse limits over the in-memory fakes: per phone and purpose (the owner's own bucket), per phone
in total, per client IP and device, the captcha after a few asks, and the platform's hourly budget."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.captcha.domain import new_answer, render_png
from chalicelib.captcha.service import LocalCaptcha
from chalicelib.kernel.errors import DomainError
from chalicelib.sms.codes import SmsCodeService, asking_as
from chalicelib.sms.domain import SmsPolicy, SmsPurpose, subject_for
from chalicelib.sms.limits import ClientPolicy, SendOrigin, budget_caps
from tests.fakes.clock import FakeClock
from tests.fakes.crypto import FakeHasher
from tests.fakes.sms import FakeChallengeStore, FakeSmsCodeStore, FakeSmsLimitStore, FakeSmsSender
from tests.unit.stories import refusal

PHONE = "13812345678"
OTHER = "13900001111"
# 10:20 in China (UTC+8).
T0 = datetime(2026, 3, 2, 2, 20, tzinfo=UTC)
OWNER = "u-owner"
SEED = 7


class Parts:
    def __init__(
        self, clients: ClientPolicy | None = None, policy: SmsPolicy | None = None, captcha_issues: int = 60
    ) -> None:
        self.clock = FakeClock(T0)
        self.codes = FakeSmsCodeStore()
        self.limits = FakeSmsLimitStore()
        self.inbox = FakeSmsSender()
        self.challenges = FakeChallengeStore()
        self.captcha = LocalCaptcha(self.challenges, FakeHasher(), clock=self.clock, rng=random.Random(SEED))
        self.answers = random.Random(SEED)  # the same draws: the next challenge's answer
        digits = itertools.count(123456, 1111)
        self.service = SmsCodeService(
            self.codes,
            self.inbox,
            FakeHasher(),
            clock=self.clock,
            randbelow=lambda n: next(digits) % n,
            policy=policy or SmsPolicy(resend_interval=timedelta(0)),
            limits=self.limits,
            captcha=self.captcha,
            client_policy=clients or ClientPolicy(captcha_after=1000),
            captcha_issues_per_hour=captcha_issues,
        )

    def next_answer(self) -> str:
        """The answer of the challenge the captcha issues next (it draws the answer, then the picture)."""
        answer = new_answer(self.answers)
        render_png(answer, self.answers)
        return answer


def wrong_for(*codes: str) -> str:
    return next(c for c in ("000000", "111111", "222222") if c not in codes)


def ip(
    n: int = 1, device: str | None = None, captcha_id: str | None = None, captcha_answer: str | None = None
) -> SendOrigin:
    return SendOrigin(
        ip_hash=f"ip{n}", device_hash=device, captcha_id=captcha_id, captcha_answer=captcha_answer
    )


# --------------------------------------------------------------------------- per phone and purpose


def test_a_strangers_ten_login_sends_never_lock_the_owner_out_of_their_own_codes() -> None:
    parts = Parts()
    # given a stranger who spent the phone's ten login codes of the day
    for n in range(10):
        parts.service.send(PHONE, SmsPurpose.LOGIN, ip(n))
    assert refusal(parts.service.send, PHONE, SmsPurpose.LOGIN, ip(99)).code == "sms.daily_limit"
    # when the signed-in owner asks for their own flow's codes
    owner = SendOrigin(ip_hash="ip-owner", caller=OWNER)
    parts.service.send(PHONE, SmsPurpose.OWNER_PHONE, owner)
    parts.service.send(PHONE, SmsPurpose.DEREGISTRATION, owner)
    # then both go: the owner's bucket is theirs alone
    assert len(parts.inbox.texts_to(PHONE)) == 12


def test_a_strangers_signed_in_sends_and_wrong_tries_leave_the_owners_own_code_working() -> None:
    parts = Parts()
    owner = SendOrigin(ip_hash="ip-owner", caller=OWNER)
    stranger = SendOrigin(ip_hash="ip-stranger", caller="u-stranger")
    # given the owner's code, sent first
    parts.service.send(PHONE, SmsPurpose.OWNER_PHONE, owner)
    code = parts.inbox.last_code(PHONE)
    # when a signed-in stranger asks codes of the same purpose for the same phone, then tries wrong
    # codes until theirs is burnt
    for _ in range(3):
        parts.service.send(PHONE, SmsPurpose.OWNER_PHONE, stranger)
    theirs = parts.inbox.last_code(PHONE)
    for _ in range(5):
        refusal(parts.service.check, PHONE, SmsPurpose.OWNER_PHONE, wrong_for(code, theirs), "u-stranger")
    burnt = refusal(parts.service.check, PHONE, SmsPurpose.OWNER_PHONE, theirs, "u-stranger")
    assert burnt.code == "sms.too_many_tries"
    # then the owner's code was neither replaced nor tried: it still works, for the owner only
    assert refusal(parts.service.check, PHONE, SmsPurpose.OWNER_PHONE, code, "u-stranger").code == (
        "sms.too_many_tries"  # the stranger only ever reaches their own, burnt, code
    )
    parts.service.check(PHONE, SmsPurpose.OWNER_PHONE, code, OWNER)


def test_a_phone_gets_at_most_its_signed_in_total_from_others_but_its_holder_is_not_counted() -> None:
    policy = SmsPolicy(resend_interval=timedelta(0), sends_per_phone_signed_in_day=3)
    parts = Parts(policy=policy)
    for n in range(3):
        parts.service.send(PHONE, SmsPurpose.OWNER_PHONE, SendOrigin(caller=f"u-{n}"))
    # a fourth signed-in person naming the phone is refused, whatever the purpose
    err = refusal(parts.service.send, PHONE, SmsPurpose.DEREGISTRATION, SendOrigin(caller="u-9"))
    assert (err.code, err.details["limit"]) == ("sms.daily_limit", 3)
    # the phone's own holder (signed in with it) still gets their codes
    holder = subject_for(parts.service.phone_hash(PHONE))
    parts.service.send(PHONE, SmsPurpose.DEREGISTRATION, SendOrigin(caller=holder))
    assert len(parts.inbox.texts_to(PHONE)) == 4


def test_anonymous_purposes_share_the_phones_daily_total() -> None:
    parts = Parts(policy=SmsPolicy(resend_interval=timedelta(0), sends_per_day=10, sends_per_phone_day=12))
    for _ in range(10):
        parts.service.send(PHONE, SmsPurpose.LOGIN)
    parts.service.send(PHONE, SmsPurpose.ACCOUNT_LOGIN)
    parts.service.send(PHONE, SmsPurpose.ACCOUNT_LOGIN)
    # the 13th anonymous code of the day is refused whatever its purpose, and counted nowhere
    err = refusal(parts.service.send, PHONE, SmsPurpose.PASSWORD_RESET)
    assert (err.code, err.details["limit"]) == ("sms.daily_limit", 12)
    assert not any(key.endswith("#password_reset") for key in parts.codes.quotas)
    assert len(parts.inbox.texts_to(PHONE)) == 12


# --------------------------------------------------------------------------- per client


def test_a_client_ip_past_its_hourly_asks_is_refused_until_the_hour_ends() -> None:
    parts = Parts(ClientPolicy(per_ip_hour=3, captcha_after=1000))
    for n in range(3):
        parts.service.send(f"1381234000{n}", SmsPurpose.LOGIN, ip())
    err = refusal(parts.service.send, "13812340009", SmsPurpose.LOGIN, ip())
    # 10:20 China time: the UTC hour ends in 40 minutes
    assert (err.code, err.status, err.details) == ("sms.too_many_from_client", 429, {"retry_after": 2400})
    assert len(parts.inbox.sent) == 3
    # another IP still asks; the next hour the first one does again
    parts.service.send("13812340009", SmsPurpose.LOGIN, ip(2))
    parts.clock.advance(minutes=40)
    parts.service.send("13812340008", SmsPurpose.LOGIN, ip())


def test_a_device_past_its_hourly_asks_is_refused_from_any_ip_and_counts_nothing() -> None:
    parts = Parts(ClientPolicy(per_device_hour=2, captcha_after=1000))
    parts.service.send("13812340001", SmsPurpose.LOGIN, ip(1, "dev-a"))
    parts.service.send("13812340002", SmsPurpose.LOGIN, ip(2, "dev-a"))
    before = dict(parts.limits.counts)
    err = refusal(parts.service.send, "13812340003", SmsPurpose.LOGIN, ip(3, "dev-a"))
    assert err.code == "sms.too_many_from_client"
    assert parts.limits.counts == before  # the refused ask took no counter, not even its IP's


def test_signed_in_asks_count_per_caller_not_against_a_shared_ip_nor_its_captcha() -> None:
    parts = Parts(ClientPolicy(per_ip_hour=2, captcha_after=1, per_caller_hour=2))
    # given strangers behind one carrier NAT who spent its IP's asks (and met its captcha)
    parts.service.send("13812340001", SmsPurpose.LOGIN, ip())
    assert refusal(parts.service.send, "13812340002", SmsPurpose.LOGIN, ip()).code == "captcha.required"
    # when a signed-in owner behind the same IP asks codes of their own flow
    mine = SendOrigin(ip_hash="ip1", caller=OWNER)
    parts.service.send(PHONE, SmsPurpose.OWNER_PHONE, mine)
    parts.service.send(PHONE, SmsPurpose.DEREGISTRATION, mine)
    # then they go, without a captcha; the caller's own hourly asks bound them
    err = refusal(parts.service.send, PHONE, SmsPurpose.DEREGISTRATION, mine)
    assert (err.code, err.status) == ("sms.too_many_from_client", 429)
    assert len(parts.inbox.texts_to(PHONE)) == 2
    assert parts.limits.counts["ip#ip1#h#2026030202"] == 1  # only the anonymous ask counted there


def test_a_daily_client_limit_holds_across_hours() -> None:
    parts = Parts(ClientPolicy(per_ip_hour=100, per_ip_day=2, captcha_after=1000))
    parts.service.send("13812340001", SmsPurpose.LOGIN, ip())
    parts.clock.advance(hours=2)
    parts.service.send("13812340002", SmsPurpose.LOGIN, ip())
    parts.clock.advance(hours=2)
    err = refusal(parts.service.send, "13812340003", SmsPurpose.LOGIN, ip())
    assert err.code == "sms.too_many_from_client"


# --------------------------------------------------------------------------- captcha


def test_after_three_asks_the_fourth_needs_a_captcha_which_is_single_use() -> None:
    parts = Parts(ClientPolicy(captcha_after=3))
    for n in range(3):
        parts.service.send(f"1381234000{n}", SmsPurpose.LOGIN, ip())
    # the fourth ask is refused with a challenge, and nothing is sent
    answer = parts.next_answer()
    required = refusal(parts.service.send, "13812340005", SmsPurpose.LOGIN, ip())
    assert (required.code, required.status, required.field) == ("captcha.required", 428, "captcha_answer")
    challenge = required.details["challenge"]
    assert challenge["image"].startswith("data:image/png;base64,")
    assert len(parts.inbox.sent) == 3
    # a wrong answer spends the challenge and hands out a new one
    wrong = refusal(
        parts.service.send,
        "13812340005",
        SmsPurpose.LOGIN,
        ip(captcha_id=challenge["challenge_id"], captcha_answer="XXXXX"),
    )
    assert (wrong.code, wrong.status, wrong.field) == ("captcha.wrong", 422, "captcha_answer")
    # so even the right answer to it no longer works
    again = refusal(
        parts.service.send,
        "13812340005",
        SmsPurpose.LOGIN,
        ip(captcha_id=challenge["challenge_id"], captcha_answer=answer),
    )
    assert again.code == "captcha.wrong"
    # the newest challenge, answered right (case and spaces aside), lets the code go
    answer = parts.next_answer()  # the one ``wrong`` handed out was drawn before ``again``'s
    fresh = wrong.details["challenge"]
    parts.service.send(
        "13812340005",
        SmsPurpose.LOGIN,
        ip(captcha_id=fresh["challenge_id"], captcha_answer=" ".join(answer.lower())),
    )
    assert len(parts.inbox.sent) == 4
    # and a reused answer is refused
    reused = refusal(
        parts.service.send,
        "13812340006",
        SmsPurpose.LOGIN,
        ip(captcha_id=fresh["challenge_id"], captcha_answer=answer),
    )
    assert reused.code == "captcha.wrong"


class StaleTallies(FakeSmsLimitStore):
    """Counters whose reads all come before any ask counted (asks racing each other)."""

    def tallies(self, keys: list[str]) -> dict[str, int]:
        return dict.fromkeys(keys, 0)


def test_asks_racing_past_the_captcha_threshold_cannot_all_skip_it() -> None:
    parts = Parts(ClientPolicy(captcha_after=3))
    parts.limits = StaleTallies()
    parts.service = SmsCodeService(
        parts.codes,
        parts.inbox,
        FakeHasher(),
        clock=parts.clock,
        policy=SmsPolicy(resend_interval=timedelta(0)),
        limits=parts.limits,
        captcha=parts.captcha,
        client_policy=ClientPolicy(captcha_after=3),
    )
    # when twenty asks of one client each see the hour's count as it was before any of them counted
    answers = []
    for n in range(20):
        try:
            parts.service.send(f"138123400{n:02d}", SmsPurpose.LOGIN, ip())
            answers.append("sent")
        except DomainError as err:
            answers.append(err.code)
    # then only the first three went without a captcha: the threshold is a cap taken with the count
    assert answers == ["sent"] * 3 + ["captcha.required"] * 17
    assert len(parts.inbox.sent) == 3


def test_an_answer_given_below_the_threshold_is_not_spent() -> None:
    parts = Parts(ClientPolicy(captcha_after=2))
    parts.service.send("13812340001", SmsPurpose.LOGIN, ip())
    answer = parts.next_answer()
    challenge = parts.service.challenge(ip())
    given = ip(captcha_id=str(challenge["challenge_id"]), captcha_answer=answer)
    parts.service.send("13812340002", SmsPurpose.LOGIN, given)  # the second ask: no answer needed
    parts.service.send("13812340003", SmsPurpose.LOGIN, given)  # the third: the answer, still good
    assert refusal(parts.service.send, "13812340004", SmsPurpose.LOGIN, given).code == "captcha.wrong"


def test_an_expired_challenge_is_refused() -> None:
    parts = Parts(ClientPolicy(captcha_after=0))
    answer = parts.next_answer()
    challenge = refusal(parts.service.send, PHONE, SmsPurpose.LOGIN, ip()).details["challenge"]
    parts.clock.advance(minutes=5)
    err = refusal(
        parts.service.send,
        PHONE,
        SmsPurpose.LOGIN,
        ip(captcha_id=challenge["challenge_id"], captcha_answer=answer),
    )
    assert err.code == "captcha.wrong"


def test_the_origin_set_for_a_request_reaches_sends_made_by_other_services() -> None:
    parts = Parts(ClientPolicy(per_ip_hour=1, captcha_after=1000))
    with asking_as(ip()):
        parts.service.send("13812340001", SmsPurpose.LOGIN)
        assert refusal(parts.service.send, "13812340002", SmsPurpose.LOGIN).code == "sms.too_many_from_client"


def test_an_admitted_origin_is_not_counted_twice() -> None:
    parts = Parts(ClientPolicy(per_ip_hour=1, captcha_after=1000))
    origin = parts.service.admit(ip())
    parts.service.send("13812340001", SmsPurpose.LOGIN, origin)
    assert refusal(parts.service.admit, ip()).code == "sms.too_many_from_client"


def test_challenges_issued_to_one_ip_are_limited() -> None:
    parts = Parts(ClientPolicy(captcha_after=0), captcha_issues=2)
    parts.service.challenge(ip())
    parts.service.challenge(ip())
    assert refusal(parts.service.challenge, ip()).code == "sms.too_many_from_client"


# --------------------------------------------------------------------------- the platform's budget


@pytest.mark.parametrize("budget", [1, 3, 4, 5, 5000])
def test_the_budgets_shards_add_up_to_the_budget(budget: int) -> None:
    caps = budget_caps(budget)
    assert sum(caps) == budget
    assert max(caps) - min(caps) <= 1


def test_past_the_hourly_budget_sends_are_a_retryable_503_until_the_next_hour() -> None:
    parts = Parts(ClientPolicy(budget_per_hour=3, captcha_after=1000))
    for n in range(3):
        parts.service.send(f"1381234000{n}", SmsPurpose.LOGIN, ip(n))
    err = refusal(parts.service.send, "13812340009", SmsPurpose.LOGIN, ip(9))
    assert (err.code, err.status, err.details) == (
        "sms.unavailable_budget",
        503,
        {"retry_after_seconds": 2400},
    )
    assert len(parts.inbox.sent) == 3
    parts.clock.advance(minutes=40)
    parts.service.send("13812340009", SmsPurpose.LOGIN, ip(9))


def test_sends_the_budget_refused_leave_the_phones_allowance_whole() -> None:
    parts = Parts(
        ClientPolicy(budget_per_hour=2, captcha_after=1000),
        policy=SmsPolicy(sends_per_day=2),  # a 60 s interval and two codes a day per bucket
    )
    parts.service.send(OTHER, SmsPurpose.LOGIN, ip())
    parts.service.send(OTHER, SmsPurpose.ACCOUNT_LOGIN, ip())  # the hour's budget spent
    # when the same phone is refused by the budget three times
    for _ in range(3):
        assert refusal(parts.service.send, PHONE, SmsPurpose.LOGIN, ip()).code == "sms.unavailable_budget"
    # then next hour it gets its two codes of the day, the first at once
    parts.clock.advance(minutes=40)
    parts.service.send(PHONE, SmsPurpose.LOGIN, ip())
    parts.clock.advance(seconds=61)
    parts.service.send(PHONE, SmsPurpose.LOGIN, ip())
    assert len(parts.inbox.texts_to(PHONE)) == 2


def test_a_send_the_provider_failed_may_be_retried_when_the_503_says() -> None:
    parts = Parts(ClientPolicy(budget_per_hour=1, captcha_after=1000), policy=SmsPolicy(sends_per_day=1))
    parts.inbox.fail()
    err = refusal(parts.service.send, PHONE, SmsPurpose.LOGIN, ip())
    assert (err.code, err.status) == ("sms.send_failed", 503)
    # the retry after the seconds the 503 gave is neither too soon, past the day's one code, nor past
    # the hour's budget of one: the failed send was given back everywhere
    parts.inbox.recover()
    parts.clock.advance(seconds=err.details["retry_after_seconds"])
    parts.service.send(PHONE, SmsPurpose.LOGIN, ip())
    assert len(parts.inbox.texts_to(PHONE)) == 1


# --------------------------------------------------------------------------- login: devices and tries


def device(name: str, n: int = 1) -> SendOrigin:
    return SendOrigin(ip_hash=f"ip{n}", device_hash=name)


def test_a_device_the_phone_signed_in_from_keeps_its_own_login_code_and_allowance() -> None:
    parts = Parts(ClientPolicy(captcha_after=1000, tries_per_ip_hour=1000, tries_per_device_hour=1000))
    mine = device("dev-owner")
    parts.service.send(PHONE, SmsPurpose.LOGIN, mine)
    parts.service.login(PHONE, parts.inbox.last_code(PHONE), mine)
    # given strangers who spent the phone's login codes of the day, and burn every code they can
    for n in range(9):  # the phone's login bucket: ten a day, the owner's first login included
        parts.service.send(PHONE, SmsPurpose.LOGIN, device(f"dev-x{n}", n + 10))
    assert refusal(parts.service.send, PHONE, SmsPurpose.LOGIN, device("dev-y", 99)).code == "sms.daily_limit"
    # when the owner asks from their device
    parts.service.send(PHONE, SmsPurpose.LOGIN, mine)
    code = parts.inbox.last_code(PHONE)
    for _ in range(6):
        refusal(parts.service.login, PHONE, wrong_for(code), device("dev-y", 99))
    # then the code is the device's own: the strangers' tries never reached it
    assert parts.service.login(PHONE, code, mine) == subject_for(parts.service.phone_hash(PHONE))


def test_failed_login_tries_are_limited_per_client_before_the_code_is_looked_at() -> None:
    parts = Parts(ClientPolicy(captcha_after=1000, tries_per_device_hour=3, tries_per_ip_hour=1000))
    parts.service.send(PHONE, SmsPurpose.LOGIN, ip())
    code = parts.inbox.last_code(PHONE)
    # a right code gives its try back
    parts.service.send(OTHER, SmsPurpose.LOGIN, ip(2))
    parts.service.login(OTHER, parts.inbox.last_code(OTHER), device("dev-a"))
    for _ in range(3):
        assert refusal(parts.service.login, PHONE, wrong_for(code), device("dev-a")).code == "sms.code_wrong"
    err = refusal(parts.service.login, PHONE, wrong_for(code), device("dev-a"))
    assert (err.code, err.status, err.details) == (
        "sms.too_many_tries_from_client",
        429,
        {"retry_after": 2400},
    )
    # the refused try did not count against the code: two tries are left for the phone's holder
    left = refusal(parts.service.login, PHONE, wrong_for(code), device("dev-b", 2)).details
    assert left == {"tries_left": 1}
    parts.service.login(PHONE, code, device("dev-b", 2))
