"""Sign-in sessions on the embedded AWS: login answers an access token and a refresh token; a refresh
rotates it, a retired token presented again revokes the session, sign-out revokes it, sessions end
when idle or too old; nothing but keyed hashes is stored. Then 继续办理: the unfinished registrations
the app shows on opening. The clock is controlled where time matters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import pytest

from chalicelib.adapters.dynamo.models_sessions import SessionModel
from chalicelib.adapters.dynamo.sessions import DynamoSessionStore
from chalicelib.core import deps
from chalicelib.core.auth import Role, authenticate
from chalicelib.core.settings import get_settings
from chalicelib.kernel.errors import Unauthenticated
from chalicelib.sessions.domain import RevokeReason, SessionKind, SessionPolicy
from chalicelib.sessions.service import Sessions
from tests.integration.test_registration_flow import sms_code
from tests.integration.test_registration_flow import vins as vins  # the demo inventory fixture
from tests.integration.test_verification_api import call

PHONE = "13812345678"
JSON = {"Content-Type": "application/json"}
T0 = datetime(2025, 3, 3, 2, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sessions(aws: None, clock: Clock) -> Sessions:
    policy = SessionPolicy(
        idle=timedelta(days=14), max_age=timedelta(days=30), reuse_grace=timedelta(seconds=30)
    )
    deps.reset()
    deps._bind_tables()
    return Sessions(DynamoSessionStore(), deps.keyed_hasher(), policy=policy, clock=clock)


def _getter(value: Any) -> Any:
    @lru_cache(maxsize=1)
    def get() -> Any:
        return value

    return get


@pytest.fixture
def clocked_api(api: Any, sessions: Sessions, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The app, its sessions on the test's clock."""
    monkeypatch.setattr(deps, "sessions", _getter(sessions))
    return api


def sign_in(api: Any, phone: str = PHONE) -> dict[str, Any]:
    code = sms_code(api, phone, "login", JSON)
    status, signed = call(api, "post", "/v1/auth/login", JSON, {"phone": phone, "code": code})
    assert status == 200, signed
    return dict(signed)


def refresh(api: Any, token: str) -> tuple[int, Any]:
    return call(api, "post", "/v1/auth/refresh", JSON, {"refresh_token": token})


def refused(code: str, body: Any) -> None:
    assert body["code"] == code, body
    assert body["message_zh"].endswith("请重新登录"), body


def test_login_answers_an_access_token_and_a_refresh_token_stored_only_as_a_keyed_hash(
    clocked_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHEKA_SMS_RESEND_SECONDS", "0")
    signed = sign_in(clocked_api)
    assert authenticate(get_settings(), f"Bearer {signed['token']}").roles == {Role.OWNER}
    assert signed["expires_in"] == get_settings().token_ttl_seconds
    assert signed["refresh_expires_in"] == 14 * 24 * 3600
    # One session item: the subject and roles, hashes only — never the token nor the phone
    (item,) = list(SessionModel.scan())
    assert (item.kind, item.subject, list(item.roles)) == ("owner", signed["subject"], ["owner"])
    stored = str(item.attribute_values)
    secret = signed["refresh_token"].split(".")[1]
    assert secret not in stored
    assert PHONE not in stored
    assert item.token_hash
    assert item.previous_hash is None


def test_a_refresh_rotates_the_refresh_token_and_the_retired_one_revokes_the_session(
    clocked_api: Any, clock: Clock
) -> None:
    first = sign_in(clocked_api)
    clock.advance(minutes=50)
    status, second = refresh(clocked_api, first["refresh_token"])
    assert status == 200, second
    # A new pair, same person
    assert second["refresh_token"] != first["refresh_token"]
    assert second["subject"] == first["subject"]
    assert authenticate(get_settings(), f"Bearer {second['token']}").subject == first["subject"]
    clock.advance(minutes=50)
    status, third = refresh(clocked_api, second["refresh_token"])
    assert status == 200, third
    # The first token again, long after it was retired: someone replays it; the session ends for all
    clock.advance(minutes=5)
    status, body = refresh(clocked_api, first["refresh_token"])
    assert status == 401
    refused("auth.session_reused", body)
    status, body = refresh(clocked_api, third["refresh_token"])
    assert status == 401
    refused("auth.session_reused", body)
    (item,) = list(SessionModel.scan())
    assert item.revoked_reason == RevokeReason.REUSE.value


def test_the_token_just_retired_is_accepted_once_more_within_the_grace_a_lost_answer_needs(
    sessions: Sessions, clock: Clock
) -> None:
    opened = sessions.open(SessionKind.OWNER, "u1", ["owner"])
    rotated = sessions.refresh(opened.refresh_token)
    # The answer was lost: the client presents the old token again, within the grace
    clock.advance(seconds=10)
    again = sessions.refresh(opened.refresh_token)
    assert again.refresh_token not in (opened.refresh_token, rotated.refresh_token)
    # The newest works; the one answered twice ago (never used by the client) is now a reuse
    newest = sessions.refresh(again.refresh_token)
    with pytest.raises(Unauthenticated) as caught:
        sessions.refresh(rotated.refresh_token)
    assert caught.value.code == "auth.session_reused"
    with pytest.raises(Unauthenticated):
        sessions.refresh(newest.refresh_token)


def test_after_the_grace_the_retired_token_revokes_the_session(sessions: Sessions, clock: Clock) -> None:
    opened = sessions.open(SessionKind.OWNER, "u1", ["owner"])
    rotated = sessions.refresh(opened.refresh_token)
    clock.advance(seconds=31)
    with pytest.raises(Unauthenticated) as caught:
        sessions.refresh(opened.refresh_token)
    assert caught.value.code == "auth.session_reused"
    with pytest.raises(Unauthenticated) as caught:
        sessions.refresh(rotated.refresh_token)
    assert caught.value.code == "auth.session_reused"


def test_logout_revokes_the_session_and_its_refresh_token_is_refused_after(clocked_api: Any) -> None:
    signed = sign_in(clocked_api)
    status, body = call(
        clocked_api, "post", "/v1/auth/logout", JSON, {"refresh_token": signed["refresh_token"]}
    )
    assert (status, body) == (200, {"signed_out": True})
    status, body = refresh(clocked_api, signed["refresh_token"])
    assert status == 401
    refused("auth.session_revoked", body)
    assert body["message_zh"] == "您已退出登录，请重新登录"
    # Signing out again, or with anything at all, answers the same and changes nothing
    for token in (signed["refresh_token"], "not-a-token", "0" * 32 + "." + "x" * 43):
        status, body = call(clocked_api, "post", "/v1/auth/logout", JSON, {"refresh_token": token})
        assert (status, body) == (200, {"signed_out": True})
    (item,) = list(SessionModel.scan())
    assert item.revoked_reason == RevokeReason.LOGOUT.value


def test_a_session_ends_when_idle_and_when_too_old_however_often_refreshed(
    sessions: Sessions, clock: Clock
) -> None:
    # Idle: unused 14 days
    idle = sessions.open(SessionKind.OWNER, "u1", ["owner"])
    clock.advance(days=14)
    with pytest.raises(Unauthenticated) as caught:
        sessions.refresh(idle.refresh_token)
    assert caught.value.code == "auth.session_expired"
    assert caught.value.message_zh == "登录已过期，请重新登录"
    # Used every 10 days: each refresh extends it, but never past 30 days after sign-in
    kept = sessions.open(SessionKind.OWNER, "u2", ["owner"])
    token = kept.refresh_token
    for _ in range(2):
        clock.advance(days=10)
        issued = sessions.refresh(token)
        token = issued.refresh_token
    assert issued.refresh_expires_at == kept.session.created_at + timedelta(days=30)
    clock.advance(days=10)
    with pytest.raises(Unauthenticated) as caught:
        sessions.refresh(token)
    assert caught.value.code == "auth.session_expired"
    # The table purges both a day after they ended (TTL)
    epochs = {i.subject: int(i.expires_epoch) for i in SessionModel.scan()}
    assert epochs["u1"] == int((idle.session.ends_at() + timedelta(days=1)).timestamp())
    assert epochs["u2"] == int((kept.session.created_at + timedelta(days=31)).timestamp())


def test_a_token_that_is_no_refresh_token_or_names_no_session_is_refused_as_invalid(
    clocked_api: Any,
) -> None:
    for token in ("garbage", "0" * 32 + "." + "x" * 43):
        status, body = refresh(clocked_api, token)
        assert status == 401
        refused("auth.refresh_invalid", body)
    status, body = call(clocked_api, "post", "/v1/auth/refresh", JSON, {})
    assert status == 422, body


def test_every_session_of_a_subject_ends_at_once_for_staff_and_enterprise_kinds_alike(
    sessions: Sessions,
) -> None:
    staff = [sessions.open(SessionKind.STAFF, "s-admin", ["admin"]) for _ in range(2)]
    other = sessions.open(SessionKind.ENTERPRISE, "e-1", ["enterprise_agent"])
    assert sessions.revoke_subject("s-admin") == 2
    for issued in staff:
        with pytest.raises(Unauthenticated) as caught:
            sessions.refresh(issued.refresh_token)
        assert caught.value.code == "auth.session_revoked"
    assert sessions.refresh(other.refresh_token).session.roles == ("enterprise_agent",)


def test_the_app_lists_my_unfinished_registrations_with_the_vin_tail_and_the_step(
    clocked_api: Any, vins: list[str]
) -> None:
    api = clocked_api
    signed = sign_in(api)
    me = {"Authorization": f"Bearer {signed['token']}", **JSON}
    status, body = call(api, "get", "/v1/me/registrations?open=true", me)
    assert (status, body) == (200, {"registrations": []})
    status, first = call(api, "post", "/v1/me/registrations", me, {"vin": vins[0]})
    assert status == 201, first
    status, second = call(api, "post", "/v1/me/registrations", me, {"vin": vins[1]})
    assert status == 201, second
    status, confirmed = call(
        api, "post", f"/v1/me/registrations/{second['registration_id']}/confirm-vehicle", me
    )
    assert status == 200, confirmed
    status, body = call(api, "get", "/v1/me/registrations", me)
    assert status == 200, body
    listed = [
        (r["registration_id"], r["kind"], r["vin_masked"][-6:], r["step"]) for r in body["registrations"]
    ]
    # Newest first, each where it stands; the VIN only by its tail
    assert listed == [
        (second["registration_id"], "registration", vins[1][-6:], "verify_phone"),
        (first["registration_id"], "registration", vins[0][-6:], "confirm_vehicle"),
    ]
    assert all(vin not in str(body) for vin in vins)
    # Someone else sees none of them; asking for finished ones here is refused
    other = sign_in(api, "13900001111")
    them = {"Authorization": f"Bearer {other['token']}", **JSON}
    status, body = call(api, "get", "/v1/me/registrations?open=true", them)
    assert (status, body) == (200, {"registrations": []})
    status, body = call(api, "get", "/v1/me/registrations?open=false", me)
    assert status == 422, body
    assert body["field"] == "open"
    status, body = call(api, "get", "/v1/me/registrations", JSON)
    assert status == 401
