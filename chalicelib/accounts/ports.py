"""What the accounts context needs from the outside world: where accounts, their credentials, login
guards and challenges are kept; how passwords are hashed; and the lookups other contexts answer (an
enterprise's legal-person account, an account's agent grant)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime
from typing import TypeAlias

from chalicelib.accounts.domain import Account, LoginChallenge, LoginGuard


class AccountStore(ABC):
    """Accounts; the phone and e-mail sealed, looked up by keyed hashes only."""

    @abstractmethod
    def create(self, account: Account, *, phone: str, email: str | None, password_hash: str | None) -> None:
        """Keep a new account and claim its login name (case-insensitive) in one transaction.

        Raises ``account.login_name_taken`` (409) when the name is claimed, writing nothing.
        """

    @abstractmethod
    def get(self, account_id: str) -> Account | None: ...

    @abstractmethod
    def by_login_name(self, login_name: str) -> Account | None:
        """The account of a login name (case-insensitive), or None."""

    @abstractmethod
    def by_person_hash(self, person_hash: str) -> list[Account]:
        """The accounts whose real-name person is ``person_hash`` (keyed hash of ID type and number)."""

    @abstractmethod
    def count_by_phone(self, phone_hash: str) -> int:
        """How many accounts are bound to a phone."""

    @abstractmethod
    def phone_of(self, account_id: str) -> str | None:
        """The bound phone in clear (opened from its seal), to send a code to."""

    @abstractmethod
    def password_hash(self, account_id: str) -> str | None:
        """The stored password hash, or None when the account has no usable password yet."""

    @abstractmethod
    def set_password_hash(self, account_id: str, password_hash: str, now: datetime) -> None: ...

    @abstractmethod
    def set_email(self, before: Account, after: Account, email: str) -> bool:
        """Seal ``email`` as the account's and store ``after`` if the account is still ``before``."""

    @abstractmethod
    def replace(self, before: Account, after: Account) -> bool:
        """Store ``after`` if the account is still ``before`` (same version); False when it changed."""


class GuardStore(ABC):
    """Login guards (failure counts and locks) per key."""

    @abstractmethod
    def get(self, key: str) -> LoginGuard: ...

    @abstractmethod
    def put(self, before: LoginGuard, after: LoginGuard) -> bool:
        """Store ``after`` if the guard is still ``before`` (same version); False when it changed."""


class ChallengeStore(ABC):
    """Login challenges waiting for their SMS code."""

    @abstractmethod
    def create(self, challenge: LoginChallenge) -> None: ...

    @abstractmethod
    def get(self, challenge_id: str) -> LoginChallenge | None: ...

    @abstractmethod
    def put(self, before: LoginChallenge, after: LoginChallenge) -> bool:
        """Store ``after`` if the challenge is still ``before`` (same version); False when it changed."""


class PasswordHashing(ABC):
    """A slow password hash (argon2id)."""

    @abstractmethod
    def hash(self, password: str) -> str: ...

    @abstractmethod
    def verify(self, password_hash: str, password: str) -> bool:
        """Whether ``password`` matches; a malformed hash is a mismatch."""

    @abstractmethod
    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash was made with other parameters than today's."""

    @abstractmethod
    def burn(self, password: str) -> None:
        """Spend the time of one verification (against a dummy hash): no account, same timing."""


#: The enterprise (USCC) an account holds an approved agent grant for, or None.
AgentLookup: TypeAlias = Callable[[str], str | None]
#: The legal-person account id of an enterprise (USCC), or None.
LegalAccountLookup: TypeAlias = Callable[[str], str | None]
