"""Consents (SPEC §3, PIPL 第二十九条): the versioned texts a person accepts, and the check that what
a client says was accepted is the current text, exactly as served."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from chalicelib.kernel.errors import InvalidField


class ConsentKind(StrEnum):
    REGISTRATION_AGREEMENT = "registration_agreement"  # 实名登记协议
    RESPONSIBILITY_NOTICE = "responsibility_notice"  # 实名制责任告知书
    BIOMETRIC_CONSENT = "biometric_consent"  # 人脸信息处理单独同意 (PIPL 第二十九条)


class ConsentDocument(BaseModel):
    """A versioned text kept in the repository (``chalicelib/consents/<kind>.<version>.md``, read by
    ``registration.consents``)."""

    model_config = ConfigDict(frozen=True)

    kind: ConsentKind
    version: str
    title: str
    sha256: str
    text: str


def consent_document(file_name: str, raw: bytes) -> ConsentDocument:
    """A consent text from its file (``<kind>.<version>.md``, the title on the first line)."""
    kind_name, version = file_name.removesuffix(".md").rsplit(".", 1)
    text = raw.decode("utf-8")
    title = text.splitlines()[0].lstrip("# ").strip()
    return ConsentDocument(
        kind=ConsentKind(kind_name),
        version=version,
        title=title,
        sha256=hashlib.sha256(raw).hexdigest(),
        text=text,
    )


def current_consents(documents: Iterable[ConsentDocument]) -> tuple[ConsentDocument, ...]:
    """The current text of each consent, in ``ConsentKind`` order: the highest version of each kind."""
    found: dict[ConsentKind, ConsentDocument] = {}
    for doc in documents:
        current = found.get(doc.kind)
        if current is None or int(doc.version[1:]) > int(current.version[1:]):
            found[doc.kind] = doc
    missing = set(ConsentKind) - set(found)
    if missing:
        raise RuntimeError(f"consent texts missing: {sorted(m.value for m in missing)}")
    return tuple(found[k] for k in ConsentKind)


class AcceptedConsent(BaseModel):
    """What the client says the person accepted: the text by kind, version and hash."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ConsentKind
    version: str = Field(min_length=1, max_length=16)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ConsentRecord(BaseModel):
    """A consent given: the text's kind, version and hash, when, and from which client."""

    model_config = ConfigDict(frozen=True)

    kind: ConsentKind
    version: str
    sha256: str
    accepted_at: AwareDatetime
    client: dict[str, str] = Field(default_factory=dict)


#: The agreements of the consents step; the biometric consent is given earlier, before the face step.
AGREEMENTS = (ConsentKind.REGISTRATION_AGREEMENT, ConsentKind.RESPONSIBILITY_NOTICE)


def check_accepted(
    accepted: Sequence[AcceptedConsent],
    documents: Iterable[ConsentDocument],
    required: tuple[ConsentKind, ...] = AGREEMENTS,
) -> None:
    """Every ``required`` text accepted, and every text given the current one of ``documents``, exactly
    as served (an outdated or altered text is refused)."""
    current = {d.kind: d for d in documents}
    given = {a.kind: a for a in accepted}
    if len(given) != len(accepted):
        raise InvalidField(
            "consent.repeated", "同一协议重复提交", "A consent was given twice", field="accepted"
        )
    for kind, doc in current.items():
        got = given.get(kind)
        if got is None and kind not in required:
            continue
        if got is None:
            raise InvalidField(
                "consent.missing",
                f"请阅读并同意《{doc.title}》",
                f"The {kind.value} must be accepted",
                field=f"accepted.{kind.value}",
            )
        if got.version != doc.version or got.sha256 != doc.sha256:
            raise InvalidField(
                "consent.outdated",
                f"《{doc.title}》已更新，请重新阅读后同意",
                f"The {kind.value} accepted is not the current text; read it again",
                field=f"accepted.{kind.value}",
                details={"current_version": doc.version},
            )
