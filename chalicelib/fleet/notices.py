"""The SMS an enterprise's submitter receives when its fleet batch reaches an outcome (审核结果通知):
short, in Chinese, with the batch number and what to do next; no personal data."""

from __future__ import annotations

from collections.abc import Sequence

from chalicelib.fleet.domain import DOCUMENT_SLOT_ZH, BatchKind, DocumentSlot, FleetBatch
from chalicelib.fleet.reasons import texts
from chalicelib.sms.domain import SIGNATURE

APPROVED = "approved"
REJECTED = "rejected"
RESUBMISSION_REQUESTED = "resubmission_requested"
EXPIRED = "expired"

OUTCOMES = (APPROVED, REJECTED, RESUBMISSION_REQUESTED, EXPIRED)


def _what(batch: FleetBatch) -> str:
    kind = "实名登记" if batch.kind is BatchKind.REGISTRATION else "解除登记"
    return f"您单位的车辆{kind}批次 {batch.batch_id}（{len(batch.vins)} 辆车）"


def _reasons(codes: Sequence[str]) -> str:
    return "、".join(t["zh"] for t in texts(list(codes))) or "请登录单位门户查看详情"


def _slots(slots: Sequence[DocumentSlot]) -> str:
    return "、".join(DOCUMENT_SLOT_ZH[s] for s in slots) or "审核意见所列材料"


def notice_text(batch: FleetBatch, outcome: str) -> str:
    """The SMS of ``outcome`` (``approved``, ``rejected``, ``resubmission_requested``, ``expired``)."""
    what = _what(batch)
    if outcome == APPROVED:
        if batch.kind is BatchKind.REGISTRATION:
            return (
                f"{SIGNATURE}{what}已审核通过，车联网卡已提交电信企业办理实名登记，"
                "办理结果请登录单位门户查看。"
            )
        return f"{SIGNATURE}{what}已审核通过，解除登记已提交电信企业办理，办理结果请登录单位门户查看。"
    if outcome == REJECTED:
        return f"{SIGNATURE}{what}未通过审核：{_reasons(batch.outcome_reasons)}。详情请登录单位门户查看。"
    if outcome == RESUBMISSION_REQUESTED:
        return (
            f"{SIGNATURE}{what}需补充材料：{_slots(batch.resubmit_documents)}。"
            "请在 30 日内登录单位门户重新上传后提交，逾期批次失效。"
        )
    if outcome == EXPIRED:
        return f"{SIGNATURE}{what}因未在期限内补充材料已失效，如需办理请重新提交批次。"
    raise ValueError(f"unknown outcome {outcome!r}")
