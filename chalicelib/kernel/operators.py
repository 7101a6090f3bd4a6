"""The three telecom operators (电信企业) a card can belong to."""

from __future__ import annotations

from enum import StrEnum


class Operator(StrEnum):
    """Telecom operator (电信企业)."""

    CHINA_MOBILE = "china_mobile"  # 中国移动
    CHINA_UNICOM = "china_unicom"  # 中国联通
    CHINA_TELECOM = "china_telecom"  # 中国电信
    CHINA_BROADNET = "china_broadnet"  # 中国广电
