"""Identity checks with the identity authority (证件真实性, ``domain.authority``).

- The holder's identity (``CheckName.AUTHORITY``) is checked right after the ID front is read and
  agrees with what the person typed, and again on request (``check_identity``: a retry without a new
  upload). The delegated owner's (``CheckName.AUTHORITY_OWNER``) when the owner's ID card is read.
- Not found / no match: the check FAILS and the refusal (422, with the field) is raised: no
  registration can go on with that identity.
- Unavailable: by ``unavailable`` policy, ``retry`` records the check FAILED and raises 503
  ``authority.unavailable`` (nothing passes; the person asks again), ``review`` records it IN_REVIEW.
- An ID type the authority does not cover (passports, permits) is recorded ``not_covered``, IN_REVIEW.
- 委托登记: the owner's phone (``check_phone_holder``, 运营商三要素, ``CheckName.AUTHORITY_OWNER_PHONE``)
  before a code is sent to it: held in the owner's name, PASSED; someone else's or unknown to the
  carrier, refused on ``owner_phone`` (``delegation.phone_not_owners``; the check is left as it was:
  nothing of the refused phone is kept); unavailable, by policy 503 or IN_REVIEW (the SMS confirmation
  goes on, and the face check then sends the flow to a reviewer); not offered by the provider or not
  covered (a non-resident owner, a number range the carriers do not check), recorded and skipped.

A check IN_REVIEW lets the person finish the documents and the face check, but never pass it:
``AuthorityPortraitGate`` sends the flow to a reviewer once the live face matches the ID portrait
(the reviewer then sees everything the engines checked). The same gate compares the live capture
with the authoritative portrait where the provider offers it (``authority.portrait_mismatch``).

Every answer goes into the evidence (``authority_checked``: result, provider, its version and
reference); the name and number checked are already sealed in the flow and never in ``public``.
"""

from __future__ import annotations

from typing import ClassVar

from chalicelib.kernel.errors import Conflict
from chalicelib.verification.domain.authority import (
    PORTRAIT_MISMATCH,
    AuthorityAnswer,
    AuthorityResult,
    UnavailablePolicy,
    face_authority_unavailable,
    identity_error,
    phone_check_unavailable,
    phone_not_owners,
)
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import (
    CheckName,
    CheckVerdict,
    Flow,
    ReviewReason,
    TypedIdentity,
)
from chalicelib.verification.domain.gates import GateOutcome, GateVerdict
from chalicelib.verification.flows import Flows
from chalicelib.verification.ports import EvidenceLog, FaceGate, IdentityAuthority
from chalicelib.verification.views import AuthorityOutcome

_ACCEPTED = (CheckVerdict.PASSED, CheckVerdict.APPROVED)


class AuthorityChecks:
    def __init__(
        self,
        *,
        flows: Flows,
        authority: IdentityAuthority,
        evidence: EvidenceLog,
        unavailable: UnavailablePolicy = "retry",
    ) -> None:
        self._flows = flows
        self._authority = authority
        self._evidence = evidence
        self.unavailable: UnavailablePolicy = unavailable

    @property
    def authority(self) -> IdentityAuthority:
        return self._authority

    def check_identity(self, flow_id: str, caller: str) -> AuthorityOutcome:
        """Check (again) the typed identity once its ID front was read: the retry after an outage."""
        flow = self._flows.open_for_checks(flow_id, caller)
        if flow.checks.get(CheckName.OCR_ID_FRONT) not in _ACCEPTED or flow.identity is None:
            raise Conflict(
                "flow.step_out_of_order",
                "请先完成证件信息填写、证件照片上传与识别",
                "Enter the identity and upload and read the ID card photo first",
                details={"missing": [CheckName.OCR_ID_FRONT.value]},
            )
        current = flow.checks.get(CheckName.AUTHORITY)
        if current in _ACCEPTED:
            return AuthorityOutcome(
                check=CheckName.AUTHORITY.value, result=AuthorityResult.MATCH, verdict=current
            )
        return self.check_holder(flow, caller)

    def check_holder(self, flow: Flow, caller: str) -> AuthorityOutcome:
        """The flow's typed identity (its ID front read and agreeing) with the authority.

        Every branch of ``_check`` saves the ``flow`` it is given, with the verdict (passed, in review or
        failed): that save is also what stores the ID front's reading, which ``Documents.read_document``
        hands over unsaved in ``flow`` (the reading and the verdict in one write). A branch that returned
        or raised without saving ``flow`` would drop the reading."""
        if flow.identity is None:
            raise Conflict(
                "flow.step_out_of_order",
                "请先填写证件信息",
                "Enter the identity details first",
                details={"missing": "identity"},
            )
        return self._check(flow, caller, CheckName.AUTHORITY, flow.identity, "")

    def check_owner(self, flow: Flow, caller: str, owner: TypedIdentity) -> AuthorityOutcome:
        """委托登记: the owner's typed identity (their ID card read and agreeing) with the authority."""
        return self._check(flow, caller, CheckName.AUTHORITY_OWNER, owner, "owner.")

    def check_phone_holder(
        self, flow_id: str, caller: str, name: str, id_type: str, id_number: str, phone: str
    ) -> None:
        """委托登记: is the owner's ``phone`` held in the owner's name (运营商三要素)? Returns when it is,
        when the check cannot be made and the policy is ``review``, or when it is not offered; raises
        ``delegation.phone_not_owners`` (422, ``owner_phone``) or 503 ``authority.unavailable``."""
        flow = self._flows.open_for_checks(flow_id, caller)
        check = CheckName.AUTHORITY_OWNER_PHONE
        others = {k: v for k, v in flow.checks.items() if k is not check}
        if not self._authority.supports_phone_holder or not self._authority.covers(id_type):
            skipped = "not_offered" if not self._authority.supports_phone_holder else "not_covered"
            self._record_phone(flow, caller, id_type, {"result": skipped, "reference": None})
            if check in flow.checks:
                self._flows.save(flow, checks=others)
            return
        answer = self._authority.verify_phone_holder(name, id_type, id_number, phone)
        self._record_phone(flow, caller, id_type, answer.public())
        if answer.matched:
            self._flows.save(flow, checks={**others, check: CheckVerdict.PASSED})
        elif answer.result is AuthorityResult.NOT_COVERED:
            if check in flow.checks:
                self._flows.save(flow, checks=others)
        elif answer.result is AuthorityResult.UNAVAILABLE:
            if self.unavailable != "review":
                raise phone_check_unavailable(answer.retry_after)
            self._flows.save(flow, checks={**others, check: CheckVerdict.IN_REVIEW})
        else:
            raise phone_not_owners()

    def _record_phone(self, flow: Flow, caller: str, id_type: str, facts: dict[str, object]) -> None:
        self._evidence.append(
            flow.flow_id,
            EvidenceKind.AUTHORITY_CHECKED,
            caller,
            {
                "provider": self._authority.name,
                "provider_version": self._authority.version,
                **facts,
                "check": "phone_holder",
                "subject": "owner",
                "id_type": id_type,
                "policy": self.unavailable,
            },
        )

    def _check(
        self, flow: Flow, caller: str, check: CheckName, identity: TypedIdentity, field_prefix: str
    ) -> AuthorityOutcome:
        subject = "owner" if check is CheckName.AUTHORITY_OWNER else "holder"
        if not self._authority.covers(identity.id_type):
            self._record(flow, caller, subject, identity.id_type, None)
            self._flows.save(flow, checks={**flow.checks, check: CheckVerdict.IN_REVIEW})
            return AuthorityOutcome(
                check=check.value,
                result=AuthorityResult.NOT_COVERED,
                verdict=CheckVerdict.IN_REVIEW,
                review_pending=True,
            )
        answer = self._authority.verify_identity(identity.name, identity.id_type, identity.id_number)
        self._record(flow, caller, subject, identity.id_type, answer)
        if answer.matched:
            self._flows.save(flow, checks={**flow.checks, check: CheckVerdict.PASSED})
            return AuthorityOutcome(check=check.value, result=answer.result, verdict=CheckVerdict.PASSED)
        if answer.result is AuthorityResult.UNAVAILABLE and self.unavailable == "review":
            self._flows.save(flow, checks={**flow.checks, check: CheckVerdict.IN_REVIEW})
            return AuthorityOutcome(
                check=check.value,
                result=answer.result,
                verdict=CheckVerdict.IN_REVIEW,
                review_pending=True,
            )
        self._flows.save(flow, checks={**flow.checks, check: CheckVerdict.FAILED})
        error = identity_error(answer, field_prefix)
        assert error is not None
        raise error

    def _record(
        self, flow: Flow, caller: str, subject: str, id_type: str, answer: AuthorityAnswer | None
    ) -> None:
        facts: dict[str, object] = (
            {
                "result": AuthorityResult.NOT_COVERED.value,
                "provider": self._authority.name,
                "provider_version": self._authority.version,
                "reference": None,
            }
            if answer is None
            else answer.public()
        )
        self._evidence.append(
            flow.flow_id,
            EvidenceKind.AUTHORITY_CHECKED,
            caller,
            {
                "check": "identity",
                "subject": subject,
                "id_type": id_type,
                "policy": self.unavailable,
                **facts,
            },
        )


class AuthorityPortraitGate(FaceGate):
    """After the live face matched the ID portrait: the authority's identity checks must have passed
    (or the flow goes to a reviewer), and the live capture must be the person of the authoritative
    portrait where the provider offers one."""

    name: ClassVar[str] = "authority_portrait"

    def __init__(self, checks: AuthorityChecks, evidence: EvidenceLog) -> None:
        self._checks = checks
        self._evidence = evidence

    def admit(self, flow: Flow, caller: str, live_capture: bytes) -> GateVerdict:
        authority = self._checks.authority
        identity = flow.identity
        stop = self._identity_state(flow)
        if stop is not None:
            return stop
        assert identity is not None
        if not authority.supports_portrait or not authority.covers(identity.id_type):
            return GateVerdict(self.name, GateOutcome.PASS, details={"portrait": "not_offered"})
        answer = authority.compare_portrait(identity.name, identity.id_number, live_capture)
        self._evidence.append(
            flow.flow_id,
            EvidenceKind.AUTHORITY_CHECKED,
            caller,
            {"check": "portrait", "subject": "holder", "policy": self._checks.unavailable, **answer.public()},
        )
        details = {"reference": answer.reference, "result": answer.result.value}
        if answer.matched:
            return GateVerdict(self.name, GateOutcome.PASS, details=details)
        if answer.result is AuthorityResult.UNAVAILABLE:
            if self._checks.unavailable == "review":
                return GateVerdict(
                    self.name,
                    GateOutcome.REVIEW,
                    review_reason=ReviewReason.AUTHORITY_UNAVAILABLE,
                    details=details,
                )
            # Nothing is counted: the person sends the same capture again once the authority answers.
            raise face_authority_unavailable(answer.retry_after)
        if answer.result is AuthorityResult.NOT_FOUND:
            return GateVerdict(self.name, GateOutcome.FAIL, reason="authority.not_found", details=details)
        return GateVerdict(self.name, GateOutcome.FAIL, reason=PORTRAIT_MISMATCH, details=details)

    def _identity_state(self, flow: Flow) -> GateVerdict | None:
        """A verdict when an identity check of the flow has not passed (None when they all did)."""
        wanted = [CheckName.AUTHORITY]
        if CheckName.AUTHORITY_OWNER in flow.checks or CheckName.OCR_OWNER_ID_FRONT in flow.checks:
            wanted.append(CheckName.AUTHORITY_OWNER)
        if CheckName.AUTHORITY_OWNER_PHONE in flow.checks:
            wanted.append(CheckName.AUTHORITY_OWNER_PHONE)
        for check in wanted:
            verdict = flow.checks.get(check)
            if verdict in _ACCEPTED:
                continue
            if verdict is CheckVerdict.IN_REVIEW:
                authority = self._checks.authority
                identity = flow.identity
                not_covered = identity is not None and not authority.covers(identity.id_type)
                reason = (
                    ReviewReason.AUTHORITY_NOT_COVERED
                    if not_covered or (check is CheckName.AUTHORITY_OWNER and self._owner_not_covered(flow))
                    else ReviewReason.AUTHORITY_UNAVAILABLE
                )
                return GateVerdict(
                    self.name, GateOutcome.REVIEW, review_reason=reason, details={"check": check.value}
                )
            return GateVerdict(
                self.name,
                GateOutcome.FAIL,
                reason="authority.not_passed",
                details={"check": check.value},
            )
        return None

    def _owner_not_covered(self, flow: Flow) -> bool:
        """Whether the owner's check went to review for its ID type (from the evidence's last answer)."""
        for entry in reversed(self._evidence.entries(flow.flow_id)):
            if entry.kind is EvidenceKind.AUTHORITY_CHECKED and entry.public.get("subject") == "owner":
                return entry.public.get("result") == AuthorityResult.NOT_COVERED.value
        return False
