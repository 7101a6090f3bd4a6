"""SMS abuse limits and open flows through the API on the embedded AWS (DynamoDB conditional writes and
transactions): the owner's own codes past a stranger's sends and wrong tries (signed in or not), login
from the owner's own device past strangers' sends and tries, the client IP and device limits, the
captcha round trip, the platform's hourly budget, and the open registrations and flows per owner."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chalicelib.core import deps
from chalicelib.core.settings import get_settings

PHONE = "13812345678"
OWNER = "owner-abuse"

Stage = Callable[..., Any]


@pytest.fixture
def stage(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stage]:
    """The API of a stage with the settings given (``name=value``), strict where the conftest is
    generous; set before the test client starts (it patches the environment while it runs)."""
    from chalice.test import Client

    from app import app

    clients: list[Client] = []

    def start(**values: object) -> Any:
        for name, value in values.items():
            monkeypatch.setenv(f"CHEKA_{name.upper()}", str(value))
        deps.reset()
        get_settings()  # read now: the client patches the environment with its chalice stage's
        client = Client(app)
        clients.append(client)
        return client.__enter__()

    yield start
    for client in clients:
        client.__exit__(None, None, None)


def post(api: Any, path: str, body: Any = None, **headers: str) -> tuple[int, Any, dict[str, str]]:
    sent = {"Content-Type": "application/json", **headers}
    response = api.http.post(path, headers=sent, body=json.dumps(body) if body is not None else b"")
    return response.status_code, json.loads(response.body) if response.body else None, response.headers


def owner_headers(token: Callable[..., str], subject: str = OWNER) -> dict[str, str]:
    return {"Authorization": f"Bearer {token('owner', subject=subject)}"}


def ask(api: Any, phone: str, purpose: str = "login", **extra: Any) -> tuple[int, Any, dict[str, str]]:
    headers = extra.pop("headers", {})
    return post(api, "/v1/auth/sms-codes", {"phone": phone, "purpose": purpose, **extra}, **headers)


def test_a_strangers_ten_anonymous_sends_leave_the_owners_own_code(
    stage: Stage, token: Callable[..., str]
) -> None:
    api = stage(sms_resend_seconds=0)
    # given a stranger who asked ten login codes for the owner's phone today
    for _ in range(10):
        assert ask(api, PHONE)[0] == 202
    status, body, _ = ask(api, PHONE)
    assert (status, body["code"]) == (429, "sms.daily_limit")
    # when the owner, signed in, asks the code of their registration's phone step
    status, body, _ = ask(api, PHONE, "owner_phone", headers=owner_headers(token))
    # then it is sent
    assert status == 202, body
    assert "用于验证车主" in deps.sms_drop().recent(1)[0].text


def last_code() -> str:
    text = deps.sms_drop().recent(1)[0].text
    return "".join(ch for ch in text.split("验证码")[1] if ch.isdigit())[:6]


def at_phone_step(api: Any, headers: dict[str, str], vin: str) -> str:
    """A registration of ``vin`` whose vehicle is confirmed: the phone step is due."""
    status, reg, _ = post(api, "/v1/me/registrations", {"vin": vin}, **headers)
    assert status == 201, reg
    status, reg, _ = post(
        api, f"/v1/me/registrations/{reg['registration_id']}/confirm-vehicle", {}, **headers
    )
    assert (status, reg["step"]) == (200, "verify_phone"), reg
    return str(reg["registration_id"])


def test_a_strangers_signed_in_send_and_wrong_tries_leave_the_owners_own_code_working(
    stage: Stage, token: Callable[..., str]
) -> None:
    from chalicelib.local.synthetic import make_vin

    api = stage(sms_resend_seconds=0)
    me, stranger = owner_headers(token), owner_headers(token, "stranger")
    rng = random.Random(1)
    mine, theirs = at_phone_step(api, me, make_vin(rng)), at_phone_step(api, stranger, make_vin(rng))
    # given the owner's code for their registration's phone step
    assert ask(api, PHONE, "owner_phone", headers=me)[0] == 202
    code = last_code()
    # when a signed-in stranger asks a code of the same purpose for the owner's phone, then types wrong
    # codes for it in their own registration until no tries are left
    assert ask(api, PHONE, "owner_phone", headers=stranger)[0] == 202
    wrong = next(c for c in ("000000", "111111", "222222") if c not in (code, last_code()))
    for left in (4, 3, 2, 1, 0):
        status, body, _ = post(
            api, f"/v1/me/registrations/{theirs}/phone", {"phone": PHONE, "code": wrong}, **stranger
        )
        assert (status, body["code"], body["details"]) == (422, "sms.code_wrong", {"tries_left": left})
    # then the owner's code was neither replaced nor burnt: it verifies the owner's phone
    status, reg, _ = post(api, f"/v1/me/registrations/{mine}/phone", {"phone": PHONE, "code": code}, **me)
    assert status == 200, reg
    assert reg["step"] != "verify_phone"


def test_strangers_sends_and_wrong_tries_never_lock_the_owner_out_of_login_from_their_device(
    stage: Stage,
) -> None:
    api = stage(sms_resend_seconds=0, sms_wrong_tries_per_ip_hour=5, sms_wrong_tries_per_device_hour=5)
    mine, theirs = {"X-Device-Id": "owner-device-1"}, {"X-Device-Id": "stranger-device-1"}
    # given the owner signed in once from their device
    assert ask(api, PHONE, headers=mine)[0] == 202
    status, body, _ = post(api, "/v1/auth/login", {"phone": PHONE, "code": last_code()}, **mine)
    assert status == 200, body
    # when strangers spend the phone's login codes of the day, and type wrong codes until refused
    for _ in range(9):
        assert ask(api, PHONE, headers=theirs)[0] == 202
    status, body, _ = ask(api, PHONE, headers=theirs)
    assert (status, body["code"]) == (429, "sms.daily_limit")
    for _ in range(5):
        status, body, _ = post(api, "/v1/auth/login", {"phone": PHONE, "code": "000000"}, **theirs)
        assert (status, body["code"]) == (422, "sms.code_wrong")
    status, body, headers = post(api, "/v1/auth/login", {"phone": PHONE, "code": "000000"}, **theirs)
    assert (status, body["code"]) == (429, "sms.too_many_tries_from_client")
    assert headers["Retry-After"] == str(body["details"]["retry_after"])
    # then the owner's device still gets its own code, and signs in with it
    status, body, _ = ask(api, PHONE, headers=mine)
    assert status == 202, body
    status, body, _ = post(api, "/v1/auth/login", {"phone": PHONE, "code": last_code()}, **mine)
    assert status == 200, body


def test_a_client_past_its_ip_or_device_limit_is_refused_with_the_wait(stage: Stage) -> None:
    api = stage(sms_sends_per_ip_hour=3, sms_sends_per_device_hour=2)
    assert ask(api, "13812340001", headers={"X-Device-Id": "device-aaaa"})[0] == 202
    assert ask(api, "13812340002", headers={"X-Device-Id": "device-aaaa"})[0] == 202
    # the device's third ask this hour is refused
    status, body, headers = ask(api, "13812340003", headers={"X-Device-Id": "device-aaaa"})
    assert (status, body["code"]) == (429, "sms.too_many_from_client")
    assert 0 < body["details"]["retry_after"] <= 3600
    assert headers["Retry-After"] == str(body["details"]["retry_after"])
    assert body["message_zh"]
    # another device on the same IP asks once more, then the IP's limit refuses any device
    assert ask(api, "13812340003", headers={"X-Device-Id": "device-bbbb"})[0] == 202
    status, body, _ = ask(api, "13812340004", headers={"X-Device-Id": "device-cccc"})
    assert (status, body["code"]) == (429, "sms.too_many_from_client")
    assert len(deps.sms_drop().recent(20)) == 3


def test_the_captcha_round_trip_wrong_right_and_reused(stage: Stage, monkeypatch: pytest.MonkeyPatch) -> None:
    api = stage(captcha_after_sends=1)
    answers = iter(["HK7PE", "CAT4X", "RUFY9", "EE33A"])
    monkeypatch.setattr("chalicelib.captcha.service.new_answer", lambda rng: next(answers))
    assert ask(api, "13812340001")[0] == 202
    # the second ask from this client needs a captcha: the challenge comes with the refusal
    status, body, _ = ask(api, "13812340002")
    assert (status, body["code"], body["field"]) == (428, "captcha.required", "captcha_answer")
    first = body["details"]["challenge"]
    assert first["image"].startswith("data:image/png;base64,")
    # a wrong answer is refused on the field, with a new challenge
    status, body, _ = ask(api, "13812340002", captcha_id=first["challenge_id"], captcha_answer="XXXXX")
    assert (status, body["code"], body["field"]) == (422, "captcha.wrong", "captcha_answer")
    second = body["details"]["challenge"]
    # a challenge asked for on its own route, answered right, lets the code go
    status, third, _ = post(api, "/v1/captcha")
    assert status == 201, third
    status, body, _ = ask(api, "13812340002", captcha_id=third["challenge_id"], captcha_answer="rufy9")
    assert status == 202, body
    # the same answer again is refused: a challenge is answered once
    status, body, _ = ask(api, "13812340003", captcha_id=third["challenge_id"], captcha_answer="RUFY9")
    assert (status, body["code"]) == (422, "captcha.wrong")
    assert second["challenge_id"] not in json.dumps(deps.sms_drop().recent(20), default=str)
    assert len(deps.sms_drop().recent(20)) == 2


def test_past_the_platforms_hourly_budget_a_send_is_a_503_with_retry_after(stage: Stage) -> None:
    api = stage(sms_global_budget_per_hour=3)
    for n in range(3):
        assert ask(api, f"1381234000{n}")[0] == 202
    status, body, headers = ask(api, "13812340009")
    assert (status, body["code"]) == (503, "sms.unavailable_budget")
    assert headers["Retry-After"] == str(body["details"]["retry_after_seconds"])
    assert len(deps.sms_drop().recent(20)) == 3


def test_the_sixth_open_registration_and_the_third_open_flow_are_refused_and_write_nothing(
    stage: Stage, token: Callable[..., str]
) -> None:
    from chalicelib.adapters.dynamo.models import FlowModel, RegistrationModel
    from chalicelib.local.synthetic import make_vin

    api = stage(open_flows_per_owner=2)
    me = owner_headers(token)
    rng = random.Random(18)
    vins = [make_vin(rng) for _ in range(6)]
    for vin in vins[:5]:
        status, body, _ = post(api, "/v1/me/registrations", {"vin": vin}, **me)
        assert status == 201, body
    status, body, _ = post(api, "/v1/me/registrations", {"vin": vins[5]}, **me)
    assert (status, body["code"], body["details"]) == (429, "registration.too_many_open", {"limit": 5})
    assert sum(1 for _ in RegistrationModel.scan()) == 5
    # resuming one of the five is no new registration
    status, body, _ = post(api, "/v1/me/registrations", {"vin": vins[0]}, **me)
    assert status == 200, body
    # another person is not limited by this one's
    status, body, _ = post(api, "/v1/me/registrations", {"vin": vins[5]}, **owner_headers(token, "owner-b"))
    assert status == 201, body
    # flows: two open, the third refused and not stored
    for _ in range(2):
        assert post(api, "/v1/flows", {"purpose": "registration"}, **me)[0] == 201
    status, body, _ = post(api, "/v1/flows", {"purpose": "registration"}, **me)
    assert (status, body["code"]) == (429, "flow.too_many_open")
    assert sum(1 for f in FlowModel.scan() if f.owner == OWNER) == 2
    assert get_settings().open_registrations_per_owner == 5
