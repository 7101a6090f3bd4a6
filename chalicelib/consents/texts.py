"""The consent texts served and checked: the Markdown files beside this module
(``<kind>.<version>.md``), read once per process; the current version of each kind is the one in force.

A text may hold placeholders (``{{oem_name}}``, ``{{oem_contact}}``, ``{{face_provider}}``,
``{{authority_provider}}``; the periods ``{{retention_years}}``, ``{{photo_period}}`` and
``{{photo_note}}``, so that a text states the periods ``purge_retention`` applies) filled from the
stage's settings when the files are read: the served text, and so its SHA-256, is the filled one, the
same for every request of a stage. Older versions stay readable (``consent_version``): an acceptance
recorded against one keeps verifying against it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from chalicelib.consents.domain import (
    AGREEMENTS,
    AcceptedConsent,
    ConsentDocument,
    ConsentKind,
    ConsentRecord,
    check_accepted,
    consent_document,
    current_consents,
)

if TYPE_CHECKING:
    from chalicelib.core.config import Settings

CONSENTS_DIR = Path(__file__).resolve().parent

_PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")

#: Who runs the face engine of each ``face_engine`` setting (named in the biometric consent).
FACE_PROVIDERS = {
    "local": "dlib 开源人脸识别算法，在{oem_name}自有的服务器上运行，人脸图像不提供给其他机构",
    "remote": "dlib 开源人脸识别算法，在{oem_name}自有的服务器上运行，人脸图像不提供给其他机构",
    "rekognition": "亚马逊云科技（Amazon Web Services）的 Amazon Rekognition 人脸比对服务",
}

#: Who checks the identity (and compares the live face with the authority's ID portrait), per authority.
AUTHORITY_PROVIDERS = {
    "sandbox": "本平台的身份核验测试服务（仅用于测试环境，不向任何第三方提供信息）",
    "tencent": (
        "腾讯云计算（北京）有限责任公司的腾讯云人脸核身服务：核验姓名与证件号码，"
        "并将现场人脸与权威数据源中的证件人像比对"
    ),
}


def fill(raw: bytes, values: Mapping[str, str]) -> bytes:
    """``raw`` with each ``{{name}}`` replaced by ``values[name]``; a name without a value is an error
    (a text must never be served with a hole in it)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise RuntimeError(f"consent text placeholder without a value: {name}")
        return values[name]

    return _PLACEHOLDER.sub(value, raw.decode("utf-8")).encode("utf-8")


def photo_period(years: int) -> str:
    """How long the on-site photo is kept, as the biometric consent states it (第十八条 and the stage's
    ``retention_face_years``)."""
    if years == 0:
        return "在车联网卡服务期间保存，服务终止（实名注销、过户、报废）时删除"
    return f"在车联网卡服务期间及服务终止后 {years} 年内保存，期满后删除"


def stage_values(settings: Settings | None = None) -> dict[str, str]:
    """The placeholders' values of a stage, from its settings (the settings in force by default)."""
    if settings is None:
        from chalicelib.core.settings import get_settings

        settings = get_settings()
    face_years = (
        settings.retention_years if settings.retention_face_years is None else settings.retention_face_years
    )
    return {
        "oem_name": settings.oem_name,
        "oem_contact": settings.oem_contact,
        "face_provider": FACE_PROVIDERS[settings.face_engine].format(oem_name=settings.oem_name),
        "authority_provider": AUTHORITY_PROVIDERS[settings.authority_kind],
        "retention_years": str(settings.retention_years),
        "photo_period": photo_period(face_years),
        # The registration agreement names the on-site photo among the materials; a shorter face period
        # is stated beside them (empty when it is the same, so the text and its hash stay as they were).
        "photo_note": ""
        if face_years == settings.retention_years
        else f"（其中现场拍摄照片：{photo_period(face_years)}）",
    }


def render_documents(values: Mapping[str, str]) -> tuple[ConsentDocument, ...]:
    """Every version of every consent text, its placeholders filled with ``values``."""
    return tuple(
        consent_document(path.name, fill(path.read_bytes(), values))
        for path in sorted(CONSENTS_DIR.glob("*.v*.md"))
    )


@lru_cache(maxsize=1)
def all_consent_documents() -> tuple[ConsentDocument, ...]:
    """Every version of every consent text, filled for this stage (once per process)."""
    return render_documents(stage_values())


@lru_cache(maxsize=1)
def consent_documents() -> tuple[ConsentDocument, ...]:
    """The current text of each consent: the highest version in the repository."""
    return current_consents(all_consent_documents())


def current_consent(kind: ConsentKind) -> ConsentDocument:
    return next(d for d in consent_documents() if d.kind is kind)


def consent_version(kind: ConsentKind, version: str) -> ConsentDocument | None:
    """The text of ``kind`` at ``version`` (current or older), None when there is no such version."""
    return next((d for d in all_consent_documents() if d.kind is kind and d.version == version), None)


def accepted_text(record: ConsentRecord | AcceptedConsent) -> ConsentDocument | None:
    """The text an acceptance was given for, when its version still holds exactly that text (its
    SHA-256 matches); None when it does not (an unknown version or an altered text)."""
    doc = consent_version(record.kind, record.version)
    return doc if doc is not None and doc.sha256 == record.sha256 else None


def check_consents(
    accepted: Sequence[AcceptedConsent], required: tuple[ConsentKind, ...] = AGREEMENTS
) -> None:
    """Every ``required`` text accepted, and every text given the current one, exactly as served."""
    check_accepted(accepted, consent_documents(), required)
