"""Synthetic document photos for demos, tests and benchmarks, drawn in code (no committed images).

Pillow renders an ID card front (居民身份证人像面: labels and values in the WenQuanYi Micro Hei font,
a portrait pasted from a photo when given), an ID card back (国徽面), a business licence (营业执照) and an
authorization letter (授权委托书).
Every person, number and company is invented. ``cjk_font_path()`` finds the font at run time
(``fonts-wqy-microhei``); ``NO_FONT`` says what to install where it is missing.
"""

from __future__ import annotations

import io
from datetime import date
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".fonts")
FONT_NAMES = ("wqy-microhei.ttc", "wqy-zenhei.ttc")

#: Invented people and companies. The number and code pass their check characters.
PERSON_NAME = "王小明"
PERSON_BIRTH_DATE = date(1990, 3, 7)
PERSON_ADDRESS = "北京市东城区景山前街4号院2号楼301室"
PERSON_ID_NUMBER = "110101199003076632"
COMPANY = {
    "uscc": "91110000802100433B",
    "name": "北京星河车联科技有限公司",
    "type": "有限责任公司(自然人投资或控股)",
    "legal_representative": "李建国",
    "address": "北京市海淀区中关村大街27号8层801",
}
LABEL_COLOUR = (40, 90, 160)
TEXT_COLOUR = (20, 20, 20)


@lru_cache(maxsize=1)
def cjk_font_path() -> Path | None:
    for folder in FONT_DIRS:
        if folder.is_dir():
            for name in FONT_NAMES:
                found = next(folder.rglob(name), None)
                if found is not None:
                    return found
    return None


NO_FONT = "CJK font not installed (apt-get install fonts-wqy-microhei): cannot draw Chinese documents"


def _font(size: int) -> ImageFont.FreeTypeFont:
    path = cjk_font_path()
    if path is None:
        raise RuntimeError(NO_FONT)
    return ImageFont.truetype(str(path), size)


def _encode(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    if fmt.upper() in ("JPEG", "JPG"):
        image.convert("RGB").save(out, "JPEG", quality=90)
    else:
        image.save(out, "PNG")
    return out.getvalue()


def _wrap(text: str, width: int) -> list[str]:
    return [text[i : i + width] for i in range(0, len(text), width)] or [""]


def _spaced(label: str) -> str:
    """Cards print two-character labels with a gap (``姓 名``), as engines then see them."""
    return " ".join(label) if len(label) == 2 else label


def id_front(
    *,
    name: str = PERSON_NAME,
    sex: str = "男",
    ethnicity: str = "汉",
    birth_date: date = PERSON_BIRTH_DATE,
    address: str = PERSON_ADDRESS,
    id_number: str = PERSON_ID_NUMBER,
    portrait: Path | bytes | None = None,
    fmt: str = "PNG",
    scale: float = 1.0,
) -> bytes:
    """居民身份证人像面, 856×540 px (10 px per mm) times ``scale``; a portrait on the right if given."""
    card = Image.new("RGB", (856, 540), (236, 240, 238))
    draw = ImageDraw.Draw(card)
    label, value, number = _font(26), _font(30), _font(34)
    draw.text((50, 50), _spaced("姓名"), font=label, fill=LABEL_COLOUR)
    draw.text((150, 46), name, font=value, fill=TEXT_COLOUR)
    draw.text((50, 115), _spaced("性别"), font=label, fill=LABEL_COLOUR)
    draw.text((150, 111), sex, font=value, fill=TEXT_COLOUR)
    draw.text((250, 115), _spaced("民族"), font=label, fill=LABEL_COLOUR)
    draw.text((350, 111), ethnicity, font=value, fill=TEXT_COLOUR)
    draw.text((50, 180), _spaced("出生"), font=label, fill=LABEL_COLOUR)
    birth = f"{birth_date.year}  年  {birth_date.month}  月  {birth_date.day}  日"
    draw.text((150, 176), birth, font=value, fill=TEXT_COLOUR)
    draw.text((50, 245), _spaced("住址"), font=label, fill=LABEL_COLOUR)
    for row, part in enumerate(_wrap(address, 12)):
        draw.text((150, 241 + 44 * row), part, font=value, fill=TEXT_COLOUR)
    draw.text((50, 445), "公民身份号码", font=label, fill=LABEL_COLOUR)
    draw.text((260, 440), id_number, font=number, fill=TEXT_COLOUR)
    if portrait is not None:
        source = Image.open(io.BytesIO(portrait) if isinstance(portrait, bytes) else portrait)
        face = ImageOps.fit(ImageOps.exif_transpose(source).convert("RGB"), (240, 300))
        card.paste(face, (580, 70))
    if scale != 1.0:
        card = card.resize((round(856 * scale), round(540 * scale)), Image.Resampling.LANCZOS)
    return _encode(card, fmt)


def id_back(
    *,
    authority: str = "北京市公安局东城分局",
    valid_from: date = date(2015, 6, 1),
    valid_until: date | None = date(2035, 6, 1),
    fmt: str = "PNG",
) -> bytes:
    """居民身份证国徽面; ``valid_until=None`` prints 长期."""
    card = Image.new("RGB", (856, 540), (236, 240, 238))
    draw = ImageDraw.Draw(card)
    draw.ellipse((60, 40, 200, 180), outline=(200, 40, 40), width=6)  # where the emblem sits
    draw.text((260, 60), "中华人民共和国", font=_font(48), fill=TEXT_COLOUR)
    draw.text((260, 140), "居民身份证", font=_font(64), fill=TEXT_COLOUR)
    label, value = _font(26), _font(30)
    draw.text((170, 370), "签发机关", font=label, fill=TEXT_COLOUR)
    draw.text((300, 366), authority, font=value, fill=TEXT_COLOUR)
    until = "长期" if valid_until is None else valid_until.strftime("%Y.%m.%d")
    draw.text((170, 440), "有效期限", font=label, fill=TEXT_COLOUR)
    draw.text((300, 436), f"{valid_from:%Y.%m.%d}-{until}", font=value, fill=TEXT_COLOUR)
    return _encode(card, fmt)


#: The sentence of authorization an 授权委托书 carries (委托登记, 第十二条).
LETTER_SENTENCE = (
    "本人因故不能亲自办理，现委托上述受托人代为办理该车辆车联网卡的实名登记手续。"
    "受托人在办理过程中提交的资料和签署的文件，本人均予以承认。"
)


def authorization_letter(
    *,
    owner_name: str,
    owner_id_number: str,
    trustee_name: str = PERSON_NAME,
    trustee_id_number: str = PERSON_ID_NUMBER,
    vin: str,
    signed_on: date = date(2026, 1, 5),
    fmt: str = "PNG",
) -> bytes:
    """授权委托书, 1000×1300 px: 委托人 and 受托人 with their ID numbers, the VIN, the sentence of
    authorization, the owner's signature line and the date."""
    page = Image.new("RGB", (1000, 1300), (252, 252, 250))
    draw = ImageDraw.Draw(page)
    draw.text((330, 70), "授权委托书", font=_font(64), fill=TEXT_COLOUR)
    text = _font(34)
    rows = (
        f"委托人：{owner_name}",
        f"身份证号码：{owner_id_number}",
        f"受托人：{trustee_name}",
        f"身份证号码：{trustee_id_number}",
    )
    y = 220
    for row in rows:
        draw.text((90, y), row, font=text, fill=TEXT_COLOUR)
        y += 72
    # The VIN well apart from its label: the engine loses some long mixed Chinese and Latin lines.
    draw.text((90, y), "车辆识别代号（VIN）：", font=text, fill=TEXT_COLOUR)
    draw.text((560, y), vin, font=text, fill=TEXT_COLOUR)
    y += 72
    y += 30
    for part in _wrap(LETTER_SENTENCE, 23):
        draw.text((90, y), part, font=text, fill=TEXT_COLOUR)
        y += 60
    y += 80
    draw.text((520, y), f"委托人（签字）：{owner_name}", font=text, fill=TEXT_COLOUR)
    signed = f"{signed_on.year}年{signed_on.month}月{signed_on.day}日"
    draw.text((520, y + 72), f"日期：{signed}", font=text, fill=TEXT_COLOUR)
    return _encode(page, fmt)


def business_licence(
    *,
    uscc: str = COMPANY["uscc"],
    name: str = COMPANY["name"],
    company_type: str = COMPANY["type"],
    legal_representative: str = COMPANY["legal_representative"],
    address: str = COMPANY["address"],
    fmt: str = "PNG",
) -> bytes:
    """营业执照 (副本), one column of fields, 1200×1600 px."""
    page = Image.new("RGB", (1200, 1600), (250, 248, 240))
    draw = ImageDraw.Draw(page)
    draw.rectangle((30, 30, 1170, 1570), outline=(190, 60, 40), width=8)
    draw.text((420, 120), "营业执照", font=_font(96), fill=(190, 30, 30))
    label, value = _font(32), _font(34)
    draw.text((120, 300), "统一社会信用代码", font=label, fill=TEXT_COLOUR)
    draw.text((420, 296), uscc, font=value, fill=TEXT_COLOUR)
    rows = (
        ("名称", name),
        ("类型", company_type),
        ("法定代表人", legal_representative),
        ("注册资本", "人民币壹仟万元整"),
        ("成立日期", "2016年05月18日"),
        ("住所", address),
        ("经营范围", "技术开发、技术服务；销售电子产品"),
    )
    y = 420
    for caption, text in rows:
        draw.text((120, y + 4), caption, font=label, fill=TEXT_COLOUR)
        for part in _wrap(text, 20):
            draw.text((360, y), part, font=value, fill=TEXT_COLOUR)
            y += 52
        y += 40
    draw.text((700, 1400), "登记机关", font=label, fill=TEXT_COLOUR)
    return _encode(page, fmt)


def vehicle_licence(
    *,
    vin: str,
    plate: str = "京A D1234",
    vehicle_type: str = "小型轿车",
    owner: str = PERSON_NAME,
    address: str = PERSON_ADDRESS,
    brand_model: str = "比亚迪牌BYD7150WT",
    engine_no: str = "E12345678",
    registered: date = date(2025, 3, 1),
    issued: date = date(2025, 3, 1),
    fmt: str = "PNG",
) -> bytes:
    """中华人民共和国机动车行驶证 (主页), 88×60 mm at 12 px per mm: 号牌号码, 车辆类型, 所有人, 住址,
    使用性质, 品牌型号, 车辆识别代号, 发动机号码, 注册日期, 发证日期."""
    card = Image.new("RGB", (1056, 720), (232, 238, 244))
    draw = ImageDraw.Draw(card)
    draw.rectangle((12, 12, 1044, 708), outline=(60, 80, 120), width=4)
    draw.text((190, 36), "中华人民共和国机动车行驶证", font=_font(46), fill=TEXT_COLOUR)
    label, value = _font(28), _font(32)
    rows = (
        (("号牌号码", plate), ("车辆类型", vehicle_type)),
        (("所有人", owner),),
        (("住址", address),),
        (("使用性质", "非营运"), ("品牌型号", brand_model)),
        (("车辆识别代号", vin),),
        (("发动机号码", engine_no),),
        (("注册日期", registered.isoformat()), ("发证日期", issued.isoformat())),
    )
    y = 130
    for row in rows:
        x = 40
        for caption, text in row:
            draw.text((x, y + 4), caption, font=label, fill=LABEL_COLOUR)
            draw.text((x + 30 * len(caption) + 20, y), text, font=value, fill=TEXT_COLOUR)
            x += 520
        y += 80
    return _encode(card, fmt)
