"""Owner registration (实名登记), delegated registration (委托登记) and de-registration (实名注销) of
one vehicle's cards, as the API, the purge schedule and the operator callbacks call them.

Each method hands over to its use case: ``steps`` (start and the steps before submission), ``submission``
(claim, push, recovery), ``results`` (the operator's answers and the result SMS), ``views`` (what the
owner reads) and ``housekeeping`` (the purge of abandoned registrations).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from chalicelib.cards.lifecycle import Lifecycle
from chalicelib.cards.ports import InventoryRepository, PartyRepository
from chalicelib.consents.domain import AcceptedConsent
from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.crypto import KeyedHasher
from chalicelib.registration.delegation import DelegationSteps, PhoneHolders
from chalicelib.registration.domain.registrations import PossessionMethod, RegistrationKind
from chalicelib.registration.housekeeping import Housekeeping
from chalicelib.registration.outcome import Outcomes, ResultSms
from chalicelib.registration.ports import RegistrationRepository, VehicleChannel
from chalicelib.registration.possession import HeadUnitSent, PossessionChecks, PossessionPolicy
from chalicelib.registration.records import Registrations
from chalicelib.registration.step_writes import StepWrites
from chalicelib.registration.steps import PhoneCodes, RegistrationSteps
from chalicelib.registration.submit import Submission
from chalicelib.registration.views import PUSH_LATE_AFTER, MyVehicles, RegistrationView, RegistrationViews
from chalicelib.sms.domain import SentCode
from chalicelib.sms.ports import SmsSender
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.flows import TypedIdentity
from chalicelib.verification.service import VerificationService


class RegistrationService:
    """The registration use cases over their ports; time from ``clock``."""

    def __init__(
        self,
        registrations: RegistrationRepository,
        inventory: InventoryRepository,
        parties: PartyRepository,
        verification: VerificationService,
        lifecycle: Lifecycle,
        codes: PhoneCodes,
        hasher: KeyedHasher,
        sms: SmsSender | None = None,
        *,
        phone_holders: PhoneHolders | None = None,
        vehicles: VehicleChannel | None = None,
        possession: PossessionPolicy | None = None,
        flow_ttl: timedelta = timedelta(hours=24),
        clock: Clock = utc_now,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
        on_submitted: Callable[[str, list[str]], None] | None = None,
        push_late_after: timedelta = PUSH_LATE_AFTER,
        open_registrations: int = 5,
        step_writes: StepWrites | None = None,
    ) -> None:
        self.store = registrations
        self.registrations = Registrations(registrations, verification, clock=clock)
        outcomes = Outcomes(inventory, lifecycle)
        self.views = RegistrationViews(
            registrations, self.registrations, inventory, outcomes, clock=clock, late_after=push_late_after
        )
        self.results = ResultSms(registrations, self.registrations, outcomes, verification, sms, clock=clock)
        policy = possession or PossessionPolicy()
        if vehicles is None:  # no telematics: no head-unit codes
            policy = policy.model_copy(update={"methods": policy.methods - {PossessionMethod.HEAD_UNIT}})
        self.possession = PossessionChecks(
            self.registrations,
            self.views,
            inventory,
            verification,
            vehicles or _NoTelematics(),
            hasher,
            policy=policy,
            clock=clock,
        )
        self.steps = RegistrationSteps(
            registrations,
            self.registrations,
            self.views,
            inventory,
            verification,
            codes,
            possession=self.possession,
            parties=parties,
            flow_ttl=flow_ttl,
            clock=clock,
            new_id=new_id,
            open_limit=open_registrations,
            writes=step_writes,
        )
        self.delegation = DelegationSteps(
            self.registrations,
            self.views,
            verification,
            codes,
            phone_holders=phone_holders,
            clock=clock,
        )
        self.submission = Submission(
            registrations,
            self.registrations,
            self.views,
            outcomes,
            self.results,
            parties,
            verification,
            lifecycle,
            hasher,
            flow_ttl=flow_ttl,
            clock=clock,
            on_submitted=on_submitted,
        )
        self.housekeeping = Housekeeping(
            registrations, self.registrations, verification, self.submission, clock=clock
        )

    def start(
        self,
        caller: str,
        kind: RegistrationKind,
        vin: str,
        *,
        delegated: bool = False,
        assisted_by: str | None = None,
    ) -> tuple[RegistrationView, bool]:
        return self.steps.start(caller, kind, vin, delegated=delegated, assisted_by=assisted_by)

    def check_room(self, caller: str) -> None:
        self.steps.check_room(caller)

    def confirm_vehicle(self, registration_id: str, caller: str) -> RegistrationView:
        return self.steps.confirm_vehicle(registration_id, caller)

    def verify_phone(self, registration_id: str, caller: str, phone: str, code: str) -> RegistrationView:
        return self.steps.verify_phone(registration_id, caller, phone, code)

    def delegate(
        self, registration_id: str, caller: str, owner: TypedIdentity, owner_phone: str
    ) -> RegistrationView:
        return self.delegation.delegate(registration_id, caller, owner, owner_phone)

    def send_delegation_code(self, registration_id: str, caller: str) -> SentCode:
        return self.delegation.send_code(registration_id, caller)

    def confirm_delegation(self, registration_id: str, caller: str, code: str) -> RegistrationView:
        return self.delegation.confirm_by_code(registration_id, caller, code)

    def open_owner_check(self, registration_id: str, caller: str) -> RegistrationView:
        return self.delegation.open_owner_check(registration_id, caller)

    def confirm_delegation_by_face(self, registration_id: str, caller: str) -> RegistrationView:
        return self.delegation.confirm_by_face(registration_id, caller)

    def give_consents(
        self, registration_id: str, caller: str, accepted: list[AcceptedConsent], client: dict[str, str]
    ) -> RegistrationView:
        return self.steps.give_consents(registration_id, caller, accepted, client)

    def send_head_unit_code(self, registration_id: str, caller: str) -> HeadUnitSent:
        return self.possession.send_head_unit_code(registration_id, caller)

    def prove_possession(
        self,
        registration_id: str,
        caller: str,
        method: PossessionMethod,
        *,
        code: str | None = None,
        document: DocumentKind | None = None,
    ) -> RegistrationView:
        return self.possession.prove(registration_id, caller, method, code=code, document=document)

    def contest(self, registration_id: str, caller: str) -> RegistrationView:
        return self.possession.contest(registration_id, caller)

    def take_over(self, registration_id: str, caller: str) -> RegistrationView:
        return self.possession.take_over(registration_id, caller)

    def submit(self, registration_id: str, caller: str) -> RegistrationView:
        return self.submission.submit(registration_id, caller)

    def on_push_result(self, record_id: str) -> None:
        return self.results.on_push_result(record_id)

    def get(self, registration_id: str, caller: str, kind: RegistrationKind) -> RegistrationView:
        return self.views.get(registration_id, caller, kind)

    def my_vehicles(self, caller: str) -> MyVehicles:
        return self.views.my_vehicles(caller)

    def recover_stuck(self, limit: int = 100) -> dict[str, int]:
        return self.submission.recover_stuck(limit)

    def purge_abandoned(self, limit: int = 100) -> dict[str, int]:
        return self.housekeeping.purge_abandoned(limit)


class _NoTelematics(VehicleChannel):
    """No telematics: the head-unit method is not offered, so nothing is ever sent here."""

    def show_code(self, vin: str, code: str, expires_at: datetime) -> None:
        raise RuntimeError("no vehicle channel: the head-unit method is disabled")
