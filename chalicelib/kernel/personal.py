"""Personal data of the people and companies cards are registered to, and how it is masked.

第十九条 and PIPL: names, ID numbers, addresses and phone numbers are sensitive. They are
stored encrypted per field and shown masked to every role that does not need them in clear.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class IdType(StrEnum):
    """Identity documents (证件类型); the values are also validator kinds."""

    RESIDENT_ID = "resident_id"  # 居民身份证
    HK_MACAU_PERMIT = "hk_macau_permit"  # 港澳居民居住证
    TAIWAN_PERMIT = "taiwan_permit"  # 台湾居民居住证
    FOREIGN_PERMANENT_ID = "foreign_permanent_id"  # 外国人永久居留身份证
    HK_MACAU_PASS = "hk_macau_pass"  # 港澳居民来往内地通行证
    TAIWAN_PASS = "taiwan_pass"  # 台湾居民来往大陆通行证
    PASSPORT = "passport"  # 护照
    USCC = "uscc"  # 统一社会信用代码 (enterprises)


def id_lookup_value(id_type: IdType, id_number: str) -> str:
    """What the keyed hash of an ID is computed over: the document type and its normalised number."""
    return f"{id_type.value}:{id_number.strip().upper()}"


class PartyKind(StrEnum):
    PERSON = "person"
    ENTERPRISE = "enterprise"


#: The fields stored encrypted (and never logged).
PERSONAL_FIELDS = ("name", "id_number", "address", "phone")


class Party(BaseModel):
    """A person or company a card can be registered to (登记人)."""

    model_config = ConfigDict(frozen=True)

    party_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    kind: PartyKind = PartyKind.PERSON
    id_type: IdType
    id_number: str
    name: str
    address: str | None = None
    phone: str | None = None
    id_valid_until: date | None = None  # None with ``id_permanent`` means 长期
    id_permanent: bool = False
    created_at: datetime | None = None


def mask_id_number(value: str) -> str:
    """``11010519491231002X`` → ``1101**********002X``; short documents keep less."""
    keep = 4 if len(value) >= 12 else max(1, len(value) // 4)
    return value[:keep] + "*" * (len(value) - 2 * keep) + value[-keep:]


def mask_phone(value: str) -> str:
    """``13812341234`` → ``138****1234``; IoT numbers keep 3 leading and 4 trailing digits too."""
    if len(value) <= 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def mask_name(value: str) -> str:
    """``张三`` → ``张*``; ``欧阳娜娜`` → ``欧***``; Latin names keep their first letter."""
    if not value:
        return value
    return value[0] + "*" * max(1, len(value) - 1)


def mask_address(value: str) -> str:
    """Keep the first 6 characters (province and city), hide the rest."""
    return value[:6] + "****" if len(value) > 6 else "****"


def mask_vin(value: str) -> str:
    """Owners see the VIN tail only (SPEC §3: vehicle shown masked)."""
    return "*" * (len(value) - 6) + value[-6:]


class PartyView(BaseModel):
    """A party as an API response: masked unless the caller's role needs it in clear."""

    party_id: str
    kind: PartyKind
    id_type: IdType
    id_number: str
    name: str
    address: str | None = None
    phone: str | None = None
    masked: bool

    @classmethod
    def of(cls, party: Party, *, reveal: bool) -> PartyView:
        if reveal:
            return cls(**party.model_dump(include=set(cls.model_fields)), masked=False)
        enterprise = party.kind is PartyKind.ENTERPRISE
        return cls(
            party_id=party.party_id,
            kind=party.kind,
            id_type=party.id_type,
            # A company's name and USCC are public facts; a person's are not.
            id_number=party.id_number if enterprise else mask_id_number(party.id_number),
            name=party.name if enterprise else mask_name(party.name),
            address=mask_address(party.address) if party.address else None,
            phone=mask_phone(party.phone) if party.phone else None,
            masked=True,
        )
