"""Document photos (证件照片、现场照片、活体采集): what may be uploaded, and the rule that makes it safe.

``validate_image`` is pure (bytes in, clean JPEG out, no I/O): it refuses anything that is not a
JPEG/PNG/BMP photo of a sensible size, decodes under a pixel limit so a decompression bomb is refused
from its header alone, applies the EXIF orientation and re-encodes without any metadata (GPS position,
device serial numbers and thumbnails in EXIF are personal data nobody asked for).

Every refusal has its own code, a Chinese and an English message, and ``field="file"``.
"""

from __future__ import annotations

import hashlib
import io
from enum import StrEnum
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.kernel.errors import Forbidden, InvalidField, NotFound, PayloadTooLarge
from chalicelib.kernel.images import MAX_PIXELS, ImageRefused, open_image

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage


FIELD = "file"


#: Magic bytes of the accepted formats, with Pillow's names for them (phones' multi-picture JPEGs
#: open as "MPO").
_MAGIC: tuple[tuple[bytes, str, frozenset[str]], ...] = (
    (b"\xff\xd8\xff", "image/jpeg", frozenset({"JPEG", "MPO"})),
    (b"\x89PNG", "image/png", frozenset({"PNG"})),
    (b"BM", "image/bmp", frozenset({"BMP"})),
)


#: Content types a client may declare when it asks for an upload.
ACCEPTED_CONTENT_TYPES: frozenset[str] = frozenset(ctype for _, ctype, _ in _MAGIC)


JPEG_QUALITY = 90


class DocumentKind(StrEnum):
    """The photos a registration flow collects."""

    ID_FRONT = "id_front"  # 身份证人像面
    ID_BACK = "id_back"  # 身份证国徽面
    BUSINESS_LICENCE = "business_licence"  # 营业执照
    AUTHORIZATION_LETTER = "authorization_letter"  # 授权委托书
    OWNER_ID_FRONT = "owner_id_front"  # 委托登记: the owner's (用户) ID card, portrait side
    OWNER_ID_BACK = "owner_id_back"  # 委托登记: the owner's resident ID card, emblem side (its validity)
    VEHICLE_LICENCE = "vehicle_licence"  # 机动车行驶证 (proof of possession of the car)
    PURCHASE_INVOICE = "purchase_invoice"  # 机动车销售统一发票 (proof of possession of the car)
    ONSITE_PHOTO = "onsite_photo"  # 现场照片 (the person at the dealer)
    LIVE_CAPTURE = "live_capture"  # 活体采集 (the selfie)
    CUSTODY_AGREEMENT = "custody_agreement"  # 单位登记: 车卡分管协议 (the fleet batch's custody agreement)

    @property
    def needs_face(self) -> bool:
        """Photos of the person: exactly one frontal face is required."""
        return self in (DocumentKind.ONSITE_PHOTO, DocumentKind.LIVE_CAPTURE)


class ImageLimits(BaseModel):
    """Bounds an uploaded photo must meet.

    The minimum resolution ignores orientation: a portrait 480×640 photo meets a 640×480 minimum
    (the shorter side is held to the smaller minimum, the longer side to the larger).
    """

    model_config = ConfigDict(frozen=True)

    max_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    min_bytes: int = Field(default=10 * 1024, ge=0)
    min_width: int = Field(default=640, gt=0)
    min_height: int = Field(default=480, gt=0)
    #: Refused from the header, before anything is decoded (a 20,000×20,000 PNG is a few KB).
    max_pixels: int = Field(default=MAX_PIXELS, gt=0)


DOCUMENT_LIMITS = ImageLimits()


SELFIE_LIMITS = ImageLimits(min_width=480, min_height=480)


def limits_for(kind: DocumentKind) -> ImageLimits:
    return SELFIE_LIMITS if kind.needs_face else DOCUMENT_LIMITS


class PostForm(BaseModel):
    """A presigned upload form: the client POSTs ``fields`` then the file to ``url``."""

    model_config = ConfigDict(frozen=True)

    url: str
    fields: dict[str, str]


class CleanImage(BaseModel):
    """A validated photo: upright, RGB, JPEG, no metadata."""

    model_config = ConfigDict(frozen=True)

    jpeg: bytes
    width: int
    height: int
    #: Hex SHA-256 of ``jpeg`` (names the stored object; goes into the evidence).
    sha256: str


def wrong_type() -> InvalidField:
    return InvalidField(
        "document.type",
        "文件格式不支持，请上传 JPEG、PNG 或 BMP 图片",
        "Unsupported file type; upload a JPEG, PNG or BMP image",
        field=FIELD,
    )


def too_large(size: int, max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        "document.too_large",
        f"图片过大（{size / (1024 * 1024):.1f} MB），不能超过 {max_bytes // (1024 * 1024)} MB，"
        "请换一张照片或重新拍摄",
        f"The image is too large ({size} bytes); the limit is {max_bytes // (1024 * 1024)} MB",
        field=FIELD,
        details={"bytes": size, "max_bytes": max_bytes},
    )


def too_small(size: int, min_bytes: int) -> InvalidField:
    return InvalidField(
        "document.too_small",
        "图片文件过小，可能是缩略图，请上传原图",
        f"The image file is too small ({size} bytes), probably a thumbnail; upload the original photo",
        field=FIELD,
        details={"bytes": size, "min_bytes": min_bytes},
    )


def too_many_pixels(width: int | None, height: int | None, max_pixels: int) -> InvalidField:
    return InvalidField(
        "document.too_many_pixels",
        f"图片尺寸过大（超过 {max_pixels // 1_000_000} 百万像素），请换一张照片或重新拍摄",
        f"The image has too many pixels; the limit is {max_pixels // 1_000_000} megapixels",
        field=FIELD,
        details={"width": width, "height": height, "max_pixels": max_pixels},
    )


def corrupt() -> InvalidField:
    return InvalidField(
        "document.corrupt",
        "图片已损坏或不完整，无法读取，请重新拍摄上传",
        "The image is damaged or incomplete and cannot be read; take and upload it again",
        field=FIELD,
    )


def low_resolution(width: int, height: int, limits: ImageLimits) -> InvalidField:
    need = f"{limits.min_width}×{limits.min_height}"
    return InvalidField(
        "document.resolution",
        f"图片分辨率过低（{width}×{height}），至少需要 {need}，请靠近后重拍",
        f"The image resolution is too low ({width}×{height}); at least {need} is needed",
        field=FIELD,
        details={
            "width": width,
            "height": height,
            "min_width": limits.min_width,
            "min_height": limits.min_height,
        },
    )


def not_yours() -> Forbidden:
    return Forbidden(
        "document.not_yours",
        "该上传文件不属于当前办理流程或证件类型",
        "This upload does not belong to this flow or document kind",
        field=FIELD,
    )


def missing() -> NotFound:
    return NotFound(
        "document.missing",
        "未找到上传的文件，请重新上传（上传链接 5 分钟内有效）",
        "The upload was not found; upload it again (the upload link is valid for 5 minutes)",
        field=FIELD,
    )


def sniff(data: bytes) -> str:
    """The content type the magic bytes name; refuses anything else with ``document.type``."""
    for magic, ctype, _ in _MAGIC:
        if data.startswith(magic):
            return ctype
    raise wrong_type()


def validate_image(data: bytes, limits: ImageLimits = DOCUMENT_LIMITS) -> CleanImage:
    """The photo made safe to keep, or the refusal naming what is wrong with it.

    Checks run cheapest first: size ceiling, magic bytes, size floor, pixel count from the header,
    full decode, resolution; then EXIF orientation, RGB, re-encode as JPEG without metadata.
    """
    from PIL import ImageOps

    if len(data) > limits.max_bytes:
        raise too_large(len(data), limits.max_bytes)
    ctype = sniff(data)
    if len(data) < limits.min_bytes:
        raise too_small(len(data), limits.min_bytes)
    formats = next(names for _, name, names in _MAGIC if name == ctype)

    try:
        with open_image(data, max_pixels=limits.max_pixels, formats=tuple(formats)) as opened:
            opened.load()
            upright = ImageOps.exif_transpose(opened)
    except ImageRefused as refused:
        if refused.reason == "too_many_pixels":
            raise too_many_pixels(refused.width, refused.height, limits.max_pixels) from refused
        raise corrupt() from refused

    short, long = sorted(upright.size)
    if short < min(limits.min_width, limits.min_height) or long < max(limits.min_width, limits.min_height):
        raise low_resolution(upright.width, upright.height, limits)

    rgb = _to_rgb(upright)
    rgb.info = {}  # the JPEG encoder would carry a source comment over from ``info``
    out = io.BytesIO()
    # Only pixels are written: no EXIF, ICC, XMP or comments are passed to the encoder.
    rgb.save(out, "JPEG", quality=JPEG_QUALITY, optimize=False)
    jpeg = out.getvalue()
    return CleanImage(jpeg=jpeg, width=rgb.width, height=rgb.height, sha256=hashlib.sha256(jpeg).hexdigest())


def _to_rgb(image: PILImage) -> PILImage:
    """RGB pixels; transparency is composited over white (black would hide a dark document's text)."""
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image if image.mode == "RGB" else image.convert("RGB")
