"""The consent texts served: what each must say (第十三条, 第十七条, 第十八条, 第二十一条, PIPL 第二十九条),
filled per stage with a stable SHA-256, and the older versions kept for the acceptances given to them."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from chalicelib.consents.domain import AcceptedConsent, ConsentDocument, ConsentKind, ConsentRecord
from chalicelib.consents.texts import (
    CONSENTS_DIR,
    accepted_text,
    check_consents,
    consent_documents,
    consent_version,
    fill,
    render_documents,
    stage_values,
)
from chalicelib.core.config import Settings
from chalicelib.kernel.errors import InvalidField

OEM_NAME = "华夏汽车股份有限公司"
OEM_CONTACT = "客服热线 400-123-4567"


def stage(**more: Any) -> Settings:
    """A stage's settings naming the OEM above (and ``more``)."""
    values: dict[str, Any] = {"oem_name": OEM_NAME, "oem_contact": OEM_CONTACT, **more}
    return Settings(**values)


def served(settings: Settings) -> dict[ConsentKind, ConsentDocument]:
    """The current texts a stage with ``settings`` serves."""
    from chalicelib.consents.domain import current_consents

    return {d.kind: d for d in current_consents(render_documents(stage_values(settings)))}


def test_the_served_texts_are_the_new_versions() -> None:
    versions = {d.kind: d.version for d in consent_documents()}
    assert versions == {
        ConsentKind.REGISTRATION_AGREEMENT: "v2",
        ConsentKind.RESPONSIBILITY_NOTICE: "v2",
        ConsentKind.BIOMETRIC_CONSENT: "v3",
    }


def test_the_responsibility_notice_names_each_case_where_to_act_and_the_legal_liability() -> None:
    text = served(stage())[ConsentKind.RESPONSIBILITY_NOTICE].text
    for required in (
        "第十三条",
        "过户",
        "报废",
        "更换含车联网卡的零部件",
        "同步办理",
        "法律责任",  # 提示相关法律责任风险
        "营业厅",  # where to act
        "我的车辆",
        "华夏汽车股份有限公司",
        "客服热线 400-123-4567",
    ):
        assert required in text, required


def test_the_registration_agreement_names_processor_recipients_misuse_retention_rights_and_complaints() -> (
    None
):
    text = served(stage())[ConsentKind.REGISTRATION_AGREEMENT].text
    for required in (
        "个人信息处理者：华夏汽车股份有限公司",
        "客服热线 400-123-4567",
        "工业和信息化部车联网卡监管平台",  # a recipient, beside the operator
        "电信企业",
        "不得挪用",
        "第十七条",
        "第十八条",
        "服务终止（实名注销、过户、报废）后 2 年内保存",
        "查阅",
        "更正",
        "第二十一条",
        "投诉",
        "12300",
    ):
        assert required in text, required


@pytest.mark.parametrize(
    ("face_engine", "authority", "provider", "authority_provider"),
    [
        ("local", "sandbox", "dlib", "测试"),
        ("remote", "tencent", "dlib", "腾讯云"),
        ("rekognition", "tencent", "Amazon Rekognition", "腾讯云"),
    ],
)
def test_the_biometric_consent_names_the_stages_face_engine_provider_the_portrait_comparison_and_periods(
    face_engine: str, authority: str, provider: str, authority_provider: str
) -> None:
    settings = stage(face_engine=face_engine, identity_authority=authority)
    text = served(settings)[ConsentKind.BIOMETRIC_CONSENT].text
    lines = {line.split("：", 1)[0]: line for line in text.splitlines() if "：" in line}
    assert provider in lines["- 人脸识别服务的提供方"]
    assert authority_provider in lines["- 身份核验服务的提供方"]
    if face_engine != "rekognition":
        assert "华夏汽车股份有限公司自有的服务器" in text
    for required in (
        "第二十九条",
        "华夏汽车股份有限公司",
        "证件人像",  # the ID portrait is detected and compared
        "您同意前，平台不对您的任何照片进行人脸检测或比对",
        "服务终止后 2 年内保存",  # the on-site photo, like every material
        "人脸特征模板",
        "服务终止（实名注销、过户、报废）时删除",
        "撤回",
    ):
        assert required in text, required


def test_the_texts_state_the_retention_periods_the_stage_purges_with_and_the_default_text_is_unchanged() -> (
    None
):
    default = served(stage())
    agreement = default[ConsentKind.REGISTRATION_AGREEMENT].text
    assert "后 2 年内保存，期满后删除；未完成的登记" in agreement  # no note when the photo goes with the rest
    raw = (CONSENTS_DIR / "biometric_consent.v3.md").read_bytes()
    as_written = raw.replace(
        b"{{photo_period}}", "在车联网卡服务期间及服务终止后 2 年内保存，期满后删除".encode()
    )
    assert default[ConsentKind.BIOMETRIC_CONSENT].text == fill(as_written, stage_values(stage())).decode()

    longer = served(stage(retention_years=3))
    assert "后 3 年内保存" in longer[ConsentKind.REGISTRATION_AGREEMENT].text
    assert "服务终止后 3 年内保存" in longer[ConsentKind.BIOMETRIC_CONSENT].text

    face_sooner = served(stage(retention_face_years=1))
    assert "服务终止后 1 年内保存" in face_sooner[ConsentKind.BIOMETRIC_CONSENT].text
    assert "（其中现场拍摄照片：在车联网卡服务期间及服务终止后 1 年内保存，期满后删除）" in (
        face_sooner[ConsentKind.REGISTRATION_AGREEMENT].text
    )
    at_end = served(stage(retention_face_years=0))[ConsentKind.BIOMETRIC_CONSENT].text
    assert (
        "现场拍摄照片作为入网资料，在车联网卡服务期间保存，服务终止（实名注销、过户、报废）时删除" in at_end
    )


def test_every_placeholder_is_filled_and_the_hash_is_the_served_texts_the_same_each_time() -> None:
    settings = stage()
    first, again = served(settings), served(settings)
    for kind, doc in first.items():
        assert "{{" not in doc.text
        assert "}}" not in doc.text
        assert doc.sha256 == hashlib.sha256(doc.text.encode("utf-8")).hexdigest()
        assert again[kind].sha256 == doc.sha256
    # another OEM's stage serves another text, so another hash
    other = served(stage(oem_name="另一汽车有限公司"))
    assert (
        other[ConsentKind.REGISTRATION_AGREEMENT].sha256 != first[ConsentKind.REGISTRATION_AGREEMENT].sha256
    )


def test_a_placeholder_without_a_value_is_never_served() -> None:
    with pytest.raises(RuntimeError, match="oem_contact"):
        fill("联系方式：{{oem_contact}}".encode(), {"oem_name": "x"})


@pytest.mark.parametrize(
    ("kind", "version"),
    [
        (ConsentKind.REGISTRATION_AGREEMENT, "v1"),
        (ConsentKind.RESPONSIBILITY_NOTICE, "v1"),
        (ConsentKind.BIOMETRIC_CONSENT, "v1"),
        (ConsentKind.BIOMETRIC_CONSENT, "v2"),
    ],
)
def test_an_acceptance_of_an_old_version_still_verifies_against_that_version(
    kind: ConsentKind, version: str
) -> None:
    raw = (CONSENTS_DIR / f"{kind.value}.{version}.md").read_bytes()
    record = ConsentRecord.model_validate(
        {
            "kind": kind,
            "version": version,
            "sha256": hashlib.sha256(raw).hexdigest(),  # the hash recorded when it was accepted
            "accepted_at": "2026-01-05T08:00:00+00:00",
        }
    )
    old = accepted_text(record)
    assert old is not None
    assert (old.kind, old.version, old.text) == (kind, version, raw.decode("utf-8"))
    assert consent_version(kind, version) == old
    # an altered hash or an unknown version verifies against nothing
    assert accepted_text(record.model_copy(update={"sha256": "0" * 64})) is None
    assert accepted_text(record.model_copy(update={"version": "v99"})) is None


def test_a_new_acceptance_of_an_old_version_is_refused_as_outdated() -> None:
    old = consent_version(ConsentKind.REGISTRATION_AGREEMENT, "v1")
    assert old is not None
    current = {d.kind: d for d in consent_documents()}
    accepted = [
        AcceptedConsent(kind=old.kind, version=old.version, sha256=old.sha256),
        AcceptedConsent(
            kind=ConsentKind.RESPONSIBILITY_NOTICE,
            version=current[ConsentKind.RESPONSIBILITY_NOTICE].version,
            sha256=current[ConsentKind.RESPONSIBILITY_NOTICE].sha256,
        ),
    ]
    with pytest.raises(InvalidField) as refused:
        check_consents(accepted)
    assert refused.value.code == "consent.outdated"
    assert refused.value.details == {"current_version": "v2"}
