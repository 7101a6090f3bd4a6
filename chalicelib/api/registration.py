"""The owner's registration (实名登记), delegated registration (委托登记), de-registration (实名注销) and
vehicles (我的车辆): one handler per step. The identity, photos and face checks of each are the
verification flow's routes (``/v1/flows/{flow_id}/...``), whose id the registration carries."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalice.app import Response

from chalicelib.api.clients import asking_for_codes
from chalicelib.api.http import Blueprint, Call, json_response, route
from chalicelib.core import deps, lazy
from chalicelib.core.auth import Role
from chalicelib.core.settings import get_settings
from chalicelib.kernel.errors import InvalidField, NotFound
from chalicelib.kernel.names import under

if TYPE_CHECKING:
    from chalicelib.api import registration_views as models
    from chalicelib.consents import texts
    from chalicelib.kernel import validators
    from chalicelib.registration import possession, views
    from chalicelib.registration.domain import registrations
    from chalicelib.registration.possession import HeadUnitSent
    from chalicelib.registration.views import (
        MyVehicles,
        OpenRegistrations,
        ReceiptLookup,
        RegistrationView,
    )
    from chalicelib.sms import domain as sms
    from chalicelib.verification.domain import documents, flows
else:
    # The routes' models, and the domains they name, load with the first request that needs them.
    models = lazy.module("chalicelib.api.registration_views")
    texts = lazy.module("chalicelib.consents.texts")
    views = lazy.module("chalicelib.registration.views")
    possession = lazy.module("chalicelib.registration.possession")
    registrations = lazy.module("chalicelib.registration.domain.registrations")
    sms = lazy.module("chalicelib.sms.domain")
    documents = lazy.module("chalicelib.verification.domain.documents")
    flows = lazy.module("chalicelib.verification.domain.flows")
    validators = lazy.module("chalicelib.kernel.validators")

bp = Blueprint(__name__)

OWNER = frozenset({Role.OWNER})
#: OEM staff who answer an owner calling with a receipt number (受理编号).
SUPPORT = frozenset({Role.ADMIN, Role.REVIEWER, Role.AUDITOR})


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
    response=lambda: models.ConsentsView,
    tags=("registration",),
)
def consents(call: Call) -> models.ConsentsView:
    return models.ConsentsView(documents=list(texts.consent_documents()))


# --- registration ---------------------------------------------------------------------------------


@route(
    bp,
    "/v1/me/registrations",
    method="POST",
    summary="Start (or resume) registering the cards of a vehicle by its VIN: 201 new, 200 resumed",
    roles=OWNER,
    body=lambda: models.StartBody,
    response=lambda: views.RegistrationView,
    status=201,
    also=(200,),
    errors=(404, 409, 429),
    tags=("registration",),
    step="start",
)
def start_registration(call: Call) -> Response | RegistrationView:
    body: models.StartBody = call.body
    return _started(
        deps.registration_service().start(
            call.actor, registrations.RegistrationKind.REGISTRATION, body.vin, delegated=body.delegated
        )
    )


@route(
    bp,
    "/v1/me/registrations",
    summary="继续办理: my unfinished registrations and de-registrations (VIN tail, step due), newest first",
    roles=OWNER,
    query=lambda: models.OpenQuery,
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
    return deps.registration_service().get(
        registration_id, call.actor, registrations.RegistrationKind.REGISTRATION
    )


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
    body=lambda: models.PhoneBody,
    response=lambda: views.RegistrationView,
    errors=(404, 409, 429),
    tags=("registration",),
    step="verify_phone",
)
def registration_phone(call: Call, registration_id: str) -> RegistrationView:
    body: models.PhoneBody = call.body
    return deps.registration_service().verify_phone(registration_id, call.actor, body.phone, body.code)


@route(
    bp,
    "/v1/me/registrations/{registration_id}/delegation",
    method="POST",
    summary="委托登记 (第十二条): the owner's identity; the authorization letter is in the flow",
    roles=OWNER,
    body=lambda: models.DelegationBody,
    response=lambda: views.RegistrationView,
    errors=(404, 409),
    tags=("registration",),
    step="delegation",
)
def delegation(call: Call, registration_id: str) -> RegistrationView:
    body: models.DelegationBody = call.body
    try:
        owner = flows.TypedIdentity(**body.owner.model_dump(mode="json"))
    except InvalidField as err:
        raise under(err, "owner") from None
    return deps.registration_service().delegate(registration_id, call.actor, owner, body.owner_phone)


@route(
    bp,
    "/v1/me/registrations/{registration_id}/delegation/code",
    method="POST",
    summary="委托登记: send the owner a code (purpose delegation_confirm) to the phone the delegation gave",
    roles=OWNER,
    response=lambda: sms.SentCode,
    status=202,
    errors=(404, 409, 428, 429, 503),
    tags=("registration",),
)
def delegation_code(call: Call, registration_id: str) -> sms.SentCode:
    # No body: a captcha answer, when one is asked for, comes in X-Captcha-Id / X-Captcha-Answer.
    with asking_for_codes(call.request, call.actor):
        return deps.registration_service().send_delegation_code(registration_id, call.actor)


@route(
    bp,
    "/v1/me/registrations/{registration_id}/delegation/confirm",
    method="POST",
    summary="委托登记: the owner's agreement, by the code sent to their phone or their own face check",
    roles=OWNER,
    body=lambda: models.DelegationConfirmBody,
    response=lambda: views.RegistrationView,
    errors=(404, 409, 429),
    tags=("registration",),
    step="delegation_confirm",
)
def confirm_delegation(call: Call, registration_id: str) -> RegistrationView:
    body: models.DelegationConfirmBody = call.body
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
    body=lambda: models.PossessionBody,
    response=lambda: views.RegistrationView,
    errors=(404, 409, 422, 429),
    tags=("registration",),
    step="possession",
)
def prove_possession(call: Call, registration_id: str) -> RegistrationView:
    body: models.PossessionBody = call.body
    document = documents.DocumentKind(body.document) if body.document else None
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
    body=lambda: models.ConsentsBody,
    response=lambda: views.RegistrationView,
    errors=(404, 409),
    tags=("registration",),
    step="consents",
)
def give_consents(call: Call, registration_id: str) -> RegistrationView:
    body: models.ConsentsBody = call.body
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
    body=lambda: models.DeregistrationStartBody,
    response=lambda: views.RegistrationView,
    status=201,
    also=(200,),
    errors=(404, 429),
    tags=("registration",),
    step="deregistration_start",
)
def start_deregistration(call: Call) -> Response | RegistrationView:
    body: models.DeregistrationStartBody = call.body
    service = deps.registration_service()
    if body.registration_id is not None:
        vin = service.views.vin_of(call.actor, body.registration_id)
    elif body.vin is not None:
        vin = body.vin
    else:
        raise InvalidField(
            "field.required", "请选择要注销的车辆", "Pick the vehicle to de-register", field="vin"
        )
    return _started(service.start(call.actor, registrations.RegistrationKind.DEREGISTRATION, vin))


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
    return deps.registration_service().get(
        registration_id, call.actor, registrations.RegistrationKind.DEREGISTRATION
    )


@route(
    bp,
    "/v1/me/deregistrations/{registration_id}/phone",
    method="POST",
    summary="The phone given at registration, proved by its SMS code (purpose deregistration)",
    roles=OWNER,
    body=lambda: models.PhoneBody,
    response=lambda: views.RegistrationView,
    errors=(404, 409, 429),
    tags=("registration",),
    step="deregistration_phone",
)
def deregistration_phone(call: Call, registration_id: str) -> RegistrationView:
    body: models.PhoneBody = call.body
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


@route(
    bp,
    "/v1/dev/head-unit/{vin}",
    summary="Local stages only (404 elsewhere): the newest codes the sandbox showed on a head unit",
    roles=None,
    response=lambda: models.HeadUnitView,
    errors=(404, 422),
    tags=("dev",),
)
def dev_head_unit(call: Call, vin: str) -> models.HeadUnitView:
    if not get_settings().is_local:
        raise NotFound("route.not_found", "接口不存在", "No such route")
    number = validators.validate("vin", vin, field="vin").value
    return models.HeadUnitView(messages=deps.vehicle_channel().recent(number, 5))


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
