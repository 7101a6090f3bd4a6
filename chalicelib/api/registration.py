"""The owner's registration (实名登记), delegated registration (委托登记), de-registration (实名注销) and
vehicles (我的车辆): one handler per step. The identity, photos and face checks of each are the
verification flow's routes (``/v1/flows/{flow_id}/...``), whose id the registration carries."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalice.app import Blueprint, Response
from pydantic import ConfigDict, Field

from chalicelib.api.http import ApiModel, Call, json_response, route
from chalicelib.consents.domain import AcceptedConsent, ConsentDocument
from chalicelib.consents.texts import consent_documents
from chalicelib.core import deps, lazy
from chalicelib.core.auth import Role
from chalicelib.kernel.personal import IdType
from chalicelib.registration.domain.registrations import RegistrationKind
from chalicelib.verification.domain.flows import TypedIdentity

if TYPE_CHECKING:
    from chalicelib.registration import views
    from chalicelib.registration.views import MyVehicles, RegistrationView
else:
    views = lazy.module("chalicelib.registration.views")

bp = Blueprint(__name__)

OWNER = frozenset({Role.OWNER})
REG = RegistrationKind.REGISTRATION
DEREG = RegistrationKind.DEREGISTRATION


class StartBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    vin: str = Field(min_length=1, max_length=32, description="The vehicle's 17-character VIN")
    delegated: bool = Field(default=False, description="委托登记: a trustee registers for the owner")


class DeregistrationStartBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    vin: str = Field(min_length=1, max_length=32)


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
    errors=(404, 409),
    tags=("registration",),
)
def start_registration(call: Call) -> Response | RegistrationView:
    body: StartBody = call.body
    return _started(deps.registration_service().start(call.actor, REG, body.vin, delegated=body.delegated))


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
)
def delegation(call: Call, registration_id: str) -> RegistrationView:
    body: DelegationBody = call.body
    owner = TypedIdentity(**body.owner.model_dump(mode="json"))
    return deps.registration_service().delegate(registration_id, call.actor, owner)


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
    errors=(404,),
    tags=("registration",),
)
def start_deregistration(call: Call) -> Response | RegistrationView:
    body: DeregistrationStartBody = call.body
    return _started(deps.registration_service().start(call.actor, DEREG, body.vin))


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
)
def submit_deregistration(call: Call, registration_id: str) -> RegistrationView:
    return deps.registration_service().submit(registration_id, call.actor)


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
