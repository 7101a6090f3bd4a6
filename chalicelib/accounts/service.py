"""Portal accounts: sign-up, the two-step login with lockout, sessions, passwords, and the roles and
claims every access token of an account is minted with.

Nothing is written when a sign-up is refused (every field is checked first, the SMS code is spent last
before the one transactional write). A login answers the same ``account.credentials_invalid`` for an
unknown identifier and a wrong password, and spends the time of one password verification either way.
Failures are counted per account and per identifier: the ``threshold``-th locks for a time that doubles
with each further lock; a success clears both. Log lines carry account ids, codes and counts only.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from chalicelib.accounts.domain import (
    CHALLENGE_ATTEMPTS,
    CHALLENGE_TTL,
    Account,
    AccountKind,
    AccountStatus,
    LockoutPolicy,
    LoginChallenge,
    LoginGuard,
    RealNameKind,
    RealNameRecord,
    SignUp,
    account_disabled,
    account_locked,
    account_not_found,
    already_verified,
    challenge_invalid,
    credentials_invalid,
    current_password_wrong,
    email_invalid,
    login_name_error,
    login_name_taken,
    mask_email,
    new_account_id,
    normalise_email,
    not_an_account,
    password_errors,
    password_mismatch,
    password_reused,
    phone_account_limit,
    session_not_found,
    session_not_live,
)
from chalicelib.accounts.ports import (
    AccountStore,
    AgentLookup,
    ChallengeStore,
    GuardStore,
    LegalAccountLookup,
    PasswordHashing,
)
from chalicelib.core.auth import CLAIM_DEALER, CLAIM_ENTERPRISE, CLAIM_SESSION, Principal, Role
from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.crypto import KeyedHasher
from chalicelib.kernel.errors import DomainError, InvalidField, ValidationErrors
from chalicelib.kernel.personal import mask_phone
from chalicelib.sessions.domain import IssuedSession, RevokeReason, SessionKind, StoredSession
from chalicelib.sessions.ports import SessionStore
from chalicelib.sms.domain import SentCode, SmsPurpose

if TYPE_CHECKING:
    from chalicelib.kernel.personal import IdType
    from chalicelib.sessions.service import Sessions
    from chalicelib.sms.codes import SmsCodeService

#: Re-reads when two requests change the same guard, challenge or account at once.
_RACE_RETRIES = 5
#: The USCC: 18 characters, digits and upper-case letters (the registry checks it properly).
_USCC_LENGTH = 18


def _guard_key_account(account_id: str) -> str:
    return "acct#" + account_id


class Accounts:
    """The accounts of the enterprise portal (legal persons, natural persons, agents, dealers)."""

    def __init__(
        self,
        store: AccountStore,
        guards: GuardStore,
        challenges: ChallengeStore,
        hashing: PasswordHashing,
        codes: SmsCodeService,
        sessions: Sessions,
        session_store: SessionStore,
        hasher: KeyedHasher,
        *,
        clock: Clock = utc_now,
        lockout: LockoutPolicy | None = None,
        max_accounts_per_phone: int = 5,
        agent_of: AgentLookup | None = None,
        legal_account_of: LegalAccountLookup | None = None,
        new_challenge_id: Callable[[], str] = lambda: secrets.token_hex(16),
    ) -> None:
        self._store = store
        self._guards = guards
        self._challenges = challenges
        self._hashing = hashing
        self._codes = codes
        self._sessions = sessions
        self._session_store = session_store
        self._hasher = hasher
        self._clock = clock
        self._lockout = lockout or LockoutPolicy()
        self._max_per_phone = max_accounts_per_phone
        self._agent_of = agent_of
        self._legal_account_of = legal_account_of
        self._new_challenge_id = new_challenge_id

    @property
    def lockout(self) -> LockoutPolicy:
        return self._lockout

    # -- reading, roles and claims ------------------------------------------------------------------

    def get(self, account_id: str) -> Account | None:
        return self._store.get(account_id)

    def phone_of(self, account_id: str) -> str | None:
        """The account's bound phone in clear (to send it a notice), if it has one."""
        return self._store.phone_of(account_id)

    def agent_enterprise(self, account: Account) -> str | None:
        """The enterprise (USCC) the account is an approved agent of, if any."""
        if self._agent_of is None or not account.active:
            return None
        return self._agent_of(account.account_id)

    def roles_of(self, account: Account) -> set[Role]:
        """The roles an access token of ``account`` carries now (none for a disabled account)."""
        if not account.active:
            return set()
        roles = {Role.ACCOUNT}
        if account.kind is AccountKind.LEGAL and account.enterprise_uscc:
            roles.add(Role.ENTERPRISE_LEGAL)
        if account.kind is AccountKind.DEALER and account.dealer_code:
            roles.add(Role.DEALER)
        if self.agent_enterprise(account):
            roles.add(Role.ENTERPRISE_AGENT)
        return roles

    def claims_of(self, account: Account) -> dict[str, str]:
        """The ``ent``/``dlr`` claims of ``account``'s tokens (a legal person's own enterprise first)."""
        claims: dict[str, str] = {}
        if not account.active:
            return claims
        if account.kind is AccountKind.LEGAL and account.enterprise_uscc:
            claims[CLAIM_ENTERPRISE] = account.enterprise_uscc
        elif (agent_for := self.agent_enterprise(account)) is not None:
            claims[CLAIM_ENTERPRISE] = agent_for
        if account.kind is AccountKind.DEALER and account.dealer_code:
            claims[CLAIM_DEALER] = account.dealer_code
        return claims

    def token_grant(self, account: Account, session_id: str) -> tuple[set[Role], dict[str, str]]:
        """Roles and claims (with ``sid``) for an access token minted for ``account`` in a session."""
        roles = self.roles_of(account)
        claims = self.claims_of(account)
        claims[CLAIM_SESSION] = session_id
        return roles, claims

    # -- changes other contexts make -----------------------------------------------------------------

    def complete_real_name(self, account_id: str, record: RealNameRecord) -> Account:
        """Record what real-name authentication established: only from ``unverified`` (409 otherwise).
        A legal-person record makes the account the enterprise's (``enterprise_uscc``)."""
        for _ in range(_RACE_RETRIES):
            account = self._store.get(account_id)
            if account is None:
                raise account_not_found()
            if account.kind is not AccountKind.UNVERIFIED:
                raise already_verified()
            legal = record.kind is RealNameKind.LEGAL
            if legal and not record.uscc:
                raise ValueError("a legal-person record names its USCC")
            after = replace(
                account,
                kind=AccountKind.LEGAL if legal else AccountKind.NATURAL,
                real_name=record,
                enterprise_uscc=record.uscc if legal else None,
                version=account.version + 1,
            )
            if self._store.replace(account, after):
                return after
        raise already_verified()

    def create_dealer_account(
        self, login_name: str, phone: str, email: str | None, dealer_code: str
    ) -> Account:
        """A dealer's account, with no usable password: the dealer sets one by reset-by-SMS."""
        errors: list[InvalidField] = []
        if (bad := login_name_error(login_name)) is not None:
            errors.append(bad)
        phone_hash = self._phone_hash(phone, errors)
        if email is not None:
            email = self._email(email, errors)
        if not dealer_code.strip():
            errors.append(
                InvalidField(
                    "account.dealer_code_missing",
                    "请填写经销商编码",
                    "Give the dealer code",
                    field="dealer_code",
                )
            )
        if errors:
            raise ValidationErrors(errors)
        account = Account(
            account_id=new_account_id(),
            login_name=login_name,
            kind=AccountKind.DEALER,
            phone_hash=phone_hash,
            created_at=self._clock(),
            dealer_code=dealer_code.strip(),
            phone_masked=mask_phone(self._mobile(phone)),
            email_masked=mask_email(email) if email else "",
        )
        self._store.create(account, phone=self._mobile(phone), email=email, password_hash=None)
        return account

    def set_status(self, account_id: str, status: AccountStatus) -> Account:
        """Disable (or re-enable) an account; disabling ends every session of it."""
        for _ in range(_RACE_RETRIES):
            account = self._store.get(account_id)
            if account is None:
                raise account_not_found()
            after = replace(account, status=status, version=account.version + 1)
            if account.status is status or self._store.replace(account, after):
                if status is AccountStatus.DISABLED:
                    self._sessions.revoke_subject(account_id)
                return after
        raise account_not_found()

    # -- sign-up -------------------------------------------------------------------------------------

    def _mobile(self, phone: str) -> str:
        from chalicelib.kernel.validators import validate  # the validators: not at a cold start

        return str(validate("mobile", phone, field="phone").value)

    def _phone_hash(self, phone: str, errors: list[InvalidField]) -> str:
        try:
            return self._codes.phone_hash(phone)
        except InvalidField as exc:
            errors.append(exc)
            return ""

    def _email(self, email: str, errors: list[InvalidField]) -> str:
        normalised = normalise_email(email)
        if normalised is None:
            errors.append(email_invalid())
            return ""
        return normalised

    def send_signup_code(self, phone: str) -> SentCode:
        """A sign-up code to ``phone``: answers the same whether or not the phone holds accounts."""
        return self._codes.send(phone, SmsPurpose.ACCOUNT_SIGNUP)

    def sign_up(
        self, form: SignUp, password_confirm: str, *, errors: list[InvalidField] | None = None
    ) -> Account:
        """Create an unverified account. Every field is checked before anything changes (``errors``:
        the caller's own field errors, reported with these); the code is checked (and spent) last, then
        the account and its login name are written in one transaction."""
        errors = list(errors or [])
        if (bad := login_name_error(form.login_name)) is not None:
            errors.append(bad)
        errors.extend(password_errors(form.password, form.login_name))
        if password_confirm != form.password:
            errors.append(password_mismatch())
        email = self._email(form.email, errors)
        phone_hash = self._phone_hash(form.phone, errors)
        if errors:
            raise ValidationErrors(errors)
        if self._store.by_login_name(form.login_name) is not None:
            raise login_name_taken()
        if self._store.count_by_phone(phone_hash) >= self._max_per_phone:
            raise phone_account_limit(self._max_per_phone)
        password_hash = self._hashing.hash(form.password)
        self._codes.check(form.phone, SmsPurpose.ACCOUNT_SIGNUP, form.code)
        mobile = self._mobile(form.phone)
        account = Account(
            account_id=new_account_id(),
            login_name=form.login_name,
            kind=AccountKind.UNVERIFIED,
            phone_hash=phone_hash,
            created_at=self._clock(),
            phone_masked=mask_phone(mobile),
            email_masked=mask_email(email),
        )
        self._store.create(account, phone=mobile, email=email, password_hash=password_hash)
        return account

    def change_email(self, account_id: str, email: str) -> Account:
        errors: list[InvalidField] = []
        normalised = self._email(email, errors)
        if errors:
            raise ValidationErrors(errors)
        for _ in range(_RACE_RETRIES):
            account = self._store.get(account_id)
            if account is None:
                raise account_not_found()
            after = replace(account, email_masked=mask_email(normalised), version=account.version + 1)
            if self._store.set_email(account, after, normalised):
                return after
        raise account_not_found()

    # -- login ---------------------------------------------------------------------------------------

    def resolve(self, identifier: str) -> Account | None:
        """The account an identifier names: a login name, an enterprise's USCC (its legal-person
        account) or a real-name person's ID number (by its keyed hash); None when none or several."""
        text = identifier.strip()
        if not text:
            return None
        by_name = self._store.by_login_name(text) if login_name_error(text) is None else None
        if by_name is not None:
            return by_name
        upper = text.upper()
        if len(upper) == _USCC_LENGTH and self._legal_account_of is not None:
            account_id = self._legal_account_of(upper)
            if account_id is not None:
                return self._store.get(account_id)
        from chalicelib.kernel.personal import id_lookup_value

        found = self._store.by_person_hash(self._hasher.digest(id_lookup_value(_id_type_of(upper), upper)))
        return found[0] if len(found) == 1 else None

    def _guard_keys(self, identifier: str, account: Account | None) -> list[str]:
        keys = ["id#" + self._hasher.digest("account-identifier:" + identifier.strip().casefold())]
        if account is not None:
            keys.insert(0, _guard_key_account(account.account_id))
        return keys

    def _check_unlocked(self, keys: list[str]) -> None:
        now = self._clock()
        for key in keys:
            guard = self._guards.get(key)
            if guard.locked_at(now):
                raise account_locked(guard.retry_after(now))

    def _fail(self, keys: list[str]) -> int | None:
        """Count one failure against each key; the seconds of the lock it started, if it started one."""
        locked: int | None = None
        for key in keys:
            for _ in range(_RACE_RETRIES):
                now = self._clock()
                guard = self._guards.get(key)
                after = guard.after_failure(now, self._lockout)
                if self._guards.put(guard, after):
                    if after.locked_at(now) and not guard.locked_at(now):
                        locked = max(locked or 0, after.retry_after(now))
                    break
        return locked

    def _succeed(self, keys: list[str]) -> None:
        for key in keys:
            for _ in range(_RACE_RETRIES):
                guard = self._guards.get(key)
                if guard.failures == 0 and guard.locks == 0 and guard.locked_until is None:
                    break
                if self._guards.put(guard, guard.after_success(self._clock())):
                    break

    def guard(self, key: str) -> LoginGuard:
        return self._guards.get(key)

    def start_login(self, identifier: str, password: str) -> tuple[LoginChallenge, str]:
        """Step one: the password. When right, a login code goes to the bound phone; the challenge and
        the masked phone. ``account.credentials_invalid`` for a wrong password or unknown identifier
        alike; ``account.locked`` (423) while locked."""
        account = self.resolve(identifier)
        keys = self._guard_keys(identifier, account)
        self._check_unlocked(keys)
        stored = self._store.password_hash(account.account_id) if account is not None else None
        if account is None or stored is None:
            self._hashing.burn(password)
            ok = False
        else:
            ok = self._hashing.verify(stored, password)
        if not ok or account is None:
            if (locked := self._fail(keys)) is not None:
                raise account_locked(locked)
            raise credentials_invalid()
        if not account.active:
            raise account_disabled()
        # The password is right: the identifier's count ends (the account's ends with the code).
        self._succeed(keys[-1:])
        if self._hashing.needs_rehash(stored or ""):
            self._store.set_password_hash(account.account_id, self._hashing.hash(password), self._clock())
        phone = self._store.phone_of(account.account_id)
        if phone is None:
            raise credentials_invalid()
        self._codes.send(phone, SmsPurpose.ACCOUNT_LOGIN)
        now = self._clock()
        challenge = LoginChallenge(
            challenge_id=self._new_challenge_id(),
            account_id=account.account_id,
            created_at=now,
            expires_at=now + CHALLENGE_TTL,
        )
        self._challenges.create(challenge)
        return challenge, account.phone_masked

    def verify_login(self, challenge_id: str, code: str) -> tuple[Account, IssuedSession]:
        """Step two: the SMS code of a challenge. A wrong code counts as a failure of the account."""
        for _ in range(_RACE_RETRIES):
            challenge = self._challenges.get(challenge_id)
            now = self._clock()
            if challenge is None or challenge.used or now >= challenge.expires_at:
                raise challenge_invalid()
            if challenge.attempts >= CHALLENGE_ATTEMPTS:
                raise challenge_invalid()
            account = self._store.get(challenge.account_id)
            if account is None:
                raise challenge_invalid()
            keys = [_guard_key_account(account.account_id)]
            self._check_unlocked(keys)
            phone = self._store.phone_of(account.account_id)
            try:
                if phone is None:
                    raise challenge_invalid()
                self._codes.check(phone, SmsPurpose.ACCOUNT_LOGIN, code)
            except DomainError as exc:
                self._challenges.put(
                    challenge,
                    replace(challenge, attempts=challenge.attempts + 1, version=challenge.version + 1),
                )
                if (locked := self._fail(keys)) is not None:
                    raise account_locked(locked) from exc
                raise
            if not self._challenges.put(
                challenge, replace(challenge, used=True, version=challenge.version + 1)
            ):
                continue
            if not account.active:
                raise account_disabled()
            self._succeed(keys)
            issued = self._sessions.open(
                SessionKind.ENTERPRISE, account.account_id, sorted(self.roles_of(account))
            )
            return account, issued
        raise challenge_invalid()

    # -- sessions ------------------------------------------------------------------------------------

    def refresh(self, refresh_token: str) -> tuple[Account, IssuedSession]:
        """A new access token's session from a refresh token; the account as it is now (a disabled one
        → 401, its sessions ended)."""
        issued = self._sessions.refresh(refresh_token)
        session = issued.session
        if session.kind is not SessionKind.ENTERPRISE:
            from chalicelib.sessions.domain import invalid_token

            raise invalid_token()
        account = self._store.get(session.subject)
        if account is None or not account.active:
            self._sessions.revoke_subject(session.subject)
            raise account_disabled()
        return account, issued

    def logout(self, refresh_token: str) -> None:
        self._sessions.revoke(refresh_token)

    def require_live_session(self, principal: Principal) -> None:
        """For a portal account's token: its session must not be revoked nor ended (one read)."""
        if Role.ACCOUNT not in principal.roles:
            return
        if principal.session_id is None:
            raise session_not_live()
        session = self._sessions.get(principal.session_id)
        if (
            session is None
            or session.subject != principal.subject
            or session.revoked_at is not None
            or self._clock() >= session.ends_at()
        ):
            raise session_not_live()

    def sessions_of(self, account_id: str) -> list[StoredSession]:
        """The account's sessions still open, newest first."""
        now = self._clock()
        found = []
        for session_id in self._session_store.of_subject(account_id):
            session = self._sessions.get(session_id)
            if session is not None and session.revoked_at is None and now < session.ends_at():
                found.append(session)
        return sorted(found, key=lambda s: s.created_at, reverse=True)

    def revoke_session(self, account_id: str, session_id: str) -> None:
        session = self._sessions.get(session_id)
        if session is None or session.subject != account_id or session.revoked_at is not None:
            raise session_not_found()
        self._session_store.revoke(session_id, self._clock(), RevokeReason.LOGOUT)

    def revoke_all(self, account_id: str, *, keep: str | None = None) -> int:
        """End every session of the account (but ``keep``): how many ended."""
        if keep is None:
            return self._sessions.revoke_subject(account_id)
        ended = 0
        for session in self.sessions_of(account_id):
            if session.session_id != keep:
                self._session_store.revoke(session.session_id, self._clock(), RevokeReason.ADMIN)
                ended += 1
        return ended

    # -- passwords -----------------------------------------------------------------------------------

    def change_password(self, principal: Principal, current: str, new: str) -> int:
        """Change the password (the current one proves it is the owner); every other session ends.
        A wrong current password counts as a failure of the account."""
        if Role.ACCOUNT not in principal.roles:
            raise not_an_account()
        account = self._store.get(principal.subject)
        if account is None or not account.active:
            raise account_disabled()
        keys = [_guard_key_account(account.account_id)]
        self._check_unlocked(keys)
        errors = password_errors(new, account.login_name, field_name="new")
        if errors:
            raise ValidationErrors(errors)
        stored = self._store.password_hash(account.account_id)
        if stored is None or not self._hashing.verify(stored, current):
            if (locked := self._fail(keys)) is not None:
                raise account_locked(locked)
            raise current_password_wrong()
        if current == new:
            raise password_reused()
        self._store.set_password_hash(account.account_id, self._hashing.hash(new), self._clock())
        return self.revoke_all(account.account_id, keep=principal.session_id)

    def start_reset(self, identifier: str) -> None:
        """A reset code to the bound phone of the account ``identifier`` names; the same answer (and no
        error) whether it names one. A phone's send limits still apply."""
        account = self.resolve(identifier)
        if account is None or not account.active:
            return
        phone = self._store.phone_of(account.account_id)
        if phone is None:
            return
        try:
            self._codes.send(phone, SmsPurpose.PASSWORD_RESET)
        except DomainError:
            return  # too soon, daily limit: telling would tell that the account exists

    def confirm_reset(self, identifier: str, code: str, new: str) -> Account:
        """Set a new password by the reset code: every session ends, the lock is lifted."""
        account = self.resolve(identifier)
        if account is None or not account.active:
            raise _reset_code_wrong()
        errors = password_errors(new, account.login_name, field_name="new")
        if errors:
            raise ValidationErrors(errors)
        keys = [_guard_key_account(account.account_id)]
        phone = self._store.phone_of(account.account_id)
        if phone is None:
            raise _reset_code_wrong()
        try:
            self._codes.check(phone, SmsPurpose.PASSWORD_RESET, code)
        except DomainError as exc:
            raise _reset_code_wrong() from exc
        self._store.set_password_hash(account.account_id, self._hashing.hash(new), self._clock())
        self._sessions.revoke_subject(account.account_id)
        self._succeed([*keys, *self._guard_keys(identifier, None)])
        return account


def _id_type_of(number: str) -> IdType:
    """The document an 18-character ID number is most likely of (居住证 of Hong Kong, Macau and Taiwan
    residents start 81/82/83, the new foreign permanent residence ID 9); a resident ID otherwise."""
    from chalicelib.kernel.personal import IdType

    if len(number) == _USCC_LENGTH:
        if number.startswith(("81", "82")):
            return IdType.HK_MACAU_PERMIT
        if number.startswith("83"):
            return IdType.TAIWAN_PERMIT
        if number.startswith("9"):
            return IdType.FOREIGN_PERMANENT_ID
    return IdType.RESIDENT_ID


def _reset_code_wrong() -> InvalidField:
    return InvalidField(
        "account.reset_code_wrong",
        "验证码错误或已失效，请重新获取",
        "The reset code is wrong or expired: ask for a new one",
        field="code",
    )


def lock_key_of(account_id: str) -> str:
    """The guard key of an account (tests and the admin read its lock)."""
    return _guard_key_account(account_id)
