"""The owner's registration (实名登记), delegated registration (委托登记), de-registration (实名注销) and
vehicles (我的车辆): one handler per step. The identity, photos and face checks of each are the
verification flow's routes (``/v1/flows/{flow_id}/...``), whose id the registration carries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from chalice.app import Response
from pydantic import ConfigDict, Field

from chalicelib.api.clients import asking_for_codes
from chalicelib.api.http import ApiModel, Blueprint, Call, json_response, route
from chalicelib.consents.domain import AcceptedConsent, ConsentDocument
from chalicelib.consents.texts import consent_documents
from chalicelib.core import deps, lazy
from chalicelib.core.auth import Role
from chalicelib.core.settings import get_settings
from chalicelib.kernel.errors import InvalidField, NotFound
from chalicelib.kernel.names import under
from chalicelib.kernel.personal import IdType
from chalicelib.registration.domain.registrations import PossessionMethod, RegistrationKind
from chalicelib.registration.ports import HeadUnitMessage
from chalicelib.sms.domain import SentCode
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.flows import TypedIdentity

if TYPE_CHECKING:
    from chalicelib.kernel import validators
    from chalicelib.registration import possession, views
    from chalicelib.registration.possession import HeadUnitSent
    from chalicelib.registration.views import (
        MyVehicles,
        OpenRegistrations,
        ReceiptLookup,
        RegistrationView,
    )
else:
    views = lazy.module("chalicelib.registration.views")
    possession = lazy.module("chalicelib.registration.possession")
    validators = lazy.module("chalicelib.kernel.validators")

bp = Blueprint(__name__)

OWNER = frozenset({Role.OWNER})
#: OEM staff who answer an owner calling with a receipt number (受理编号).
SUPPORT = frozenset({Role.ADMIN, Role.REVIEWER, Role.AUDITOR})
REG = RegistrationKind.REGISTRATION
DEREG = RegistrationKind.DEREGISTRATION


class StartBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    vin: str = Field(min_length=1, max_length=32, description="The vehicle's 17-character VIN")
    delegated: bool = Field(default=False, description="委托登记: a trustee registers for the owner")


class DeregistrationStartBody(ApiModel):
    """The vehicle to de-register: picked in 我的车辆 (the registration it lists), or by its VIN."""

    model_config = ConfigDict(extra="forbid")

    vin: str | None = Field(default=None, min_length=1, max_length=32)
    registration_id: str | None = Field(
        default=None, min_length=1, max_length=64, description="The registration 我的车辆 lists the car by"
    )


class PhoneBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(min_length=1, max_length=20, description="Mainland mobile number (11 digits)")
    code: str = Field(min_length=4, max_length=8, pattern=r"^[0-9]+$", description="The SMS code")


class OwnerIdentity(ApiModel):
    model_config = ConfigDict(extra="forbid")

    id_type: IdType
    id_number: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=64)
    address: str | None = Field(default=None, max_length=128)


class DelegationBody(ApiModel):
    """The owner who authorized the trustee; the letter is uploaded to the flow as
    ``authorization_letter`` first."""

    model_config = ConfigDict(extra="forbid")

    owner: OwnerIdentity
    owner_phone: str = Field(
        min_length=1,
        max_length=20,
        description="The owner's own mobile number: the owner confirms the delegation with its code",
    )


class DelegationConfirmBody(ApiModel):
    """How the owner agrees: ``sms`` with the code sent to the owner's phone (purpose
    ``delegation_confirm``) as the owner gave it, or ``face`` once the owner's own face check passed in
    the flow ``…/delegation/owner-check`` opened."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["sms", "face"] = "sms"
    code: str | None = Field(default=None, min_length=4, max_length=8, pattern=r"^[0-9]+$")


class PossessionBody(ApiModel):
    """How I show I hold the car: ``head_unit`` with the code the head unit shows, ``vehicle_document``
    with the photo uploaded to the flow (``vehicle_licence`` or ``purchase_invoice``), or
    ``sales_phone`` (the verified phone is the sales record's; checked by itself at the phone step)."""

    model_config = ConfigDict(extra="forbid")

    method: PossessionMethod
    code: str | None = Field(default=None, min_length=4, max_length=8, pattern=r"^[0-9]+$")
    document: Literal["vehicle_licence", "purchase_invoice"] | None = None


class ConsentsBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    accepted: list[AcceptedConsent] = Field(min_length=1, max_length=8)
    client: dict[str, str] = Field(default_factory=dict, max_length=8, description="User agent, screen")


class ConsentsView(ApiModel):
    documents: list[ConsentDocument]


def _client(given: dict[str, str]) -> dict[str, str]:
    """What the client said of itself (user agent, screen), bounded. The caller's IP address is not
    kept with the consent: it is personal data the record does not need."""
    return {k[:32]: v[:300] for k, v in given.items()}


def _started(pair: tuple[RegistrationView, bool]) -> Response | RegistrationView:
    view, created = pair
    return view if created else json_response(200, view.model_dump(mode="json"))


@route(
    bp,
    "/v1/consents",
    summary="The texts to accept (登记协议, 责任告知书, 人脸信息单独同意): version and hash",
    roles=None,
    response=ConsentsView,
    tags=("registration",),
)
def consents(call: Call) -> ConsentsView:
    return ConsentsView(documents=list(consent_documents()))


# --- registration ---------------------------------------------------------------------------------


@route(
    bp,
    "/v1/me/registrations",
    method="POST",
    summary="Start (or resume) registering the cards of a vehicle by its VIN: 201 new, 200 resumed",
    roles=OWNER,
    body=StartBody,
    response=lambda: views.RegistrationView,
    status=201,
    also=(200,),
    errors=(404, 409, 429),
    tags=("registration",),
    step="start",
)
def start_registration(call: Call) -> Response | RegistrationView:
    body: StartBody = call.body
    return _started(deps.registration_service().start(call.actor, REG, body.vin, delegated=body.delegated))


class OpenQuery(ApiModel):
    open: bool = Field(default=True, description="true (the default): the unfinished ones")


@route(
    bp,
    "/v1/me/registrations",
    summary="继续办理: my unfinished registrations and de-registrations (VIN tail, step due), newest first",
    roles=OWNER,
    query=OpenQuery,
    response=lambda: views.OpenRegistrations,
    tags=("registration",),
)
def open_registrations(call: Call) -> OpenRegistrations:
    if not call.query.open:
        raise InvalidField(
            "request.open",
            "已办结的业务请在“我的车辆”中查看",
            "Only unfinished ones are listed here: finished ones are in /v1/me/vehicles",
            field="open",
        )
    return views.OpenRegistrations(registrations=deps.registration_service().views.in_progress(call.actor))


@route(
    bp,
    "/v1/me/registrations/{registration_id}",
    summary="One of my registrations: the step due, the vehicle and cards (masked), the result",
    roles=OWNER,
    response=lambda: views.RegistrationView,
    errors=(404,),
    tags=("registration",),
)
def get_registration(call: Call, registration_id: str) -> RegistrationView:
    return deps.registration_service().get(registration_id, call.actor, REG)


@route(
    bp,
    "/v1/me/registrations/{registration_id}/confirm-vehicle",
    method="POST",
    summary="Confirm the vehicle shown is mine (确认车辆信息)",
    roles=OWNER,
    response=lambda: views.RegistrationView,
    errors=(404, 409),
    tags=("registration",),
    step="confirm_vehicle",
)
def confirm_vehicle(call: Call, registration_id: str) -> RegistrationView:
    return deps.registration_service().confirm_vehicle(registration_id, call.actor)


@route(
    bp,
    "/v1/me/registrations/{registration_id}/phone",
    method="POST",
    summary="The owner's or user's phone, proved by its SMS code (purpose owner_phone)",
    roles=OWNER,
    body=PhoneBody,
    response=lambda: views.RegistrationView,
    errors=(404, 409, 429),
    tags=("registration",),
    step="verify_phone",
)
def registration_phone(call: Call, registration_id: str) -> RegistrationView:
    body: PhoneBody = call.body
    return deps.registration_service().verify_phone(registration_id, call.actor, body.phone, body.code)


@route(
    bp,
    "/v1/me/registrations/{registration_id}/delegation",
    method="POST",
    summary="委托登记 (第十二条): the owner's identity; the authorization letter is in the flow",
    roles=OWNER,
    body=DelegationBody,
    response=lambda: views.RegistrationView,
    errors=(404, 409),
    tags=("registration",),
    step="delegation",
)
def delegation(call: Call, registration_id: str) -> RegistrationView:
    body: DelegationBody = call.body
    try:
        owner = TypedIdentity(**body.owner.model_dump(mode="json"))
    except InvalidField as err:
        raise under(err, "owner") from None
    return deps.registration_service().delegate(registration_id, call.actor, owner, body.owner_phone)


@route(
    bp,
    "/v1/me/registrations/{registration_id}/delegation/code",
    method="POST",
    summary="委托登记: send the owner a code (purpose delegation_confirm) to the phone the delegation gave",
    roles=OWNER,
    response=SentCode,
    status=202,
    errors=(404, 409, 428, 429, 503),
    tags=("registration",),
)
def delegation_code(call: Call, registration_id: str) -> SentCode:
    # No body: a captcha answer, when one is asked for, comes in X-Captcha-Id / X-Captcha-Answer.
    with asking_for_codes(call.request, call.actor):
        return deps.registration_service().send_delegation_code(registration_id, call.actor)


@route(
    bp,
    "/v1/me/registrations/{registration_id}/delegation/confirm",
    method="POST",
    summary="委托登记: the owner's agreement, by the code sent to their phone or their own face check",
    roles=OWNER,
    body=DelegationConfirmBody,
    response=lambda: views.RegistrationView,
    errors=(404, 409, 429),
    tags=("registration",),
    step="delegation_confirm",
)
def confirm_delegation(call: Call, registration_id: str) -> RegistrationView:
    body: DelegationConfirmBody = call.body
    service = deps.registration_service()
    if body.method == "face":
        return service.confirm_delegation_by_face(registration_id, call.actor)
    if body.code is None:
        raise InvalidField(
            "field.required", "请输入车主收到的短信验证码", "The code sent to the owner's phone", field="code"
        )
    return service.confirm_delegation(registration_id, call.actor, body.code)


@route(
    bp,
    "/v1/me/registrations/{registration_id}/delegation/owner-check",
    method="POST",
    summary="委托登记: a flow for the owner's own face check (the owner's ID card and live face)",
    roles=OWNER,
    response=lambda: views.RegistrationView,
    errors=(404, 409),
    tags=("registration",),
)
def owner_check(call: Call, registration_id: str) -> RegistrationView:
    return deps.registration_service().open_owner_check(registration_id, call.actor)


@route(
    bp,
    "/v1/me/registrations/{registration_id}/possession/head-unit-code",
    method="POST",
    summary="Show a one-time code on the car's head unit (车机验证码): the same answer for any VIN",
    roles=OWNER,
    response=lambda: possession.HeadUnitSent,
    status=202,
    errors=(404, 409, 422, 429),
    tags=("registration",),
)
def head_unit_code(call: Call, registration_id: str) -> HeadUnitSent:
    return deps.registration_service().send_head_unit_code(registration_id, call.actor)


@route(
    bp,
    "/v1/me/registrations/{registration_id}/possession",
    method="POST",
    summary="Show I hold the car: the head-unit code, or a 行驶证 / purchase invoice photo in the flow",
    roles=OWNER,
    body=PossessionBody,
    response=lambda: views.RegistrationView,
    errors=(404, 409, 422, 429),
    tags=("registration",),
    step="possession",
)
def prove_possession(call: Call, registration_id: str) -> RegistrationView:
    body: PossessionBody = call.body
    document = DocumentKind(body.document) if body.document else None
    return deps.registration_service().prove_possession(
        registration_id, call.actor, body.method, code=body.code, document=document
    )


@route(
    bp,
    "/v1/me/registrations/{registration_id}/contest",
    method="POST",
    summary="Contest the claim of the person the car is pending or registered under (a review case)",
    roles=OWNER,
    response=lambda: views.RegistrationView,
    errors=(404, 409),
    tags=("registration",),
)
def contest(call: Call, registration_id: str) -> RegistrationView:
    return deps.registration_service().contest(registration_id, call.actor)


@route(
    bp,
    "/v1/me/registrations/{registration_id}/transfer",
    method="POST",
    summary="过户: go on as the buyer of a car registered to someone else (after showing I hold it)",
    roles=OWNER,
    response=lambda: views.RegistrationView,
    errors=(404, 409),
    tags=("registration",),
    step="transfer",
)
def take_over(call: Call, registration_id: str) -> RegistrationView:
    return deps.registration_service().take_over(registration_id, call.actor)


@route(
    bp,
    "/v1/me/registrations/{registration_id}/consents",
    method="POST",
    summary="Accept the current texts (each by kind, version and hash); time and client are kept",
    roles=OWNER,
    body=ConsentsBody,
    response=lambda: views.RegistrationView,
    errors=(404, 409),
    tags=("registration",),
    step="consents",
)
def give_consents(call: Call, registration_id: str) -> RegistrationView:
    body: ConsentsBody = call.body
    return deps.registration_service().give_consents(
        registration_id, call.actor, body.accepted, _client(body.client)
    )


@route(
    bp,
    "/v1/me/registrations/{registration_id}/submit",
    method="POST",
    summary="Submit: the cards go pending and are pushed to the operator (once, however often it is sent)",
    roles=OWNER,
    response=lambda: views.RegistrationView,
    errors=(404, 409),
    tags=("registration",),
    step="submit",
)
def submit_registration(call: Call, registration_id: str) -> RegistrationView:
    return deps.registration_service().submit(registration_id, call.actor)


# --- de-registration ------------------------------------------------------------------------------


@route(
    bp,
    "/v1/me/deregistrations",
    method="POST",
    summary="Start (or resume) de-registering one of my vehicles (实名注销): 201 new, 200 resumed",
    roles=OWNER,
    body=DeregistrationStartBody,
    response=lambda: views.RegistrationView,
    status=201,
    also=(200,),
    errors=(404, 429),
    tags=("registration",),
    step="deregistration_start",
)
def start_deregistration(call: Call) -> Response | RegistrationView:
    body: DeregistrationStartBody = call.body
    service = deps.registration_service()
    if body.registration_id is not None:
        vin = service.views.vin_of(call.actor, body.registration_id)
    elif body.vin is not None:
        vin = body.vin
    else:
        raise InvalidField(
            "field.required", "请选择要注销的车辆", "Pick the vehicle to de-register", field="vin"
        )
    return _started(service.start(call.actor, DEREG, vin))


@route(
    bp,
    "/v1/me/deregistrations/{registration_id}",
    summary="One of my de-registrations: the step due and the result",
    roles=OWNER,
    response=lambda: views.RegistrationView,
    errors=(404,),
    tags=("registration",),
)
def get_deregistration(call: Call, registration_id: str) -> RegistrationView:
    return deps.registration_service().get(registration_id, call.actor, DEREG)


@route(
    bp,
    "/v1/me/deregistrations/{registration_id}/phone",
    method="POST",
    summary="The phone given at registration, proved by its SMS code (purpose deregistration)",
    roles=OWNER,
    body=PhoneBody,
    response=lambda: views.RegistrationView,
    errors=(404, 409, 429),
    tags=("registration",),
    step="deregistration_phone",
)
def deregistration_phone(call: Call, registration_id: str) -> RegistrationView:
    body: PhoneBody = call.body
    return deps.registration_service().verify_phone(registration_id, call.actor, body.phone, body.code)


@route(
    bp,
    "/v1/me/deregistrations/{registration_id}/submit",
    method="POST",
    summary="Submit the de-registration: the card returns to emergency-only and the operator is told",
    roles=OWNER,
    response=lambda: views.RegistrationView,
    errors=(404, 409),
    tags=("registration",),
    step="deregistration_submit",
)
def submit_deregistration(call: Call, registration_id: str) -> RegistrationView:
    return deps.registration_service().submit(registration_id, call.actor)


# --- the sandbox telematics (local stages) ---------------------------------------------------------


class HeadUnitView(ApiModel):
    messages: list[HeadUnitMessage]


@route(
    bp,
    "/v1/dev/head-unit/{vin}",
    summary="Local stages only (404 elsewhere): the newest codes the sandbox showed on a head unit",
    roles=None,
    response=HeadUnitView,
    errors=(404, 422),
    tags=("dev",),
)
def dev_head_unit(call: Call, vin: str) -> HeadUnitView:
    if not get_settings().is_local:
        raise NotFound("route.not_found", "接口不存在", "No such route")
    number = validators.validate("vin", vin, field="vin").value
    return HeadUnitView(messages=deps.vehicle_channel().recent(number, 5))


# --- my vehicles ----------------------------------------------------------------------------------


@route(
    bp,
    "/v1/me/vehicles",
    summary="My vehicles and their cards: states, functions, history and the last result (masked)",
    roles=OWNER,
    response=lambda: views.MyVehicles,
    tags=("registration",),
)
def my_vehicles(call: Call) -> MyVehicles:
    return deps.registration_service().my_vehicles(call.actor)


@route(
    bp,
    "/v1/admin/receipts/{receipt_no}",
    summary="Support: the registration, transfer or de-registration given a receipt number (受理编号)",
    roles=SUPPORT,
    response=lambda: views.ReceiptLookup,
    errors=(404,),
    tags=("registration",),
)
def receipt(call: Call, receipt_no: str) -> ReceiptLookup:
    return deps.registration_service().views.receipt(receipt_no)
