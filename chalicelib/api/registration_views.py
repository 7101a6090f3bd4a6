"""The models of the owner's registration routes (``chalicelib.api.registration``): the bodies of each
step, the consents to accept, the sandbox head unit's codes. Loaded on their first use: a cold start
builds none of them, nor imports the registration's and the consents' domain."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from chalicelib.api.models import ApiModel
from chalicelib.consents.domain import AcceptedConsent, ConsentDocument
from chalicelib.kernel.personal import IdType
from chalicelib.registration.domain.registrations import PossessionMethod
from chalicelib.registration.ports import HeadUnitMessage


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


class OpenQuery(ApiModel):
    open: bool = Field(default=True, description="true (the default): the unfinished ones")


class HeadUnitView(ApiModel):
    messages: list[HeadUnitMessage]
