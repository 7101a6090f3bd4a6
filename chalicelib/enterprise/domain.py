"""The enterprise registry's rules: an enterprise (单位) is known by its 统一社会信用代码 (USCC) and has
exactly one legal-person account (法人账号, seed 001: 每家企业只允许注册一个法人账号), the account that
completed the legal-person real-name authentication for it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class EnterpriseType(StrEnum):
    """企业或机构类型 (seed 001, the legal-person real-name screen)."""

    ENTERPRISE = "enterprise"  # 企业
    INDIVIDUAL_BUSINESS = "individual_business"  # 个体工商户
    PUBLIC_INSTITUTION = "public_institution"  # 事业单位
    GOVERNMENT = "government"  # 机关
    SOCIAL_ORGANISATION = "social_organisation"  # 社会团体
    OTHER = "other"  # 其他组织


class LegalPersonType(StrEnum):
    """法人类型: who signs for the enterprise."""

    LEGAL_REPRESENTATIVE = "legal_representative"  # 法定代表人
    PERSON_IN_CHARGE = "person_in_charge"  # 负责人
    OPERATOR = "operator"  # 经营者 (个体工商户)


ENTERPRISE_TYPE_ZH: dict[EnterpriseType, str] = {
    EnterpriseType.ENTERPRISE: "企业",
    EnterpriseType.INDIVIDUAL_BUSINESS: "个体工商户",
    EnterpriseType.PUBLIC_INSTITUTION: "事业单位",
    EnterpriseType.GOVERNMENT: "机关",
    EnterpriseType.SOCIAL_ORGANISATION: "社会团体",
    EnterpriseType.OTHER: "其他组织",
}

LEGAL_PERSON_TYPE_ZH: dict[LegalPersonType, str] = {
    LegalPersonType.LEGAL_REPRESENTATIVE: "法定代表人",
    LegalPersonType.PERSON_IN_CHARGE: "负责人",
    LegalPersonType.OPERATOR: "经营者",
}


@dataclass(frozen=True)
class Enterprise:
    """One enterprise and its legal-person account.

    ``representative_name_masked`` is the legal representative's name as shown (张*三);
    ``representative_person_hash`` the keyed hash of their ID type and number; ``address`` is sealed at
    rest (it is kept here in clear only in memory)."""

    uscc: str
    company_name: str
    enterprise_type: EnterpriseType
    legal_person_type: LegalPersonType
    representative_name_masked: str
    representative_person_hash: str
    address: str
    legal_account_id: str
    created_at: datetime
    flow_id: str | None = None

    def public_view(self) -> dict[str, str]:
        """What an answer may show: no address, no hash."""
        return {
            "uscc": self.uscc,
            "company_name": self.company_name,
            "enterprise_type": self.enterprise_type.value,
            "legal_person_type": self.legal_person_type.value,
            "representative_name": self.representative_name_masked,
            "created_at": self.created_at.isoformat(),
        }
