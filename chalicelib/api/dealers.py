"""Dealers (经销商, 第二十条): the OEM's admin creates and disables dealer accounts; a dealer account lists
the vehicles sold through its dealer code and starts an owner's registration on the spot: a single-use
hand-off the dealer's tablet opens the H5 client with, where the owner signs in with their own phone.

The dealer's answers carry vehicle facts and card states only: never the owner's name, ID, phone or
number (the dealer's pages keep nothing of the owner).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalice.app import Response

from chalicelib.api.http import Blueprint, Call, json_response, route
from chalicelib.core import deps, lazy
from chalicelib.core.auth import Principal, Role
from chalicelib.core.observability import logger

if TYPE_CHECKING:
    from pydantic import BaseModel

    from chalicelib.api import dealers_views as views
    from chalicelib.api import models as api_models
    from chalicelib.dealers.domain import DealerAccount
else:
    api_models = lazy.module("chalicelib.api.models")
    views = lazy.module("chalicelib.api.dealers_views")

bp = Blueprint(__name__)

ADMIN = frozenset({Role.ADMIN})
DEALER = frozenset({Role.DEALER})
OWNER = frozenset({Role.OWNER})

#: Where the dealer's tablet opens the H5 client: the code rides in the fragment (never sent to a
#: server, never in an access log); the client drops it from the address at once.
HANDOFF_PATH = "/h5/#handoff="


def _dealer_code(value: str) -> str:
    from chalicelib.dealers.domain import DEALER_CODE, dealer_not_found

    code = value.strip()
    if not DEALER_CODE.match(code):
        raise dealer_not_found()
    return code


def _live(principal: Principal) -> None:
    deps.accounts().require_live_session(principal)


# -- the OEM's admin -----------------------------------------------------------------------------


@route(
    bp,
    "/v1/admin/dealers/{dealer_code}/accounts",
    method="POST",
    summary="Create a dealer account for a dealer code of the inventory (the dealer sets its password "
    "by reset-by-SMS)",
    roles=ADMIN,
    body=lambda: views.DealerAccountBody,
    response=lambda: views.DealerAccountView,
    status=201,
    errors=(404, 409),
    tags=("dealers",),
)
def create_dealer_account(call: Call, dealer_code: str) -> views.DealerAccountView:
    from chalicelib.dealers.domain import DealerAccount

    body: views.DealerAccountBody = call.body
    code = _dealer_code(dealer_code)
    dealers = deps.dealers()
    dealers.require_known_code(code)
    account = deps.accounts().create_dealer_account(body.login_name, body.phone, body.email, code)
    dealers.register_account(
        DealerAccount(code, account.account_id, account.login_name, account.created_at, call.actor)
    )
    logger.info("dealer account created", extra={"dealer_code": code, "account_id": account.account_id})
    return views.account_view(account)


@route(
    bp,
    "/v1/admin/dealers/{dealer_code}/accounts",
    summary="The accounts of a dealer code",
    roles=ADMIN,
    response=lambda: views.DealerAccountList,
    errors=(404,),
    tags=("dealers",),
)
def list_dealer_accounts(call: Call, dealer_code: str) -> views.DealerAccountList:
    code = _dealer_code(dealer_code)
    accounts = deps.accounts()
    items = []
    entry: DealerAccount
    for entry in deps.dealers().accounts_of(code):
        account = accounts.get(entry.account_id)
        if account is not None:
            items.append(views.account_view(account))
    return views.DealerAccountList(items=items)


def _set_status(dealer_code: str, account_id: str, status: str) -> views.DealerAccountView:
    from chalicelib.accounts.domain import AccountStatus
    from chalicelib.dealers.domain import dealer_account_not_found

    code = _dealer_code(dealer_code)
    if deps.dealers().account_entry(code, account_id) is None:
        raise dealer_account_not_found()
    account = deps.accounts().set_status(account_id, AccountStatus(status))
    logger.info("dealer account status", extra={"account_id": account_id, "status": status})
    return views.account_view(account)


@route(
    bp,
    "/v1/admin/dealers/{dealer_code}/accounts/{account_id}/disable",
    method="POST",
    summary="Disable a dealer account: every session of it ends, its tokens stop working",
    roles=ADMIN,
    response=lambda: views.DealerAccountView,
    errors=(404,),
    tags=("dealers",),
)
def disable_dealer_account(call: Call, dealer_code: str, account_id: str) -> views.DealerAccountView:
    return _set_status(dealer_code, account_id, "disabled")


@route(
    bp,
    "/v1/admin/dealers/{dealer_code}/accounts/{account_id}/enable",
    method="POST",
    summary="Enable a disabled dealer account again",
    roles=ADMIN,
    response=lambda: views.DealerAccountView,
    errors=(404,),
    tags=("dealers",),
)
def enable_dealer_account(call: Call, dealer_code: str, account_id: str) -> views.DealerAccountView:
    return _set_status(dealer_code, account_id, "active")


# -- the dealer ------------------------------------------------------------------------------------


@route(
    bp,
    "/v1/dealer/vehicles",
    summary="The vehicles sold through the caller's dealer code, by VIN, paged (card states only)",
    roles=DEALER,
    response=lambda: views.DealerVehicleList,
    query=lambda: api_models.PageQuery,
    tags=("dealers",),
)
def dealer_vehicles(call: Call) -> views.DealerVehicleList:
    _live(call.user)
    query: api_models.PageQuery = call.query
    found, cursor = deps.dealers().vehicles(call.user, query.limit, query.cursor)
    return views.DealerVehicleList(
        items=[views.vehicle_view(v, cards) for v, cards in found], next_cursor=cursor
    )


@route(
    bp,
    "/v1/dealer/assisted-registrations",
    method="POST",
    summary="现场协助登记: a single-use hand-off of a vehicle's registration to its owner on the dealer's "
    "tablet",
    roles=DEALER,
    body=lambda: views.AssistBody,
    response=lambda: views.HandoffView,
    status=201,
    errors=(404,),
    tags=("dealers",),
)
def start_assisted_registration(call: Call) -> views.HandoffView:
    from chalicelib.kernel.validators import validate

    _live(call.user)
    body: views.AssistBody = call.body
    vin = validate("vin", body.vin.strip().upper(), field="vin").value
    issued = deps.dealers().start_assisted(call.user, vin)
    return views.HandoffView(
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
    body=lambda: views.RedeemBody,
    response=_registration_view,
    status=201,
    also=(200,),
    errors=(404, 409, 429),
    tags=("dealers", "registration"),
)
def redeem_handoff(call: Call) -> Response:
    from chalicelib.registration.domain.registrations import RegistrationKind

    body: views.RedeemBody = call.body
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
