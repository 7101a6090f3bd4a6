"""SMS codes and phone login on the embedded AWS: DynamoDB codes and counters, the KMS keyed hash, the
S3 SMS drop, SNS. The clock is controlled, so the resend interval, the daily limit and expiry are tested
without waiting.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import pytest
from chalice.app import Chalice
from chalice.test import Client
from click.testing import CliRunner

from chalicelib.adapters.dynamo.models_sms import SMS_TABLES
from chalicelib.adapters.sms.dynamo import DynamoSmsCodeStore
from chalicelib.adapters.sms.local import LocalSmsDrop
from chalicelib.adapters.sms.sns import SnsSmsSender
from chalicelib.core import deps
from chalicelib.core.auth import Role, authenticate
from chalicelib.core.aws import client
from chalicelib.core.settings import get_settings
from chalicelib.kernel.errors import DomainError
from chalicelib.sms.codes import SmsCodeService
from chalicelib.sms.domain import SendBuckets, SmsPolicy, SmsPurpose

PHONE = "13812345678"
OTHER_PHONE = "13900001111"
# 10:00 in China (UTC+8).
T0 = datetime(2025, 3, 3, 2, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Codes:
    """A code generator the test can steer: ``next`` is the next code, else a counting sequence."""

    def __init__(self) -> None:
        self.next: int | None = None
        self.count = 100_000

    def __call__(self, n: int) -> int:
        assert n == 10**6
        if self.next is not None:
            value, self.next = self.next, None
            return value
        self.count += 1
        return self.count


class Stack:
    def __init__(self) -> None:
        self.clock = Clock()
        self.codes = Codes()
        self.drop = LocalSmsDrop(client("s3"), get_settings().documents_bucket)
        self.store = DynamoSmsCodeStore()
        self.service = SmsCodeService(
            self.store, self.drop, deps.keyed_hasher(), clock=self.clock, randbelow=self.codes
        )

    def last_code(self) -> str:
        found = re.search(r"验证码 (\d{6})", self.drop.recent(1)[0].text)
        assert found is not None
        return found.group(1)

    def send(self, phone: str = PHONE, purpose: SmsPurpose = SmsPurpose.LOGIN) -> str:
        self.service.send(phone, purpose)
        return self.last_code()


@pytest.fixture
def stack(aws: None) -> Stack:
    return Stack()


def refusal(fn: Callable[..., Any], *args: Any) -> DomainError:
    with pytest.raises(DomainError) as caught:
        fn(*args)
    return caught.value


def raw_items() -> str:
    """Every stored item of the SMS tables, as DynamoDB holds them."""
    ddb = client("dynamodb")
    items = []
    for spec in SMS_TABLES:
        items += ddb.scan(TableName=get_settings().table_name(spec.short_name))["Items"]
    assert items
    return json.dumps(items)


# --------------------------------------------------------------------------- checking codes


def test_six_wrong_codes_burn_the_code_and_then_even_the_right_one_is_refused(stack: Stack) -> None:
    # Given a login code
    code = stack.send()
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    # When the wrong code is typed six times
    lefts = []
    for _ in range(5):
        err = refusal(stack.service.check, PHONE, SmsPurpose.LOGIN, wrong)
        assert (err.code, err.status) == ("sms.code_wrong", 422)
        lefts.append(err.details["tries_left"])
    sixth = refusal(stack.service.check, PHONE, SmsPurpose.LOGIN, wrong)
    # Then five tries count down and the sixth finds the code burnt
    assert lefts == [4, 3, 2, 1, 0]
    assert (sixth.code, sixth.status) == ("sms.too_many_tries", 429)
    # And the right code no longer works either
    assert refusal(stack.service.check, PHONE, SmsPurpose.LOGIN, code).code == "sms.too_many_tries"
    # Until a new code is sent (after the resend interval), which starts with five tries again
    stack.clock.advance(60)
    fresh = stack.send()
    assert refusal(stack.service.check, PHONE, SmsPurpose.LOGIN, code).details == {"tries_left": 4}
    stack.service.check(PHONE, SmsPurpose.LOGIN, fresh)


def test_a_code_is_single_use(stack: Stack) -> None:
    code = stack.send()
    stack.service.check(PHONE, SmsPurpose.LOGIN, code)
    err = refusal(stack.service.check, PHONE, SmsPurpose.LOGIN, code)
    assert (err.code, err.status) == ("sms.no_code", 422)


def test_an_expired_code_is_refused(stack: Stack) -> None:
    code = stack.send()
    stack.clock.advance(5 * 60)
    err = refusal(stack.service.check, PHONE, SmsPurpose.LOGIN, code)
    assert (err.code, err.status) == ("sms.code_expired", 422)


def test_a_code_is_good_until_its_last_second(stack: Stack) -> None:
    code = stack.send()
    stack.clock.advance(5 * 60 - 1)
    stack.service.check(PHONE, SmsPurpose.LOGIN, code)


def test_a_code_works_only_for_its_purpose(stack: Stack) -> None:
    # Given a login code
    login_code = stack.send(purpose=SmsPurpose.LOGIN)
    # Then it neither verifies the owner's phone nor confirms a de-registration
    for purpose in (SmsPurpose.OWNER_PHONE, SmsPurpose.DEREGISTRATION):
        assert refusal(stack.service.check, PHONE, purpose, login_code).code == "sms.no_code"
    # And a code of another purpose sent later does not replace it
    stack.clock.advance(60)
    owner_code = stack.send(purpose=SmsPurpose.OWNER_PHONE)
    assert refusal(stack.service.check, PHONE, SmsPurpose.LOGIN, owner_code).code == "sms.code_wrong"
    stack.service.check(PHONE, SmsPurpose.LOGIN, login_code)
    stack.service.check(PHONE, SmsPurpose.OWNER_PHONE, owner_code)


def test_another_phone_cannot_use_the_code(stack: Stack) -> None:
    code = stack.send(PHONE)
    assert refusal(stack.service.check, OTHER_PHONE, SmsPurpose.LOGIN, code).code == "sms.no_code"


def test_the_tables_hold_neither_the_code_nor_the_phone(stack: Stack) -> None:
    stack.codes.next = 482913
    assert stack.send() == "482913"
    stored = raw_items()
    for secret in ("482913", PHONE, PHONE[-8:], "mobile:"):
        assert secret not in stored
    # And what the developer's SMS drop keeps has the number masked
    message = stack.drop.recent(1)[0]
    assert message.phone == "138****5678"
    assert PHONE not in message.model_dump_json()


# --------------------------------------------------------------------------- sending limits


def test_a_resend_within_60_seconds_is_too_soon(stack: Stack) -> None:
    stack.send()
    stack.clock.advance(20)
    err = refusal(stack.service.send, PHONE, SmsPurpose.LOGIN)
    assert (err.code, err.status, err.details) == ("sms.too_soon", 429, {"retry_after": 40})
    # The interval is per phone and purpose: another purpose and another phone do not wait
    stack.send(PHONE, SmsPurpose.OWNER_PHONE)
    stack.send(OTHER_PHONE)
    stack.clock.advance(40)
    stack.send()


def test_a_refused_resend_keeps_the_earlier_code(stack: Stack) -> None:
    code = stack.send()
    stack.clock.advance(1)
    refusal(stack.service.send, PHONE, SmsPurpose.LOGIN)
    assert len(stack.drop.recent(10)) == 1
    stack.service.check(PHONE, SmsPurpose.LOGIN, code)


def test_the_eleventh_send_of_a_china_day_is_refused_until_the_next_day(stack: Stack) -> None:
    for _ in range(10):
        stack.send()
        stack.clock.advance(61)
    err = refusal(stack.service.send, PHONE, SmsPurpose.LOGIN)
    assert (err.code, err.status) == ("sms.daily_limit", 429)
    assert err.details["limit"] == 10
    assert len(stack.drop.recent(20)) == 10
    # At midnight China time (16:00 UTC) the phone may ask again
    stack.clock.now = datetime(2025, 3, 3, 16, 0, tzinfo=UTC)
    stack.send()


def test_the_limits_come_from_the_policy(aws: None) -> None:
    stack = Stack()
    stack.service = SmsCodeService(
        stack.store,
        stack.drop,
        deps.keyed_hasher(),
        clock=stack.clock,
        randbelow=stack.codes,
        policy=SmsPolicy(sends_per_day=2, resend_interval=timedelta(0)),
    )
    stack.send()
    stack.send()
    assert refusal(stack.service.send, PHONE, SmsPurpose.LOGIN).code == "sms.daily_limit"


# --------------------------------------------------------------------------- conditional writes


def test_one_of_two_sends_at_the_same_instant_is_counted(stack: Stack) -> None:
    policy = SmsPolicy()
    buckets = SendBuckets("phone-hash#login", "phone-hash#all", policy.sends_per_phone_day)
    first = stack.store.reserve_send(buckets, T0, policy)
    assert (first.sent, first.last_sent_at) == (1, T0)
    # The second write is refused by its condition, not by a read made before it, and the phone's
    # total it had counted in is taken back
    refused = refusal(stack.store.reserve_send, buckets, T0, policy)
    assert refused.code == "sms.too_soon"
    assert stack.store.quota("phone-hash#login") == first
    total = stack.store.quota("phone-hash#all")
    assert total is not None
    assert total.sent == 1


def test_a_send_given_back_counts_nothing_and_lets_the_next_go_at_once(stack: Stack) -> None:
    policy = SmsPolicy(sends_per_day=1)
    buckets = SendBuckets("phone-hash#login", "phone-hash#all", 1)
    stack.store.reserve_send(buckets, T0, policy)
    stack.store.release_send(buckets, T0, policy)
    # the bucket's one send of the day and the phone's one in total are free again, without a wait
    again = stack.store.reserve_send(buckets, T0 + timedelta(seconds=1), policy)
    assert again.sent == 1
    total = stack.store.quota("phone-hash#all")
    assert total is not None
    assert total.sent == 1
    # a give-back of a send that is no longer the last changes nothing
    stack.store.release_send(buckets, T0, policy)
    assert stack.store.quota("phone-hash#login") == again


def test_a_take_cancelled_by_a_concurrent_one_is_tried_again(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pynamodb.exceptions import CancellationReason, TransactWriteError, VerboseClientError

    from chalicelib.adapters.sms import limits as adapter
    from chalicelib.sms.limits import Counter

    deps.sms_code_service()  # the tables bound
    store = adapter.DynamoSmsLimitStore()
    real = store._take_once
    conflicts = {"left": 2}

    def conflicting(counters: list[Counter]) -> None:
        if conflicts["left"] > 0:
            conflicts["left"] -= 1
            cause = VerboseClientError(
                {"Error": {"Code": "TransactionCanceledException", "Message": "conflict"}},
                "TransactWriteItems",
                cancellation_reasons=[CancellationReason(code="TransactionConflict"), None],
            )
            raise TransactWriteError("cancelled", cause=cause)
        real(counters)

    monkeypatch.setattr(store, "_take_once", conflicting)
    monkeypatch.setattr(adapter, "_CONFLICT_PAUSE_SECONDS", 0.0)
    end = T0 + timedelta(hours=1)
    counters = [Counter("ip#a#h#1", 5, end, "ip"), Counter("dev#a#h#1", 5, end, "device")]
    # two conflicts, then the third try counts: one in each counter
    assert store.take(counters) is None
    assert store.tallies(["ip#a#h#1", "dev#a#h#1"]) == {"ip#a#h#1": 1, "dev#a#h#1": 1}
    # a conflict on every try goes up (a retryable 503 at the API)
    conflicts["left"] = 3
    with pytest.raises(TransactWriteError):
        store.take(counters)
    assert store.tallies(["ip#a#h#1"]) == {"ip#a#h#1": 1}


def test_a_check_made_on_a_stale_read_cannot_use_a_burnt_or_replaced_code(stack: Stack) -> None:
    code = stack.send()
    key = f"login#{stack.service.phone_hash(PHONE)}"
    stale = stack.store.get_code(key)
    assert stale is not None
    # Five wrong tries land while another request holds the read
    for _ in range(5):
        assert stack.store.add_wrong_try(stale, 5) is not None
    assert stack.store.add_wrong_try(stale, 5) is None
    assert stack.store.consume(stale, stack.clock(), 5) is False
    # A code replaced by a new send cannot be consumed through the old read either
    stack.clock.advance(60)
    stack.send()
    assert stack.store.consume(stale, stack.clock(), 5) is False
    assert refusal(stack.service.check, PHONE, SmsPurpose.LOGIN, code).code == "sms.code_wrong"


# --------------------------------------------------------------------------- adapters


class RecordingSns:
    """Moto's SNS, with the publish arguments kept for the assertions."""

    def __init__(self) -> None:
        self.sns = client("sns")
        self.calls: list[dict[str, Any]] = []

    def publish(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        return self.sns.publish(**kwargs)


def test_sns_sends_a_transactional_sms_to_the_e164_number(aws: None) -> None:
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.sns.models import sns_backends

    sns = RecordingSns()
    message_id = SnsSmsSender(sns).send(PHONE, "【车联网卡实名登记】验证码 123456")
    (call,) = sns.calls
    assert call["MessageAttributes"]["AWS.SNS.SMS.SMSType"]["StringValue"] == "Transactional"
    delivered = sns_backends[DEFAULT_ACCOUNT_ID][get_settings().region].sms_messages
    assert delivered[message_id] == ("+8613812345678", "【车联网卡实名登记】验证码 123456")


def test_an_sns_failure_is_a_503_refusal_naming_no_number(aws: None) -> None:
    err = refusal(SnsSmsSender(client("sns")).send, "not-a-number", "text")
    assert (err.code, err.status) == ("sms.send_failed", 503)
    assert "not-a-number" not in json.dumps(err.to_dict())


def test_the_sms_drop_is_read_newest_first_by_another_reader(stack: Stack) -> None:
    stack.drop.send(PHONE, "one")
    stack.drop.send(OTHER_PHONE, "two")
    # Another process reads it through its own client (the bucket is the shared state)
    reader = LocalSmsDrop(client("s3"), get_settings().documents_bucket)
    assert [(m.phone, m.text) for m in reader.recent(5)] == [("139****1111", "two"), ("138****5678", "one")]
    assert [m.text for m in reader.recent(1)] == ["two"]


# --------------------------------------------------------------------------- routes


def _getter(value: Any) -> Callable[[], Any]:
    @lru_cache(maxsize=1)
    def get() -> Any:
        return value

    return get


@lru_cache(maxsize=1)
def _auth_app() -> Chalice:
    """The real app once it registers the auth routes; until then a test app with the blueprint."""
    from app import app
    from chalicelib.api import auth

    if "/v1/auth/login" in app.routes:
        return app
    test_app = Chalice(app_name="cheka-auth-test")
    test_app.experimental_feature_flags.update(["BLUEPRINTS"])
    test_app.register_blueprint(auth.bp)
    return test_app


@pytest.fixture
def api_client(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    monkeypatch.setattr(deps, "sms_code_service", _getter(stack.service), raising=False)
    monkeypatch.setattr(deps, "sms_drop", _getter(stack.drop), raising=False)
    with Client(_auth_app()) as test_client:
        yield test_client


def post(api: Client, path: str, body: dict[str, Any], **headers: str) -> Any:
    return api.http.post(path, body=json.dumps(body), headers={"Content-Type": "application/json", **headers})


def login(api: Client, stack: Stack, phone: str) -> dict[str, Any]:
    stack.clock.advance(61)
    sent = post(api, "/v1/auth/sms-codes", {"phone": phone, "purpose": "login"})
    assert sent.status_code == 202, sent.body
    assert json.loads(sent.body) == {"expires_in": 300, "resend_after": 60}
    answer = post(api, "/v1/auth/login", {"phone": phone, "code": stack.last_code()})
    assert answer.status_code == 200, answer.body
    doc: dict[str, Any] = json.loads(answer.body)
    return doc


def test_login_gives_an_owner_token_whose_subject_is_a_pseudonym_of_the_phone(
    stack: Stack, api_client: Client
) -> None:
    first, again, other = (login(api_client, stack, p) for p in (PHONE, f"+86 {PHONE}", OTHER_PHONE))
    # The same phone is the same person; another phone another one
    assert first["subject"] == again["subject"] != other["subject"]
    assert re.fullmatch(r"u[0-9a-f]{32}", first["subject"])
    principal = authenticate(get_settings(), f"Bearer {first['token']}")
    assert principal.subject == first["subject"]
    assert principal.roles == frozenset({Role.OWNER})
    assert first["expires_in"] == get_settings().token_ttl_seconds
    # Nothing in the answer or the token's claims carries the number
    import jwt

    claims = jwt.decode(first["token"], options={"verify_signature": False})
    for shown in (json.dumps(first), json.dumps(claims)):
        assert PHONE not in shown
        assert PHONE[-8:] not in shown


def test_a_login_with_a_wrong_code_is_refused_with_the_tries_left(stack: Stack, api_client: Client) -> None:
    code = stack.send()
    answer = post(api_client, "/v1/auth/login", {"phone": PHONE, "code": f"{(int(code) + 1) % 10**6:06d}"})
    assert answer.status_code == 422
    body = json.loads(answer.body)
    assert (body["code"], body["details"], body["field"]) == ("sms.code_wrong", {"tries_left": 4}, "code")
    assert "token" not in body


def test_asking_for_a_code_answers_alike_for_any_valid_phone(stack: Stack, api_client: Client) -> None:
    # Given one phone that has signed in before and one that never has
    login(api_client, stack, PHONE)
    stack.clock.advance(61)
    known = post(api_client, "/v1/auth/sms-codes", {"phone": PHONE, "purpose": "login"})
    unknown = post(api_client, "/v1/auth/sms-codes", {"phone": "13700002222", "purpose": "login"})
    assert (known.status_code, known.body) == (unknown.status_code, unknown.body)


def test_too_soon_and_invalid_numbers_over_http(stack: Stack, api_client: Client) -> None:
    stack.send()
    again = post(api_client, "/v1/auth/sms-codes", {"phone": PHONE, "purpose": "login"})
    assert again.status_code == 429
    assert json.loads(again.body)["details"] == {"retry_after": 60}
    bad = post(api_client, "/v1/auth/sms-codes", {"phone": "12345", "purpose": "login"})
    assert bad.status_code == 422
    assert json.loads(bad.body)["code"] == "mobile.format"


def test_codes_other_than_login_need_a_signed_in_person(
    stack: Stack, api_client: Client, token: Callable[..., str]
) -> None:
    body = {"phone": PHONE, "purpose": "owner_phone"}
    assert post(api_client, "/v1/auth/sms-codes", body).status_code == 401
    reviewer = {"Authorization": f"Bearer {token('reviewer')}"}
    assert post(api_client, "/v1/auth/sms-codes", body, **reviewer).status_code == 403
    owner = {"Authorization": f"Bearer {token('owner')}"}
    assert post(api_client, "/v1/auth/sms-codes", body, **owner).status_code == 202
    # the code is the signed-in person's own: checked for them, never for someone else
    code = stack.last_code()
    assert refusal(stack.service.check, PHONE, SmsPurpose.OWNER_PHONE, code, "someone").code == "sms.no_code"
    stack.service.check(PHONE, SmsPurpose.OWNER_PHONE, code, "tester")
    # a fleet's responsible person's code has its own route
    fleet = post(api_client, "/v1/auth/sms-codes", {**body, "purpose": "fleet_responsible"}, **owner)
    assert (fleet.status_code, json.loads(fleet.body)["code"]) == (422, "sms.purpose_not_here")


def test_the_dev_sms_drop_lists_masked_phones_and_readable_codes(stack: Stack, api_client: Client) -> None:
    code = stack.send()
    answer = api_client.http.get("/v1/dev/sms-drop?limit=5")
    assert answer.status_code == 200
    (message,) = json.loads(answer.body)["messages"]
    assert message["phone"] == "138****5678"
    assert code in message["text"]
    assert api_client.http.get("/v1/dev/sms-drop?limit=0").status_code == 422


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_dev_sms_drop_does_not_exist_outside_local_stages(
    stack: Stack, api_client: Client, stage: str
) -> None:
    stack.send()
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("CHEKA_STAGE", stage)
            get_settings.cache_clear()
            assert not get_settings().is_local
            answer = api_client.http.get("/v1/dev/sms-drop")
    finally:
        get_settings.cache_clear()
    assert answer.status_code == 404
    assert "验证码" not in answer.body.decode()


def test_the_cli_prints_the_sms_drop_as_json_lines(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.cli.sms import sms

    monkeypatch.setattr(deps, "sms_drop", _getter(stack.drop), raising=False)
    code = stack.send()
    stack.send(OTHER_PHONE)
    result = CliRunner().invoke(sms, ["drop", "--limit", "5"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [m["phone"] for m in lines] == ["139****1111", "138****5678"]
    assert code in lines[1]["text"]
    assert PHONE not in result.output
