"""The owner's entrances through the API: the help facts (客服, the enterprise portal), 用户协议 and
隐私政策 accepted at login (checked before the code is spent, recorded by version), and the VIN read
from a photo of a 行驶证 or of the VIN plate, nothing kept."""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Callable
from typing import Any

from chalicelib.core import deps
from chalicelib.local.synthetic import make_vin
from tests.integration.test_registration_flow import sms_code
from tests.integration.test_verification_api import bucket, call, s3
from tests.synthetic_documents import require_cjk_font, vehicle_licence, vin_plate

ANONYMOUS = {"Content-Type": "application/json"}
PHONE = "13700001111"


def owner(token: Callable[..., str]) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token('owner', subject='scanner')}",
        "Content-Type": "application/json",
    }


def test_the_help_facts_are_the_stages_customer_service_and_the_portal_served_beside_the_h5(
    api: Any,
) -> None:
    from chalicelib.core.settings import get_settings

    settings = get_settings()
    status, info = call(api, "get", "/v1/help", {})
    assert status == 200
    assert (info["service_phone"], info["service_hours"]) == (settings.service_phone, settings.service_hours)
    assert info["oem_name"] == settings.oem_name
    assert info["enterprise_portal_url"] == "../portal"  # relative to /h5/: the portal this app serves
    page = api.http.get("/portal")
    assert page.status_code == 200
    assert "企业" in page.body.decode("utf-8")
    assert info["review_expected_zh"] == settings.review_expected_zh


def test_login_records_the_versions_of_the_user_agreement_and_privacy_policy_accepted(api: Any) -> None:
    status, texts = call(api, "get", "/v1/account-texts", {})
    assert status == 200
    docs = {d["kind"]: d for d in texts["documents"]}
    assert set(docs) == {"user_agreement", "privacy_policy"}
    assert [docs["user_agreement"]["title"], docs["privacy_policy"]["title"]] == ["用户协议", "隐私政策"]
    for doc in docs.values():
        assert doc["sha256"] == hashlib.sha256(doc["text"].encode("utf-8")).hexdigest()
        assert "{{" not in doc["text"]
    accepted = [{"kind": d["kind"], "version": d["version"], "sha256": d["sha256"]} for d in docs.values()]

    # an altered text is refused before the code is spent: the same code then signs in
    code = sms_code(api, PHONE, "login", ANONYMOUS)
    altered = [{**accepted[0], "sha256": "0" * 64}, accepted[1]]
    status, err = call(
        api, "post", "/v1/auth/login", ANONYMOUS, {"phone": PHONE, "code": code, "accepted": altered}
    )
    assert (status, err["code"], err["field"]) == (422, "consent.outdated", "accepted")
    assert err["message_zh"] == "《用户协议》已更新，请重新阅读后同意"
    status, err = call(
        api, "post", "/v1/auth/login", ANONYMOUS, {"phone": PHONE, "code": code, "accepted": accepted[1:]}
    )
    assert (status, err["message_zh"]) == (422, "请阅读并同意《用户协议》")
    status, signed = call(
        api, "post", "/v1/auth/login", ANONYMOUS, {"phone": PHONE, "code": code, "accepted": accepted}
    )
    assert status == 200, signed
    found = deps.account_consents().latest(signed["subject"])
    assert found is not None
    _, recorded = found
    assert sorted((a.kind.value, a.version, a.sha256) for a in recorded) == sorted(
        (a["kind"], a["version"], a["sha256"]) for a in accepted
    )


def test_a_vin_is_read_from_a_photo_of_the_vehicle_licence_or_the_vin_plate_and_the_photo_is_not_kept(
    api: Any, token: Callable[..., str]
) -> None:
    require_cjk_font()
    rng = random.Random(914)
    me = owner(token)
    before = s3().list_objects_v2(Bucket=bucket()).get("KeyCount", 0)
    for vin, photo in (
        (make_vin(rng), lambda v: vehicle_licence(vin=v, fmt="JPEG")),
        (make_vin(rng), vin_plate),
    ):
        image = base64.b64encode(photo(vin)).decode("ascii")
        status, read = call(api, "post", "/v1/me/vin-scan", me, {"image": image})
        assert status == 200, read
        assert read["vin"] == vin
        assert 0 < read["confidence"] <= 1
    assert s3().list_objects_v2(Bucket=bucket()).get("KeyCount", 0) == before


def test_a_photo_without_a_vin_or_not_a_photo_is_refused_under_the_image(
    api: Any, token: Callable[..., str]
) -> None:
    require_cjk_font()
    me = owner(token)
    from tests.synthetic_documents import id_back

    status, err = call(
        api, "post", "/v1/me/vin-scan", me, {"image": base64.b64encode(id_back(fmt="JPEG")).decode()}
    )
    assert (status, err["code"], err["field"]) == (422, "vin_scan.not_found", "image")
    assert "直接输入" in err["message_zh"]
    status, err = call(api, "post", "/v1/me/vin-scan", me, {"image": "not base64!"})
    assert (status, err["code"], err["field"]) == (422, "vin_scan.image", "image")
    status, err = call(
        api, "post", "/v1/me/vin-scan", me, {"image": base64.b64encode(b"GIF89a" + b"0" * 20000).decode()}
    )
    assert (status, err["field"]) == (422, "image")
    status, err = call(api, "post", "/v1/me/vin-scan", ANONYMOUS, {"image": "AAAA"})
    assert status == 401
