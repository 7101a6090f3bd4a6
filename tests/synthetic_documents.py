"""Synthetic document photos for tests (drawn by ``chalicelib.local.documents``), and the skip where
the CJK font they need is not installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib.local.documents import (
    COMPANY,
    NO_FONT,
    PERSON_ADDRESS,
    PERSON_BIRTH_DATE,
    PERSON_ID_NUMBER,
    PERSON_NAME,
    business_licence,
    cjk_font_path,
    id_back,
    id_front,
)

__all__ = [
    "COMPANY",
    "PERSON_ADDRESS",
    "PERSON_BIRTH_DATE",
    "PERSON_ID_NUMBER",
    "PERSON_NAME",
    "business_licence",
    "cjk_font_path",
    "id_back",
    "id_front",
    "require_cjk_font",
]


def require_cjk_font() -> Path:
    path = cjk_font_path()
    if path is None:
        pytest.skip(NO_FONT)
    return path
