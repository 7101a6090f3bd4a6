"""Real-name authentication of a portal account (实名认证, seed 001): a natural person (自然人) or a legal
person (法人) proves who they are in a verification flow (purpose ``account_verification``) and the
account then completes real-name.

The flow runs the checks every flow runs (``chalicelib.verification``): the identity typed and its
ID card photos read and cross-checked (both sides: the back gives the validity or 长期), the identity
authority, the biometric consent and the face check (liveness, then the live face against the ID
portrait). A legal person types the legal representative's identity with the enterprise's USCC and
name, and the business licence photo is read and cross-checked on both; the face check is the
representative's own (the person doing it), against the representative's ID portrait.

``complete`` finalises: every required check passed → for a legal person the enterprise is claimed
first (one legal-person account per USCC: ``409 enterprise.taken``, nothing changed), then the account
completes (the claim undone if that fails); the flow is kept as evidence and the completion written
into its evidence log. When an automatic check could not pass (a reading the person stands by, the
authority refusing or not answering, the face attempts used up, a document OCR cannot read),
``request_review`` opens a review case (reason ``real_name``, 人工实名认证) instead of a dead end; the
reviewer's decision (``review_decided``) completes the account through the same code, or refuses it
with the reason the account is shown.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib.accounts.domain import Account, AccountKind, RealNameKind, RealNameRecord
from chalicelib.core.observability import logger
from chalicelib.enterprise.domain import EnterpriseType, LegalPersonType
from chalicelib.enterprise.registry import Enterprises
from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.errors import Conflict, DomainError, Forbidden, InvalidField, NotFound
from chalicelib.kernel.names import TextKind, clean_text
from chalicelib.kernel.personal import IdType, mask_name
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import (
    MACHINE_READABLE_ID_TYPES,
    PERMANENT,
    CheckName,
    CheckVerdict,
    Flow,
    FlowPurpose,
    FlowStatus,
    ReviewCase,
    ReviewReason,
    ReviewStatus,
    address_required,
    strict_uscc,
)

if TYPE_CHECKING:
    from chalicelib.verification.ports import EvidenceLog
    from chalicelib.verification.service import VerificationService

_ACCEPTED = (CheckVerdict.PASSED, CheckVerdict.APPROVED)


class AccountBook(Protocol):
    """What real-name needs of the accounts service (``chalicelib.accounts.service.Accounts``)."""

    def get(self, account_id: str) -> Account | None: ...

    def complete_real_name(self, account_id: str, record: RealNameRecord) -> Account: ...


class ApplicationStatus(StrEnum):
    IN_REVIEW = "in_review"  # a reviewer has the case (人工实名认证)
    VERIFIED = "verified"
    REFUSED = "refused"  # the reviewer refused; the account may start again with a new flow
    #: A reviewer passed what waited for them (a document OCR does not read), and the flow goes on with
    #: its own checks (the face check against that document's portrait): the account finalises after.
    CONTINUE = "continue"


@dataclass(frozen=True)
class LegalDetails:
    """What a legal person chooses besides what the flow holds (the USCC and name are typed into the
    flow's identity, where the business licence is cross-checked with them)."""

    enterprise_type: EnterpriseType
    legal_person_type: LegalPersonType
    #: When given, they must be the flow's (the form shows them once, the flow has them checked).
    uscc: str | None = None
    company_name: str | None = None


@dataclass(frozen=True)
class Application:
    """An account's real-name authentication that went to a reviewer (or was decided): one per account."""

    account_id: str
    flow_id: str
    kind: RealNameKind
    status: ApplicationStatus
    submitted_at: datetime
    legal: LegalDetails | None = None
    case_id: str | None = None
    case_number: str | None = None
    decided_at: datetime | None = None
    #: The reviewer's reason for a refusal, as the account is shown it.
    refusal: str | None = None


class ApplicationStore(ABC):
    """Real-name applications, one per account (the latest)."""

    @abstractmethod
    def get(self, account_id: str) -> Application | None: ...

    @abstractmethod
    def put(self, application: Application) -> None: ...


@dataclass(frozen=True)
class RealNameState:
    """What ``GET /v1/accounts/me/real-name`` shows: the account's kind and where its real-name stands."""

    kind: AccountKind
    #: unverified | in_review | verified | refused
    status: str
    record: RealNameRecord | None = None
    application: Application | None = None


# ---------------------------------------------------------------------------------------------------
# Refusals


def already_verified() -> Conflict:
    return Conflict(
        "account.already_verified",
        "该账号已完成实名认证，无需重复认证",
        "The account has already completed real-name authentication",
    )


def not_for_dealers() -> Forbidden:
    return Forbidden(
        "real_name.not_applicable",
        "经销商账号无需实名认证",
        "Dealer accounts do not take real-name authentication",
    )


def wrong_flow() -> InvalidField:
    return InvalidField(
        "real_name.flow_purpose",
        "该办理流程不是实名认证流程，请重新开始实名认证",
        "The flow is not an account verification flow",
        field="flow_id",
    )


def checks_incomplete(missing: list[str]) -> Conflict:
    return Conflict(
        "real_name.checks_incomplete",
        "还有核验步骤未完成，请按页面提示完成后再提交",
        "Some checks of the flow have not passed yet",
        details={"missing": missing},
    )


def in_review(case_number: str | None) -> Conflict:
    return Conflict(
        "real_name.in_review",
        "实名认证正在人工审核中，请等待审核结果",
        "The real-name authentication is with a reviewer",
        details={"case_number": case_number} if case_number else None,
    )


def review_not_available() -> Conflict:
    return Conflict(
        "real_name.review_not_available",
        "请先按页面提示完成核验；自动核验未通过时，可申请人工审核",
        "Manual review opens once an automatic check could not pass",
    )


def review_not_needed() -> Conflict:
    return Conflict(
        "real_name.review_not_needed",
        "各项核验均已通过，请直接提交实名认证",
        "Every check passed: submit the real-name authentication instead",
    )


def _missing_field(field: str, zh: str, en: str) -> InvalidField:
    return InvalidField("real_name.field_missing", zh, en, field=field)


def _differs(field: str, zh: str, en: str) -> InvalidField:
    return InvalidField("real_name.field_mismatch", zh, en, field=field)


# ---------------------------------------------------------------------------------------------------


class RealNames:
    """Real-name authentication of accounts: finalise a flow, send it to a reviewer, apply a decision."""

    def __init__(
        self,
        *,
        accounts: AccountBook,
        enterprises: Enterprises,
        verification: VerificationService,
        applications: ApplicationStore,
        evidence: EvidenceLog,
        evidence_kept: timedelta,
        clock: Clock = utc_now,
    ) -> None:
        self._evidence = evidence
        self._accounts = accounts
        self._enterprises = enterprises
        self._verification = verification
        self._applications = applications
        self._kept = evidence_kept
        self._clock = clock

    # -- reads ---------------------------------------------------------------------------------------

    def state(self, account_id: str) -> RealNameState:
        account = self._account(account_id)
        application = self._applications.get(account_id)
        if (
            account.kind is AccountKind.UNVERIFIED
            and application is not None
            and application.status is ApplicationStatus.IN_REVIEW
        ):
            application = self._catch_up(application)
            account = self._account(account_id)
        if account.kind in (AccountKind.NATURAL, AccountKind.LEGAL):
            return RealNameState(account.kind, "verified", account.real_name, application)
        if application is None or application.status is ApplicationStatus.VERIFIED:
            return RealNameState(account.kind, "unverified")
        if application.status is ApplicationStatus.CONTINUE:
            return RealNameState(account.kind, "unverified", None, application)
        return RealNameState(account.kind, application.status.value, None, application)

    # -- finalise ------------------------------------------------------------------------------------

    def complete(
        self, account_id: str, flow_id: str, kind: RealNameKind, legal: LegalDetails | None
    ) -> Account:
        """Every required check of the flow passed: the account completes real-name (legal: the
        enterprise claimed first). ``real_name.checks_incomplete`` lists what is missing."""
        account = self._unverified(account_id)
        application = self._applications.get(account_id)
        if application is not None and application.status is ApplicationStatus.IN_REVIEW:
            application = self._catch_up(application)
            if application.status is ApplicationStatus.IN_REVIEW:
                raise in_review(application.case_number)
        flow = self._verification.flow(flow_id, account_id)
        self._check_form(flow, kind, legal)
        missing = self._missing(flow, kind)
        if missing:
            raise checks_incomplete(missing)
        return self._finalise(account, flow, kind, legal, reviewed=False)

    def request_review(
        self,
        account_id: str,
        flow_id: str,
        kind: RealNameKind,
        legal: LegalDetails | None,
        note: str | None = None,
    ) -> Application:
        """人工实名认证: the automatic checks could not all pass; a reviewer compares the photos with what
        was given. Asking again while the case is open answers the same application."""
        account = self._unverified(account_id)
        current = self._applications.get(account_id)
        if (
            current is not None
            and current.status is ApplicationStatus.IN_REVIEW
            and current.flow_id == flow_id
        ):
            return current
        flow = self._verification.flow(flow_id, account_id)
        self._check_form(flow, kind, legal)
        photos = self._photos_missing(flow, kind)
        if photos:
            raise Conflict(
                "real_name.documents_missing",
                "请先上传证件照片"
                + ("和营业执照" if kind is RealNameKind.LEGAL else "")
                + "，再申请人工审核",
                "Upload the photos before asking for manual review",
                details={"missing": photos},
            )
        if flow.status is FlowStatus.REJECTED:
            raise Conflict(
                "real_name.flow_refused",
                "该办理流程已被审核拒绝，请重新开始实名认证",
                "A reviewer refused this flow: start again",
            )
        case: ReviewCase | None = None
        if flow.status is FlowStatus.IN_REVIEW:
            # A check of the flow already waits for a reviewer (the face attempts, the authority).
            case = self._open_case_of(flow, account_id)
        if case is None:
            if not self._missing(flow, kind):
                raise review_not_needed()
            if not self._failed_automatically(flow):
                raise review_not_available()
            summary: dict[str, Any] = {
                "real_name": kind.value,
                "failed": self._missing(flow, kind),
            }
            if legal is not None:
                summary |= {
                    "enterprise_type": legal.enterprise_type.value,
                    "legal_person_type": legal.legal_person_type.value,
                }
            if note:
                summary["note"] = note[:200]
            case = self._verification.open_case(flow.flow_id, account_id, ReviewReason.REAL_NAME, summary)
        application = Application(
            account_id=account.account_id,
            flow_id=flow.flow_id,
            kind=kind,
            status=ApplicationStatus.IN_REVIEW,
            submitted_at=self._clock(),
            legal=legal,
            case_id=case.case_id,
            case_number=case.number,
        )
        self._applications.put(application)
        return application

    def review_decided(self, case: ReviewCase) -> None:
        """A reviewer decided ``case``: the account whose real-name waited for it completes (approved)
        or is told the reason (refused). Cases of other flows are not this context's."""
        if case.purpose is not FlowPurpose.ACCOUNT_VERIFICATION or case.status is ReviewStatus.OPEN:
            return
        application = self._applications.get(case.owner)
        if application is None or application.flow_id != case.flow_id:
            return
        if application.status is not ApplicationStatus.IN_REVIEW:
            return
        try:
            self._apply(application, case)
        except Exception:  # the decision stands; the account's next look applies it (``_catch_up``)
            logger.exception("real-name decision not applied yet", extra={"case": case.case_id})

    # -- the steps -----------------------------------------------------------------------------------

    def _account(self, account_id: str) -> Account:
        account = self._accounts.get(account_id)
        if account is None:
            raise NotFound("account.not_found", "账号不存在", "No such account")
        return account

    def _unverified(self, account_id: str) -> Account:
        account = self._account(account_id)
        if account.kind is AccountKind.DEALER:
            raise not_for_dealers()
        if account.kind is not AccountKind.UNVERIFIED:
            raise already_verified()
        return account

    def _check_form(self, flow: Flow, kind: RealNameKind, legal: LegalDetails | None) -> None:
        """The flow is an account verification holding what ``kind`` needs; the legal form agrees."""
        if flow.purpose is not FlowPurpose.ACCOUNT_VERIFICATION:
            raise wrong_flow()
        identity = flow.identity
        if identity is None:
            raise checks_incomplete(["identity"])
        if identity.id_type == IdType.USCC.value:
            raise InvalidField(
                "real_name.person_id_required",
                "请填写本人（法人为法定代表人）的身份证件，而不是统一社会信用代码",
                "Give the person's identity document (for a legal person, the representative's)",
                field="id_type",
            )
        if not identity.address:
            raise address_required()
        if kind is RealNameKind.NATURAL:
            return
        if legal is None:
            raise _missing_field(
                "enterprise_type",
                "请选择企业或机构类型和法人类型",
                "Choose the enterprise and legal-person type",
            )
        if not identity.uscc:
            raise _missing_field("uscc", "请填写统一社会信用代码", "Give the unified social credit code")
        if not identity.company_name:
            raise _missing_field("company_name", "请填写法人企业或机构名称", "Give the enterprise's name")
        uscc = strict_uscc(identity.uscc)
        if legal.uscc is not None and strict_uscc(legal.uscc) != uscc:
            raise _differs(
                "uscc",
                "统一社会信用代码与认证过程中填写的不一致，请核对",
                "The USCC differs from the one the flow checked",
            )
        given = (
            clean_text(TextKind.COMPANY_NAME, legal.company_name, field="company_name")
            if legal.company_name
            else None
        )
        if given is not None and given != identity.company_name:
            raise _differs(
                "company_name",
                "企业名称与认证过程中填写的不一致，请核对",
                "The company name differs from the one the flow checked",
            )

    @staticmethod
    def _required(flow: Flow, kind: RealNameKind) -> list[CheckName]:
        required = [CheckName.OCR_ID_FRONT]
        assert flow.identity is not None
        if flow.identity.id_type in MACHINE_READABLE_ID_TYPES:
            required.append(CheckName.OCR_ID_BACK)  # the validity (or 长期) is read from the back
        if kind is RealNameKind.LEGAL:
            required.append(CheckName.OCR_BUSINESS_LICENCE)
        required += [CheckName.AUTHORITY, CheckName.BIOMETRIC_CONSENT, CheckName.FACE]
        return required

    def _missing(self, flow: Flow, kind: RealNameKind) -> list[str]:
        return [c.value for c in self._required(flow, kind) if flow.checks.get(c) not in _ACCEPTED]

    @staticmethod
    def _photos_missing(flow: Flow, kind: RealNameKind) -> list[str]:
        wanted = [DocumentKind.ID_FRONT]
        assert flow.identity is not None
        if flow.identity.id_type in MACHINE_READABLE_ID_TYPES:
            wanted.append(DocumentKind.ID_BACK)
        if kind is RealNameKind.LEGAL:
            wanted.append(DocumentKind.BUSINESS_LICENCE)
        return [d.value for d in wanted if d.value not in flow.documents]

    def _failed_automatically(self, flow: Flow) -> bool:
        """Whether an automatic check of the flow could not pass: a check failed or waiting for a
        reviewer (the authority refusing or not answering, a document OCR does not read), the face
        attempts used up, or a photo whose reading disagreed with what was typed (or could not be read)
        and has not agreed since."""
        for check, verdict in flow.checks.items():
            if check == CheckName.FACE.value:
                if verdict is CheckVerdict.IN_REVIEW:
                    return True
                if verdict is CheckVerdict.FAILED:
                    left = self._verification.face.left_for(flow)
                    if left is not None and left.left == 0:
                        return True
            elif verdict in (CheckVerdict.FAILED, CheckVerdict.IN_REVIEW):
                return True
        read_checks = {
            DocumentKind.ID_FRONT.value: CheckName.OCR_ID_FRONT,
            DocumentKind.ID_BACK.value: CheckName.OCR_ID_BACK,
            DocumentKind.BUSINESS_LICENCE.value: CheckName.OCR_BUSINESS_LICENCE,
        }
        for entry in self._evidence.entries(flow.flow_id):
            if entry.kind is not EvidenceKind.OCR_CROSS_CHECKED or entry.public.get("agreed", True):
                continue
            read = read_checks.get(str(entry.public.get("document")))
            if read is not None and flow.checks.get(read) not in _ACCEPTED:
                return True
        return False

    def _open_case_of(self, flow: Flow, caller: str) -> ReviewCase | None:
        case = self._verification.reviews.case_of_flow(flow.flow_id, caller)
        return case if case is not None and case.status is ReviewStatus.OPEN else None

    def _catch_up(self, application: Application) -> Application:
        """An application whose case was decided but not yet applied (the decision's hook did not run to
        its end): applied now."""
        if application.case_id is None:
            return application
        try:
            case, _ = self._verification.review_case(application.case_id)
        except DomainError:
            return application
        if case.status is ReviewStatus.OPEN:
            return application
        return self._apply(application, case)

    def _apply(self, application: Application, case: ReviewCase) -> Application:
        now = self._clock()
        if case.status is ReviewStatus.REJECTED:
            refused = replace(
                application,
                status=ApplicationStatus.REFUSED,
                decided_at=case.decided_at or now,
                refusal=case.decision_note or "审核未通过，请核对信息后重新提交实名认证",
            )
            self._applications.put(refused)
            return refused
        flow = self._verification.flows.find(application.flow_id)
        account = self._accounts.get(application.account_id)
        if flow is None or account is None or account.kind is not AccountKind.UNVERIFIED:
            return application
        # A real-name case approved is the reviewer's check of everything that had not passed; another
        # reason approved (the face attempts, the authority) leaves the flow's own checks to finish.
        reviewed = case.reason is ReviewReason.REAL_NAME
        if not reviewed and self._missing(flow, application.kind):
            going_on = replace(
                application, status=ApplicationStatus.CONTINUE, decided_at=case.decided_at or now
            )
            self._applications.put(going_on)
            return going_on
        try:
            self._finalise(account, flow, application.kind, application.legal, reviewed=reviewed)
        except DomainError as err:
            logger.warning(
                "real-name approved but not completed", extra={"case": case.case_id, "code": err.code}
            )
            refused = replace(
                application,
                status=ApplicationStatus.REFUSED,
                decided_at=now,
                refusal=err.message_zh,
            )
            self._applications.put(refused)
            return refused
        done = self._applications.get(application.account_id)
        return done or application

    def _finalise(
        self,
        account: Account,
        flow: Flow,
        kind: RealNameKind,
        legal: LegalDetails | None,
        *,
        reviewed: bool,
    ) -> Account:
        identity = flow.identity
        assert identity is not None
        assert flow.person_hash is not None
        now = self._clock()
        uscc = strict_uscc(identity.uscc) if kind is RealNameKind.LEGAL and identity.uscc else None
        record = RealNameRecord(
            kind=kind,
            flow_id=flow.flow_id,
            verified_at=now,
            person_hash=flow.person_hash,
            display_name_masked=mask_name(identity.name),
            uscc=uscc,
            company_name=identity.company_name if uscc else None,
        )
        if uscc is not None:
            assert legal is not None
            assert identity.company_name is not None
            self._enterprises.claim(
                uscc,
                identity.company_name,
                account.account_id,
                enterprise_type=legal.enterprise_type,
                legal_person_type=legal.legal_person_type,
                representative_name_masked=mask_name(identity.name),
                representative_person_hash=flow.person_hash,
                address=identity.address or "",
                flow_id=flow.flow_id,
                at=now,
            )
        try:
            completed = self._accounts.complete_real_name(account.account_id, record)
        except DomainError as err:
            if uscc is not None:
                self._enterprises.release(uscc, account.account_id)
            if err.code == "account.real_name_done":
                raise already_verified() from err
            raise
        except Exception:
            if uscc is not None:
                self._enterprises.release(uscc, account.account_id)
            raise
        # The flow is the evidence of the account's real-name: closed to change and kept with its photos.
        self._verification.keep(self._verification.flows.find(flow.flow_id) or flow, now + self._kept)
        validity = identity.id_validity
        self._verification.note(
            flow.flow_id,
            EvidenceKind.REAL_NAME_COMPLETED,
            account.account_id,
            {
                "account_id": account.account_id,
                "kind": kind.value,
                "reviewed": reviewed,
                "id_type": identity.id_type,
                "id_permanent": validity == PERMANENT,
                "uscc": uscc,
                "enterprise_type": legal.enterprise_type.value if legal and uscc else None,
                "legal_person_type": legal.legal_person_type.value if legal and uscc else None,
            },
        )
        existing = self._applications.get(account.account_id)
        self._applications.put(
            Application(
                account_id=account.account_id,
                flow_id=flow.flow_id,
                kind=kind,
                status=ApplicationStatus.VERIFIED,
                submitted_at=existing.submitted_at if existing and existing.flow_id == flow.flow_id else now,
                legal=legal,
                case_id=existing.case_id if existing and existing.flow_id == flow.flow_id else None,
                case_number=existing.case_number if existing and existing.flow_id == flow.flow_id else None,
                decided_at=now,
            )
        )
        logger.info("real-name completed", extra={"account": account.account_id, "kind": kind.value})
        return completed
