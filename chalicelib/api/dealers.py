"""Dealers (经销商, 第二十条): the OEM's admin creates and disables dealer accounts; a dealer account lists
the vehicles sold through its dealer code and starts an owner's registration on the spot: a single-use
hand-off the dealer's tablet opens the H5 client with, where the owner signs in with their own phone.

The dealer's answers carry vehicle facts and card states only: never the owner's name, ID, phone or
number (the dealer's pages keep nothing of the owner).
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from chalice.app import Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from chalicelib.api.http import ApiModel, Blueprint, Call, PageQuery, json_response, route
from chalicelib.core import deps
from chalicelib.core.auth import Principal, Role
from chalicelib.core.observability import logger

if TYPE_CHECKING:
    from chalicelib.accounts.domain import Account
    from chalicelib.cards.domain.inventory import Card, Vehicle
    from chalicelib.dealers.domain import DealerAccount

bp = Blueprint(__name__)

ADMIN = frozenset({Role.ADMIN})
DEALER = frozenset({Role.DEALER})
OWNER = frozenset({Role.OWNER})

#: Where the dealer's tablet opens the H5 client: the code rides in the fragment (never sent to a
#: server, never in an access log); the client drops it from the address at once.
HANDOFF_PATH = "/h5/#handoff="


class DealerAccountBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    login_name: str = Field(min_length=1, max_length=64, description="The dealer's login name (immutable)")
    phone: str = Field(
        min_length=1, max_length=20, description="The dealer's mobile: reset-by-SMS sets the password"
    )
    email: str | None = Field(default=None, max_length=254)


class DealerAccountView(ApiModel):
    account_id: str
    login_name: str
    dealer_code: str
    status: str = Field(description="active | disabled")
    phone_masked: str
    email_masked: str
    created_at: AwareDatetime
    password_set_by: str = Field(
        default="sms_reset", description="The dealer sets the password through the reset-by-SMS flow"
    )


class DealerAccountList(ApiModel):
    items: list[DealerAccountView]


class DealerCard(ApiModel):
    iccid: str
    state: str
    current: bool = True


class DealerVehicleView(ApiModel):
    vin: str
    brand: str
    model: str
    colour: str
    production_date: date | None
    cards: list[DealerCard] = Field(description="Card states only: never the holder nor the number")


class DealerVehicleList(ApiModel):
    items: list[DealerVehicleView]
    next_cursor: str | None = None


class AssistBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    vin: str = Field(min_length=1, max_length=32, description="A vehicle sold through the dealer")


class HandoffView(ApiModel):
    handoff_url: str = Field(description="Open on the dealer's tablet: the H5 client in tablet mode")
    code: str = Field(description="Single use; bound to the VIN and the dealer")
    vin: str
    expires_at: AwareDatetime


class RedeemBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(
        min_length=1, max_length=100, description="The hand-off code the tablet was opened with"
    )


def _account_view(account: Account) -> DealerAccountView:
    return DealerAccountView(
        account_id=account.account_id,
        login_name=account.login_name,
        dealer_code=account.dealer_code or "",
        status=account.status.value,
        phone_masked=account.phone_masked,
        email_masked=account.email_masked,
        created_at=account.created_at,
    )


def _dealer_code(value: str) -> str:
    from chalicelib.dealers.domain import DEALER_CODE, dealer_not_found

    code = value.strip()
    if not DEALER_CODE.match(code):
        raise dealer_not_found()
    return code


def _live(principal: Principal) -> None:
    deps.accounts().require_live_session(principal)


def _vehicle_view(vehicle: Vehicle, cards: list[Card]) -> DealerVehicleView:
    return DealerVehicleView(
        vin=vehicle.vin,
        brand=vehicle.brand,
        model=vehicle.model,
        colour=vehicle.colour,
        production_date=vehicle.production_date,
        cards=[DealerCard(iccid=c.iccid, state=c.state.value) for c in cards],
    )


# -- the OEM's admin -----------------------------------------------------------------------------


@route(
    bp,
    "/v1/admin/dealers/{dealer_code}/accounts",
    method="POST",
    summary="Create a dealer account for a dealer code of the inventory (the dealer sets its password "
    "by reset-by-SMS)",
    roles=ADMIN,
    body=DealerAccountBody,
    response=DealerAccountView,
    status=201,
    errors=(404, 409),
    tags=("dealers",),
)
def create_dealer_account(call: Call, dealer_code: str) -> DealerAccountView:
    from chalicelib.dealers.domain import DealerAccount

    body: DealerAccountBody = call.body
    code = _dealer_code(dealer_code)
    dealers = deps.dealers()
    dealers.require_known_code(code)
    account = deps.accounts().create_dealer_account(body.login_name, body.phone, body.email, code)
    dealers.register_account(
        DealerAccount(code, account.account_id, account.login_name, account.created_at, call.actor)
    )
    logger.info("dealer account created", extra={"dealer_code": code, "account_id": account.account_id})
    return _account_view(account)


@route(
    bp,
    "/v1/admin/dealers/{dealer_code}/accounts",
    summary="The accounts of a dealer code",
    roles=ADMIN,
    response=DealerAccountList,
    errors=(404,),
    tags=("dealers",),
)
def list_dealer_accounts(call: Call, dealer_code: str) -> DealerAccountList:
    code = _dealer_code(dealer_code)
    accounts = deps.accounts()
    items = []
    entry: DealerAccount
    for entry in deps.dealers().accounts_of(code):
        account = accounts.get(entry.account_id)
        if account is not None:
            items.append(_account_view(account))
    return DealerAccountList(items=items)


def _set_status(dealer_code: str, account_id: str, status: str) -> DealerAccountView:
    from chalicelib.accounts.domain import AccountStatus
    from chalicelib.dealers.domain import dealer_account_not_found

    code = _dealer_code(dealer_code)
    if deps.dealers().account_entry(code, account_id) is None:
        raise dealer_account_not_found()
    account = deps.accounts().set_status(account_id, AccountStatus(status))
    logger.info("dealer account status", extra={"account_id": account_id, "status": status})
    return _account_view(account)


@route(
    bp,
    "/v1/admin/dealers/{dealer_code}/accounts/{account_id}/disable",
    method="POST",
    summary="Disable a dealer account: every session of it ends, its tokens stop working",
    roles=ADMIN,
    response=DealerAccountView,
    errors=(404,),
    tags=("dealers",),
)
def disable_dealer_account(call: Call, dealer_code: str, account_id: str) -> DealerAccountView:
    return _set_status(dealer_code, account_id, "disabled")


@route(
    bp,
    "/v1/admin/dealers/{dealer_code}/accounts/{account_id}/enable",
    method="POST",
    summary="Enable a disabled dealer account again",
    roles=ADMIN,
    response=DealerAccountView,
    errors=(404,),
    tags=("dealers",),
)
def enable_dealer_account(call: Call, dealer_code: str, account_id: str) -> DealerAccountView:
    return _set_status(dealer_code, account_id, "active")


# -- the dealer ------------------------------------------------------------------------------------


@route(
    bp,
    "/v1/dealer/vehicles",
    summary="The vehicles sold through the caller's dealer code, by VIN, paged (card states only)",
    roles=DEALER,
    response=DealerVehicleList,
    query=PageQuery,
    tags=("dealers",),
)
def dealer_vehicles(call: Call) -> DealerVehicleList:
    _live(call.user)
    query: PageQuery = call.query
    found, cursor = deps.dealers().vehicles(call.user, query.limit, query.cursor)
    return DealerVehicleList(items=[_vehicle_view(v, cards) for v, cards in found], next_cursor=cursor)


@route(
    bp,
    "/v1/dealer/assisted-registrations",
    method="POST",
    summary="现场协助登记: a single-use hand-off of a vehicle's registration to its owner on the dealer's "
    "tablet",
    roles=DEALER,
    body=AssistBody,
    response=HandoffView,
    status=201,
    errors=(404,),
    tags=("dealers",),
)
def start_assisted_registration(call: Call) -> HandoffView:
    from chalicelib.kernel.validators import validate

    _live(call.user)
    body: AssistBody = call.body
    vin = validate("vin", body.vin.strip().upper(), field="vin").value
    issued = deps.dealers().start_assisted(call.user, vin)
    return HandoffView(
        handoff_url=HANDOFF_PATH + issued.code,
        code=issued.code,
        vin=issued.handoff.vin,
        expires_at=issued.handoff.expires_at,
    )


def _registration_view() -> type[BaseModel]:
    """The registration's view, the answer of a redeemed handoff (its module loads on first use)."""
    from chalicelib.registration import views

    return views.RegistrationView


@route(
    bp,
    "/v1/dealer/handoffs/redeem",
    method="POST",
    summary="The owner, signed in on the dealer's tablet, opens the registration the dealer handed off "
    "(once): 201 new, 200 resumed",
    roles=OWNER,
    body=RedeemBody,
    response=_registration_view,
    status=201,
    also=(200,),
    errors=(404, 409, 429),
    tags=("dealers", "registration"),
)
def redeem_handoff(call: Call) -> Response:
    from chalicelib.registration.domain.registrations import RegistrationKind

    body: RedeemBody = call.body
    dealers = deps.dealers()
    # Past the open registrations' limit the hand-off code is not spent (it can be redeemed later).
    deps.registration_service().check_room(call.user.subject)
    handoff = dealers.redeem(body.code.strip(), call.user.subject)
    view, created = deps.registration_service().start(
        call.user.subject, RegistrationKind.REGISTRATION, handoff.vin, assisted_by=handoff.dealer_code
    )
    dealers.attach(handoff, view.registration_id)
    logger.info("assisted registration opened", extra={"dealer_code": handoff.dealer_code})
    return json_response(201 if created else 200, view.model_dump(mode="json"))
