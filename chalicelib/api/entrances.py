"""The owner's entrances beside registration: help (客服 and 帮助), the platform's texts accepted at
login (用户协议, 隐私政策), and the VIN read from a photo (拍照识别)."""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING

from chalicelib.api.http import Blueprint, Call, route
from chalicelib.core import deps, lazy
from chalicelib.core.auth import PERSON_ROLES
from chalicelib.core.observability import logger
from chalicelib.core.settings import get_settings
from chalicelib.kernel.errors import InvalidField

if TYPE_CHECKING:
    from chalicelib.api import entrances_views as views
    from chalicelib.verification import vin_scan
    from chalicelib.verification.vin_scan import VinRead
else:
    views = lazy.module("chalicelib.api.entrances_views")
    vin_scan = lazy.module("chalicelib.verification.vin_scan")

bp = Blueprint(__name__)

#: The largest photo a VIN scan takes (the client scales it down well below this first).
MAX_SCAN_BYTES = 4 * 1024 * 1024


#: The enterprise portal this app serves (``/portal``), relative to the H5 page (``/h5/`` locally,
#: ``/<stage>/h5/`` behind API Gateway): the same link works on every stage.
PORTAL_BESIDE_H5 = "../portal"


@route(
    bp,
    "/v1/help",
    summary="What the help page and the enterprise entry show: customer service, the enterprise portal",
    roles=None,
    response=lambda: views.HelpView,
    tags=("h5",),
)
def help_info(call: Call) -> views.HelpView:
    settings = get_settings()
    return views.HelpView(
        oem_name=settings.oem_name,
        service_phone=settings.service_phone,
        service_hours=settings.service_hours,
        enterprise_portal_url=settings.enterprise_portal_url or PORTAL_BESIDE_H5,
        review_expected_zh=settings.review_expected_zh,
    )


@route(
    bp,
    "/v1/account-texts",
    summary="用户协议 and 隐私政策 accepted at login: the current texts, version and hash",
    roles=None,
    response=lambda: views.AccountTextsView,
    tags=("auth",),
)
def texts(call: Call) -> views.AccountTextsView:
    from chalicelib.consents.account import account_texts  # the files: read on the first call

    return views.AccountTextsView(documents=list(account_texts()))


@route(
    bp,
    "/v1/me/vin-scan",
    method="POST",
    summary="拍照识别: the VIN read from a photo of the 行驶证 or the VIN plate (the photo is not kept)",
    roles=PERSON_ROLES,
    body=lambda: views.VinScanBody,
    response=lambda: vin_scan.VinRead,
    errors=(503,),
    tags=("registration",),
)
def scan(call: Call) -> VinRead:
    try:
        photo = base64.b64decode(call.body.image, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidField(
            "vin_scan.image", "照片没有上传成功，请重新拍摄", "The image is not valid base64", field="image"
        ) from exc
    read = vin_scan.scan_vin(deps.ocr_engine(), photo)
    logger.info("vin scanned", extra={"confidence": round(read.confidence, 2)})
    return read
