"""The steps before submission: start (or resume) a registration of a vehicle, confirm the vehicle,
verify the phone by its SMS code (the verification flow opens here; a de-registration's flow takes the
registered holder's identity) and consent; the delegation step
(委托登记) is ``registration.delegation``

Each step is refused unless it is the one due (``require_step``); an earlier one may be repeated while
the registration is open. The identity, photos and face checks in between are the flow's own routes.

The phone step and the consents step write all or nothing (``step_writes``): the SMS code's use, the
flow it opens, the registration and the evidence entry in one write, so that a store failure spends
nothing the person had and leaves the store as it was.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Protocol

from chalicelib.cards.domain.inventory import Card, CardState, Vehicle
from chalicelib.cards.ports import InventoryRepository, PartyRepository
from chalicelib.consents.domain import AcceptedConsent, ConsentRecord
from chalicelib.consents.texts import check_consents
from chalicelib.core.observability import logger
from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.errors import InvalidField
from chalicelib.kernel.validators import validate
from chalicelib.registration.domain.registrations import (
    Registration,
    RegistrationKind,
    RegistrationStatus,
    Step,
    count_open,
    not_my_vehicle,
    require_step,
    too_many_open_registrations,
)
from chalicelib.registration.domain.submission import holder_phone_hash, holds, registered_for_owner
from chalicelib.registration.ports import RegistrationRepository
from chalicelib.registration.possession import PossessionChecks
from chalicelib.registration.records import Registrations
from chalicelib.registration.step_writes import CodeTaken, InOrder, NewFlow, Note, StepWrite, StepWrites
from chalicelib.registration.views import RegistrationView, RegistrationViews
from chalicelib.sms.domain import MatchedCode, SentCode, SmsPurpose, no_code
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import FlowPurpose, TypedIdentity
from chalicelib.verification.service import VerificationService


class PhoneCodes(Protocol):
    """What registration needs of SMS codes (``sms.codes.SmsCodeService``)."""

    def check(self, phone: str, purpose: SmsPurpose, code: str, caller: str | None = None) -> None: ...

    def send(self, phone: str, purpose: SmsPurpose, *, caller: str | None = None) -> SentCode: ...

    def phone_hash(self, phone: str) -> str: ...

    def match(self, phone: str, purpose: SmsPurpose, code: str, caller: str | None = None) -> MatchedCode: ...

    def use(self, matched: MatchedCode) -> bool: ...


#: Times a step matches its code again when the code's use was refused meanwhile.
_CODE_RACES = 3


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
        possession: PossessionChecks | None = None,
        parties: PartyRepository | None = None,
        flow_ttl: timedelta = timedelta(hours=24),
        clock: Clock = utc_now,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
        open_limit: int = 5,
        writes: StepWrites | None = None,
    ) -> None:
        self._open_limit = open_limit
        self._writes = writes or InOrder(codes, registrations, verification)
        self._store = store
        self._registrations = registrations
        self._views = views
        self._inventory = inventory
        self._verification = verification
        self._codes = codes
        self._possession = possession
        self._parties = parties
        self._flow_ttl = flow_ttl
        self._clock = clock
        self._new_id = new_id

    # -- start ---------------------------------------------------------------------------------------

    def start(
        self,
        caller: str,
        kind: RegistrationKind,
        vin: str,
        *,
        delegated: bool = False,
        assisted_by: str | None = None,
    ) -> tuple[RegistrationView, bool]:
        """Open (or resume) the caller's registration of ``vin``; True when a new one was opened.

        Registration: any well-formed VIN opens one, and the inventory is not read: whether the vehicle
        exists, is free or is held by someone else is told only once the person shows they hold it
        (``possession``). De-registration: the vehicle must carry a card registered through the caller
        (``vehicle.not_yours`` alike for an unknown VIN and someone else's).
        """
        vin = validate("vin", vin, field="vin").value
        mine = self._store.of_owner(caller)
        resumed = self._resumable(mine, kind, vin)
        # A dealer's hand-off opens its own registration (the dealer recorded on it) unless one of that
        # dealer is open; on their own phone the owner resumes any, a dealer's included.
        if (
            resumed is not None
            and resumed.delegated == delegated
            and assisted_by in (None, resumed.assisted_by)
        ):
            return self._views.view(resumed), False
        # One person cannot hold unlimited registrations open (each holds a flow, photos, codes): past
        # ``open_limit`` they finish or cancel one first. Checked on the owner's index as read here, then
        # again by the store with the create, one start of the owner at a time (``create_if_room``):
        # starts of one person racing each other cannot all pass.
        if count_open(mine, self._clock()) >= self._open_limit:
            raise too_many_open_registrations(self._open_limit)
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
            assisted_by=assisted_by,
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
        if not self._store.create_if_room(reg, self._open_limit, now):
            raise too_many_open_registrations(self._open_limit)
        logger.info("registration opened", extra={"registration": reg.registration_id, "kind": kind.value})
        return self._views.view(reg), True

    def check_room(self, caller: str) -> None:
        """Refuse (``registration.too_many_open``) when the caller already holds ``open_limit`` open
        registrations: asked before spending something a refused start would waste (a dealer's
        hand-off code)."""
        if count_open(self._store.of_owner(caller), self._clock()) >= self._open_limit:
            raise too_many_open_registrations(self._open_limit)

    def _resumable(self, mine: list[Registration], kind: RegistrationKind, vin: str) -> Registration | None:
        now = self._clock()
        for reg in reversed(mine):
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
        if not holds(latest, caller):
            raise registered_for_owner(latest)  # 委托登记: the cards are the owner's to end
        iccids = [
            c.iccid for c in cards if c.state is CardState.REGISTERED and c.holder_id == latest.party_id
        ]
        if not iccids:
            raise not_my_vehicle()
        return iccids

    def _latest_registration(self, caller: str, vin: str) -> Registration | None:
        mine = [
            r
            for r in self._registrations.held_by(caller)
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
            if latest is None or holder_phone_hash(latest) != phone_hash:
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
        # The phone is sealed (KMS) before the code is used: a key service that cannot answer then
        # spends nothing, and the person sends the same code again.
        flow_id = reg.flow_id or self._verification.new_flow_id()
        ready = self._registrations.seal(reg, phone=number, phone_hash=phone_hash, flow_id=flow_id)
        opened: NewFlow | None = None
        if reg.flow_id is None:
            flow_purpose = FlowPurpose.DELEGATED_REGISTRATION if reg.delegated else reg.kind.flow_purpose
            opened = NewFlow(*self._verification.prepare_open(caller, flow_purpose, flow_id))
        noted = {"purpose": purpose.value}
        if reg.assisted_by:
            noted["assisted_by"] = reg.assisted_by  # 经销商现场协助: the dealer, in the evidence
        note = Note(flow_id, EvidenceKind.SMS_CHECKED, caller, noted)
        try:
            reg = self._prove_phone(number, purpose, code, caller, StepWrite(ready, note, flow=opened))
        except InvalidField as err:
            # This very phone was proved on this registration already (the step landed and its answer
            # was lost, a follow-up below failed, or a twin request sent at once used the code first):
            # its code is used, and the step is answered as done (nothing is proved that was not; the
            # follow-ups run again, each once). The registration is read as it stands now.
            if err.code != "sms.no_code":
                raise
            reg = self._registrations.own(registration_id, caller)
            if reg.phone_hash != phone_hash or reg.flow_id is None:
                raise
        if reg.kind is RegistrationKind.DEREGISTRATION:
            assert reg.flow_id is not None
            self._registered_identity(reg, caller, reg.flow_id)
        if self._possession is not None:
            reg = self._possession.by_sales_phone(reg)
        return self._views.view(reg)

    def _prove_phone(
        self, number: str, purpose: SmsPurpose, code: str, caller: str, write: StepWrite
    ) -> Registration:
        """The code matched (a wrong one's try counted), then used in one write with the step's own
        (``StepWrites``): a store failure leaves it usable, and of two requests with one code only one
        uses it. A use refused meanwhile is matched again: the re-read says why."""
        for _ in range(_CODE_RACES):
            # the caller's own code: nobody else's tries
            matched = self._codes.match(number, purpose, code, caller)
            try:
                return self._writes.commit(replace(write, code=matched))
            except CodeTaken:
                continue
        raise no_code()

    def _registered_identity(self, reg: Registration, caller: str, flow_id: str) -> None:
        """实名注销: the identity is the registered holder's, not typed again. The ID photos and the face
        still prove the person is that holder (the photos' reading is cross-checked with it)."""
        if self._parties is None or self._verification.flow(flow_id, caller).identity is not None:
            return
        latest = self._latest_registration(caller, reg.vin)
        party = self._parties.get(latest.party_id) if latest and latest.party_id else None
        if party is None:
            return  # the person types it, as for a registration
        # (its validity is read again from the ID back: the card may have been renewed since)
        identity = TypedIdentity(
            id_type=party.id_type.value, id_number=party.id_number, name=party.name, address=party.address
        )
        self._verification.set_identity(flow_id, caller, identity)

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
        assert reg.flow_id is not None
        # The consents on the registration and in the flow's evidence, in one write: a store failure
        # leaves neither, and the person gives them again.
        given = {"consents": [r.model_dump(mode="json") for r in records]}
        ready = self._registrations.seal(reg, consents=records)
        reg = self._writes.commit(
            StepWrite(ready, Note(reg.flow_id, EvidenceKind.CONSENT_GIVEN, caller, given))
        )
        return self._views.view(reg)
