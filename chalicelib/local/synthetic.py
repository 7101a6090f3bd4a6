"""Synthetic, valid identifiers and inventories for demo data, tests and benchmarks.

The check characters are computed here from the standards (GB 11643 / ISO 7064 MOD 11-2, ISO 3779,
Luhn), independently of the validators, so that tests built on these values can catch a validator bug.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterator
from datetime import date, timedelta

from chalicelib.cards.inventory import COLUMNS
from chalicelib.kernel.operators import Operator

_VIN_CHARS = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"
_VIN_VALUES = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
#: Chinese WMIs (world manufacturer identifiers) of the kind an OEM's inventory holds.
_WMIS = ("LSV", "LFV", "LGB", "LBV", "LVS", "LSG", "LDC", "LGW")

ICCID_PREFIX = {
    Operator.CHINA_MOBILE: ("898600", "898602", "898604", "898607", "898608"),
    Operator.CHINA_UNICOM: ("898601", "898606", "898609"),
    Operator.CHINA_TELECOM: ("898603", "898611"),
    Operator.CHINA_BROADNET: ("898615",),
}
MSISDN_PREFIX = {
    Operator.CHINA_MOBILE: ("14400", "14410", "14800", "10648"),
    Operator.CHINA_UNICOM: ("14600", "10646"),
    Operator.CHINA_TELECOM: ("14100", "10649"),
}

BRANDS = (("启航", ("QH-5", "QH-7", "QH-EV")), ("远行", ("YX-S", "YX-L")))
COLOURS = ("白", "黑", "银", "蓝", "红", "灰")


def vin_check_char(vin17: str) -> str:
    total = sum(_VIN_VALUES[c] * w for c, w in zip(vin17, _VIN_WEIGHTS, strict=True))
    rem = total % 11
    return "X" if rem == 10 else str(rem)


def make_vin(rng: random.Random) -> str:
    body = rng.choice(_WMIS) + "".join(rng.choice(_VIN_CHARS) for _ in range(14))
    return body[:8] + vin_check_char(body) + body[9:]


def luhn_check_digit(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def make_iccid(rng: random.Random, operator: Operator) -> str:
    prefix = rng.choice(ICCID_PREFIX[operator])
    if operator is Operator.CHINA_MOBILE:  # 20 characters, some of them letters
        return prefix + "".join(rng.choice("0123456789ABCDEF") for _ in range(14))
    body = prefix + "".join(rng.choice("0123456789") for _ in range(13))
    return body + luhn_check_digit(body)


def make_msisdn(rng: random.Random, operator: Operator) -> str:
    prefixes = MSISDN_PREFIX.get(operator, MSISDN_PREFIX[Operator.CHINA_MOBILE])
    return rng.choice(prefixes) + "".join(rng.choice("0123456789") for _ in range(8))


_RIC_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def resident_id_check_char(first17: str) -> str:
    total = sum(int(c) * w for c, w in zip(first17, _RIC_WEIGHTS, strict=True))
    return "10X98765432"[total % 11]


def make_resident_id(rng: random.Random, region: str = "110105") -> str:
    born = date(1960, 1, 1) + timedelta(days=rng.randrange(0, 40 * 365))
    body = region + born.strftime("%Y%m%d") + f"{rng.randrange(0, 1000):03d}"
    return body + resident_id_check_char(body)


def make_mobile(rng: random.Random) -> str:
    return rng.choice(("138", "139", "150", "186", "177")) + f"{rng.randrange(0, 10**8):08d}"


def inventory_rows(vehicles: int, *, seed: int = 7, cards_per_vehicle: int = 1) -> Iterator[dict[str, str]]:
    """Rows of a valid inventory file: one per card, vehicle facts repeated per card."""
    rng = random.Random(seed)
    operators = (Operator.CHINA_MOBILE, Operator.CHINA_UNICOM, Operator.CHINA_TELECOM)
    seen: set[str] = set()
    made = 0
    while made < vehicles:
        vin = make_vin(rng)
        if vin in seen:
            continue
        seen.add(vin)
        made += 1
        brand, models = rng.choice(BRANDS)
        vehicle = {
            "vin": vin,
            "engine_no": f"E{rng.randrange(10**8, 10**9)}",
            "brand": brand,
            "model": rng.choice(models),
            "colour": rng.choice(COLOURS),
            "production_date": (date(2025, 1, 1) + timedelta(days=rng.randrange(0, 600))).isoformat(),
            "dealer_code": f"D{rng.randrange(100, 999)}",
        }
        for _ in range(cards_per_vehicle):
            operator = rng.choice(operators)
            yield {**vehicle, "iccid": make_iccid(rng, operator), "msisdn": make_msisdn(rng, operator)}


def inventory_csv(vehicles: int, *, seed: int = 7, cards_per_vehicle: int = 1) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(
        out,
        fieldnames=COLUMNS,
        lineterminator="\n",
    )
    writer.writeheader()
    writer.writerows(inventory_rows(vehicles, seed=seed, cards_per_vehicle=cards_per_vehicle))
    return out.getvalue()
