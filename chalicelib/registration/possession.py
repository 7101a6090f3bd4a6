"""Possession of the car (no squatting): before a registration goes on to the person's identity, they
show they hold the car by one of the methods the OEM enables, and only then learn anything about it.

- ``sales_phone``: the phone verified in the phone step is the sales / in-service record's contact phone
  (its keyed hash, imported with the inventory); checked by itself when the phone is verified;
- ``head_unit``: a one-time code shown on the car's head unit through the OEM's telematics
  (``VehicleChannel``); kept only as a keyed hash, expiring, with limited sends and tries;
- ``vehicle_document``: a photo of the 行驶证 or the purchase invoice, uploaded to the flow, whose VIN,
  read by OCR, is the registration's.

Before the proof a registration says nothing about the vehicle: an unknown VIN, one registered or
pending under someone else, and a free one read the same. Once proved, a free vehicle's cards become the
registration's; a vehicle held by someone else can be contested (a review case, reason
``possession_contested``); an unknown one is ``vehicle.not_found``.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from chalicelib.cards.domain.inventory import Card, CardState, Vehicle, vehicle_not_found
from chalicelib.cards.ports import InventoryRepository
from chalicelib.core.observability import logger
from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.crypto import KeyedHasher
from chalicelib.kernel.errors import Conflict, InvalidField, TooManyRequests
from chalicelib.kernel.personal import mask_vin
from chalicelib.registration.domain.registrations import (
    HeadUnitCode,
    Possession,
    PossessionMethod,
    Registration,
    RegistrationKind,
    Step,
    require_step,
)
from chalicelib.registration.ports import VehicleChannel
from chalicelib.registration.records import Registrations
from chalicelib.registration.views import RegistrationView, RegistrationViews
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import FlowPurpose, ReviewReason
from chalicelib.verification.service import VerificationService

#: Card states that mean the car is claimed: submitted and awaiting the operator, or registered.
CLAIMED = frozenset({CardState.PENDING, CardState.REGISTERED})

VEHICLE_DOCUMENT_KINDS = (DocumentKind.VEHICLE_LICENCE, DocumentKind.PURCHASE_INVOICE)


class PossessionPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)

    methods: frozenset[PossessionMethod] = frozenset(PossessionMethod)
    code_ttl: timedelta = timedelta(minutes=5)
    resend_interval: timedelta = timedelta(seconds=60)
    max_sends: int = 5
    max_wrong_tries: int = 5


class HeadUnitSent(BaseModel):
    """A code is on its way to the car's head unit (the same answer whether or not the car exists)."""

    expires_at: datetime
    resend_after_seconds: int


def _code() -> str:
    return f"{secrets.randbelow(10**6):06d}"


def _free(cards: list[Card]) -> list[str]:
    return [c.iccid for c in cards if c.state is CardState.UNREGISTERED]


def sales_phone_matches(owner_phone_hash: str | None, phone_hash: str | None) -> bool:
    """Whether the sales-phone proof passes: the vehicle's owner phone (keyed hash: the inventory's
    ``owner_phone``, or a transfer's buyer) is the phone given (keyed hash), compared in constant time.
    Also what lets the owner's backfill notice name the vehicle's full VIN."""
    return bool(owner_phone_hash and phone_hash and hmac.compare_digest(owner_phone_hash, phone_hash))


def method_disabled(method: PossessionMethod) -> InvalidField:
    return InvalidField(
        "possession.method_disabled",
        "该车企未开通此核验方式",
        f"The {method.value} method is not enabled",
        field="method",
        details={"method": method.value},
    )


def phone_mismatch() -> InvalidField:
    return InvalidField(
        "possession.phone_mismatch",
        "验证的手机号码与车辆销售记录中的联系电话不一致，请改用车机验证码或行驶证照片",
        "The verified phone is not the sales record's contact phone; use the head-unit code or a photo",
        field="phone",
    )


def vehicle_taken(contested: bool, transferable: bool = False) -> Conflict:
    """A car registered or pending under someone else: contestable; registered (nothing with the
    operator) it may also be taken over by transfer (过户, ``…/transfer``)."""
    return Conflict(
        "possession.vehicle_claimed",
        "该车辆已由他人登记；如您已购买该车辆，可以办理过户，或提出异议由人工审核"
        if transferable
        else "该车辆已由他人登记或正在办理；如您是车辆的实际持有人，可以提出异议，由人工审核",
        "The vehicle is registered to someone else; as its buyer you may transfer it, or contest it"
        if transferable
        else "The vehicle is registered or pending under someone else; as its holder you may contest it",
        field="vin",
        details={"contestable": True, "contested": contested, "transferable": transferable},
    )


def not_transferable() -> Conflict:
    return Conflict(
        "transfer.not_transferable",
        "该车辆当前不能办理过户：没有他人的实名登记，或有业务正在电信企业处理中",
        "The vehicle cannot be transferred now: no one else's registration, or a change is with the operator",
        field="vin",
    )


class PossessionChecks:
    def __init__(
        self,
        registrations: Registrations,
        views: RegistrationViews,
        inventory: InventoryRepository,
        verification: VerificationService,
        channel: VehicleChannel,
        hasher: KeyedHasher,
        *,
        policy: PossessionPolicy | None = None,
        clock: Clock = utc_now,
        new_code: Callable[[], str] = _code,
    ) -> None:
        self._registrations = registrations
        self._views = views
        self._inventory = inventory
        self._verification = verification
        self._channel = channel
        self._hasher = hasher
        self._policy = policy or PossessionPolicy()
        self._clock = clock
        self._new_code = new_code

    @property
    def methods(self) -> frozenset[PossessionMethod]:
        return self._policy.methods

    # -- head unit ----------------------------------------------------------------------------------

    def send_head_unit_code(self, registration_id: str, caller: str) -> HeadUnitSent:
        """Show a new one-time code on the car's head unit (it replaces the earlier one)."""
        reg = self._due(registration_id, caller, PossessionMethod.HEAD_UNIT)
        now = self._clock()
        earlier = reg.possession.head_unit if reg.possession else None
        if earlier is not None:
            wait = earlier.sent_at + self._policy.resend_interval - now
            if wait > timedelta(0):
                raise TooManyRequests(
                    "possession.code_too_soon",
                    "验证码已发送到车机，请稍后再试",
                    "A code was just sent to the head unit; try again shortly",
                    details={"retry_after": int(wait.total_seconds()) + 1},
                )
            if earlier.sends >= self._policy.max_sends:
                raise TooManyRequests(
                    "possession.too_many_codes",
                    "车机验证码发送次数已达上限，请改用其他核验方式",
                    "No more head-unit codes for this registration; use another method",
                )
        code = self._new_code()
        expires_at = now + self._policy.code_ttl
        # Sent whether or not the car is known: the answer must not tell.
        self._channel.show_code(reg.vin, code, expires_at)
        sent = HeadUnitCode(
            code_hash=self._code_hash(reg, code),
            sent_at=now,
            expires_at=expires_at,
            sends=(earlier.sends + 1) if earlier else 1,
        )
        self._registrations.save(reg, possession=self._possession(reg).model_copy(update={"head_unit": sent}))
        return HeadUnitSent(
            expires_at=expires_at, resend_after_seconds=int(self._policy.resend_interval.total_seconds())
        )

    def _code_hash(self, reg: Registration, code: str) -> str:
        return self._hasher.digest(f"head-unit:{reg.registration_id}:{code}")

    def _check_head_unit(self, reg: Registration, code: str | None) -> Registration:
        sent = reg.possession.head_unit if reg.possession else None
        if sent is None:
            raise InvalidField(
                "possession.code_not_sent",
                "请先获取车机验证码",
                "Ask for a head-unit code first",
                field="code",
            )
        if sent.failures >= self._policy.max_wrong_tries:
            raise TooManyRequests(
                "possession.too_many_tries",
                "验证码错误次数过多，请重新获取",
                "Too many wrong codes; ask for a new one",
                field="code",
            )
        if sent.expires_at <= self._clock():
            raise InvalidField(
                "possession.code_expired", "验证码已过期，请重新获取", "The code has expired", field="code"
            )
        if not code or not hmac.compare_digest(self._code_hash(reg, code), sent.code_hash):
            failed = sent.model_copy(update={"failures": sent.failures + 1})
            self._registrations.save(
                reg, possession=self._possession(reg).model_copy(update={"head_unit": failed})
            )
            self._note(reg, PossessionMethod.HEAD_UNIT, "refused")
            raise InvalidField(
                "possession.code_wrong",
                "车机验证码不正确",
                "The head-unit code is wrong",
                field="code",
                details={"tries_left": max(0, self._policy.max_wrong_tries - failed.failures)},
            )
        return reg

    # -- proofs -------------------------------------------------------------------------------------

    def prove(
        self,
        registration_id: str,
        caller: str,
        method: PossessionMethod,
        *,
        code: str | None = None,
        document: DocumentKind | None = None,
    ) -> RegistrationView:
        """Show possession by ``method``. Refused with a field error, the registration unchanged but
        for the count of wrong head-unit codes."""
        reg = self._due(registration_id, caller, method)
        if reg.possession is not None and reg.possession.proved:
            vehicle, cards = self._vehicle(reg)
            return self._after_proof(self._claim(reg, cards), vehicle, cards)
        if method is PossessionMethod.HEAD_UNIT:
            reg = self._check_head_unit(reg, code)
        elif method is PossessionMethod.VEHICLE_DOCUMENT:
            self._check_document(reg, caller, document)
        vehicle, cards = self._vehicle(reg)
        if method is PossessionMethod.SALES_PHONE and not self._sales_phone_matches(reg, vehicle):
            self._note(reg, method, "refused")
            raise phone_mismatch()
        return self._after_proof(self._proved(reg, method, cards), vehicle, cards)

    def by_sales_phone(self, reg: Registration) -> Registration:
        """Right after the phone step: the sales-phone method passes by itself when the phone matches."""
        if (
            reg.kind is not RegistrationKind.REGISTRATION
            or PossessionMethod.SALES_PHONE not in self._policy.methods
            or (reg.possession is not None and reg.possession.proved)
        ):
            return reg
        vehicle, cards = self._vehicle(reg)
        if not self._sales_phone_matches(reg, vehicle):
            return reg
        return self._proved(reg, PossessionMethod.SALES_PHONE, cards)

    @staticmethod
    def _sales_phone_matches(reg: Registration, vehicle: Vehicle | None) -> bool:
        return sales_phone_matches(vehicle.owner_phone_hash if vehicle is not None else None, reg.phone_hash)

    def _check_document(self, reg: Registration, caller: str, document: DocumentKind | None) -> None:
        if document not in VEHICLE_DOCUMENT_KINDS:
            raise InvalidField(
                "possession.document_kind",
                "请上传行驶证或购车发票照片",
                "Give a photo of the vehicle licence or the purchase invoice",
                field="document",
            )
        assert reg.flow_id is not None
        assert document is not None
        reading = self._verification.read_vehicle_document(reg.flow_id, caller, document)
        if reading.vin is None:
            self._note(reg, PossessionMethod.VEHICLE_DOCUMENT, "unreadable", document=document.value)
            raise InvalidField(
                "possession.vin_unreadable",
                "未能从照片中识别出车辆识别代号，请重新拍摄清晰完整的照片",
                "No VIN could be read from the photo; take a sharp photo of the whole document",
                field=document.value,
            )
        if not hmac.compare_digest(reading.vin, reg.vin):
            self._note(reg, PossessionMethod.VEHICLE_DOCUMENT, "refused", document=document.value)
            raise InvalidField(
                "possession.vin_mismatch",
                "照片中的车辆识别代号与办理的车辆不一致",
                "The VIN on the photo is not the vehicle's",
                field=document.value,
            )

    def _proved(self, reg: Registration, method: PossessionMethod, cards: list[Card]) -> Registration:
        """Possession shown: recorded, with the vehicle's free cards (none when someone else holds it)."""
        possession = self._possession(reg).model_copy(
            update={"method": method, "proved_at": self._clock(), "head_unit": None}
        )
        iccids = _free(cards) or reg.iccids
        # The proof and its evidence in one write: a refused write leaves neither, and the proof made
        # again records both (a proof recorded without its evidence would never be noted on a retry).
        return self._registrations.save_noted(
            reg,
            EvidenceKind.POSSESSION_CHECKED,
            {"method": method.value, "outcome": "proved"},
            possession=possession,
            iccids=iccids,
        )

    def _after_proof(self, reg: Registration, vehicle: Vehicle | None, cards: list[Card]) -> RegistrationView:
        """The registration once possession is shown, or why it cannot take the vehicle's cards."""
        if vehicle is None:
            raise vehicle_not_found()
        if not reg.iccids:
            if any(c.state in CLAIMED for c in cards):
                raise vehicle_taken(
                    reg.possession is not None and reg.possession.contest_case_id is not None,
                    bool(self._views.transferable(cards)),
                )
            raise Conflict(
                "vehicle.no_cards",
                "该车辆没有可登记的车联网卡",
                "The vehicle has no card to register",
                field="vin",
            )
        return self._views.view(reg)

    def _claim(self, reg: Registration, cards: list[Card]) -> Registration:
        """A proved registration without cards takes the ones freed since (a contest decided)."""
        iccids = _free(cards)
        if iccids and not reg.iccids:
            reg = self._registrations.save(reg, iccids=iccids)
        return reg

    def _vehicle(self, reg: Registration) -> tuple[Vehicle | None, list[Card]]:
        """The vehicle and its cards in service (a retired card, swapped out or scrapped, is never
        offered to an owner: it could only fail ``card.swapped_out`` at the submit)."""
        vehicle = self._inventory.get_vehicle(reg.vin)
        if vehicle is None:
            return None, []
        return vehicle, self._views.in_service(self._inventory.cards_of_vehicle(reg.vin))

    # -- transfer -----------------------------------------------------------------------------------

    def take_over(self, registration_id: str, caller: str) -> RegistrationView:
        """过户 (第十三条): a person who showed they hold a car registered to someone else goes on as its
        buyer; the registration's cards are the seller's, pushed at the submit as a transfer. A car with
        anything pending at the operator cannot be taken over. Asking again changes nothing."""
        reg = self._registrations.own(registration_id, caller)
        require_step(reg, self._registrations.flow(reg), Step.POSSESSION)
        possession = reg.possession
        if possession is None or not possession.proved:
            raise Conflict(
                "possession.not_proved",
                "请先证明您持有该车辆",
                "Show that you hold the car first",
                details={"step": Step.POSSESSION.value},
            )
        if possession.transfer:
            return self._views.view(reg)
        vehicle, cards = self._vehicle(reg)
        iccids = self._views.transferable(cards) if vehicle is not None and not reg.iccids else []
        if not iccids:
            raise not_transferable()
        reg = self._registrations.save(
            reg,
            possession=possession.model_copy(update={"transfer": True, "transfer_chosen_at": self._clock()}),
            iccids=iccids,
        )
        if reg.flow_id is not None:
            self._verification.note(
                reg.flow_id,
                EvidenceKind.POSSESSION_CHECKED,
                caller,
                {"outcome": "transfer", "cards": str(len(iccids))},
            )
        logger.info("transfer chosen", extra={"registration": reg.registration_id, "cards": len(iccids)})
        return self._views.view(reg)

    # -- contest ------------------------------------------------------------------------------------

    def contest(self, registration_id: str, caller: str) -> RegistrationView:
        """A person who showed they hold the car contests the claim of the one it is pending or registered
        under: a review case (its own flow, so a decision on it decides nothing else). Asking again
        finds the same case."""
        reg = self._registrations.own(registration_id, caller)
        require_step(reg, self._registrations.flow(reg), Step.POSSESSION)
        possession = reg.possession
        if possession is None or not possession.proved:
            raise Conflict(
                "possession.not_proved",
                "请先证明您持有该车辆",
                "Show that you hold the car first",
                details={"step": Step.POSSESSION.value},
            )
        vehicle, cards = self._vehicle(reg)
        claimed = [c for c in cards if c.state in CLAIMED]
        if vehicle is None or not claimed or reg.iccids:
            raise Conflict(
                "possession.nothing_to_contest",
                "该车辆未被他人登记，无需提出异议",
                "The vehicle is not held by anyone else: there is nothing to contest",
                field="vin",
            )
        if possession.contest_case_id is None:
            flow = self._verification.open_flow(caller, FlowPurpose.REGISTRATION)
            case = self._verification.open_case(
                flow.flow_id,
                caller,
                ReviewReason.POSSESSION_CONTESTED,
                {
                    "registration_id": reg.registration_id,
                    "registration_flow_id": reg.flow_id,
                    "vin_masked": mask_vin(reg.vin),
                    "method": possession.method.value if possession.method else None,
                    "claimed_cards": len(claimed),
                    "card_states": sorted({c.state.value for c in claimed}),
                },
            )
            now = self._clock()
            reg = self._registrations.save(
                reg,
                possession=possession.model_copy(
                    update={"contest_case_id": case.case_id, "contested_at": now}
                ),
            )
            if reg.flow_id is not None:
                self._verification.note(
                    reg.flow_id,
                    EvidenceKind.POSSESSION_CONTESTED,
                    caller,
                    {"case_id": case.case_id, "claimed_cards": len(claimed)},
                )
            logger.info(
                "possession contested", extra={"registration": reg.registration_id, "case": case.case_id}
            )
        return self._views.view(reg)

    # -- helpers ------------------------------------------------------------------------------------

    def _due(self, registration_id: str, caller: str, method: PossessionMethod) -> Registration:
        reg = self._registrations.own(registration_id, caller)
        require_step(reg, self._registrations.flow(reg), Step.POSSESSION)
        if method not in self._policy.methods:
            raise method_disabled(method)
        return reg

    @staticmethod
    def _possession(reg: Registration) -> Possession:
        return reg.possession or Possession()

    def _note(self, reg: Registration, method: PossessionMethod, outcome: str, **extra: str) -> None:
        if reg.flow_id is not None:
            self._verification.note(
                reg.flow_id,
                EvidenceKind.POSSESSION_CHECKED,
                reg.owner,
                {"method": method.value, "outcome": outcome, **extra},
            )
