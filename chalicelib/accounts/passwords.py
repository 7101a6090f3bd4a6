"""Password hashing with argon2id (``argon2-cffi``), its cost set explicitly from the settings.

The cost is chosen so that one verification takes 50–250 ms on the machine the benchmark ran on
(bench/README.md states the figure). A login for an account that does not exist verifies against a
dummy hash made with the same parameters, so it takes the same time as a wrong password.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from chalicelib.accounts.ports import PasswordHashing

if TYPE_CHECKING:
    from argon2 import PasswordHasher


@dataclass(frozen=True)
class Argon2Parameters:
    time_cost: int = 2
    memory_cost_kib: int = 65536
    parallelism: int = 1


class Argon2Passwords(PasswordHashing):
    """argon2id hashes in the PHC string format (``$argon2id$v=19$m=...,t=...,p=...$salt$hash``)."""

    def __init__(self, parameters: Argon2Parameters | None = None) -> None:
        self._parameters = parameters or Argon2Parameters()

    @property
    def parameters(self) -> Argon2Parameters:
        return self._parameters

    @cached_property
    def _hasher(self) -> PasswordHasher:
        from argon2 import PasswordHasher, Type

        p = self._parameters
        return PasswordHasher(
            time_cost=p.time_cost,
            memory_cost=p.memory_cost_kib,
            parallelism=p.parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )

    @cached_property
    def _dummy(self) -> str:
        return self._hasher.hash("dummy password, never anyone's: 1!a")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

        try:
            return bool(self._hasher.verify(password_hash, password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        from argon2.exceptions import InvalidHashError

        try:
            return bool(self._hasher.check_needs_rehash(password_hash))
        except InvalidHashError:
            return True

    def burn(self, password: str) -> None:
        self.verify(self._dummy, password)
