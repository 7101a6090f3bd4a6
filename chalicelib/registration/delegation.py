"""The delegation step (委托登记, 第十二条): a trustee registers a card to the owner, and only with the
owner's agreement.

1. ``delegate``: the owner's identity and own phone, the owner's ID card photo (read, cross-checked)
   and the authorization letter (授权委托书: read, it must name the owner, a trustee and this car);
2. the owner confirms, either
   - by SMS: ``send_code`` sends a code to the owner's phone (purpose ``delegation_confirm``; never the
     trustee's verified phone), which the owner gives to the trustee (``confirm_by_code``), or
   - by face: ``open_owner_check`` opens a verification flow of the owner's identity in which the owner,
     on the trustee's phone, has their ID card read and does the liveness and portrait check;
     ``confirm_by_face`` accepts it once that flow's face check passed for the owner's ID number.

Until the owner confirmed, the step stays due (``domain.registrations``): nothing after it runs and the
registration cannot be submitted. The trustee the flow then verifies must be the one the letter names.
"""

from __future__ import annotations

from typing import Protocol

from chalicelib.core.observability import logger
from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.errors import Conflict, Forbidden, InvalidField, NotFound
from chalicelib.kernel.names import TextKind, clean_text
from chalicelib.kernel.personal import IdType
from chalicelib.kernel.validators import validate
from chalicelib.registration.domain.registrations import (
    Delegation,
    DelegationConfirmation,
    Registration,
    Step,
    require_step,
)
from chalicelib.registration.records import Registrations
from chalicelib.registration.steps import PhoneCodes
from chalicelib.registration.views import RegistrationView, RegistrationViews
from chalicelib.sms.domain import SentCode, SmsPurpose
from chalicelib.verification.consents import require_biometric_consent
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import (
    CheckName,
    CheckVerdict,
    Flow,
    FlowPurpose,
    TypedIdentity,
    address_required,
)
from chalicelib.verification.service import VerificationService


class PhoneHolders(Protocol):
    """运营商三要素: whether a phone number is held by the person of a name and ID number, where the
    identity authority offers that check, recorded in the evidence of the flow ``flow_id``. Raises a
    ``DomainError`` (field ``owner_phone``) when the phone is someone else's, 503 when the check could
    not be made and must be retried; returns when it is theirs or may go on without it (recorded)."""

    def check_phone_holder(
        self, flow_id: str, caller: str, name: str, id_type: str, id_number: str, phone: str
    ) -> None: ...


class DelegationSteps:
    def __init__(
        self,
        registrations: Registrations,
        views: RegistrationViews,
        verification: VerificationService,
        codes: PhoneCodes,
        *,
        phone_holders: PhoneHolders | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._registrations = registrations
        self._views = views
        self._verification = verification
        self._codes = codes
        self._phone_holders = phone_holders
        self._clock = clock

    def delegate(
        self, registration_id: str, caller: str, owner: TypedIdentity, owner_phone: str
    ) -> RegistrationView:
        """The owner's identity and phone, with the owner's ID card photo and the authorization letter
        already uploaded to the flow: both read and checked; the owner's confirmation comes next."""
        reg = self._registrations.own(registration_id, caller)
        flow = self._registrations.flow(reg)
        require_step(reg, flow, Step.DELEGATION)
        id_type = IdType(owner.id_type)
        number = validate(id_type.value, owner.id_number, field="owner.id_number").value
        phone = validate("mobile", owner_phone, field="owner_phone").value
        if not owner.address:
            raise address_required("owner.address")  # 第五条: the holder (the owner) is registered with it
        phone_hash = self._codes.phone_hash(phone)
        if phone_hash == reg.phone_hash:
            raise InvalidField(
                "delegation.owner_phone_is_trustees",
                "请填写车主本人的手机号码（不能是本次办理已验证的受托人手机号码）",
                "Give the owner's own phone, not the one verified for this registration",
                field="owner_phone",
            )
        if flow is not None and flow.checks.get(CheckName.FACE) is not None:
            raise Conflict(
                "delegation.locked",
                "人脸核验已开始，委托信息不能再修改",
                "The delegation cannot change once face checks have started",
            )
        letter = flow.documents.get(DocumentKind.AUTHORIZATION_LETTER.value) if flow else None
        if letter is None:
            raise InvalidField(
                "delegation.letter_missing",
                "请先上传车主签署的授权委托书",
                "Upload the authorization letter signed by the owner first",
                field="authorization_letter",
            )
        owner_id = flow.documents.get(DocumentKind.OWNER_ID_FRONT.value) if flow else None
        if flow is None or owner_id is None:
            raise InvalidField(
                "delegation.owner_id_missing",
                "请先上传车主身份证人像面照片",
                "Upload a photo of the owner's ID card (portrait side) first",
                field="owner_id_front",
            )
        owner_back = flow.documents.get(DocumentKind.OWNER_ID_BACK.value)
        if id_type is IdType.RESIDENT_ID and owner_back is None:
            # 第五条: the owner's ID validity is registered as read, as the trustee's own is.
            raise InvalidField(
                "delegation.owner_id_back_missing",
                "请上传车主身份证国徽面照片（登记证件有效期限）",
                "Upload a photo of the back of the owner's ID card too (its validity is registered)",
                field="owner_id_back",
            )
        # 第十二条: the owner's document is checked too (read, and agreeing with what was typed).
        typed_owner = owner.model_copy(update={"id_type": id_type.value, "id_number": number})
        validity = self._verification.check_owner_id(flow.flow_id, caller, typed_owner)
        reading = self._verification.check_authorization_letter(
            flow.flow_id, caller, owner_name=typed_owner.name, owner_id_number=number, vin=reg.vin
        )
        # What the letter names as the trustee must itself be a name (a smudge read as markup is not).
        trustee = clean_text(
            TextKind.NAME, reading.trustee_name or "", field="authorization_letter.trustee_name"
        )
        if self._phone_holders is not None:
            self._phone_holders.check_phone_holder(
                flow.flow_id, caller, typed_owner.name, id_type.value, number, phone
            )
        delegation = Delegation(
            owner_id_type=id_type.value,
            owner_id_number=number,
            owner_name=typed_owner.name,
            owner_address=typed_owner.address,
            letter_key=letter,
            owner_id_key=owner_id,
            owner_id_back_key=owner_back,
            owner_id_validity=validity,
            trustee_name=trustee,
            owner_phone=phone,
            owner_phone_hash=phone_hash,
        )
        before = reg.delegation
        if before is not None and _same_owner(before, delegation):
            # The owner's own face check stays theirs; a confirmation of exactly this stays too.
            keep: dict[str, object] = {"owner_flow_id": before.owner_flow_id}
            if before.confirmed and _same_delegation(before, delegation):
                keep |= {"confirmed_by": before.confirmed_by, "confirmed_at": before.confirmed_at}
            delegation = delegation.model_copy(update=keep)
        reg = self._registrations.save(reg, delegation=delegation)
        return self._views.view(reg)

    # -- the owner's confirmation by SMS -----------------------------------------------------------

    def send_code(self, registration_id: str, caller: str) -> SentCode:
        """A code to the owner's phone given in the delegation step (purpose ``delegation_confirm``):
        the owner gives it to the trustee only if they did authorize them."""
        reg = self._registrations.own(registration_id, caller)
        require_step(reg, self._registrations.flow(reg), Step.DELEGATION)
        phone = _given(reg).owner_phone
        assert phone is not None
        return self._codes.send(phone, SmsPurpose.DELEGATION_CONFIRM, caller=caller)

    def confirm_by_code(self, registration_id: str, caller: str, code: str) -> RegistrationView:
        """The owner's agreement: the code sent to the owner's phone."""
        reg = self._registrations.own(registration_id, caller)
        require_step(reg, self._registrations.flow(reg), Step.DELEGATION)
        phone = _given(reg).owner_phone
        assert phone is not None
        self._codes.check(phone, SmsPurpose.DELEGATION_CONFIRM, code, caller)
        return self._confirmed(reg, caller, DelegationConfirmation.SMS, {})

    # -- the owner's confirmation by their own face check ------------------------------------------

    def open_owner_check(self, registration_id: str, caller: str) -> RegistrationView:
        """A verification flow of the owner's identity (``delegation.owner_flow_id``), on the trustee's
        phone: the owner's ID card front is uploaded and read there, the owner gives the biometric
        consent and does the liveness check. Asking again gives the same flow while it is open."""
        reg = self._registrations.own(registration_id, caller)
        require_step(reg, self._registrations.flow(reg), Step.DELEGATION)
        given = _given(reg)
        if given.owner_flow_id is not None and self._owner_flow(given.owner_flow_id, caller) is not None:
            return self._views.view(reg)
        flow = self._verification.open_flow(caller, FlowPurpose.DELEGATION_OWNER)
        owner = TypedIdentity(
            id_type=given.owner_id_type,
            id_number=given.owner_id_number,
            name=given.owner_name,
            address=given.owner_address,
        )
        self._verification.set_identity(flow.flow_id, caller, owner)
        reg = self._registrations.save(
            reg, delegation=given.model_copy(update={"owner_flow_id": flow.flow_id})
        )
        return self._views.view(reg)

    def confirm_by_face(self, registration_id: str, caller: str) -> RegistrationView:
        """The owner's agreement: their own face check passed, in the flow opened for the owner, with
        the owner's biometric consent given there (409 ``consent.biometric_required`` without it), for
        the owner's ID number (a flow whose identity was changed to someone else's does not count)."""
        reg = self._registrations.own(registration_id, caller)
        require_step(reg, self._registrations.flow(reg), Step.DELEGATION)
        given = _given(reg)
        flow = self._owner_flow(given.owner_flow_id, caller) if given.owner_flow_id else None
        if flow is None or flow.checks.get(CheckName.FACE) not in (
            CheckVerdict.PASSED,
            CheckVerdict.APPROVED,
        ):
            raise Conflict(
                "delegation.owner_face_missing",
                "请先由车主本人完成人脸核验",
                "The owner's own face check has not passed yet",
                details={"owner_flow_id": given.owner_flow_id},
            )
        # The owner's live face and their ID card's portrait were processed with the owner's own
        # separate biometric consent, given in that flow, or the check is no confirmation.
        require_biometric_consent(flow)
        identity = flow.identity
        if (
            identity is None
            or identity.id_type != given.owner_id_type
            or identity.id_number != given.owner_id_number
        ):
            raise InvalidField(
                "delegation.owner_face_other_person",
                "人脸核验的不是委托人（车主）本人",
                "The face check was not the owner's",
                field="owner.id_number",
            )
        return self._confirmed(reg, caller, DelegationConfirmation.FACE, {"owner_flow_id": flow.flow_id})

    def _owner_flow(self, flow_id: str, caller: str) -> Flow | None:
        """The owner's flow while it lasts (an expired one is gone: the owner checks again)."""
        try:
            return self._verification.flow(flow_id, caller)
        except (NotFound, Forbidden):
            return None

    def _confirmed(
        self, reg: Registration, caller: str, by: DelegationConfirmation, details: dict[str, str]
    ) -> RegistrationView:
        given = _given(reg)
        assert reg.flow_id is not None
        flow_id = reg.flow_id
        confirmed = given.model_copy(update={"confirmed_by": by, "confirmed_at": self._clock()})
        reg = self._registrations.save(reg, delegation=confirmed)
        if by is DelegationConfirmation.SMS:
            purpose = {"purpose": SmsPurpose.DELEGATION_CONFIRM.value}
            self._verification.note(flow_id, EvidenceKind.SMS_CHECKED, caller, purpose)
        self._verification.note(
            flow_id, EvidenceKind.DELEGATION_CONFIRMED, caller, {"by": by.value, **details}
        )
        logger.info("delegation confirmed", extra={"registration": reg.registration_id, "by": by.value})
        return self._views.view(reg)


def _given(reg: Registration) -> Delegation:
    if reg.delegation is None or reg.delegation.owner_phone is None:
        raise Conflict(
            "delegation.not_given",
            "请先填写车主信息、车主手机号码并上传授权委托书",
            "Give the owner's identity and phone, with the authorization letter, first",
        )
    return reg.delegation


def _same_owner(a: Delegation, b: Delegation) -> bool:
    return (a.owner_id_type, a.owner_id_number) == (b.owner_id_type, b.owner_id_number)


def _same_delegation(a: Delegation, b: Delegation) -> bool:
    """The same owner, phone, letter and photos (how and when it was confirmed aside)."""
    fields = {"confirmed_by", "confirmed_at", "owner_flow_id"}
    return a.model_dump(exclude=fields) == b.model_dump(exclude=fields)
