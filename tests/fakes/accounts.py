"""In-memory fakes of the accounts' ports (and of the sessions' store), honouring the ports' conditions
as the DynamoDB adapters' conditional writes do, and ``AccountsWorld``: an ``Accounts`` service on them,
its SMS codes, sessions and clock, for unit tests of the accounts and of the contexts built on them."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace
from datetime import datetime

from chalicelib.accounts.domain import Account, LoginChallenge, LoginGuard, login_name_key, login_name_taken
from chalicelib.accounts.ports import AccountStore, ChallengeStore, GuardStore, PasswordHashing
from chalicelib.accounts.service import Accounts
from chalicelib.sessions.domain import RevokeReason, StoredSession
from chalicelib.sessions.ports import SessionStore
from chalicelib.sessions.service import Sessions
from chalicelib.sms.codes import SmsCodeService
from tests.fakes.clock import FakeClock
from tests.fakes.crypto import FakeHasher
from tests.fakes.sms import FakeSmsCodeStore, FakeSmsSender


class FakeAccountStore(AccountStore):
    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.names: dict[str, str] = {}
        self.phones: dict[str, str] = {}
        self.emails: dict[str, str] = {}
        self.passwords: dict[str, str] = {}

    def create(self, account: Account, *, phone: str, email: str | None, password_hash: str | None) -> None:
        key = login_name_key(account.login_name)
        if key in self.names:
            raise login_name_taken()
        self.names[key] = account.account_id
        self.accounts[account.account_id] = account
        self.phones[account.account_id] = phone
        if email:
            self.emails[account.account_id] = email
        if password_hash:
            self.passwords[account.account_id] = password_hash

    def get(self, account_id: str) -> Account | None:
        return self.accounts.get(account_id)

    def by_login_name(self, login_name: str) -> Account | None:
        account_id = self.names.get(login_name_key(login_name))
        return self.accounts.get(account_id) if account_id else None

    def by_person_hash(self, person_hash: str) -> list[Account]:
        return [a for a in self.accounts.values() if a.real_name and a.real_name.person_hash == person_hash]

    def count_by_phone(self, phone_hash: str) -> int:
        return sum(1 for a in self.accounts.values() if a.phone_hash == phone_hash)

    def phone_of(self, account_id: str) -> str | None:
        return self.phones.get(account_id)

    def password_hash(self, account_id: str) -> str | None:
        return self.passwords.get(account_id)

    def set_password_hash(self, account_id: str, password_hash: str, now: datetime) -> None:
        self.passwords[account_id] = password_hash

    def set_email(self, before: Account, after: Account, email: str) -> bool:
        if not self.replace(before, after):
            return False
        self.emails[before.account_id] = email
        return True

    def replace(self, before: Account, after: Account) -> bool:
        now = self.accounts.get(before.account_id)
        if now is None or now.version != before.version:
            return False
        self.accounts[before.account_id] = after
        return True


class FakeGuardStore(GuardStore):
    def __init__(self) -> None:
        self.guards: dict[str, LoginGuard] = {}

    def get(self, key: str) -> LoginGuard:
        return self.guards.get(key, LoginGuard(key))

    def put(self, before: LoginGuard, after: LoginGuard) -> bool:
        if self.get(before.key).version != before.version:
            return False
        self.guards[after.key] = after
        return True


class FakeChallengeStore(ChallengeStore):
    def __init__(self) -> None:
        self.challenges: dict[str, LoginChallenge] = {}

    def create(self, challenge: LoginChallenge) -> None:
        assert challenge.challenge_id not in self.challenges
        self.challenges[challenge.challenge_id] = challenge

    def get(self, challenge_id: str) -> LoginChallenge | None:
        return self.challenges.get(challenge_id)

    def put(self, before: LoginChallenge, after: LoginChallenge) -> bool:
        now = self.challenges.get(before.challenge_id)
        if now is None or now.version != before.version:
            return False
        self.challenges[after.challenge_id] = after
        return True


class FakeSessionStore(SessionStore):
    def __init__(self) -> None:
        self.sessions: dict[str, StoredSession] = {}

    def create(self, session: StoredSession) -> None:
        assert session.session_id not in self.sessions
        self.sessions[session.session_id] = session

    def get(self, session_id: str) -> StoredSession | None:
        return self.sessions.get(session_id)

    def rotate(
        self, session: StoredSession, token_hash: str, now: datetime, idle_expires_at: datetime
    ) -> bool:
        current = self.sessions.get(session.session_id)
        if current is None or current.generation != session.generation or current.revoked_at is not None:
            return False
        self.sessions[session.session_id] = replace(
            current,
            previous_hash=current.token_hash,
            token_hash=token_hash,
            generation=current.generation + 1,
            rotated_at=now,
            idle_expires_at=idle_expires_at,
        )
        return True

    def revoke(self, session_id: str, now: datetime, reason: RevokeReason) -> None:
        current = self.sessions.get(session_id)
        if current is not None and current.revoked_at is None:
            self.sessions[session_id] = replace(current, revoked_at=now, revoked_reason=reason)

    def of_subject(self, subject: str) -> list[str]:
        return [s.session_id for s in self.sessions.values() if s.subject == subject]


class FastPasswords(PasswordHashing):
    """A keyed hash with a version tag instead of argon2id (the real one is tested on its own): counts
    verifications, so the no-enumeration path can be seen to spend one; ``version`` bumps make every
    older hash need a rehash."""

    def __init__(self) -> None:
        self.version = 1
        self.verifications = 0
        self.burns = 0

    def _digest(self, password: str, version: int) -> str:
        return f"v{version}$" + hmac.new(b"pw", password.encode(), hashlib.sha256).hexdigest()

    def hash(self, password: str) -> str:
        return self._digest(password, self.version)

    def verify(self, password_hash: str, password: str) -> bool:
        self.verifications += 1
        version = int(password_hash.split("$", 1)[0][1:])
        return hmac.compare_digest(password_hash, self._digest(password, version))

    def needs_rehash(self, password_hash: str) -> bool:
        return not password_hash.startswith(f"v{self.version}$")

    def burn(self, password: str) -> None:
        self.burns += 1
        self.verify(self._digest("dummy", self.version), password)


class AccountsWorld:
    """An ``Accounts`` service on in-memory fakes, with the SMS it sends and a clock moved by hand."""

    def __init__(
        self,
        *,
        agent_of: dict[str, str] | None = None,
        legal_accounts: dict[str, str] | None = None,
        max_accounts_per_phone: int = 5,
    ) -> None:
        self.clock = FakeClock()
        self.hasher = FakeHasher()
        self.sms = FakeSmsSender()
        self.codes = SmsCodeService(FakeSmsCodeStore(), self.sms, self.hasher, clock=self.clock)
        self.session_store = FakeSessionStore()
        self.sessions = Sessions(self.session_store, self.hasher, clock=self.clock)
        self.store = FakeAccountStore()
        self.guards = FakeGuardStore()
        self.challenges = FakeChallengeStore()
        self.passwords = FastPasswords()
        self.agent_of = dict(agent_of or {})
        self.legal_accounts = dict(legal_accounts or {})
        self.accounts = Accounts(
            self.store,
            self.guards,
            self.challenges,
            self.passwords,
            self.codes,
            self.sessions,
            self.session_store,
            self.hasher,
            clock=self.clock,
            max_accounts_per_phone=max_accounts_per_phone,
            agent_of=self.agent_of.get,
            legal_account_of=self.legal_accounts.get,
        )

    def code_to(self, phone: str) -> str:
        return self.sms.last_code(phone)
