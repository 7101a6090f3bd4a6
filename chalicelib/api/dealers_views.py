"""The models of the dealers' routes (``chalicelib.api.dealers``): dealer accounts, the dealer's
vehicles (card states only), the hand-off of an owner's registration. Loaded on their first use: a
cold start builds none of them."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from pydantic import AwareDatetime, ConfigDict, Field

from chalicelib.api.models import ApiModel

if TYPE_CHECKING:
    from chalicelib.accounts.domain import Account
    from chalicelib.cards.domain.inventory import Card, Vehicle


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


def account_view(account: Account) -> DealerAccountView:
    """A dealer account as the OEM's admin sees it (phone and e-mail masked)."""
    return DealerAccountView(
        account_id=account.account_id,
        login_name=account.login_name,
        dealer_code=account.dealer_code or "",
        status=account.status.value,
        phone_masked=account.phone_masked,
        email_masked=account.email_masked,
        created_at=account.created_at,
    )


def vehicle_view(vehicle: Vehicle, cards: list[Card]) -> DealerVehicleView:
    """A vehicle sold through the dealer: its facts and its cards' states, nothing of the owner."""
    return DealerVehicleView(
        vin=vehicle.vin,
        brand=vehicle.brand,
        model=vehicle.model,
        colour=vehicle.colour,
        production_date=vehicle.production_date,
        cards=[DealerCard(iccid=c.iccid, state=c.state.value) for c in cards],
    )
