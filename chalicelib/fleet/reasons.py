"""The reason codes of a fleet review decision (审核意见): each with its Chinese and English text, the
decision it belongs to, and whether the enterprise may resubmit — and which document it replaces.

A reviewer decides with codes from this catalogue only: the enterprise reads their text on the portal,
the automatic checks give the same codes, and the evidence log records the codes, not prose.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from chalicelib.fleet.domain import DocumentSlot


class Decision(StrEnum):
    """What a reviewer decides on a fleet case."""

    APPROVE = "approve"
    REJECT = "reject"
    RESUBMIT = "resubmit"  # 补充材料: the enterprise replaces the named documents


@dataclass(frozen=True)
class Reason:
    """One reason code. ``resubmittable``: the enterprise may put it right by replacing ``slot`` (None:
    by replacing the documents the reviewer names); a final reason ends the batch."""

    code: str
    zh: str
    en: str
    decision: Decision
    resubmittable: bool
    slot: DocumentSlot | None = None


CATALOGUE: tuple[Reason, ...] = (
    Reason(
        "documents_verified",
        "材料齐全，核验一致",
        "The documents are complete and consistent",
        Decision.APPROVE,
        False,
    ),
    Reason(
        "licence_unreadable",
        "营业执照照片不清晰，无法识别",
        "The business licence photo cannot be read",
        Decision.RESUBMIT,
        True,
        DocumentSlot.BUSINESS_LICENCE,
    ),
    Reason(
        "licence_expired",
        "营业执照已过有效期",
        "The business licence has expired",
        Decision.RESUBMIT,
        True,
        DocumentSlot.BUSINESS_LICENCE,
    ),
    Reason(
        "company_name_mismatch",
        "填写的单位名称与营业执照不一致",
        "The company name typed differs from the business licence",
        Decision.RESUBMIT,
        True,
        DocumentSlot.BUSINESS_LICENCE,
    ),
    Reason(
        "uscc_mismatch",
        "营业执照上的统一社会信用代码与单位账号不一致",
        "The licence's unified social credit code is not the enterprise's",
        Decision.RESUBMIT,
        True,
        DocumentSlot.BUSINESS_LICENCE,
    ),
    Reason(
        "letter_missing_seal",
        "授权书未加盖单位公章",
        "The authorization letter carries no company seal",
        Decision.RESUBMIT,
        True,
        DocumentSlot.AUTHORIZATION_LETTER,
    ),
    Reason(
        "letter_unreadable",
        "授权书照片不清晰或内容不完整",
        "The authorization letter is unclear or incomplete",
        Decision.RESUBMIT,
        True,
        DocumentSlot.AUTHORIZATION_LETTER,
    ),
    Reason(
        "custody_agreement_incomplete",
        "车卡保管协议未填写完整或未盖章",
        "The custody agreement is incomplete or unsealed",
        Decision.RESUBMIT,
        True,
        DocumentSlot.CUSTODY_AGREEMENT,
    ),
    Reason(
        "responsible_id_unclear",
        "责任人证件国徽面照片不清晰",
        "The emblem side of the responsible person's ID is unclear",
        Decision.RESUBMIT,
        True,
        DocumentSlot.RESPONSIBLE_ID_BACK,
    ),
    Reason(
        "document_missing",
        "缺少必要材料",
        "A required document is missing",
        Decision.RESUBMIT,
        True,
    ),
    Reason(
        "vehicles_not_owned",
        "所列车辆不属于该单位",
        "The vehicles listed do not belong to the enterprise",
        Decision.REJECT,
        False,
    ),
    Reason(
        # The portrait side cannot be asked again: the live face was matched against it (a new portrait
        # would need a new face check), so an unusable one ends the batch and the enterprise starts anew.
        "responsible_portrait_unusable",
        "责任人证件人像面不清晰或无法使用。人像面已用于人脸核验，不能补正，请重新发起批次",
        "The portrait side of the responsible person's ID is unclear or unusable. It was matched in the "
        "face check and cannot be replaced: start a new batch",
        Decision.REJECT,
        False,
        DocumentSlot.RESPONSIBLE_ID_FRONT,
    ),
    Reason(
        "fraud_suspected",
        "材料涉嫌伪造或冒用",
        "The documents are suspected to be forged or misused",
        Decision.REJECT,
        False,
    ),
    Reason(
        "cards_per_id_exceeded",
        "责任人名下物联网卡数量超过上限",
        "The responsible person's ID already holds the most cards allowed",
        Decision.REJECT,
        False,
    ),
    Reason(
        "enterprise_not_eligible",
        "该单位不符合办理条件",
        "The enterprise is not eligible",
        Decision.REJECT,
        False,
    ),
)

_BY_CODE: dict[str, Reason] = {r.code: r for r in CATALOGUE}


def reason(code: str) -> Reason | None:
    """The reason of ``code``, or None when the catalogue has no such code."""
    return _BY_CODE.get(code)


def texts(codes: tuple[str, ...] | list[str]) -> list[dict[str, str]]:
    """The codes with their zh/en text, as the enterprise reads them (unknown codes as themselves)."""
    out = []
    for code in codes:
        found = _BY_CODE.get(code)
        out.append({"code": code, "zh": found.zh if found else code, "en": found.en if found else code})
    return out
