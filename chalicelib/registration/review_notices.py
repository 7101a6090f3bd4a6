"""人工审核 decided: the owner hears of it by SMS, on the phone their registration verified.

The review screen promises the SMS; a reviewer's decision keeps the promise. The text says what was
decided, quotes the case number (审核编号) and says what to do next: go back and finish (the face check
after a reviewer read a passport, the remaining steps after the face), or, refused, check the documents
and start again or go to the dealer. A decision about a flow no registration holds sends nothing; an SMS
the provider refuses is logged, never a reason to undo the decision.
"""

from __future__ import annotations

import logging

from chalicelib.kernel.errors import DomainError
from chalicelib.registration.domain.registrations import Registration, RegistrationKind
from chalicelib.registration.ports import RegistrationRepository
from chalicelib.sms.domain import SIGNATURE
from chalicelib.sms.ports import SmsSender
from chalicelib.verification.domain.flows import ReviewCase, ReviewReason, ReviewStatus

logger = logging.getLogger(__name__)


def review_decided_message(case: ReviewCase, vin: str, kind: RegistrationKind) -> str:
    """The SMS telling the owner a reviewer decided ``case`` and what to do next."""
    what = "实名注销" if kind is RegistrationKind.DEREGISTRATION else "实名登记"
    about = f"您的车辆（VIN 尾号 {vin[-6:]}）{what}资料"
    number = f"（审核编号 {case.number}）"
    if case.status is ReviewStatus.APPROVED:
        if case.reason is ReviewReason.DOCUMENT_NOT_MACHINE_READABLE:
            return f"{SIGNATURE}{about}已通过人工审核{number}，请回到{what}页面完成人脸检测后提交。"
        return f"{SIGNATURE}{about}已通过人工审核{number}，请回到{what}页面继续办理。"
    return (
        f"{SIGNATURE}{about}未通过人工审核{number}。请核对证件后重新办理，或携带本人证件到经销商处办理；"
        "如有疑问请联系车企客服并提供审核编号。"
    )


class ReviewNotices:
    def __init__(self, registrations: RegistrationRepository, sms: SmsSender | None) -> None:
        self._registrations = registrations
        self._sms = sms

    def registration_of(self, case: ReviewCase) -> Registration | None:
        """The owner's registration the case decides: the one whose flow it is, or whose claim on a car
        someone else holds it contests."""
        for reg in reversed(self._registrations.of_owner(case.owner)):
            contest = reg.possession.contest_case_id if reg.possession else None
            if reg.flow_id == case.flow_id or contest == case.case_id:
                return reg
        return None

    def decided(self, case: ReviewCase) -> str | None:
        """Send the decision's SMS to the registration's phone; the provider's message id, or None when
        nothing was sent (still open, no registration or phone, the provider refused)."""
        if case.status is ReviewStatus.OPEN or self._sms is None:
            return None
        reg = self.registration_of(case)
        if reg is None or not reg.phone:
            logger.info("review decided: no phone to tell", extra={"case": case.case_id})
            return None
        try:
            return self._sms.send(reg.phone, review_decided_message(case, reg.vin, reg.kind))
        except DomainError:
            logger.warning("review decision SMS not sent", extra={"case": case.case_id})
            return None
