"""An in-memory identity authority: citizens by ID number, each with a portrait label and the phone
the carrier has on record for them; an outage switch and a count of the calls."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from itertools import count
from typing import ClassVar

from chalicelib.verification.domain.authority import AuthorityAnswer, AuthorityResult
from chalicelib.verification.ports import IdentityAuthority


@dataclass(frozen=True)
class FakeCitizen:
    name: str
    id_number: str
    #: The bytes of the live capture that count as this person's face (the fake compares bytes).
    face: bytes | None = None
    #: The mobile number the carrier holds in this person's name (运营商三要素); None: none on record.
    phone: str | None = None


class FakeAuthority(IdentityAuthority):
    name: ClassVar[str] = "fake-authority"
    supports_portrait: ClassVar[bool] = True
    supports_phone_holder: ClassVar[bool] = True

    def __init__(self, *citizens: FakeCitizen) -> None:
        self.citizens = {c.id_number: c for c in citizens}
        self.down = False
        #: Calls answered UNAVAILABLE while the others are answered (e.g. ``{"verify_phone_holder"}``).
        self.down_for: set[str] = set()
        self.calls: list[str] = []
        self._refs = count(1)

    @property
    def version(self) -> str:
        return "fake-1"

    def add(self, citizen: FakeCitizen) -> None:
        self.citizens[citizen.id_number] = citizen

    def _answer(self, result: AuthorityResult, similarity: float | None = None) -> AuthorityAnswer:
        return AuthorityAnswer(
            result=result,
            provider=self.name,
            provider_version=self.version,
            reference=None if result is AuthorityResult.UNAVAILABLE else f"ref-{next(self._refs)}",
            similarity=similarity,
            retry_after=7 if result is AuthorityResult.UNAVAILABLE else None,
        )

    def verify_identity(
        self, name: str, id_type: str, id_number: str, valid_until: date | None = None
    ) -> AuthorityAnswer:
        self.calls.append("verify_identity")
        if self.down:
            return self._answer(AuthorityResult.UNAVAILABLE)
        citizen = self.citizens.get(id_number)
        if citizen is None:
            return self._answer(AuthorityResult.NOT_FOUND)
        return self._answer(AuthorityResult.MATCH if citizen.name == name else AuthorityResult.NO_MATCH)

    def compare_portrait(self, name: str, id_number: str, live_jpeg: bytes) -> AuthorityAnswer:
        self.calls.append("compare_portrait")
        if self.down:
            return self._answer(AuthorityResult.UNAVAILABLE)
        citizen = self.citizens.get(id_number)
        if citizen is None or citizen.name != name:
            return self._answer(AuthorityResult.NOT_FOUND)
        same = citizen.face is not None and citizen.face == live_jpeg
        return self._answer(
            AuthorityResult.MATCH if same else AuthorityResult.NO_MATCH, 95.0 if same else 12.0
        )

    def verify_phone_holder(self, name: str, id_type: str, id_number: str, phone: str) -> AuthorityAnswer:
        self.calls.append("verify_phone_holder")
        if self.down or "verify_phone_holder" in self.down_for:
            return self._answer(AuthorityResult.UNAVAILABLE)
        citizen = self.citizens.get(id_number)
        if citizen is None or citizen.phone is None:
            return self._answer(AuthorityResult.NOT_FOUND)
        same = citizen.name == name and citizen.phone == phone
        return self._answer(AuthorityResult.MATCH if same else AuthorityResult.NO_MATCH)


class FakeAuthorityWithoutPhoneCheck(FakeAuthority):
    """A provider that offers no phone-holder check (its answer would be a programming error)."""

    supports_phone_holder: ClassVar[bool] = False

    def verify_phone_holder(self, name: str, id_type: str, id_number: str, phone: str) -> AuthorityAnswer:
        raise AssertionError("the phone-holder check is not offered by this provider")
