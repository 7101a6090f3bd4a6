"""The steps before submission: start (or resume) a registration of a vehicle, confirm the vehicle,
verify the phone by its SMS code (the verification flow opens here), delegate (委托登记) and consent.

Each step is refused unless it is the one due (``require_step``); an earlier one may be repeated while
the registration is open. The identity, photos and face checks in between are the flow's own routes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

from chalicelib.cards.domain.inventory import Card, CardState, Vehicle
from chalicelib.cards.ports import InventoryRepository
from chalicelib.consents.domain import AcceptedConsent, ConsentRecord
from chalicelib.consents.texts import check_consents
from chalicelib.core.observability import logger
from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.errors import Conflict, InvalidField
from chalicelib.kernel.personal import IdType
from chalicelib.kernel.validators import validate
from chalicelib.registration.domain.registrations import (
    Delegation,
    DelegationConfirmation,
    Registration,
    RegistrationKind,
    RegistrationStatus,
    Step,
    not_my_vehicle,
    require_step,
)
from chalicelib.registration.ports import RegistrationRepository
from chalicelib.registration.possession import PossessionChecks
from chalicelib.registration.records import Registrations
from chalicelib.registration.views import RegistrationView, RegistrationViews
from chalicelib.sms.domain import SentCode, SmsPurpose
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import CheckName, FlowPurpose, TypedIdentity
from chalicelib.verification.service import VerificationService


class PhoneCodes(Protocol):
    """What registration needs of SMS codes (``sms.codes.SmsCodeService``)."""

    def check(self, phone: str, purpose: SmsPurpose, code: str) -> None: ...

    def send(self, phone: str, purpose: SmsPurpose) -> SentCode: ...

    def phone_hash(self, phone: str) -> str: ...


class PhoneHolders(Protocol):
    """运营商三要素: whether a phone number is held by the person of a name and ID number, where the
    identity authority offers that check. Raises a ``DomainError`` (field ``owner_phone``) when the
    phone is someone else's; returns when it is theirs or the check could not be made."""

    def check_phone_holder(self, name: str, id_type: str, id_number: str, phone: str) -> None: ...


class RegistrationSteps:
    def __init__(
        self,
        store: RegistrationRepository,
        registrations: Registrations,
        views: RegistrationViews,
        inventory: InventoryRepository,
        verification: VerificationService,
        codes: PhoneCodes,
        *,
        phone_holders: PhoneHolders | None = None,
        possession: PossessionChecks | None = None,
        flow_ttl: timedelta = timedelta(hours=24),
        clock: Clock = utc_now,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self._store = store
        self._registrations = registrations
        self._views = views
        self._inventory = inventory
        self._verification = verification
        self._codes = codes
        self._phone_holders = phone_holders
        self._possession = possession
        self._flow_ttl = flow_ttl
        self._clock = clock
        self._new_id = new_id

    # -- start ---------------------------------------------------------------------------------------

    def start(
        self, caller: str, kind: RegistrationKind, vin: str, *, delegated: bool = False
    ) -> tuple[RegistrationView, bool]:
        """Open (or resume) the caller's registration of ``vin``; True when a new one was opened.

        Registration: any well-formed VIN opens one, and the inventory is not read: whether the vehicle
        exists, is free or is held by someone else is told only once the person shows they hold it
        (``possession``). De-registration: the vehicle must carry a card registered through the caller
        (``vehicle.not_yours`` alike for an unknown VIN and someone else's).
        """
        vin = validate("vin", vin, field="vin").value
        resumed = self._resumable(caller, kind, vin)
        if resumed is not None and resumed.delegated == delegated:
            return self._views.view(resumed), False
        iccids: list[str] = []
        if kind is RegistrationKind.DEREGISTRATION:
            vehicle = self._inventory.get_vehicle(vin)
            if vehicle is None:
                raise not_my_vehicle()
            iccids = self._deregistrable(caller, vehicle, self._inventory.cards_of_vehicle(vin), delegated)
        now = self._clock()
        reg = Registration(
            registration_id=f"r{self._new_id()}",
            owner=caller,
            kind=kind,
            delegated=delegated,
            vin=vin,
            iccids=iccids,
            status=RegistrationStatus.OPEN,
            version=1,
            # A de-registration has no vehicle to confirm: the person chose it from their own.
            confirmed_at=now if kind is RegistrationKind.DEREGISTRATION else None,
            created_at=now,
            updated_at=now,
            expires_at=now + self._flow_ttl,
        )
        self._store.create(reg)
        logger.info("registration opened", extra={"registration": reg.registration_id, "kind": kind.value})
        return self._views.view(reg), True

    def _resumable(self, caller: str, kind: RegistrationKind, vin: str) -> Registration | None:
        now = self._clock()
        for reg in reversed(self._store.of_owner(caller)):
            if (
                reg.kind is kind
                and reg.vin == vin
                and reg.status is RegistrationStatus.OPEN
                and (reg.expires_at is None or reg.expires_at > now)
            ):
                return reg
        return None

    def _deregistrable(self, caller: str, vehicle: Vehicle, cards: list[Card], delegated: bool) -> list[str]:
        if delegated:
            raise InvalidField(
                "deregistration.no_delegation", "注销不支持委托办理", "De-registration cannot be delegated"
            )
        latest = self._latest_registration(caller, vehicle.vin)
        if latest is None or not latest.party_id:
            raise not_my_vehicle()
        iccids = [
            c.iccid for c in cards if c.state is CardState.REGISTERED and c.holder_id == latest.party_id
        ]
        if not iccids:
            raise not_my_vehicle()
        return iccids

    def _latest_registration(self, caller: str, vin: str) -> Registration | None:
        mine = [
            r
            for r in self._store.of_owner(caller)
            if r.kind is RegistrationKind.REGISTRATION
            and r.vin == vin
            and r.status is not RegistrationStatus.OPEN
        ]
        return mine[-1] if mine else None

    # -- steps ---------------------------------------------------------------------------------------

    def confirm_vehicle(self, registration_id: str, caller: str) -> RegistrationView:
        reg = self._registrations.own(registration_id, caller)
        require_step(reg, self._registrations.flow(reg), Step.CONFIRM_VEHICLE)
        if reg.confirmed_at is None:
            reg = self._registrations.save(reg, confirmed_at=self._clock())
        return self._views.view(reg)

    def verify_phone(self, registration_id: str, caller: str, phone: str, code: str) -> RegistrationView:
        """The owner's (or user's) phone, proved by its code; a de-registration needs the phone the
        registration gave. Opens the verification flow on first success."""
        reg = self._registrations.own(registration_id, caller)
        require_step(reg, self._registrations.flow(reg), Step.VERIFY_PHONE)
        number = validate("mobile", phone, field="phone").value
        phone_hash = self._codes.phone_hash(number)
        if reg.kind is RegistrationKind.DEREGISTRATION:
            latest = self._latest_registration(caller, reg.vin)
            if latest is None or latest.phone_hash != phone_hash:
                raise InvalidField(
                    "phone.not_registered",
                    "请使用登记时预留的手机号码",
                    "Use the phone number given at registration",
                    field="phone",
                )
        purpose = (
            SmsPurpose.DEREGISTRATION
            if reg.kind is RegistrationKind.DEREGISTRATION
            else SmsPurpose.OWNER_PHONE
        )
        self._codes.check(number, purpose, code)
        flow_id = reg.flow_id
        if flow_id is None:
            flow_purpose = FlowPurpose.DELEGATED_REGISTRATION if reg.delegated else reg.kind.flow_purpose
            flow_id = self._verification.open_flow(caller, flow_purpose).flow_id
        reg = self._registrations.save(reg, phone=number, phone_hash=phone_hash, flow_id=flow_id)
        self._verification.note(flow_id, EvidenceKind.SMS_CHECKED, caller, {"purpose": purpose.value})
        if self._possession is not None:
            reg = self._possession.by_sales_phone(reg)
        return self._views.view(reg)

    def delegate(
        self, registration_id: str, caller: str, owner: TypedIdentity, owner_phone: str
    ) -> RegistrationView:
        """委托登记 (第十二条): the owner's identity and phone, with the owner's ID card photo (read and
        cross-checked) and the authorization letter (read: it names the owner, a trustee and this car)
        already uploaded to the flow. The owner then confirms (``confirm_delegation``: a code sent to
        the owner's phone); the trustee proves their own identity, face included, through the flow."""
        reg = self._registrations.own(registration_id, caller)
        flow = self._registrations.flow(reg)
        require_step(reg, flow, Step.DELEGATION)
        id_type = IdType(owner.id_type)
        number = validate(id_type.value, owner.id_number, field="owner.id_number").value
        phone = validate("mobile", owner_phone, field="owner_phone").value
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
        # 第十二条: the owner's document is checked too (read, and agreeing with what was typed).
        typed_owner = owner.model_copy(update={"id_type": id_type.value, "id_number": number})
        self._verification.check_owner_id(flow.flow_id, caller, typed_owner)
        reading = self._verification.check_authorization_letter(
            flow.flow_id, caller, owner_name=typed_owner.name, owner_id_number=number, vin=reg.vin
        )
        if self._phone_holders is not None:
            self._phone_holders.check_phone_holder(typed_owner.name, id_type.value, number, phone)
        delegation = Delegation(
            owner_id_type=id_type.value,
            owner_id_number=number,
            owner_name=typed_owner.name,
            owner_address=typed_owner.address,
            letter_key=letter,
            owner_id_key=owner_id,
            trustee_name=reading.trustee_name,
            owner_phone=phone,
            owner_phone_hash=phone_hash,
        )
        before = reg.delegation
        if before is not None and before.confirmed and _same_delegation(before, delegation):
            delegation = before  # the owner confirmed exactly this: repeating the step keeps it
        reg = self._registrations.save(reg, delegation=delegation)
        return self._views.view(reg)

    def send_delegation_code(self, registration_id: str, caller: str) -> SentCode:
        """A code to the owner's phone given in the delegation step (purpose ``delegation_confirm``):
        the owner gives it to the trustee only if they did authorize them."""
        reg = self._registrations.own(registration_id, caller)
        require_step(reg, self._registrations.flow(reg), Step.DELEGATION)
        return self._codes.send(_owner_phone(reg), SmsPurpose.DELEGATION_CONFIRM)

    def confirm_delegation(self, registration_id: str, caller: str, code: str) -> RegistrationView:
        """The owner's consent to the delegation: the code sent to the owner's phone."""
        reg = self._registrations.own(registration_id, caller)
        require_step(reg, self._registrations.flow(reg), Step.DELEGATION)
        phone = _owner_phone(reg)
        assert reg.delegation is not None
        assert reg.flow_id is not None
        self._codes.check(phone, SmsPurpose.DELEGATION_CONFIRM, code)
        confirmed = reg.delegation.model_copy(
            update={"confirmed_by": DelegationConfirmation.SMS, "confirmed_at": self._clock()}
        )
        flow_id = reg.flow_id
        reg = self._registrations.save(reg, delegation=confirmed)
        self._verification.note(
            flow_id,
            EvidenceKind.SMS_CHECKED,
            caller,
            {"purpose": SmsPurpose.DELEGATION_CONFIRM.value},
        )
        logger.info("delegation confirmed", extra={"registration": reg.registration_id, "by": "sms"})
        return self._views.view(reg)

    def give_consents(
        self, registration_id: str, caller: str, accepted: list[AcceptedConsent], client: dict[str, str]
    ) -> RegistrationView:
        reg = self._registrations.own(registration_id, caller)
        require_step(reg, self._registrations.flow(reg), Step.CONSENTS)
        check_consents(accepted)
        now = self._clock()
        records = [
            ConsentRecord(kind=a.kind, version=a.version, sha256=a.sha256, accepted_at=now, client=client)
            for a in accepted
        ]
        reg = self._registrations.save(reg, consents=records)
        assert reg.flow_id is not None
        self._verification.record_consents(reg.flow_id, caller, records)
        return self._views.view(reg)


def _owner_phone(reg: Registration) -> str:
    if reg.delegation is None or reg.delegation.owner_phone is None:
        raise Conflict(
            "delegation.not_given",
            "请先填写车主信息、车主手机号码并上传授权委托书",
            "Give the owner's identity and phone, with the authorization letter, first",
        )
    return reg.delegation.owner_phone


def _same_delegation(a: Delegation, b: Delegation) -> bool:
    """The same owner, phone, letter and photos (confirmation aside)."""
    fields = {"confirmed_by", "confirmed_at"}
    return a.model_dump(exclude=fields) == b.model_dump(exclude=fields)
