"""The registration context wired to fakes only: the real use cases of cards (lifecycle), verification
and SMS codes over their fakes, and the steps a story takes as its "given"."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from itertools import count

from chalicelib.cards.domain.inventory import Card, CardFunction
from chalicelib.cards.inventory import import_inventory
from chalicelib.cards.lifecycle import Lifecycle
from chalicelib.consents.domain import AcceptedConsent
from chalicelib.consents.texts import consent_documents
from chalicelib.kernel.personal import IdType, id_lookup_value
from chalicelib.local.synthetic import inventory_rows
from chalicelib.operators.domain.messages import CallbackOutcome, OperatorCallback
from chalicelib.registration.domain.registrations import PossessionMethod, RegistrationKind
from chalicelib.registration.service import RegistrationService
from chalicelib.registration.views import RegistrationView
from chalicelib.sms.codes import SmsCodeService
from chalicelib.sms.domain import SmsPolicy, SmsPurpose
from chalicelib.verification.domain.authority import UnavailablePolicy
from chalicelib.verification.domain.flows import (
    CheckName,
    CheckVerdict,
    FlowStatus,
    TypedIdentity,
    VerificationPolicy,
)
from chalicelib.verification.ports import IdentityAuthority
from chalicelib.verification.service import VerificationService
from chalicelib.verification.uploads import UploadService
from tests.fakes.cards import FakeInventory, FakeParties
from tests.fakes.clock import FakeClock
from tests.fakes.crypto import FakeHasher
from tests.fakes.evidence import FakeEvidenceLog
from tests.fakes.operators import FakeOutboxStore, FakePushQueue
from tests.fakes.registration import FakeRegistrations
from tests.fakes.sms import FakeSmsCodeStore, FakeSmsSender
from tests.fakes.vehicles import FakeVehicleChannel
from tests.fakes.verification import (
    FakeAttempts,
    FakeDocumentStore,
    FakeFaceEngine,
    FakeFlows,
    FakeLivenessEngine,
    FakeLivenessSessions,
    FakeOcr,
    FakeReviewCases,
)

ME = "owner-a"
SOMEONE = "owner-b"
PHONE = "13912345678"
NAME = "王小明"
NUMBER = "110101199003076632"
ADDRESS = "北京市东城区景山前街4号"
OTHER_NUMBER = "110101199003071233"


class World:
    """Every port faked; ``service`` is the registration context's entry point."""

    def __init__(
        self,
        *,
        vehicles: int = 3,
        cards_per_vehicle: int = 1,
        sales_phone: str | None = PHONE,
        authority: IdentityAuthority | None = None,
        authority_unavailable: UnavailablePolicy = "retry",
    ) -> None:
        """``sales_phone``: the contact phone of every vehicle's sales record (the phone the stories
        verify, so possession of the car is shown by it at the phone step); None: no sales phones.
        ``authority``: the identity authority (None: no authority checks; with one, it also checks a
        delegated owner's phone)."""
        ids = count(1)
        # Now: the synthetic inventory's production dates are recent, never in the future.
        self.clock = FakeClock(datetime.now(UTC))
        self.hasher = FakeHasher()
        self.inventory = FakeInventory()
        self.parties = FakeParties()
        self.outbox = FakeOutboxStore(self.inventory)
        self.queue = FakePushQueue()
        self.lifecycle = Lifecycle(self.inventory, self.outbox, self.queue, clock=self.clock)
        self.flows = FakeFlows()
        self.evidence = FakeEvidenceLog(clock=self.clock)
        faces = FakeFaceEngine()
        self.documents = FakeDocumentStore()
        self.ocr = FakeOcr()
        attempts = FakeAttempts()
        self.verification = VerificationService(
            flows=self.flows,
            attempts=attempts,
            sessions=FakeLivenessSessions(attempts, self.flows),
            cases=FakeReviewCases(),
            uploads=UploadService(self.documents, faces),
            ocr=self.ocr,
            faces=faces,
            liveness=FakeLivenessEngine(),
            evidence=self.evidence,
            hasher=self.hasher,
            policy=VerificationPolicy(face_threshold=50.0),
            clock=self.clock,
            new_id=lambda: f"{next(ids):04d}",
            authority=authority,
            authority_unavailable=authority_unavailable,
        )
        self.sms = FakeSmsSender()
        policy = SmsPolicy(resend_interval=timedelta(0))
        self.codes = SmsCodeService(
            FakeSmsCodeStore(), self.sms, self.hasher, clock=self.clock, policy=policy
        )
        self.registrations = FakeRegistrations()
        self.vehicles = FakeVehicleChannel()
        self.service = RegistrationService(
            self.registrations,
            self.inventory,
            self.parties,
            self.verification,
            self.lifecycle,
            self.codes,
            self.hasher,
            self.sms,
            vehicles=self.vehicles,
            phone_holders=self.verification.authority,
            clock=self.clock,
            new_id=lambda: f"{next(ids):04d}",
        )
        rows = list(inventory_rows(vehicles, seed=23, cards_per_vehicle=cards_per_vehicle))
        if sales_phone is not None:
            rows = [{**row, "owner_phone": sales_phone} for row in rows]
        report = import_inventory(
            list(enumerate(rows, start=2)),
            self.inventory,
            actor="test",
            clock=self.clock,
            phone_hash=self.codes.phone_hash,
        )
        assert report.errors == []
        self.vins = list(dict.fromkeys(row["vin"] for row in rows))

    # --- steps a story takes as its "given" --------------------------------------------------------

    def cards(self, vin: str) -> list[Card]:
        return self.inventory.cards_of_vehicle(vin)

    def start(self, vin: str, owner: str = ME, *, delegated: bool = False) -> str:
        view, _ = self.service.start(owner, RegistrationKind.REGISTRATION, vin, delegated=delegated)
        return view.registration_id

    def verify_phone(
        self, reg_id: str, owner: str = ME, *, purpose: SmsPurpose = SmsPurpose.OWNER_PHONE
    ) -> str:
        """The phone proved with its code; the flow's id."""
        self.codes.send(PHONE, purpose, caller=owner)  # the owner's own code
        view = self.service.verify_phone(reg_id, owner, PHONE, self.sms.last_code(PHONE))
        assert view.flow_id is not None
        return view.flow_id

    def prove_possession(self, reg_id: str, owner: str = ME) -> RegistrationView:
        """Possession of the car shown by the code its head unit displays."""
        self.service.send_head_unit_code(reg_id, owner)
        reg = self.registrations.get(reg_id)
        assert reg is not None
        code = self.vehicles.last_code(reg.vin)
        return self.service.prove_possession(reg_id, owner, PossessionMethod.HEAD_UNIT, code=code)

    def verify_person(self, flow_id: str, owner: str = ME, number: str = NUMBER) -> None:
        """The flow's identity typed; its ID photos read and its live face matched (the verification
        context's own stories), as the flow records them."""
        self.verification.set_identity(
            flow_id,
            owner,
            TypedIdentity(id_type="resident_id", id_number=number, name=NAME, address=ADDRESS),
        )
        flow = self.flows.get(flow_id)
        assert flow is not None
        checked = (CheckName.OCR_ID_FRONT, CheckName.OCR_ID_BACK, CheckName.AUTHORITY, CheckName.FACE)
        passed = dict.fromkeys(checked, CheckVerdict.PASSED)
        self.flows.save(
            flow.model_copy(
                update={
                    "status": FlowStatus.VERIFIED,
                    "checks": {**flow.checks, **passed},
                    "documents": {
                        **flow.documents,
                        "live_capture": f"documents/{flow_id}/live_capture/1.jpg",
                    },
                    "version": flow.version + 1,
                }
            )
        )

    def upload(self, flow_id: str, kind: str, body: bytes = b"jpeg") -> None:
        """A photo of ``kind`` stored and recorded in the flow (the verification context's upload)."""
        flow = self.flows.get(flow_id)
        assert flow is not None
        key = f"documents/{flow_id}/{kind}/{len(self.documents.objects)}.jpg"
        self.documents.put(key, body, "image/jpeg")
        documents = {**flow.documents, kind: key}
        self.flows.save(flow.model_copy(update={"documents": documents, "version": flow.version + 1}))

    def consent(self, reg_id: str, owner: str = ME) -> RegistrationView:
        accepted = [
            AcceptedConsent(kind=d.kind, version=d.version, sha256=d.sha256) for d in consent_documents()
        ]
        return self.service.give_consents(reg_id, owner, accepted, {"ua": "test"})

    def ready_to_submit(self, vin: str, owner: str = ME) -> str:
        reg_id = self.start(vin, owner)
        self.service.confirm_vehicle(reg_id, owner)
        self.verify_person(self.verify_phone(reg_id, owner), owner)
        self.consent(reg_id, owner)
        return reg_id

    def registered(self, vin: str, owner: str = ME) -> str:
        """A registration submitted and accepted by the operator for every card."""
        reg_id = self.ready_to_submit(vin, owner)
        self.service.submit(reg_id, owner)
        for card in self.cards(vin):
            self.operator_answers(card.iccid, CallbackOutcome.ACCEPTED)
        return reg_id

    def operator_answers(self, iccid: str, outcome: CallbackOutcome, reason: str | None = None) -> None:
        """The operator's callback for the card's push, applied, and the registration told."""
        card = self.inventory.get_card(iccid)
        assert card is not None
        record_id = self.outbox.lifecycle(iccid).message_id
        assert record_id is not None
        accepted = outcome is CallbackOutcome.ACCEPTED
        self.lifecycle.apply_callback(
            OperatorCallback(
                callback_id=uuid.uuid4().hex,
                message_id=record_id,
                operator=card.operator,
                iccid=iccid,
                outcome=outcome,
                reason_code="blacklisted" if reason else None,
                reason_zh=reason,
                reason_en="refused" if reason else None,
                functions=[CardFunction.EMERGENCY, CardFunction.TELEMATICS] if accepted else [],
                decided_at=self.clock(),
            )
        )
        self.service.on_push_result(record_id)

    def holds_ten_cards(self, number: str, vin: str) -> None:
        """The person of ``number`` already holds ten active cards with the vehicle's card's operator."""
        operator = self.cards(vin)[0].operator
        id_hash = self.hasher.digest(id_lookup_value(IdType.RESIDENT_ID, number))
        self.outbox.counts[(id_hash, operator)] = 10
