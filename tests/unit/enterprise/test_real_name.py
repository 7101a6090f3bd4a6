"""Real-name authentication's use cases (``chalicelib.accounts.realname``) over the verification context
wired to fakes: what a flow must hold before an account completes, the enterprise claim undone when
completing the account fails, and a reviewer's decision of another reason that leaves the flow to go on."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from chalicelib.accounts.domain import Account, AccountKind, RealNameKind, RealNameRecord
from chalicelib.accounts.realname import (
    Application,
    ApplicationStatus,
    ApplicationStore,
    LegalDetails,
    RealNames,
)
from chalicelib.enterprise.domain import EnterpriseType, LegalPersonType
from chalicelib.enterprise.registry import Enterprises
from chalicelib.kernel.errors import Conflict, DomainError, Forbidden, InvalidField
from chalicelib.verification.domain.flows import (
    CheckName,
    CheckVerdict,
    FlowPurpose,
    FlowStatus,
    ReviewDecision,
    ReviewReason,
    TypedIdentity,
)
from tests.fakes.enterprise import FakeEnterpriseStore
from tests.unit.verification.world import NAME, NUMBER, World

USCC = "91110000802100433B"
COMPANY = "北京星河车联科技有限公司"
ACCOUNT = "acct_" + "a" * 32
LEGAL = LegalDetails(EnterpriseType.ENTERPRISE, LegalPersonType.LEGAL_REPRESENTATIVE)
EVERY_CHECK: dict[CheckName, CheckVerdict] = {
    CheckName.OCR_ID_FRONT: CheckVerdict.PASSED,
    CheckName.OCR_ID_BACK: CheckVerdict.PASSED,
    CheckName.OCR_BUSINESS_LICENCE: CheckVerdict.PASSED,
    CheckName.AUTHORITY: CheckVerdict.PASSED,
    CheckName.BIOMETRIC_CONSENT: CheckVerdict.PASSED,
    CheckName.FACE: CheckVerdict.PASSED,
}


class Book:
    """The accounts service's part real-name uses, in memory; ``fail`` makes completing raise."""

    def __init__(self, world: World, kind: AccountKind = AccountKind.UNVERIFIED) -> None:
        self.accounts = {ACCOUNT: Account(ACCOUNT, "fleet01", kind, "ph", world.clock())}
        self.fail: DomainError | None = None

    def get(self, account_id: str) -> Account | None:
        return self.accounts.get(account_id)

    def complete_real_name(self, account_id: str, record: RealNameRecord) -> Account:
        if self.fail is not None:
            raise self.fail
        legal = record.kind is RealNameKind.LEGAL
        after = replace(
            self.accounts[account_id],
            kind=AccountKind.LEGAL if legal else AccountKind.NATURAL,
            real_name=record,
            enterprise_uscc=record.uscc,
        )
        self.accounts[account_id] = after
        return after


class Applications(ApplicationStore):
    def __init__(self) -> None:
        self.items: dict[str, Application] = {}

    def get(self, account_id: str) -> Application | None:
        return self.items.get(account_id)

    def put(self, application: Application) -> None:
        self.items[application.account_id] = application


class Story:
    def __init__(self, kind: AccountKind = AccountKind.UNVERIFIED) -> None:
        self.world = World()
        self.book = Book(self.world, kind)
        self.enterprise_store = FakeEnterpriseStore()
        self.applications = Applications()
        self.real_names = RealNames(
            accounts=self.book,
            enterprises=Enterprises(self.enterprise_store, clock=self.world.clock),
            verification=self.world.service,
            applications=self.applications,
            evidence=self.world.evidence,
            evidence_kept=timedelta(days=730),
            clock=self.world.clock,
        )

    def flow(self, checks: dict[CheckName, CheckVerdict], *, legal: bool) -> str:
        """An account verification flow with the identity typed and ``checks`` as given."""
        service = self.world.service
        flow_id = service.open_flow(ACCOUNT, FlowPurpose.ACCOUNT_VERIFICATION).flow_id
        identity = TypedIdentity(
            id_type="resident_id",
            id_number=NUMBER,
            name=NAME,
            address="北京市东城区景山前街4号",
            uscc=USCC.lower() if legal else None,
            company_name=COMPANY if legal else None,
        )
        flow = service.set_identity(flow_id, ACCOUNT, identity)
        documents = {"id_front": "k1", "id_back": "k2", "business_licence": "k3"}
        service.flows.save(flow, checks=checks, documents=documents)
        return flow_id


def test_an_account_completes_only_when_every_check_of_its_kind_passed() -> None:
    story = Story()
    natural_checks: dict[CheckName, CheckVerdict] = {
        k: v for k, v in EVERY_CHECK.items() if k is not CheckName.OCR_BUSINESS_LICENCE
    }
    flow_id = story.flow({**natural_checks, CheckName.FACE: CheckVerdict.FAILED}, legal=False)
    with pytest.raises(Conflict) as early:
        story.real_names.complete(ACCOUNT, flow_id, RealNameKind.NATURAL, None)
    assert (early.value.code, early.value.details["missing"]) == ("real_name.checks_incomplete", ["face"])
    # The same checks lack the licence for a legal person
    legal_flow = story.flow({**natural_checks, CheckName.FACE: CheckVerdict.FAILED}, legal=True)
    with pytest.raises(Conflict) as legal:
        story.real_names.complete(ACCOUNT, legal_flow, RealNameKind.LEGAL, LEGAL)
    assert legal.value.details["missing"] == ["ocr_business_licence", "face"]
    assert story.book.accounts[ACCOUNT].kind is AccountKind.UNVERIFIED

    passed = story.flow(natural_checks, legal=False)
    account = story.real_names.complete(ACCOUNT, passed, RealNameKind.NATURAL, None)
    assert account.kind is AccountKind.NATURAL
    assert account.real_name is not None
    assert (account.real_name.flow_id, account.real_name.display_name_masked) == (passed, "王**")
    flow = story.world.flows.flows[passed]
    assert account.real_name.person_hash == flow.person_hash
    assert flow.status is FlowStatus.VERIFIED  # kept as the evidence, closed to change
    assert flow.expires_at >= story.world.clock() + timedelta(days=729)
    assert story.world.evidence_kinds(passed)[-1] == "real_name_completed"
    assert story.applications.items[ACCOUNT].status is ApplicationStatus.VERIFIED
    state = story.real_names.state(ACCOUNT)
    assert (state.status, state.kind) == ("verified", AccountKind.NATURAL)


def test_the_enterprise_claim_is_undone_when_the_account_cannot_complete() -> None:
    story = Story()
    flow_id = story.flow(EVERY_CHECK, legal=True)
    story.book.fail = Conflict("account.changed", "账号已变更", "The account changed")
    with pytest.raises(Conflict) as refused:
        story.real_names.complete(ACCOUNT, flow_id, RealNameKind.LEGAL, LEGAL)
    assert refused.value.code == "account.changed"
    assert story.enterprise_store.items == {}
    assert story.world.flows.flows[flow_id].status is FlowStatus.OPEN
    # Completing then binds it, the USCC as the flow normalised it
    story.book.fail = None
    account = story.real_names.complete(ACCOUNT, flow_id, RealNameKind.LEGAL, LEGAL)
    assert (account.kind, account.enterprise_uscc) == (AccountKind.LEGAL, USCC)
    held = story.enterprise_store.items[USCC]
    assert (held.company_name, held.legal_account_id, held.representative_name_masked) == (
        COMPANY,
        ACCOUNT,
        "王**",
    )


def test_a_legal_form_that_disagrees_with_the_flow_is_refused_under_its_field() -> None:
    story = Story()
    flow_id = story.flow(EVERY_CHECK, legal=True)
    other = replace(LEGAL, company_name="北京月光车联科技有限公司")
    with pytest.raises(InvalidField) as refused:
        story.real_names.complete(ACCOUNT, flow_id, RealNameKind.LEGAL, other)
    assert (refused.value.code, refused.value.field) == ("real_name.field_mismatch", "company_name")
    natural = story.flow(EVERY_CHECK, legal=False)
    with pytest.raises(InvalidField) as no_uscc:
        story.real_names.complete(ACCOUNT, natural, RealNameKind.LEGAL, LEGAL)
    assert (no_uscc.value.code, no_uscc.value.field) == ("real_name.field_missing", "uscc")
    assert story.enterprise_store.items == {}


def test_dealers_and_verified_accounts_do_not_take_real_name_again() -> None:
    dealer = Story(AccountKind.DEALER)
    with pytest.raises(Forbidden) as refused:
        dealer.real_names.complete(ACCOUNT, "f1", RealNameKind.NATURAL, None)
    assert refused.value.code == "real_name.not_applicable"
    verified = Story(AccountKind.NATURAL)
    with pytest.raises(Conflict) as done:
        verified.real_names.request_review(ACCOUNT, "f1", RealNameKind.NATURAL, None)
    assert done.value.code == "account.already_verified"


def test_another_reasons_approval_leaves_the_flow_to_go_on_and_the_account_completes_after() -> None:
    story = Story()
    waiting = {**EVERY_CHECK, CheckName.FACE: CheckVerdict.FAILED}
    flow_id = story.flow(waiting, legal=False)
    service = story.world.service
    # The face attempts ran out and the flow went to a reviewer; the account asks for its real-name
    case = service.open_case(flow_id, ACCOUNT, ReviewReason.FACE_ATTEMPTS_EXHAUSTED)
    application = story.real_names.request_review(ACCOUNT, flow_id, RealNameKind.NATURAL, None)
    assert (application.case_id, application.status) == (case.case_id, ApplicationStatus.IN_REVIEW)
    assert story.real_names.state(ACCOUNT).status == "in_review"
    # When the reviewer approves the face, the account completes at once
    decided = service.decide_review(case.case_id, "reviewer-1", ReviewDecision.APPROVE, None)
    story.real_names.review_decided(decided)
    assert story.book.accounts[ACCOUNT].kind is AccountKind.NATURAL
    assert story.world.evidence_kinds(flow_id)[-1] == "real_name_completed"


def test_a_decision_not_applied_by_its_hook_is_applied_when_the_account_looks() -> None:
    story = Story()
    read = {CheckName.OCR_ID_FRONT: CheckVerdict.PASSED}
    flow_id = story.flow(read, legal=False)
    # Nothing failed yet: the checks are the person's to make first
    with pytest.raises(Conflict) as early:
        story.real_names.request_review(ACCOUNT, flow_id, RealNameKind.NATURAL, None)
    assert early.value.code == "real_name.review_not_available"
    # The identity authority then refuses (or cannot answer): a reviewer may look
    flow = story.world.flows.flows[flow_id]
    story.world.service.flows.save(flow, checks={**read, CheckName.AUTHORITY: CheckVerdict.FAILED})
    application = story.real_names.request_review(ACCOUNT, flow_id, RealNameKind.NATURAL, None, "证件已更换")
    assert application.case_id == f"rc-{flow_id}-real_name"
    case = story.world.cases.cases[application.case_id]
    assert case.summary["note"] == "证件已更换"
    assert case.summary["failed"] == ["ocr_id_back", "authority", "biometric_consent", "face"]
    story.world.service.decide_review(case.case_id, "reviewer-1", ReviewDecision.REJECT, "照片不清晰")
    state = story.real_names.state(ACCOUNT)
    assert state.status == "refused"
    assert state.application is not None
    assert state.application.refusal == "照片不清晰"


def test_a_licence_reading_the_person_stands_by_goes_to_a_reviewer_but_one_failed_face_try_does_not() -> None:
    from chalicelib.verification.domain.evidence import EvidenceKind

    story = Story()
    checks: dict[CheckName, CheckVerdict] = {
        k: v for k, v in EVERY_CHECK.items() if k is not CheckName.OCR_BUSINESS_LICENCE
    }
    flow_id = story.flow({**checks, CheckName.FACE: CheckVerdict.FAILED}, legal=True)
    # One face try failed with tries left: the person tries again, no reviewer yet
    with pytest.raises(Conflict) as early:
        story.real_names.request_review(ACCOUNT, flow_id, RealNameKind.LEGAL, LEGAL)
    assert early.value.code == "real_name.review_not_available"
    # The licence was read and disagreed with the name typed (a renamed company, says the person)
    story.world.evidence.append(
        flow_id,
        EvidenceKind.OCR_CROSS_CHECKED,
        ACCOUNT,
        {"document": "business_licence", "agreed": False, "mismatches": [{"field": "company_name"}]},
    )
    application = story.real_names.request_review(ACCOUNT, flow_id, RealNameKind.LEGAL, LEGAL, "已更名")
    case = story.world.cases.cases[str(application.case_id)]
    assert (case.reason, case.summary["enterprise_type"]) == (ReviewReason.REAL_NAME, "enterprise")
    assert case.summary["failed"] == ["ocr_business_licence", "face"]
    # Approved, the account completes as the enterprise's legal person
    decided = story.world.service.decide_review(case.case_id, "reviewer-1", ReviewDecision.APPROVE, None)
    story.real_names.review_decided(decided)
    assert story.book.accounts[ACCOUNT].kind is AccountKind.LEGAL
    assert story.enterprise_store.items[USCC].legal_account_id == ACCOUNT
    assert story.real_names.state(ACCOUNT).status == "verified"
