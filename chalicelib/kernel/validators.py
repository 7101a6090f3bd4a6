"""Identity and number validators (证件号码、统一社会信用代码、VIN、ICCID、手机号码) — SPEC §2, 第五条.

Pure domain code: no I/O. ``validate(kind, value)`` normalises ``value`` and either returns a
:class:`Validated` or raises :class:`~chalicelib.kernel.errors.InvalidField` with a stable code and a
Chinese + English message naming the field. Messages and details never echo the value (it is PII).

Some values are valid but must go to manual review (人工审核); they come back with ``review=True``
and a ``review_code`` instead of an error.

One module for every kind: they share the normaliser, the error codes and the GB 11643 core, and the
table below documents them together.

Normalisation (every kind): full-width characters are folded to ASCII (NFKC), spaces and dashes
are removed, letters are upper-cased. ``mobile`` and ``msisdn`` also drop a leading ``+86``/``0086``.
A 15-digit legacy resident ID is converted to 18 digits.

Error codes (``InvalidField.code``; ``<id>`` is one of ``resident_id``, ``hk_macau_permit``,
``taiwan_permit``, ``foreign_permanent_id``):

=============================  ===================================================================
code                           meaning
=============================  ===================================================================
``kind.unknown``               no validator for the requested kind
``<id>.length``                not 18 characters (``resident_id`` also takes 15 digits;
                               ``foreign_permanent_id`` also takes the 15-character 2017 format)
``<id>.format``                18-character form: first 17 not digits or last not a digit/X
                               (``foreign_permanent_id``: 2023 form must start with 9; 2017 form
                               is 3 letters + 12 digits)
``<id>.province``              unknown province prefix, or a prefix that belongs to another
                               document kind (81/82 → hk_macau_permit, 83 → taiwan_permit,
                               9 → foreign_permanent_id)
``<id>.check_char``            ISO 7064 MOD 11-2 check character wrong
``<id>.birth_date``            birth date not a real date, before 1900-01-01 or in the future
``hk_macau_pass.format``       not H/M + 8 or 10 digits
``taiwan_pass.format``         not 8 digits
``passport.length``            not 5–17 characters
``passport.format``            not only letters and digits
``uscc.length``                not 18 characters
``uscc.charset``               a character outside ``0-9A-HJ-NPQRTUWXY`` in the first 17, or a
                               check character that is not a letter or digit
``vin.length``                 not 17 characters
``vin.charset``                a character outside ``0-9A-Z`` or one of I, O, Q
``vin.check_digit``            ISO 3779 / GB 16735 check digit (position 9) wrong
``iccid.format``               a character that is not a hexadecimal digit
``iccid.length``               not 18–20 characters
``iccid.prefix``               does not start with 8986 (China)
``iccid.operator``             ``8986xx`` issuer code of no known operator
``iccid.check_digit``          Luhn check failed (20-digit numeric China Unicom/Telecom only)
``mobile.format``              not an 11-digit mainland mobile number ``1[3-9]xxxxxxxxx``
``msisdn.format``              not a 13-digit IoT card number
``msisdn.prefix``              13 digits, but not an IoT number segment of a known operator
=============================  ===================================================================

Review codes (``Validated.review_code``, with ``review=True``):

=============================  ===================================================================
code                           meaning
=============================  ===================================================================
``<id>.unknown_county``        6-digit region code not in python-stdnum's county table, or only in
                               use before the birth year (for a permit: not 810000/820000/830000);
                               everything else is valid
``uscc.check_char``            mod-31 check character wrong; some real early codes fail it
=============================  ===================================================================

Operators (运营商) are derived for ``iccid`` (898600/02/04/07/08 China Mobile, 898601/06/09 China
Unicom, 898603/11 China Telecom, 898615 China Broadnet) and ``msisdn`` (1440x/1441x/148xx and
10648 China Mobile, 146xx and 10646 China Unicom, 1410x and 10649 China Telecom).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import date
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field
from stdnum import luhn, numdb
from stdnum.cn import ric
from stdnum.cn import uscc as stdnum_uscc
from stdnum.exceptions import InvalidComponent
from vininfo import Vin, VininfoException

from chalicelib.kernel.clock import china_day, utc_now
from chalicelib.kernel.errors import InvalidField
from chalicelib.kernel.operators import Operator, iccid_operator, msisdn_operator


class Validated(BaseModel):
    """A value that passed its validator, in normalised form."""

    model_config = ConfigDict(frozen=True)

    kind: str
    value: str
    operator: Operator | None = None
    review: bool = False
    review_code: str | None = None
    details: dict[str, str] = Field(default_factory=dict)


#: code → (Chinese, English). Every code raised goes through this table.
_MESSAGES: dict[str, tuple[str, str]] = {
    "kind.unknown": ("不支持的号码类型", "This kind of number is not supported"),
    # 居民身份证
    "resident_id.length": (
        "身份证号码应为18位（或15位旧号码）",
        "The ID number must have 18 characters (or 15 digits for an old number)",
    ),
    "resident_id.format": (
        "身份证号码前17位应为数字，最后一位应为数字或X",
        "The ID number must be 17 digits followed by a digit or X",
    ),
    "resident_id.province": (
        "身份证号码前两位不是有效的省级行政区划代码",
        "The first two digits of the ID number are not a valid province code",
    ),
    "resident_id.check_char": (
        "身份证号码有误，请对照证件逐位核对（最后一位可能是字母 X）",
        "The ID number is wrong; check it against the card digit by digit (the last may be the letter X)",
    ),
    "resident_id.birth_date": (
        "身份证号码中的出生日期无效",
        "The birth date in the ID number is not a valid past date",
    ),
    # 港澳居民居住证
    "hk_macau_permit.length": (
        "港澳居民居住证号码应为18位",
        "The Hong Kong/Macau residence permit number must have 18 characters",
    ),
    "hk_macau_permit.format": (
        "港澳居民居住证号码前17位应为数字，最后一位应为数字或X",
        "The Hong Kong/Macau residence permit number must be 17 digits followed by a digit or X",
    ),
    "hk_macau_permit.province": (
        "港澳居民居住证号码应以81（香港）或82（澳门）开头",
        "The Hong Kong/Macau residence permit number must start with 81 (Hong Kong) or 82 (Macau)",
    ),
    "hk_macau_permit.check_char": (
        "港澳居民居住证号码有误，请对照证件逐位核对（最后一位可能是字母 X）",
        "The Hong Kong/Macau residence permit number's check character is wrong",
    ),
    "hk_macau_permit.birth_date": (
        "港澳居民居住证号码中的出生日期无效",
        "The birth date in the Hong Kong/Macau residence permit number is not a valid past date",
    ),
    # 台湾居民居住证
    "taiwan_permit.length": (
        "台湾居民居住证号码应为18位",
        "The Taiwan residence permit number must have 18 characters",
    ),
    "taiwan_permit.format": (
        "台湾居民居住证号码前17位应为数字，最后一位应为数字或X",
        "The Taiwan residence permit number must be 17 digits followed by a digit or X",
    ),
    "taiwan_permit.province": (
        "台湾居民居住证号码应以83开头",
        "The Taiwan residence permit number must start with 83",
    ),
    "taiwan_permit.check_char": (
        "台湾居民居住证号码有误，请对照证件逐位核对（最后一位可能是字母 X）",
        "The Taiwan residence permit number's check character is wrong",
    ),
    "taiwan_permit.birth_date": (
        "台湾居民居住证号码中的出生日期无效",
        "The birth date in the Taiwan residence permit number is not a valid past date",
    ),
    # 外国人永久居留身份证
    "foreign_permanent_id.length": (
        "外国人永久居留身份证号码应为18位（2023版）或15位（2017版）",
        "The foreign permanent residence ID number must have 18 characters (2023) or 15 (2017)",
    ),
    "foreign_permanent_id.format": (
        "外国人永久居留身份证号码格式错误：2023版为以9开头的18位，2017版为3个字母加12位数字",
        "The foreign permanent residence ID number must be 18 characters starting with 9 (2023) "
        "or 3 letters and 12 digits (2017)",
    ),
    "foreign_permanent_id.province": (
        "外国人永久居留身份证号码第2、3位不是有效的省级行政区划代码",
        "Digits 2-3 of the foreign permanent residence ID number are not a valid province code",
    ),
    "foreign_permanent_id.check_char": (
        "外国人永久居留身份证号码有误，请对照证件逐位核对（注意数字 0 与字母 O、D，8 与 B 等易混字符）",
        "The foreign permanent residence ID number's check character is wrong",
    ),
    "foreign_permanent_id.birth_date": (
        "外国人永久居留身份证号码中的出生日期无效",
        "The birth date in the foreign permanent residence ID number is not a valid past date",
    ),
    # 通行证、护照
    "hk_macau_pass.format": (
        "港澳居民来往内地通行证号码应为H或M加8位或10位数字",
        "The Hong Kong/Macau travel permit number must be H or M followed by 8 or 10 digits",
    ),
    "taiwan_pass.format": (
        "台湾居民来往大陆通行证号码应为8位数字",
        "The Taiwan travel permit number must be 8 digits",
    ),
    "passport.length": ("护照号码应为5至17位", "The passport number must have 5 to 17 characters"),
    "passport.format": (
        "护照号码只能包含字母和数字",
        "The passport number may only contain letters and digits",
    ),
    # 统一社会信用代码
    "uscc.length": (
        "统一社会信用代码应为18位",
        "The unified social credit code must have 18 characters",
    ),
    "uscc.charset": (
        "统一社会信用代码只能包含数字和除I、O、Z、S、V以外的大写字母",
        "The unified social credit code may only contain digits and capital letters except I, O, Z, S, V",
    ),
    # 车辆识别代号
    "vin.length": ("车辆识别代号（VIN）应为17位", "The VIN must have 17 characters"),
    "vin.charset": (
        "车辆识别代号（VIN）只能包含数字和字母，且不能含有I、O、Q",
        "The VIN may only contain digits and letters, and never I, O or Q",
    ),
    "vin.check_digit": (
        "车辆识别代号（VIN）有误，请对照行驶证逐位核对（注意数字 0 与字母 D、8 与 B、5 与 S 等易混字符）",
        "The VIN is wrong (its check digit does not hold); check it against the vehicle licence",
    ),
    # 卡片编码 ICCID
    "iccid.format": (
        "卡片编码（ICCID）只能包含数字和字母A至F",
        "The ICCID may only contain digits and the letters A to F",
    ),
    "iccid.length": ("卡片编码（ICCID）应为18至20位", "The ICCID must have 18 to 20 characters"),
    "iccid.prefix": ("卡片编码（ICCID）应以8986开头", "The ICCID must start with 8986 (China)"),
    "iccid.operator": (
        "卡片编码（ICCID）的运营商代码无法识别",
        "The ICCID's operator code (digits 5-6) belongs to no known operator",
    ),
    "iccid.check_digit": ("卡片编码（ICCID）校验位错误", "The ICCID's check digit is wrong"),
    # 手机号码、车联网卡号码
    "mobile.format": (
        "手机号码应为以1开头的11位中国大陆手机号",
        "The mobile number must be an 11-digit mainland China mobile number starting with 1",
    ),
    "msisdn.format": (
        "车联网卡号码应为13位物联网号码",
        "The card number (MSISDN) must be a 13-digit IoT number",
    ),
    "msisdn.prefix": (
        "车联网卡号码不属于已知运营商的物联网号段",
        "The card number (MSISDN) is not in a known operator's IoT number range",
    ),
}


#: Review codes (``Validated.review_code``); listed so the docs test can check the table.
REVIEW_CODES: tuple[str, ...] = (
    "resident_id.unknown_county",
    "hk_macau_permit.unknown_county",
    "taiwan_permit.unknown_county",
    "uscc.check_char",
)


#: Error codes, as documented in the module docstring.
ERROR_CODES: tuple[str, ...] = tuple(_MESSAGES)


# Hints when a number is valid for another document kind (``<id>.province`` with a pointer).
_OTHER_KIND_HINTS: dict[str, tuple[str, str]] = {
    "hk_macau_permit": (
        "该号码是港澳居民居住证号码，请选择证件类型“港澳居民居住证”",
        "This is a Hong Kong/Macau residence permit number: choose the document type hk_macau_permit",
    ),
    "taiwan_permit": (
        "该号码是台湾居民居住证号码，请选择证件类型“台湾居民居住证”",
        "This is a Taiwan residence permit number: choose the document type taiwan_permit",
    ),
    "foreign_permanent_id": (
        "该号码是外国人永久居留身份证号码，请选择证件类型“外国人永久居留身份证”",
        "This is a foreign permanent residence ID number: choose the document type foreign_permanent_id",
    ),
    "resident_id": (
        "该号码是居民身份证号码，请选择证件类型“居民身份证”",
        "This is a resident ID number: choose the document type resident_id",
    ),
}


def _fail(code: str, field: str, hint: tuple[str, str] | None = None) -> InvalidField:
    zh, en = hint or _MESSAGES[code]
    return InvalidField(code, zh, en, field=field)


# Removed from every value: whitespace and dashes (NFKC has already folded full-width forms).
_SEPARATORS = {ord(c): None for c in " \t\r\n\v\f-\u2010\u2011\u2012\u2013\u2014\u2015\u2212"}


# ASCII-only classes everywhere: ``\d`` would also match Arabic-Indic and other Unicode digits.
_DIGITS = re.compile(r"[0-9]+")


def _compact(value: str) -> str:
    if not value.isascii():
        value = unicodedata.normalize("NFKC", value)
    return value.translate(_SEPARATORS).upper()


_RIC_18 = re.compile(r"[0-9]{17}[0-9X]")


_MAINLAND_PROVINCES = frozenset(
    f"{p}"
    for p in (
        *range(11, 16),
        *range(21, 24),
        *range(31, 38),
        *range(41, 47),
        *range(50, 55),
        *range(61, 66),
    )
)


_RESIDENT_PROVINCES = _MAINLAND_PROVINCES | {"71"}


_HK_MACAU_PROVINCES = frozenset({"81", "82"})


_TAIWAN_PROVINCES = frozenset({"83"})


# Permits carry a fixed region code per territory (香港 810000, 澳门 820000, 台湾 830000).
_PERMIT_REGIONS = frozenset({"810000", "820000", "830000"})


_EARLIEST_BIRTH = date(1900, 1, 1)


@lru_cache(maxsize=65536)
def _birth_date(yyyymmdd: str) -> date | None:
    """The date in an 8-digit ``YYYYMMDD`` string, parsed by stdnum; ``None`` if not a real date."""
    try:
        return ric.get_birth_date(f"000000{yyyymmdd}0000")
    except InvalidComponent:
        return None


_STILL_IN_USE = 9999


_UNKNOWN_COUNTY = -1


@lru_cache(maxsize=8192)  # the table has ~3,500 county codes
def _county_last_year(region: str) -> int:
    """The last year python-stdnum's county table has ``region`` in use (9999: still; -1: never).

    A county is known to us when it was in use in or after the birth year. Not
    ``ric.get_birth_place``: it wants the county to exist in the birth year, but the address code is
    the household registration's when the number was assigned, often years later (everyone born
    before 1983 in 深圳南山区 440305 would be flagged). It also raises a bare KeyError('county')
    (stdnum 2.2) for an unknown county in a known province.
    """
    entries = {k: v for _, props in numdb.get("cn/loc").info(region) for k, v in props.items()}
    last = _UNKNOWN_COUNTY
    for entry in entries.get("county", "").split(","):
        if not entry:
            continue
        if not entry.startswith("["):
            return _STILL_IN_USE
        end = entry[1:].partition("]")[0].partition("-")[2]
        last = max(last, int(end) if end else _STILL_IN_USE)
    return last


def _province_hint(kind: str, number: str) -> tuple[str, str] | None:
    """Point to the right document kind when the prefix belongs to another one."""
    prefix = number[:2]
    other: str | None = None
    if prefix in _HK_MACAU_PROVINCES:
        other = "hk_macau_permit"
    elif prefix in _TAIWAN_PROVINCES:
        other = "taiwan_permit"
    elif prefix[0] == "9":
        other = "foreign_permanent_id"
    elif prefix in _RESIDENT_PROVINCES:
        other = "resident_id"
    if other is None or other == kind:
        return None
    return _OTHER_KIND_HINTS[other]


def _gb11643(
    kind: str,
    number: str,
    field: str,
    today: date | None,
    provinces: frozenset[str],
    *,
    county_from_stdnum: bool,
) -> Validated:
    """Shared GB 11643 checks for an already compacted 18-character number."""
    if not _RIC_18.fullmatch(number):
        raise _fail(f"{kind}.format", field)
    if number[:2] not in provinces:
        raise _fail(f"{kind}.province", field, _province_hint(kind, number))
    # stdnum's calc_check_digit takes the whole number and ignores its last character.
    if number[17] != ric.calc_check_digit(number):
        raise _fail(f"{kind}.check_char", field)
    born = _birth_date(number[6:14])
    if born is None or born < _EARLIEST_BIRTH or born > (today or china_day(utc_now())):
        raise _fail(f"{kind}.birth_date", field)
    region = number[:6]
    known = _county_last_year(region) >= born.year if county_from_stdnum else region in _PERMIT_REGIONS
    return Validated(
        kind=kind,
        value=number,
        review=not known,
        review_code=None if known else f"{kind}.unknown_county",
        details={
            "birth_date": born.isoformat(),
            "sex": "M" if int(number[16]) % 2 else "F",
            "region": region,
        },
    )


def resident_id(value: str, *, field: str | None = None, today: date | None = None) -> Validated:
    """居民身份证 (GB 11643). 15-digit legacy numbers are converted to 18 digits."""
    field = field or "resident_id"
    number = _compact(value)
    if len(number) == 15 and _DIGITS.fullmatch(number):
        body = f"{number[:6]}19{number[6:]}"
        number = body + ric.calc_check_digit(body + "0")
    elif len(number) != 18:
        raise _fail("resident_id.length", field)
    return _gb11643("resident_id", number, field, today, _RESIDENT_PROVINCES, county_from_stdnum=True)


def _residence_permit(
    kind: str, value: str, field: str | None, today: date | None, provinces: frozenset[str]
) -> Validated:
    field = field or kind
    number = _compact(value)
    if len(number) != 18:
        raise _fail(f"{kind}.length", field)
    return _gb11643(kind, number, field, today, provinces, county_from_stdnum=False)


def hk_macau_permit(value: str, *, field: str | None = None, today: date | None = None) -> Validated:
    """港澳居民居住证: GB 11643 format with prefix 81 (Hong Kong) or 82 (Macau)."""
    return _residence_permit("hk_macau_permit", value, field, today, _HK_MACAU_PROVINCES)


def taiwan_permit(value: str, *, field: str | None = None, today: date | None = None) -> Validated:
    """台湾居民居住证: GB 11643 format with prefix 83."""
    return _residence_permit("taiwan_permit", value, field, today, _TAIWAN_PROVINCES)


_FOREIGN_2023 = re.compile(r"9[0-9]{16}[0-9X]")


_FOREIGN_2017 = re.compile(r"[A-Z]{3}[0-9]{12}")


def foreign_permanent_id(value: str, *, field: str | None = None, today: date | None = None) -> Validated:
    """外国人永久居留身份证.

    2023 format: 9, issuing province (2 digits), nationality (3 digits), birth date, sequence, and a
    GB 11643 check character. 2017 format: nationality (3 letters) + 12 digits.
    """
    kind = "foreign_permanent_id"
    field = field or kind
    number = _compact(value)
    if len(number) == 15:
        if not _FOREIGN_2017.fullmatch(number):
            raise _fail(f"{kind}.format", field)
        return Validated(kind=kind, value=number, details={"format": "2017", "nationality": number[:3]})
    if len(number) != 18:
        raise _fail(f"{kind}.length", field)
    if not _FOREIGN_2023.fullmatch(number):
        hint = _province_hint(kind, number) if _RIC_18.fullmatch(number) else None
        raise _fail(f"{kind}.format", field, hint)
    if number[1:3] not in _MAINLAND_PROVINCES:
        raise _fail(f"{kind}.province", field)
    if number[17] != ric.calc_check_digit(number):
        raise _fail(f"{kind}.check_char", field)
    born = _birth_date(number[6:14])
    if born is None or born < _EARLIEST_BIRTH or born > (today or china_day(utc_now())):
        raise _fail(f"{kind}.birth_date", field)
    return Validated(
        kind=kind,
        value=number,
        details={
            "format": "2023",
            "birth_date": born.isoformat(),
            "sex": "M" if int(number[16]) % 2 else "F",
            "province": number[1:3],
            "nationality": number[3:6],
        },
    )


_HK_MACAU_PASS = re.compile(r"[HM](?:[0-9]{8}|[0-9]{10})")


_TAIWAN_PASS = re.compile(r"[0-9]{8}")


_ALNUM = re.compile(r"[0-9A-Z]+")


def hk_macau_pass(value: str, *, field: str | None = None, today: date | None = None) -> Validated:
    """港澳居民来往内地通行证: H (Hong Kong) or M (Macau) + 8 or 10 digits."""
    number = _compact(value)
    if not _HK_MACAU_PASS.fullmatch(number):
        raise _fail("hk_macau_pass.format", field or "hk_macau_pass")
    return Validated(
        kind="hk_macau_pass", value=number, details={"region": "HK" if number[0] == "H" else "MO"}
    )


def taiwan_pass(value: str, *, field: str | None = None, today: date | None = None) -> Validated:
    """台湾居民来往大陆通行证: 8 digits."""
    number = _compact(value)
    if not _TAIWAN_PASS.fullmatch(number):
        raise _fail("taiwan_pass.format", field or "taiwan_pass")
    return Validated(kind="taiwan_pass", value=number)


def passport(value: str, *, field: str | None = None, today: date | None = None) -> Validated:
    """护照: 5-17 letters and digits, upper-cased."""
    field = field or "passport"
    number = _compact(value)
    if not _ALNUM.fullmatch(number):
        raise _fail("passport.format", field)
    if not 5 <= len(number) <= 17:
        raise _fail("passport.length", field)
    return Validated(kind="passport", value=number)


_USCC_BODY = re.compile(r"[0-9A-HJ-NPQRTUWXY]{17}[0-9A-Z]")


def uscc(value: str, *, field: str | None = None, today: date | None = None) -> Validated:
    """统一社会信用代码 (GB 32100). A wrong check character goes to review, not refusal.

    stdnum's ``uscc.validate`` is not used: it demands digits in positions 1-8, which refuses the
    letter registration-authority codes of GB 32100 (A, N, Y, …). Only its check character is used.
    """
    field = field or "uscc"
    code = _compact(value)
    if len(code) != 18:
        raise _fail("uscc.length", field)
    if not _USCC_BODY.fullmatch(code):
        raise _fail("uscc.charset", field)
    good = code[17] == stdnum_uscc.calc_check_digit(code)
    return Validated(
        kind="uscc",
        value=code,
        review=not good,
        review_code=None if good else "uscc.check_char",
        details={"authority": code[0], "entity_type": code[1], "region": code[2:8]},
    )


_VIN_CHARS = re.compile(r"[A-HJ-NPR-Z0-9]{17}")


_VIN_VALUES: dict[str, int] = {str(d): d for d in range(10)} | dict(
    zip(
        "ABCDEFGHJKLMNPRSTUVWXYZ",
        (1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 7, 9, 2, 3, 4, 5, 6, 7, 8, 9),
        strict=True,
    )
)


_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


_VIN_FACTS: dict[str, dict[str, str]] = {}


_VIN_FACTS_MAX = 50_000


def _vin_check_digit(number: str) -> str:
    total = sum(_VIN_VALUES[c] * w for c, w in zip(number, _VIN_WEIGHTS, strict=True)) % 11
    return "X" if total == 10 else str(total)


def _vin_facts(number: str) -> dict[str, str]:
    """Manufacturer, country and latest candidate model year from vininfo, cached by what they depend on.

    They depend on the WMI and on the year letter (position 10, or 11 for a few brands), so the key
    is WMI + positions 10-11; a bulk import of one OEM hits the cache almost always.
    """
    key = number[:3] + number[9:11]
    facts = _VIN_FACTS.get(key)
    if facts is None:
        facts = {}
        try:
            info = Vin(number)
            manufacturer, country, years = info.manufacturer, info.country, info.years
        except (VininfoException, LookupError, ValueError):  # details are best effort
            manufacturer, country, years = None, None, []
        if manufacturer and manufacturer != "UnsupportedBrand":
            facts["manufacturer"] = manufacturer
        if country:
            facts["country"] = country
        if years:
            facts["model_year"] = str(max(years))
        if len(_VIN_FACTS) < _VIN_FACTS_MAX:
            _VIN_FACTS[key] = facts
    return {"wmi": number[:3], **facts}


def vin(value: str, *, field: str | None = None, today: date | None = None) -> Validated:
    """车辆识别代号 VIN: 17 characters without I/O/Q; the check digit at position 9 is enforced.

    The check digit is computed here rather than by ``vininfo.Vin.verify_checksum``, which answers
    False (without raising) for model-year letters U/Z/0 and for brands it marks as not using the
    SAE check digit; China enforces it for every VIN.
    """
    field = field or "vin"
    number = _compact(value)
    if len(number) != 17:
        raise _fail("vin.length", field)
    if not _VIN_CHARS.fullmatch(number):
        raise _fail("vin.charset", field)
    if number[8] != _vin_check_digit(number):
        raise _fail("vin.check_digit", field)
    return Validated(kind="vin", value=number, details=_vin_facts(number))


_HEX = re.compile(r"[0-9A-F]+")


_ICCID_LUHN_OPERATORS = frozenset({Operator.CHINA_UNICOM, Operator.CHINA_TELECOM})


def iccid(value: str, *, field: str | None = None, today: date | None = None) -> Validated:
    """卡片编码 ICCID: 8986 + 14-16 hex digits; the operator comes from digits 5-6."""
    field = field or "iccid"
    number = _compact(value)
    if not _HEX.fullmatch(number):
        raise _fail("iccid.format", field)
    if not 18 <= len(number) <= 20:
        raise _fail("iccid.length", field)
    if not number.startswith("8986"):
        raise _fail("iccid.prefix", field)
    operator = iccid_operator(number)
    if operator is None:
        raise _fail("iccid.operator", field)
    # Only 20-digit numeric Unicom/Telecom ICCIDs reliably end in a Luhn digit.
    if (
        len(number) == 20
        and operator in _ICCID_LUHN_OPERATORS
        and number.isdigit()
        and not luhn.is_valid(number)
    ):
        raise _fail("iccid.check_digit", field)
    return Validated(kind="iccid", value=number, operator=operator)


_MOBILE = re.compile(r"1[3-9][0-9]{9}")


_MSISDN = re.compile(r"[0-9]{13}")


def _strip_country_code(number: str) -> str:
    if number.startswith("+86"):
        return number[3:]
    if number.startswith("0086"):
        return number[4:]
    return number


def mobile(value: str, *, field: str | None = None, today: date | None = None) -> Validated:
    """Personal mobile number (手机号码): 11 digits ``1[3-9]…``, with an optional +86/0086."""
    number = _strip_country_code(_compact(value))
    if not _MOBILE.fullmatch(number):
        raise _fail("mobile.format", field or "mobile")
    return Validated(kind="mobile", value=number)


def msisdn(value: str, *, field: str | None = None, today: date | None = None) -> Validated:
    """车联网卡号码 (MSISDN): a 13-digit IoT number; the operator comes from its segment."""
    field = field or "msisdn"
    number = _strip_country_code(_compact(value))
    if not _MSISDN.fullmatch(number):
        raise _fail("msisdn.format", field)
    operator = msisdn_operator(number)
    if operator is None:
        raise _fail("msisdn.prefix", field)
    return Validated(kind="msisdn", value=number, operator=operator)


_Validator = Callable[..., Validated]


_VALIDATORS: dict[str, _Validator] = {
    "resident_id": resident_id,
    "hk_macau_permit": hk_macau_permit,
    "taiwan_permit": taiwan_permit,
    "foreign_permanent_id": foreign_permanent_id,
    "hk_macau_pass": hk_macau_pass,
    "taiwan_pass": taiwan_pass,
    "passport": passport,
    "uscc": uscc,
    "vin": vin,
    "iccid": iccid,
    "mobile": mobile,
    "msisdn": msisdn,
}


#: Every supported kind name.
KINDS: tuple[str, ...] = tuple(_VALIDATORS)


#: The code a value that is not a string gets, per kind.
_NOT_TEXT_CODES: dict[str, str] = {
    kind: f"{kind}.{'charset' if kind in ('uscc', 'vin') else 'format'}" for kind in KINDS
}


def validate(kind: str, value: str, *, field: str | None = None, today: date | None = None) -> Validated:
    """Raise InvalidField (with field=field or kind) on failure; return Validated on success.

    ``today`` (default: today in China) bounds birth dates.
    """
    validator = _VALIDATORS.get(kind)
    if validator is None:
        raise _fail("kind.unknown", field or kind)
    if not isinstance(value, str):
        raise _fail(_NOT_TEXT_CODES[kind], field or kind)
    return validator(value, field=field, today=today)
