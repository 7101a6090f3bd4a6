"""拍照识别 VIN: the VIN read from a photo of the 行驶证 or the VIN plate, before any registration exists.

The photo is checked like every upload (``validate_image``), read by the OCR engine and parsed by the
reader the possession step uses for a 行驶证 (``parse_vehicle_document``: a 17-character run whose
check digit holds, after its label when there is one). Nothing is kept: the photo and the reading live
only for the request; the owner confirms (or corrects) the VIN read before it is used.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from chalicelib.kernel.errors import InvalidField
from chalicelib.verification.domain.documents import DOCUMENT_LIMITS, validate_image
from chalicelib.verification.domain.ocr import parse_vehicle_document
from chalicelib.verification.ports import OcrEngine


class VinRead(BaseModel):
    """The VIN read from a photo, with the OCR's confidence (0–1) and, from a 行驶证, the plate."""

    model_config = ConfigDict(frozen=True)

    vin: str
    confidence: float
    plate: str | None = None


def scan_vin(ocr: OcrEngine, photo: bytes, *, field: str = "image") -> VinRead:
    """The VIN on ``photo``; ``vin_scan.not_found`` (under ``field``) when none with a valid check digit
    is read."""
    try:
        clean = validate_image(photo, DOCUMENT_LIMITS)
    except InvalidField as err:
        raise InvalidField(
            err.code, err.message_zh, err.message_en, field=field, details=err.details
        ) from err
    reading = parse_vehicle_document(ocr.read(clean.jpeg))
    if reading.vin is None:
        raise InvalidField(
            "vin_scan.not_found",
            "没有识别出车辆识别代号。请把行驶证或车架号铭牌放平、拍清楚后重试，也可以直接输入",
            "No VIN with a valid check digit was read; take the photo again or type the VIN",
            field=field,
        )
    return VinRead(vin=reading.vin, confidence=reading.confidences.get("vin", 0.0), plate=reading.plate)
