"""The telecom operators (电信企业) a card can belong to, and which one a card or number belongs to."""

from __future__ import annotations

from enum import StrEnum


class Operator(StrEnum):
    """Telecom operator (电信企业)."""

    CHINA_MOBILE = "china_mobile"  # 中国移动
    CHINA_UNICOM = "china_unicom"  # 中国联通
    CHINA_TELECOM = "china_telecom"  # 中国电信
    CHINA_BROADNET = "china_broadnet"  # 中国广电


#: The issuer code (digits 5-6 of an ICCID, after the ``8986`` of China) each operator's cards carry.
ICCID_ISSUERS: dict[str, Operator] = {
    "00": Operator.CHINA_MOBILE,
    "02": Operator.CHINA_MOBILE,
    "04": Operator.CHINA_MOBILE,
    "07": Operator.CHINA_MOBILE,
    "08": Operator.CHINA_MOBILE,
    "01": Operator.CHINA_UNICOM,
    "06": Operator.CHINA_UNICOM,
    "09": Operator.CHINA_UNICOM,
    "03": Operator.CHINA_TELECOM,
    "11": Operator.CHINA_TELECOM,
    "15": Operator.CHINA_BROADNET,
}


#: The IoT number segments (车联网专用号段) of each operator; no segment is a prefix of another.
MSISDN_SEGMENTS: tuple[tuple[str, Operator], ...] = (
    ("1440", Operator.CHINA_MOBILE),
    ("1441", Operator.CHINA_MOBILE),
    ("148", Operator.CHINA_MOBILE),
    ("146", Operator.CHINA_UNICOM),
    ("1410", Operator.CHINA_TELECOM),
    ("10648", Operator.CHINA_MOBILE),
    ("10646", Operator.CHINA_UNICOM),
    ("10649", Operator.CHINA_TELECOM),
)


def iccid_operator(iccid: str) -> Operator | None:
    """The operator that issued a card, from its normalised ICCID (``8986`` + issuer code); None when
    the number is not a Chinese ICCID or the issuer code is unknown."""
    return ICCID_ISSUERS.get(iccid[4:6]) if iccid.startswith("8986") else None


def msisdn_operator(msisdn: str) -> Operator | None:
    """The operator of a normalised 13-digit IoT number, from its segment; None when unknown."""
    for segment, operator in MSISDN_SEGMENTS:
        if msisdn.startswith(segment):
            return operator
    return None
