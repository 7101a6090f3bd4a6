"""Synthetic document photos for tests and benchmarks (drawn by ``chalicelib.local.documents``), the
ID-style portrait they carry, and the skip where the CJK font they need is not installed."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageOps

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
    "id_back",
    "id_front",
    "id_photo",
    "require_cjk_font",
    "vehicle_licence",
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
