"""The accounts service on in-memory stores: sign-up writes nothing on bad input, the two-step login by
login name, USCC or ID number, one answer for an unknown identifier and a wrong password, lockout with
back-off (clock moved, never slept), roles and claims from the account's current state, sessions and
passwords."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest

from chalicelib.accounts.domain import (
    Account,
    AccountKind,
    AccountLocked,
    AccountStatus,
    RealNameKind,
    RealNameRecord,
    SignUp,
)
from chalicelib.accounts.service import lock_key_of
from chalicelib.core.auth import CLAIM_DEALER, CLAIM_ENTERPRISE, Principal, Role
from chalicelib.kernel.errors import Conflict, DomainError, InvalidField, Unauthenticated, ValidationErrors
from chalicelib.kernel.personal import IdType, id_lookup_value
from chalicelib.sessions.domain import IssuedSession
from tests.fakes.accounts import AccountsWorld
from tests.fakes.clock import FakeClock

PHONE = "13812345678"
PASSWORD = "Secure#2026"
USCC = "91110000100000000X"
ID_NUMBER = "11010519491231002X"


@pytest.fixture
def world() -> AccountsWorld:
    return AccountsWorld()


def sign_up(
    world: AccountsWorld, login_name: str = "fleet_admin", phone: str = PHONE, **changes: str
) -> Account:
    world.accounts.send_signup_code(phone)
    world.clock.advance(seconds=61)  # the next code to this phone may go
    form: dict[str, str] = {
        "login_name": login_name,
        "password": PASSWORD,
        "email": "ops@example.com",
        "phone": phone,
        "code": world.code_to(phone),
    }
    form.update(changes)
    confirm = form.pop("password_confirm", form["password"])
    return world.accounts.sign_up(SignUp(**form), confirm)


def log_in(
    world: AccountsWorld, identifier: str = "fleet_admin", password: str = PASSWORD
) -> tuple[Account, IssuedSession]:
    challenge, _ = world.accounts.start_login(identifier, password)
    world.clock.advance(seconds=61)
    return world.accounts.verify_login(challenge.challenge_id, world.code_to(PHONE))


def principal_of(world: AccountsWorld, account_id: str, session_id: str) -> Principal:
    account = world.accounts.get(account_id)
    assert account is not None
    return Principal(
        subject=account_id,
        roles=frozenset(world.accounts.roles_of(account)),
        token_id="t",
        session_id=session_id,
    )


def legal_record(person_hash: str = "p1") -> RealNameRecord:
    return RealNameRecord(
        kind=RealNameKind.LEGAL,
        flow_id="flow1",
        verified_at=FakeClock().now,
        person_hash=person_hash,
        display_name_masked="张*",
        uscc=USCC,
        company_name="示例运输有限公司",
    )


# -- sign-up -----------------------------------------------------------------------------------------


def test_sign_up_creates_an_unverified_account_with_the_phone_and_email_masked(world: AccountsWorld) -> None:
    account = sign_up(world)
    assert account.kind is AccountKind.UNVERIFIED
    assert account.account_id.startswith("acct_")
    assert len(account.account_id) == 5 + 32
    assert account.phone_masked == "138****5678"
    assert account.email_masked == "o***@example.com"
    assert world.accounts.roles_of(account) == {Role.ACCOUNT}
    assert world.accounts.claims_of(account) == {}


def test_a_sign_up_with_several_bad_fields_reports_each_and_writes_nothing_nor_spends_the_code(
    world: AccountsWorld,
) -> None:
    world.accounts.send_signup_code(PHONE)
    code = world.code_to(PHONE)
    with pytest.raises(ValidationErrors) as refused:
        world.accounts.sign_up(
            SignUp(login_name="1bad", password="weak pass", email="nope", phone=PHONE, code=code), "other"
        )
    found = {(e.field, e.code) for e in refused.value.errors}
    assert ("login_name", "account.login_name_invalid") in found
    assert ("password", "account.password_spaces") in found
    assert ("password", "account.password_weak") in found
    assert ("password_confirm", "account.password_mismatch") in found
    assert ("email", "account.email_invalid") in found
    assert world.store.accounts == {}
    # The code was not spent: the same code signs up once the fields are right.
    account = world.accounts.sign_up(
        SignUp(login_name="fleet_admin", password=PASSWORD, email="a@example.com", phone=PHONE, code=code),
        PASSWORD,
    )
    assert account.login_name == "fleet_admin"


def test_a_taken_login_name_is_refused_whatever_its_case_and_nothing_is_written(world: AccountsWorld) -> None:
    sign_up(world, "Fleet_Admin")
    before = dict(world.store.accounts)
    with pytest.raises(Conflict) as refused:
        sign_up(world, "fleet_ADMIN")
    assert refused.value.code == "account.login_name_taken"
    assert world.store.accounts == before


def test_a_wrong_sms_code_signs_nobody_up(world: AccountsWorld) -> None:
    with pytest.raises(DomainError) as refused:
        sign_up(world, code="000000")
    assert refused.value.code == "sms.code_wrong"
    assert world.store.accounts == {}


def test_a_phone_holds_at_most_the_configured_number_of_accounts() -> None:
    world = AccountsWorld(max_accounts_per_phone=2)
    sign_up(world, "first_one")
    sign_up(world, "second_one")
    with pytest.raises(Conflict) as refused:
        sign_up(world, "third_one")
    assert refused.value.code == "account.phone_limit"
    assert len(world.store.accounts) == 2


# -- login -------------------------------------------------------------------------------------------


def test_login_is_the_password_then_a_code_to_the_bound_phone_and_opens_an_enterprise_session(
    world: AccountsWorld,
) -> None:
    account = sign_up(world)
    challenge, masked = world.accounts.start_login("FLEET_ADMIN", PASSWORD)
    assert masked == "138****5678"
    world.clock.advance(seconds=1)
    assert "用于账号登录" in world.sms.texts_to(PHONE)[-1]
    signed, issued = world.accounts.verify_login(challenge.challenge_id, world.code_to(PHONE))
    assert signed.account_id == account.account_id
    assert issued.session.kind.value == "enterprise"
    assert issued.session.subject == account.account_id
    roles, claims = world.accounts.token_grant(signed, issued.session.session_id)
    assert roles == {Role.ACCOUNT}
    assert claims == {"sid": issued.session.session_id}
    # A challenge serves once.
    with pytest.raises(Unauthenticated) as again:
        world.accounts.verify_login(challenge.challenge_id, world.code_to(PHONE))
    assert again.value.code == "account.challenge_invalid"


def test_an_unknown_identifier_and_a_wrong_password_get_one_answer_and_spend_one_verification(
    world: AccountsWorld,
) -> None:
    sign_up(world)
    answers = []
    for identifier, password in [("fleet_admin", "Wrong#2026x"), ("nobody_here", PASSWORD)]:
        before = world.passwords.verifications
        with pytest.raises(Unauthenticated) as refused:
            world.accounts.start_login(identifier, password)
        assert world.passwords.verifications == before + 1
        answers.append((refused.value.status, refused.value.to_dict()))
    assert answers[0] == answers[1]
    assert answers[0][1]["code"] == "account.credentials_invalid"
    assert world.passwords.burns == 1  # the unknown identifier verified against the dummy hash


def test_five_wrong_passwords_lock_the_account_15_minutes_then_30_and_the_lock_lifts_after(
    world: AccountsWorld,
) -> None:
    account = sign_up(world)
    for _ in range(4):
        with pytest.raises(Unauthenticated):
            world.accounts.start_login("fleet_admin", "Wrong#2026x")
    with pytest.raises(AccountLocked) as locked:
        world.accounts.start_login("fleet_admin", "Wrong#2026x")
    assert locked.value.status == 423
    assert locked.value.details["retry_after_seconds"] == 15 * 60
    # Locked: even the right password is refused, and says how long is left.
    world.clock.advance(minutes=5)
    with pytest.raises(AccountLocked) as still:
        world.accounts.start_login("fleet_admin", PASSWORD)
    assert still.value.details["retry_after_seconds"] == 10 * 60
    world.clock.advance(minutes=10)
    # Lifted; five more failures lock for twice as long.
    for _ in range(4):
        with pytest.raises(Unauthenticated):
            world.accounts.start_login("fleet_admin", "Wrong#2026x")
    with pytest.raises(AccountLocked) as again:
        world.accounts.start_login("fleet_admin", "Wrong#2026x")
    assert again.value.details["retry_after_seconds"] == 30 * 60
    world.clock.advance(minutes=30)
    log_in(world)  # the right password and code: in, and the back-off is cleared
    guard = world.accounts.guard(lock_key_of(account.account_id))
    assert (guard.failures, guard.locks, guard.locked_until) == (0, 0, None)


def test_an_unknown_identifier_locks_too_so_a_lock_tells_nothing(world: AccountsWorld) -> None:
    for _ in range(4):
        with pytest.raises(Unauthenticated):
            world.accounts.start_login("nobody_here", PASSWORD)
    with pytest.raises(AccountLocked):
        world.accounts.start_login("nobody_here", PASSWORD)


def test_wrong_sms_codes_count_as_failures_and_lock_the_account(world: AccountsWorld) -> None:
    sign_up(world)
    failures = 0
    wrong_codes: list[str] = []
    locked = None
    while locked is None and failures < 10:
        world.clock.advance(seconds=61)
        challenge, _ = world.accounts.start_login("fleet_admin", PASSWORD)
        try:
            world.accounts.verify_login(challenge.challenge_id, "000000")
        except AccountLocked as exc:
            locked = exc
        except InvalidField as exc:
            wrong_codes.append(exc.code)
        failures += 1
    assert locked is not None
    assert failures == 5
    assert wrong_codes == ["sms.code_wrong"] * 4
    world.clock.advance(seconds=61)
    with pytest.raises(AccountLocked):
        world.accounts.start_login("fleet_admin", PASSWORD)


def test_an_expired_challenge_is_refused(world: AccountsWorld) -> None:
    sign_up(world)
    challenge, _ = world.accounts.start_login("fleet_admin", PASSWORD)
    world.clock.advance(minutes=6)
    with pytest.raises(Unauthenticated) as refused:
        world.accounts.verify_login(challenge.challenge_id, world.code_to(PHONE))
    assert refused.value.code == "account.challenge_invalid"


def test_a_hash_made_with_older_parameters_is_rehashed_at_login(world: AccountsWorld) -> None:
    account = sign_up(world)
    assert world.store.passwords[account.account_id].startswith("v1$")
    world.passwords.version = 2
    log_in(world)
    assert world.store.passwords[account.account_id].startswith("v2$")


def test_the_identifier_may_be_the_uscc_of_the_legal_persons_enterprise_or_the_persons_id_number() -> None:
    world = AccountsWorld()
    account = sign_up(world)
    person_hash = world.hasher.digest(id_lookup_value(IdType.RESIDENT_ID, ID_NUMBER))
    world.accounts.complete_real_name(account.account_id, legal_record(person_hash))
    world.legal_accounts[USCC] = account.account_id
    signed, _ = log_in(world, USCC.lower())
    assert signed.account_id == account.account_id
    world.clock.advance(seconds=61)
    signed, _ = log_in(world, ID_NUMBER.lower())
    assert signed.account_id == account.account_id
    assert world.accounts.resolve("91110000100000001X") is None


# -- roles and claims --------------------------------------------------------------------------------


def test_real_name_completes_only_once_and_a_legal_record_makes_it_the_enterprises_account(
    world: AccountsWorld,
) -> None:
    account = sign_up(world)
    done = world.accounts.complete_real_name(account.account_id, legal_record())
    assert done.kind is AccountKind.LEGAL
    assert done.enterprise_uscc == USCC
    assert world.accounts.roles_of(done) == {Role.ACCOUNT, Role.ENTERPRISE_LEGAL}
    assert world.accounts.claims_of(done) == {CLAIM_ENTERPRISE: USCC}
    with pytest.raises(Conflict) as again:
        world.accounts.complete_real_name(account.account_id, legal_record())
    assert again.value.code == "account.real_name_done"


def test_an_approved_agent_gets_the_agent_role_and_its_enterprise_and_a_disabled_account_gets_nothing(
    world: AccountsWorld,
) -> None:
    account = sign_up(world)
    world.agent_of[account.account_id] = USCC
    assert world.accounts.roles_of(account) == {Role.ACCOUNT, Role.ENTERPRISE_AGENT}
    assert world.accounts.claims_of(account) == {CLAIM_ENTERPRISE: USCC}
    disabled = world.accounts.set_status(account.account_id, AccountStatus.DISABLED)
    assert world.accounts.roles_of(disabled) == set()
    assert world.accounts.claims_of(disabled) == {}


def test_a_dealer_account_has_no_usable_password_until_the_dealer_sets_one_by_sms(
    world: AccountsWorld,
) -> None:
    dealer = world.accounts.create_dealer_account("dealer_bj01", PHONE, "shop@example.com", "D0001")
    assert dealer.kind is AccountKind.DEALER
    assert world.accounts.roles_of(dealer) == {Role.ACCOUNT, Role.DEALER}
    assert world.accounts.claims_of(dealer) == {CLAIM_DEALER: "D0001"}
    with pytest.raises(Unauthenticated):
        world.accounts.start_login("dealer_bj01", PASSWORD)
    world.accounts.start_reset("dealer_bj01")
    world.accounts.confirm_reset("dealer_bj01", world.code_to(PHONE), PASSWORD)
    world.clock.advance(seconds=61)
    signed, _ = log_in(world, "dealer_bj01")
    assert signed.dealer_code == "D0001"


def test_a_refresh_carries_the_roles_the_account_holds_now(world: AccountsWorld) -> None:
    account = sign_up(world)
    _, issued = log_in(world)
    world.accounts.complete_real_name(account.account_id, legal_record())
    refreshed, again = world.accounts.refresh(issued.refresh_token)
    assert Role.ENTERPRISE_LEGAL in world.accounts.roles_of(refreshed)
    world.accounts.set_status(account.account_id, AccountStatus.DISABLED)
    with pytest.raises(Unauthenticated):
        world.accounts.refresh(again.refresh_token)


# -- sessions and passwords --------------------------------------------------------------------------


def test_sign_out_everywhere_ends_every_session_and_their_tokens_fail_the_live_session_check(
    world: AccountsWorld,
) -> None:
    account = sign_up(world)
    _, first = log_in(world)
    world.clock.advance(seconds=61)
    _, second = log_in(world)
    principal = principal_of(world, account.account_id, first.session.session_id)
    world.accounts.require_live_session(principal)
    assert len(world.accounts.sessions_of(account.account_id)) == 2
    assert world.accounts.revoke_all(account.account_id) == 2
    with pytest.raises(Unauthenticated) as refused:
        world.accounts.require_live_session(principal)
    assert refused.value.code == "account.session_revoked"
    with pytest.raises(Unauthenticated):
        world.accounts.refresh(second.refresh_token)
    assert world.accounts.sessions_of(account.account_id) == []


def test_a_session_of_another_account_cannot_be_ended(world: AccountsWorld) -> None:
    sign_up(world)
    _, issued = log_in(world)
    with pytest.raises(DomainError) as refused:
        world.accounts.revoke_session("acct_" + "0" * 32, issued.session.session_id)
    assert refused.value.code == "account.session_not_found"


def test_a_password_change_needs_the_current_one_follows_the_rules_and_ends_the_other_sessions(
    world: AccountsWorld,
) -> None:
    account = sign_up(world)
    _, here = log_in(world)
    world.clock.advance(seconds=61)
    _, there = log_in(world)
    me = principal_of(world, account.account_id, here.session.session_id)
    with pytest.raises(InvalidField) as wrong:
        world.accounts.change_password(me, "Wrong#2026x", "Better#2027")
    assert wrong.value.code == "account.password_wrong"
    with pytest.raises(ValidationErrors) as weak:
        world.accounts.change_password(me, PASSWORD, "better 2027")
    assert {e.code for e in weak.value.errors} >= {"account.password_spaces", "account.password_weak"}
    assert world.accounts.change_password(me, PASSWORD, "Better#2027") == 1
    world.accounts.require_live_session(me)  # this session stays
    with pytest.raises(Unauthenticated):
        world.accounts.refresh(there.refresh_token)
    world.clock.advance(seconds=61)
    with pytest.raises(Unauthenticated):
        world.accounts.start_login("fleet_admin", PASSWORD)
    world.accounts.start_login("fleet_admin", "Better#2027")


def test_a_reset_answers_alike_for_unknown_identifiers_ends_every_session_and_lifts_the_lock(
    world: AccountsWorld,
) -> None:
    account = sign_up(world)
    _, issued = log_in(world)
    world.accounts.start_reset("nobody_here")  # no error, nothing sent
    sent = len(world.sms.sent)
    for _ in range(5):
        with contextlib.suppress(DomainError):
            world.accounts.start_login("fleet_admin", "Wrong#2026x")
    with pytest.raises(AccountLocked):
        world.accounts.start_login("fleet_admin", PASSWORD)
    world.clock.advance(seconds=61)
    world.accounts.start_reset("fleet_admin")
    assert len(world.sms.sent) == sent + 1
    assert "用于重置账号密码" in world.sms.texts_to(PHONE)[-1]
    with pytest.raises(InvalidField) as wrong:
        world.accounts.confirm_reset("fleet_admin", "000000", "Better#2027")
    assert wrong.value.code == "account.reset_code_wrong"
    world.accounts.confirm_reset("fleet_admin", world.code_to(PHONE), "Better#2027")
    with pytest.raises(Unauthenticated):
        world.accounts.refresh(issued.refresh_token)
    world.clock.advance(seconds=61)
    with pytest.raises(Unauthenticated):
        world.accounts.start_login("fleet_admin", PASSWORD)  # the old password: refused, not locked
    signed, _ = log_in(world, password="Better#2027")
    assert signed.account_id == account.account_id


def test_a_reset_code_for_an_unknown_identifier_is_refused_like_a_wrong_code(world: AccountsWorld) -> None:
    with pytest.raises(InvalidField) as refused:
        world.accounts.confirm_reset("nobody_here", "123456", "Better#2027")
    assert refused.value.code == "account.reset_code_wrong"


def test_a_token_of_another_kind_needs_no_session_check_and_an_account_token_without_sid_fails_it(
    world: AccountsWorld,
) -> None:
    owner = Principal(subject="u1", roles=frozenset({Role.OWNER}), token_id="t")
    world.accounts.require_live_session(owner)
    bare = Principal(subject="acct_" + "1" * 32, roles=frozenset({Role.ACCOUNT}), token_id="t")
    with pytest.raises(Unauthenticated):
        world.accounts.require_live_session(bare)


def test_the_email_can_change_and_is_shown_masked(world: AccountsWorld) -> None:
    account = sign_up(world)
    changed = world.accounts.change_email(account.account_id, "new.box@example.org")
    assert changed.email_masked == "n***@example.org"
    assert world.store.emails[account.account_id] == "new.box@example.org"
    with pytest.raises(ValidationErrors):
        world.accounts.change_email(account.account_id, "not-an-email")


def test_the_lock_is_capped_at_a_day(world: AccountsWorld) -> None:
    sign_up(world)
    seconds = []
    for _ in range(9):
        for _ in range(5):
            try:
                world.accounts.start_login("fleet_admin", "Wrong#2026x")
            except AccountLocked as exc:
                seconds.append(exc.details["retry_after_seconds"])
            except Unauthenticated:
                pass
        world.clock.advance(seconds=seconds[-1] + 1)
    assert seconds[:3] == [900, 1800, 3600]
    assert max(seconds) == 24 * 3600
    assert timedelta(seconds=seconds[-1]) == timedelta(hours=24)


def test_an_id_number_of_a_hong_kong_or_macau_residence_permit_finds_its_person_too() -> None:
    world = AccountsWorld()
    account = sign_up(world)
    permit = "810000199408230021"
    person_hash = world.hasher.digest(id_lookup_value(IdType.HK_MACAU_PERMIT, permit))
    record = RealNameRecord(
        kind=RealNameKind.NATURAL,
        flow_id="flow2",
        verified_at=FakeClock().now,
        person_hash=person_hash,
        display_name_masked="陈*",
    )
    world.accounts.complete_real_name(account.account_id, record)
    found = world.accounts.resolve(permit)
    assert found is not None
    assert found.account_id == account.account_id
    assert found.kind is AccountKind.NATURAL


def test_a_full_login_after_four_failures_starts_the_count_afresh_for_the_account_and_its_identifier(
    world: AccountsWorld,
) -> None:
    sign_up(world)
    for _ in range(4):
        with pytest.raises(Unauthenticated):
            world.accounts.start_login("fleet_admin", "Wrong#2026x")
    log_in(world)
    world.clock.advance(seconds=61)
    for _ in range(4):
        with pytest.raises(Unauthenticated):
            world.accounts.start_login("fleet_admin", "Wrong#2026x")
    with pytest.raises(AccountLocked):
        world.accounts.start_login("fleet_admin", "Wrong#2026x")
