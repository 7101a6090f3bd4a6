"""Dealer accounts' registry entries and the on-the-spot hand-off (现场协助登记), with their refusals:
pure rules, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from chalicelib.kernel.errors import Forbidden, NotFound

#: A dealer code as the inventory writes it (``cards.inventory``).
DEALER_CODE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
#: A hand-off code as the dealer's tablet carries it (URL-safe random, 32 characters).
HANDOFF_CODE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")


@dataclass(frozen=True)
class DealerAccount:
    """A dealer account the OEM created for a dealer code (the account itself lives in accounts)."""

    dealer_code: str
    account_id: str
    login_name: str
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class Handoff:
    """A dealer's hand-off of one vehicle's registration to the owner on the dealer's tablet: single
    use, short-lived, bound to the VIN and the dealer. Kept under the keyed hash of its code."""

    code_hash: str
    vin: str
    dealer_code: str
    dealer_account_id: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    used_by: str | None = None  # the owner's sign-in subject
    registration_id: str | None = None


def handoff_hash_input(code: str) -> str:
    """What the keyed hash of a hand-off code is taken of (a purpose prefix: no other hash collides)."""
    return "dealer-handoff:" + code


def not_a_dealer() -> Forbidden:
    return Forbidden(
        "dealer.account_required",
        "请使用经销商账号登录",
        "Sign in with an active dealer account",
    )


def dealer_not_found() -> NotFound:
    return NotFound(
        "dealer.not_found",
        "库存中没有该经销商代码的车辆，请核对经销商代码",
        "No vehicle of the inventory names this dealer code",
        field="dealer_code",
    )


def dealer_account_not_found() -> NotFound:
    return NotFound("dealer.account_not_found", "未找到该经销商账号", "No such dealer account")


def handoff_invalid() -> NotFound:
    """One answer for an unknown, used or expired hand-off (and one whose dealer left)."""
    return NotFound(
        "handoff.invalid",
        "该登记链接已失效，请让经销商重新生成",
        "The hand-off is unknown, used or expired: ask the dealer for a new one",
        field="code",
    )
