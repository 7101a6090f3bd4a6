"""The upload rule on photos built in code: every bad input gets its own refusal, good ones come out clean."""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image

from chalicelib.kernel.errors import DomainError, InvalidField, PayloadTooLarge
from chalicelib.verification.domain.documents import (
    DOCUMENT_LIMITS,
    SELFIE_LIMITS,
    DocumentKind,
    ImageLimits,
    limits_for,
    validate_image,
)


def photo(width: int = 800, height: int = 600, mode: str = "RGB") -> Image.Image:
    """Noise over a gradient: compresses like a photo, not to nothing."""
    noise = Image.effect_noise((width, height), 40)
    ramp = Image.linear_gradient("L").resize((width, height))
    channels = [noise, ramp, Image.blend(noise, ramp, 0.5)]
    return Image.merge("RGB", channels).convert(mode)


def encoded(im: Image.Image, fmt: str = "JPEG", **params: object) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **params)
    return out.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit greyscale PNG of all-black rows: huge in pixels, tiny on disk (built in a stream)."""
    row = bytes(1 + (width + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    rows_per_step = 1000
    body = b"".join(
        packer.compress(row * min(rows_per_step, height - y)) for y in range(0, height, rows_per_step)
    )
    body += packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")


def refusal(data: bytes, limits: ImageLimits = DOCUMENT_LIMITS) -> DomainError:
    with pytest.raises(DomainError) as caught:
        validate_image(data, limits)
    error = caught.value
    assert error.field == "file"
    assert error.message_zh
    assert error.message_en
    return error


def test_a_text_file_renamed_jpg_is_the_wrong_type(tmp_path: Path) -> None:
    # Given a text file saved with a .jpg name
    fake = tmp_path / "id_front.jpg"
    fake.write_text("这不是图片 / not an image\n" * 1000)
    # When it is validated / Then the magic bytes refuse it
    error = refusal(fake.read_bytes())
    assert (error.code, error.status) == ("document.type", 422)


def test_a_gif_is_the_wrong_type() -> None:
    assert refusal(encoded(photo(), "GIF")).code == "document.type"


def test_a_truncated_jpeg_is_corrupt() -> None:
    # Given a real photo cut off after 60% of its bytes (an interrupted upload)
    whole = encoded(photo(1024, 768), quality=90)
    error = refusal(whole[: len(whole) * 6 // 10])
    assert (error.code, error.status) == ("document.corrupt", 422)


def test_garbage_after_the_png_signature_is_corrupt() -> None:
    assert refusal(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 100).code == "document.corrupt"


def test_a_20000_by_20000_png_bomb_is_refused_from_its_header() -> None:
    # Given a 400-megapixel PNG that weighs tens of KB (decoded it would need 1.2 GB as RGB)
    bomb = png_bomb(20_000, 20_000)
    assert len(bomb) < 200_000
    # When it is validated
    started = time.perf_counter()
    error = refusal(bomb)
    # Then it is refused without being decoded (no MemoryError, no seconds of inflating)
    assert (error.code, error.status) == ("document.too_many_pixels", 422)
    assert time.perf_counter() - started < 1.0


def test_a_48_megapixel_png_is_over_the_limit_below_pillows_own() -> None:
    # 8000×6000 is under Pillow's ~89 MP warning: our own header check refuses it (the file is a few KB,
    # which the size floor would refuse first, so the floor is lifted here)
    error = refusal(png_bomb(8000, 6000), ImageLimits(min_bytes=0))
    assert error.code == "document.too_many_pixels"
    assert error.details == {"width": 8000, "height": 6000, "max_pixels": 40_000_000}


def test_a_3kb_thumbnail_is_too_small() -> None:
    thumb = encoded(photo(160, 120), quality=40)
    assert len(thumb) < 10 * 1024
    error = refusal(thumb)
    assert (error.code, error.status) == ("document.too_small", 422)
    assert error.details["bytes"] == len(thumb)


def test_a_file_over_10mb_is_too_large() -> None:
    error = refusal(b"\xff\xd8\xff" + bytes(10 * 1024 * 1024))
    assert isinstance(error, PayloadTooLarge)
    assert (error.code, error.status) == ("document.too_large", 413)


def test_a_low_resolution_photo_is_refused() -> None:
    small = encoded(photo(320, 240), "PNG")
    assert len(small) > 10 * 1024
    error = refusal(small)
    assert isinstance(error, InvalidField)
    assert error.code == "document.resolution"
    assert (error.details["width"], error.details["height"]) == (320, 240)


def test_resolution_minimum_ignores_orientation_and_selfies_need_480_square() -> None:
    # A portrait 480×640 document photo meets the 640×480 minimum
    assert validate_image(encoded(photo(480, 640)), DOCUMENT_LIMITS).width == 480
    # A 600×450 selfie does not meet 480×480
    assert refusal(encoded(photo(600, 450)), SELFIE_LIMITS).code == "document.resolution"
    assert limits_for(DocumentKind.LIVE_CAPTURE) == SELFIE_LIMITS
    assert limits_for(DocumentKind.ID_FRONT) == DOCUMENT_LIMITS


def test_exif_rotation_is_applied_and_every_metadata_is_stripped() -> None:
    # Given an 800×600 JPEG tagged "rotate 90° clockwise", with a GPS-ish tag, a comment and an ICC profile
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation
    exif[0x010F] = "SecretPhoneMaker"  # make
    raw = encoded(photo(800, 600), exif=exif.tobytes(), comment=b"dealer-device-42", icc_profile=b"x" * 64)
    # When it is validated
    clean = validate_image(raw)
    # Then it comes out upright (600×800), as a JPEG with no EXIF, comment or profile
    out = Image.open(io.BytesIO(clean.jpeg))
    assert out.format == "JPEG"
    assert out.size == (clean.width, clean.height) == (600, 800)
    assert not out.getexif()
    assert not {"exif", "comment", "icc_profile", "xmp"} & set(out.info)
    assert b"SecretPhoneMaker" not in clean.jpeg
    assert b"dealer-device-42" not in clean.jpeg


def test_bmp_is_accepted_and_re_encoded_as_jpeg() -> None:
    clean = validate_image(encoded(photo(640, 480), "BMP"))
    assert clean.jpeg.startswith(b"\xff\xd8\xff")
    assert (clean.width, clean.height) == (640, 480)
    assert len(clean.sha256) == 64


def test_transparent_png_is_flattened_on_white() -> None:
    im = photo(640, 480, "RGBA")
    im.putalpha(0)  # fully transparent
    clean = validate_image(encoded(im, "PNG"))
    out = Image.open(io.BytesIO(clean.jpeg))
    assert out.mode == "RGB"
    red, green, blue = out.getpixel((10, 10))  # type: ignore[misc]
    assert min(red, green, blue) > 240
