"""A reviewer's view of a document photo (证件查看): the short-lived link an ``<img>`` follows, and the
watermark drawn into the image before it leaves.

An image element cannot send a bearer header, so the console asks for a link with its token and the
link carries its own proof: an HMAC-SHA256 over what it names (the staff member, the record, the
document, the reason, the expiry), keyed by a key derived from the stage's token signing key, so a link
is never a bearer token and a bearer token never a link. A link lives ``LINK_SECONDS``; one changed in
any part, or signed with another key, or expired, is refused (403).

The image served is never the stored one: the reviewer's subject, the time and "仅供审核" are drawn
across it diagonally, tiled and semi-transparent, so a screenshot or a copy names who looked at it and
when. Pillow is imported when an image is drawn, not when the module is."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalicelib.kernel.clock import CHINA
from chalicelib.kernel.errors import Forbidden

if TYPE_CHECKING:
    from PIL.ImageFont import FreeTypeFont, ImageFont

#: How long a document link may be followed.
LINK_SECONDS = 60
#: The words tiled across every document shown to staff.
WATERMARK_TEXT = "仅供审核"
#: The reason recorded when the reviewer gives none of their own: the case they are deciding.
DEFAULT_REASON = "审核案件时核对证件照片"

_CONTEXT = b"cheka/console/document-link/v1"
_FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".fonts")
_FONT_NAMES = ("wqy-microhei.ttc", "wqy-zenhei.ttc", "NotoSansCJK-Regular.ttc", "NotoSansSC-Regular.otf")


class DocumentRecord(StrEnum):
    """The records whose documents the console shows."""

    FLEET_CASE = "fleet_case"  # 企业批次: the batch's flow (licence, letters, the responsible person's ID)
    REVIEW_CASE = "review_case"  # 人工审核: the case's flow
    SPOT_CHECK = "spot_check"  # 抽查: the flows of the registration the operator asks about


@dataclass(frozen=True)
class DocumentLink:
    """What a link names: who may follow it (subject, roles, issuer of their sign-in), which document of
    which record, why (recorded in the read log at each view), until when (epoch seconds)."""

    link_id: str
    subject: str
    roles: tuple[str, ...]
    issuer: str | None
    record_kind: DocumentRecord
    record_id: str
    document: str
    reason: str
    expires_at: int


def link_key(signing_secret: str) -> bytes:
    """The links' key: derived from the stage's token signing key, for links only."""
    return hmac.new(signing_secret.encode("utf-8"), _CONTEXT, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_link(key: bytes, link: DocumentLink) -> str:
    """The link's token: ``<payload>.<signature>``, both base64url."""
    payload = _b64(json.dumps(asdict(link), ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    signature = hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest()
    return f"{payload}.{_b64(signature)}"


def link_refused() -> Forbidden:
    return Forbidden(
        "console.document_link_invalid",
        "证件查看链接无效，请在案件页重新打开",
        "This document link is not valid; open it again from the case",
    )


def link_expired() -> Forbidden:
    return Forbidden(
        "console.document_link_expired",
        "证件查看链接已过期，请在案件页重新打开",
        f"Document links last {LINK_SECONDS} seconds; open it again from the case",
    )


def open_link(key: bytes, token: str, now: datetime) -> DocumentLink:
    """The link a token names, once its signature and expiry are checked (403 otherwise)."""
    payload, _, signature = token.partition(".")
    if not payload or not signature:
        raise link_refused()
    expected = hmac.new(key, payload.encode("ascii", "replace"), hashlib.sha256).digest()
    try:
        given = _unb64(signature)
    except ValueError:
        raise link_refused() from None
    if not hmac.compare_digest(expected, given):
        raise link_refused()
    try:
        doc: dict[str, Any] = json.loads(_unb64(payload))
        link = DocumentLink(
            link_id=str(doc["link_id"]),
            subject=str(doc["subject"]),
            roles=tuple(str(r) for r in doc["roles"]),
            issuer=doc["issuer"],
            record_kind=DocumentRecord(doc["record_kind"]),
            record_id=str(doc["record_id"]),
            document=str(doc["document"]),
            reason=str(doc["reason"]),
            expires_at=int(doc["expires_at"]),
        )
    except (ValueError, KeyError, TypeError):
        raise link_refused() from None
    if now.timestamp() >= link.expires_at:
        raise link_expired()
    return link


@lru_cache(maxsize=1)
def _font_path() -> Path | None:
    for folder in _FONT_DIRS:
        if folder.is_dir():
            for name in _FONT_NAMES:
                found = next(folder.rglob(name), None)
                if found is not None:
                    return found
    return None


def _font(size: int) -> tuple[FreeTypeFont | ImageFont, bool]:
    """A font for the watermark, and whether it draws Chinese (a stage without a CJK font draws the
    words in English instead of boxes)."""
    from PIL import ImageFont

    path = _font_path()
    if path is not None:
        return ImageFont.truetype(str(path), size), True
    return ImageFont.load_default(size=size), False


def watermark_text(subject: str, at: datetime, chinese: bool = True) -> str:
    """One tile of the watermark: the words, the staff member's subject and the time (China time)."""
    when = at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")
    words = WATERMARK_TEXT if chinese else "REVIEW ONLY"
    return f"{words}  {subject}  {when}"


def watermark(jpeg: bytes, subject: str, at: datetime) -> bytes:
    """The photo with the watermark drawn into it (same size, JPEG): the tile repeated in staggered rows
    across the whole image at 30°, semi-transparent red with a light outline, readable on light and
    dark photos alike."""
    from io import BytesIO

    from PIL import Image, ImageDraw

    from chalicelib.kernel.images import MAX_PIXELS, open_image

    # The stored photo was re-encoded by ``validate_image``: bytes that do not open are a stored fault.
    with open_image(jpeg, max_pixels=MAX_PIXELS) as source:
        photo = source.convert("RGBA")
    width, height = photo.size
    size = max(14, min(width, height) // 22)
    font, chinese = _font(size)
    text = watermark_text(subject, at, chinese)
    side = int((width**2 + height**2) ** 0.5) + 2 * size
    layer = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    step_x = int(draw.textlength(text, font=font)) + 3 * size
    step_y = 5 * size
    for row, y in enumerate(range(0, side, step_y)):
        shift = (row % 2) * step_x // 2
        for x in range(-shift, side, step_x):
            draw.text(
                (x, y),
                text,
                font=font,
                fill=(200, 20, 20, 96),
                stroke_width=1,
                stroke_fill=(255, 255, 255, 64),
            )
    layer = layer.rotate(30, resample=Image.Resampling.BICUBIC)
    left, top = (side - width) // 2, (side - height) // 2
    layer = layer.crop((left, top, left + width, top + height))
    marked = Image.alpha_composite(photo, layer).convert("RGB")
    out = BytesIO()
    marked.save(out, "JPEG", quality=88)
    return out.getvalue()
