"""argon2id through argon2-cffi: the parameters set explicitly are those in the hash, a wrong password
or a malformed hash is a mismatch, a hash of other parameters needs a rehash, and the dummy verification
of an unknown account takes about as long as a real one."""

from __future__ import annotations

import time
from collections.abc import Callable

from chalicelib.accounts.passwords import Argon2Parameters, Argon2Passwords
from chalicelib.core.config import Settings

CHEAP = Argon2Parameters(time_cost=1, memory_cost_kib=8192, parallelism=1)


def test_a_hash_is_argon2id_with_the_parameters_given_and_verifies_only_the_right_password() -> None:
    passwords = Argon2Passwords(CHEAP)
    hashed = passwords.hash("Secure#2026")
    assert hashed.startswith("$argon2id$v=19$m=8192,t=1,p=1$")
    assert "Secure#2026" not in hashed
    assert passwords.verify(hashed, "Secure#2026")
    assert not passwords.verify(hashed, "Secure#2027")
    assert not passwords.verify("not a hash", "Secure#2026")
    assert passwords.hash("Secure#2026") != hashed  # salted


def test_a_hash_made_with_other_parameters_needs_a_rehash() -> None:
    old = Argon2Passwords(CHEAP).hash("Secure#2026")
    stronger = Argon2Passwords(Argon2Parameters(time_cost=2, memory_cost_kib=8192, parallelism=1))
    assert stronger.needs_rehash(old)
    assert stronger.verify(old, "Secure#2026")  # still verifies: rehashed at that login
    assert not stronger.needs_rehash(stronger.hash("Secure#2026"))
    assert stronger.needs_rehash("garbage")


def test_the_default_settings_choose_argon2id_at_64_mib_2_passes_1_lane() -> None:
    fields = Settings.model_fields
    assert fields["password_time_cost"].default == 2
    assert fields["password_memory_kib"].default == 65536
    assert fields["password_parallelism"].default == 1
    hashed = Argon2Passwords().hash("Secure#2026")
    assert hashed.startswith("$argon2id$v=19$m=65536,t=2,p=1$")


def test_the_dummy_verification_costs_about_what_a_real_one_does() -> None:
    passwords = Argon2Passwords(Argon2Parameters(time_cost=2, memory_cost_kib=16384, parallelism=1))
    hashed = passwords.hash("Secure#2026")
    passwords.burn("warm")  # the dummy hash is made once, on first use

    def best(fn: Callable[[], object]) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    real = best(lambda: passwords.verify(hashed, "Wrong#2026x"))
    dummy = best(lambda: passwords.burn("Wrong#2026x"))
    assert 0.5 < dummy / real < 2.0, (real, dummy)
