"""Agent grants (经办人授权) as kept, and the refusals around them: pure rules, no I/O.

An account whose real name is established applies to act for an enterprise; the enterprise's
legal-person account approves or rejects the application, and may revoke an approved grant. At most one
pending or approved grant per (account, enterprise); an agent acts for one enterprise at a time.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from chalicelib.kernel.errors import Conflict, Forbidden, InvalidField, NotFound


class GrantStatus(StrEnum):
    PENDING = "pending"  # 待审核
    APPROVED = "approved"  # 已授权
    REJECTED = "rejected"  # 已驳回
    REVOKED = "revoked"  # 已撤销


#: The statuses that block a new application to the same enterprise.
OPEN_STATUSES = frozenset({GrantStatus.PENDING, GrantStatus.APPROVED})

#: What the legal person writes when rejecting or revoking: at most this many characters.
MAX_REASON = 200


@dataclass(frozen=True)
class AgentGrant:
    """One account's application to (and grant by) one enterprise. ``version`` guards every change."""

    account_id: str
    uscc: str
    status: GrantStatus
    login_name: str
    #: The applicant's name as real-name authentication established it, masked (张*).
    name_masked: str
    applied_at: datetime
    version: int = 1
    decided_at: datetime | None = None
    decided_by: str | None = None  # the legal-person account that decided
    reason: str | None = None  # why it was rejected or revoked


def normalise_company_name(name: str) -> str:
    """A company name as compared: NFKC (full-width brackets and letters fold), no whitespace,
    Chinese and Latin brackets equal, letters folded to one case."""
    text = unicodedata.normalize("NFKC", name)
    text = "".join(ch for ch in text if not ch.isspace() and unicodedata.category(ch)[0] != "C")
    return text.replace("（", "(").replace("）", ")").casefold()


def reason_text(value: str | None, *, required: bool) -> str | None:
    text = " ".join((value or "").split())
    if not text:
        if required:
            raise InvalidField(
                "agent.reason_missing",
                "请填写驳回原因",
                "Say why the application is rejected",
                field="reason",
            )
        return None
    if len(text) > MAX_REASON:
        raise InvalidField(
            "agent.reason_too_long",
            f"原因最多 {MAX_REASON} 字",
            f"The reason holds at most {MAX_REASON} characters",
            field="reason",
            details={"max": MAX_REASON, "length": len(text)},
        )
    return text


def enterprise_not_found() -> NotFound:
    """One answer for an unknown USCC and a name that does not match it (no probing of who is
    registered)."""
    return NotFound(
        "enterprise.not_found",
        "未找到该企业，请核对企业名称和统一社会信用代码",
        "No enterprise with that name and USCC",
    )


def real_name_required() -> Conflict:
    return Conflict(
        "account.real_name_required",
        "请先完成个人实名认证，再申请成为经办人",
        "Complete natural-person real-name authentication first",
    )


def not_a_person_account() -> Conflict:
    """A legal-person or dealer account applies: agents are natural persons with their own account."""
    return Conflict(
        "agent.personal_account_required",
        "企业法人账号和经销商账号不能申请成为经办人，请使用完成个人实名认证的账号申请",
        "Only an account of a natural person may apply to act for an enterprise",
    )


def application_exists(status: GrantStatus) -> Conflict:
    if status is GrantStatus.APPROVED:
        return Conflict(
            "agent.already_granted",
            "您已是该企业的经办人",
            "You already act for this enterprise",
            details={"status": status.value},
        )
    return Conflict(
        "agent.application_pending",
        "您的申请正在等待企业审核，请勿重复提交",
        "An application to this enterprise is already pending",
        details={"status": status.value},
    )


def grant_not_found() -> NotFound:
    return NotFound("agent.not_found", "未找到该经办人申请", "No such agent application for your enterprise")


def wrong_status(status: GrantStatus, wanted: GrantStatus) -> Conflict:
    texts = {
        GrantStatus.PENDING: "该申请已处理，请刷新后查看",
        GrantStatus.APPROVED: "该经办人当前未获授权，无需撤销",
    }
    return Conflict(
        "agent.status_changed",
        texts.get(wanted, "该申请状态已变化，请刷新后查看"),
        f"The grant is {status.value}, not {wanted.value}",
        details={"status": status.value},
    )


def acting_elsewhere() -> Conflict:
    return Conflict(
        "agent.acting_elsewhere",
        "该申请人已是其他企业的经办人，需先由该企业撤销授权",
        "The applicant already acts for another enterprise",
    )


def not_acting() -> Forbidden:
    return Forbidden(
        "enterprise.not_acting",
        "您当前无权代表该企业办理业务",
        "You do not act for an enterprise (or your grant was revoked)",
    )


def legal_only() -> Forbidden:
    return Forbidden(
        "enterprise.legal_only",
        "只有企业法人账号可以审核经办人",
        "Only the enterprise's legal-person account may decide on agents",
    )
