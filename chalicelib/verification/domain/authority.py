"""The identity authority (证件真实性核验, 004 第八条(一), 第十六条): is the identity a real one?

OCR and a live face prove only that the person matches a photo of a card (人证一致 with that photo).
The authority — the public-security citizen database behind a commercial real-name service, or the
local sandbox — answers for the identity itself:

- ``verify_identity``: do this name and ID number belong together in its records (two factors; the
  validity date a third where the provider takes it)?
- ``compare_portrait``: does the live capture show the person of the authoritative portrait (only
  where the provider offers it: ``supports_portrait``)?

Every answer is one of ``MATCH``, ``NO_MATCH``, ``NOT_FOUND`` and ``UNAVAILABLE``, with the provider's
name, version and reference (what an auditor quotes back to the provider). ``UNAVAILABLE`` is never a
pass: by the stage's setting the person retries (503 ``authority.unavailable``) or the flow goes to a
reviewer. Identities the authority does not cover (passports, permits, enterprises) are recorded as
``NOT_COVERED`` and go to a reviewer: nothing else has checked them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Literal

from chalicelib.kernel.errors import DomainError, InvalidField
from chalicelib.kernel.personal import IdType

#: What happens when the authority cannot answer: the person retries, or a reviewer decides.
UnavailablePolicy = Literal["retry", "review"]

#: The ID types the identity authorities check (the citizen database holds resident ID cards only).
COVERED_ID_TYPES: frozenset[str] = frozenset({IdType.RESIDENT_ID.value})

#: Seconds a person is told to wait before asking again when the authority is unavailable.
DEFAULT_RETRY_AFTER = 30


class AuthorityResult(StrEnum):
    MATCH = "match"
    NO_MATCH = "no_match"  # the number exists, the name (or portrait, validity) does not agree
    NOT_FOUND = "not_found"  # no such identity
    UNAVAILABLE = "unavailable"  # no answer (down, timed out, provider error): never a pass
    NOT_COVERED = "not_covered"  # an ID type the authority does not hold (recorded by the use case)


@dataclass(frozen=True)
class AuthorityAnswer:
    """One answer of the authority; nothing personal (safe for the evidence's public part)."""

    result: AuthorityResult
    provider: str
    provider_version: str
    #: The provider's reference of the request (request id, serial number), for audits.
    reference: str | None = None
    #: 0–100 similarity of the live face with the authoritative portrait, when compared.
    similarity: float | None = None
    #: The provider's own result code (not personal), for audits.
    provider_code: str | None = None
    #: When UNAVAILABLE: the seconds the provider asked to wait, if it said.
    retry_after: int | None = None

    @property
    def matched(self) -> bool:
        return self.result is AuthorityResult.MATCH

    def public(self) -> dict[str, object]:
        """The answer's facts for the evidence."""
        facts: dict[str, object] = {
            "result": self.result.value,
            "provider": self.provider,
            "provider_version": self.provider_version,
            "reference": self.reference,
        }
        if self.similarity is not None:
            facts["similarity"] = round(self.similarity, 2)
        if self.provider_code is not None:
            facts["provider_code"] = self.provider_code
        return facts


def covered(id_type: str) -> bool:
    return id_type in COVERED_ID_TYPES


class ServiceUnavailable(DomainError):
    status: ClassVar[int] = 503


def identity_not_found(field_prefix: str = "") -> InvalidField:
    return InvalidField(
        "authority.not_found",
        "经权威数据源核验，该身份证号码不存在，请核对后重新填写",
        "The identity authority holds no such ID number: check what you typed",
        field=f"{field_prefix}id_number",
    )


def identity_no_match(field_prefix: str = "") -> InvalidField:
    return InvalidField(
        "authority.no_match",
        "经权威数据源核验，姓名与身份证号码不一致，请核对后重新填写",
        "The identity authority says the name and the ID number do not belong together",
        field=f"{field_prefix}name",
    )


def authority_unavailable(retry_after: int | None = None) -> ServiceUnavailable:
    wait = retry_after or DEFAULT_RETRY_AFTER
    return ServiceUnavailable(
        "authority.unavailable",
        f"身份核验服务暂时不可用，请约 {wait} 秒后重试",
        f"The identity authority is unavailable; try again in about {wait} seconds",
        details={"retry_after_seconds": wait, "retry": "POST /v1/flows/{flow_id}/authority-check"},
    )


def phone_not_owners() -> InvalidField:
    """运营商三要素: the carrier does not hold the phone in the owner's name and ID number."""
    return InvalidField(
        "delegation.phone_not_owners",
        "经运营商核验，该手机号码不是车主本人实名登记的号码，请填写车主本人的手机号码",
        "The carrier does not hold this phone in the owner's name: give the owner's own phone",
        field="owner_phone",
    )


def face_authority_unavailable(retry_after: int | None = None) -> ServiceUnavailable:
    """The authority could not compare the live capture with the citizen's portrait (``retry`` policy):
    the face check counts nothing and the same liveness session is sent again."""
    wait = retry_after or DEFAULT_RETRY_AFTER
    return ServiceUnavailable(
        PORTRAIT_UNAVAILABLE,
        f"身份核验服务暂时不可用，请约 {wait} 秒后再做一次人脸检测（不计入核验次数）",
        f"The identity authority could not compare the face; try again in about {wait} seconds "
        "(no attempt was counted)",
        details={"retry_after_seconds": wait, "attempt_counted": False},
    )


def phone_check_unavailable(retry_after: int | None = None) -> ServiceUnavailable:
    """The phone-holder check could not be made (``retry`` policy): the delegation is given again."""
    error = authority_unavailable(retry_after)
    return ServiceUnavailable(
        error.code,
        error.message_zh,
        error.message_en,
        details={**error.details, "retry": "POST /v1/me/registrations/{registration_id}/delegation"},
    )


#: The live face is not the person of the authoritative portrait.
PORTRAIT_MISMATCH = "authority.portrait_mismatch"
#: The portrait comparison could not be made (unavailable, retry policy): the face attempt fails.
PORTRAIT_UNAVAILABLE = "authority.unavailable"


def identity_error(answer: AuthorityAnswer, field_prefix: str = "") -> DomainError | None:
    """The refusal an identity answer means (None for a match)."""
    if answer.result is AuthorityResult.MATCH:
        return None
    if answer.result is AuthorityResult.NOT_FOUND:
        return identity_not_found(field_prefix)
    if answer.result is AuthorityResult.NO_MATCH:
        return identity_no_match(field_prefix)
    return authority_unavailable(answer.retry_after)
