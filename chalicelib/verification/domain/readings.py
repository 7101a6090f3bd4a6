"""OCR port (证件识别): text lines read from a document photo, and the documents parsed from them.

``OcrEngine.read`` turns a photo into :class:`TextLine` objects (text, confidence 0–1, box); the pure
parsers in :mod:`chalicelib.domain.ocr_parsing` turn those lines into :class:`IdFront` (居民身份证人像面),
:class:`IdBack` (国徽面) and :class:`BusinessLicence` (营业执照). A field the photo did not yield is
``None``; ``confidences`` holds, per field read, the lowest confidence of the lines it came from.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

#: A text line's box: its four corners (x, y) in pixels of the photo as given, clockwise from top-left.
Box = tuple[tuple[float, float], tuple[float, float], tuple[float, float], tuple[float, float]]


class TextLine(BaseModel):
    """One line of text an engine found. ``box`` is ``None`` when the source had no geometry."""

    model_config = ConfigDict(frozen=True)

    text: str
    confidence: float = Field(ge=0, le=1)
    box: Box | None = None

    @property
    def top(self) -> float:
        return min(y for _, y in self.box) if self.box else 0.0

    @property
    def bottom(self) -> float:
        return max(y for _, y in self.box) if self.box else 0.0

    @property
    def left(self) -> float:
        return min(x for x, _ in self.box) if self.box else 0.0


class IdFront(BaseModel):
    """居民身份证人像面: the fields printed beside the portrait."""

    model_config = ConfigDict(frozen=True)

    name: str | None = None  # 姓名
    sex: str | None = None  # 性别: 男 / 女
    ethnicity: str | None = None  # 民族
    birth_date: date | None = None  # 出生
    address: str | None = None  # 住址
    id_number: str | None = None  # 公民身份号码 (digits and X as read, not validated)
    confidences: dict[str, float] = Field(default_factory=dict)


class IdBack(BaseModel):
    """居民身份证国徽面: issuing authority and validity (有效期限; ``permanent`` for 长期)."""

    model_config = ConfigDict(frozen=True)

    authority: str | None = None  # 签发机关
    valid_from: date | None = None
    valid_until: date | None = None
    permanent: bool = False  # 长期: no end date
    confidences: dict[str, float] = Field(default_factory=dict)


class VehicleDocument(BaseModel):
    """行驶证 or 机动车销售统一发票: the vehicle identification number (车辆识别代号 / 车架号码) that
    ties it to a car, and on a 行驶证 the plate (号牌号码)."""

    model_config = ConfigDict(frozen=True)

    vin: str | None = None
    plate: str | None = None
    confidences: dict[str, float] = Field(default_factory=dict)


class AuthorizationLetter(BaseModel):
    """授权委托书 (委托登记, 第十二条): who authorized whom, for which car."""

    model_config = ConfigDict(frozen=True)

    owner_name: str | None = None  # 委托人
    owner_id_number: str | None = None  # 委托人的身份证号码 (as read, not validated)
    trustee_name: str | None = None  # 受托人
    trustee_id_number: str | None = None
    vin: str | None = None  # 车辆识别代号 (check digit holds)
    signed_on: date | None = None  # 日期
    confidences: dict[str, float] = Field(default_factory=dict)


class BusinessLicence(BaseModel):
    """营业执照: the fields a registration needs."""

    model_config = ConfigDict(frozen=True)

    uscc: str | None = None  # 统一社会信用代码
    name: str | None = None  # 名称
    type: str | None = None  # 类型
    legal_representative: str | None = None  # 法定代表人 (负责人, 经营者)
    address: str | None = None  # 住所 (经营场所)
    confidences: dict[str, float] = Field(default_factory=dict)
