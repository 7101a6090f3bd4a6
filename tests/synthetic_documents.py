"""Synthetic document photos for tests and benchmarks (drawn by ``chalicelib.local.documents``), the
ID-style portrait they carry, and the skip where the CJK font they need is not installed."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont, ImageOps

from chalicelib.local.documents import (
    COMPANY,
    NO_FONT,
    PERSON_ADDRESS,
    PERSON_BIRTH_DATE,
    PERSON_ID_NUMBER,
    PERSON_NAME,
    authorization_letter,
    business_licence,
    cjk_font_path,
    id_back,
    id_front,
    vehicle_licence,
)
from chalicelib.verification.ports import FaceEngine

__all__ = [
    "COMPANY",
    "PERSON_ADDRESS",
    "PERSON_BIRTH_DATE",
    "PERSON_ID_NUMBER",
    "PERSON_NAME",
    "authorization_letter",
    "business_licence",
    "cjk_font_path",
    "custody_agreement",
    "fleet_authorization_letter",
    "id_back",
    "id_front",
    "id_photo",
    "require_cjk_font",
    "vehicle_licence",
    "vin_plate",
]


def require_cjk_font() -> Path:
    path = cjk_font_path()
    if path is None:
        pytest.skip(NO_FONT)
    return path


def id_photo(engine: FaceEngine, photo: Path) -> bytes:
    """An ID-style portrait (4:5 PNG) cut from ``photo``: its first face centred across half the width,
    the face's centre a little above the middle, light background where the photo runs out."""
    source = ImageOps.exif_transpose(Image.open(photo)).convert("RGB")
    box = engine.detect(photo.read_bytes())[0].box
    width = 2 * box.width
    height = width * 5 // 4
    left = box.left + box.width // 2 - width // 2
    top = box.top + box.height // 2 - height * 45 // 100
    canvas = Image.new("RGB", (width, height), (245, 248, 250))
    inner = (max(0, left), max(0, top), min(source.width, left + width), min(source.height, top + height))
    canvas.paste(source.crop(inner), (inner[0] - left, inner[1] - top))
    out = io.BytesIO()
    canvas.save(out, "PNG")
    return out.getvalue()


def vin_plate(vin: str, *, maker: str = "示例汽车有限公司", fmt: str = "JPEG") -> bytes:
    """A vehicle's product plate (车辆铭牌) as photographed in the door frame: brushed metal, the maker,
    the model, 车辆识别代号 with the VIN in large type, the engine and the date of manufacture."""
    font_path = str(require_cjk_font())
    plate = Image.new("RGB", (1200, 700), (196, 200, 204))
    draw = ImageDraw.Draw(plate)
    for y in range(0, 700, 6):  # brushed-metal grain
        draw.line((0, y, 1200, y), fill=(186 + (y // 6) % 3 * 5, 190, 195), width=2)
    draw.rectangle((16, 16, 1184, 684), outline=(70, 70, 74), width=6)
    small, large = ImageFont.truetype(font_path, 38), ImageFont.truetype(font_path, 64)
    ink = (24, 24, 28)
    draw.text((60, 50), maker, font=small, fill=ink)
    draw.text((60, 130), "品牌：启航  整车型号：QH7150BEV", font=small, fill=ink)
    draw.text((60, 230), "车辆识别代号", font=small, fill=ink)
    draw.text((60, 290), vin, font=large, fill=ink)
    draw.text((60, 420), "驱动电机型号：TZ200XS  最大允许总质量：1850kg", font=small, fill=ink)
    draw.text((60, 500), "制造年月：2025年03月  中国制造", font=small, fill=ink)
    out = io.BytesIO()
    plate.save(out, "JPEG" if fmt.upper() in ("JPEG", "JPG") else "PNG", quality=88)
    return out.getvalue()


def _fleet_page(title: str, lines: list[str], vins: list[str], signature: str, fmt: str) -> bytes:
    font_path = str(require_cjk_font())
    page = Image.new("RGB", (1000, 1300), (252, 252, 250))
    draw = ImageDraw.Draw(page)
    big, text = ImageFont.truetype(font_path, 56), ImageFont.truetype(font_path, 30)
    ink = (20, 20, 20)
    draw.text((500 - 28 * len(title), 70), title, font=big, fill=ink)
    y = 200
    for line in lines:
        draw.text((80, y), line, font=text, fill=ink)
        y += 58
    y += 20
    draw.text((80, y), "车辆清单（车架号 VIN）：", font=text, fill=ink)
    y += 58
    for n, vin in enumerate(vins[:10], start=1):
        draw.text((120, y), f"{n}. {vin}", font=text, fill=ink)
        y += 50
    draw.text((520, max(y + 60, 1100)), signature, font=text, fill=ink)
    draw.ellipse((700, 1020, 900, 1220), outline=(200, 30, 30), width=6)  # the company seal
    out = io.BytesIO()
    page.save(out, "JPEG" if fmt.upper() in ("JPEG", "JPG") else "PNG", quality=90)
    return out.getvalue()


def fleet_authorization_letter(
    *,
    company: str = COMPANY["name"],
    uscc: str = COMPANY["uscc"],
    responsible: str = PERSON_NAME,
    responsible_id: str = PERSON_ID_NUMBER,
    vins: list[str] | None = None,
    fmt: str = "JPEG",
) -> bytes:
    """单位登记的授权书 (1000×1300 px), as the portal's template prints it, filled in, signed and sealed."""
    lines = [
        f"兹授权本单位车辆负责人 {responsible}",
        f"（身份证件号码：{responsible_id}）",
        f"代表 {company}",
        f"（统一社会信用代码：{uscc}）",
        "办理下列车辆所装车联网卡的实名登记业务。",
    ]
    return _fleet_page("授 权 书", lines, vins or [], "单位（盖章）", fmt)


def custody_agreement(
    *,
    company: str = COMPANY["name"],
    responsible: str = PERSON_NAME,
    vins: list[str] | None = None,
    fmt: str = "JPEG",
) -> bytes:
    """车联网卡分管协议 (1000×1300 px), as the portal's template prints it, filled in, signed and sealed."""
    lines = [
        f"甲方（单位）：{company}",
        f"乙方（车辆负责人）：{responsible}",
        "甲方将下列车辆所装车联网卡交由乙方分管，",
        "乙方负责车辆及车联网卡的日常管理。",
    ]
    return _fleet_page("车联网卡分管协议", lines, vins or [], "甲方（盖章）  乙方（签字）", fmt)
