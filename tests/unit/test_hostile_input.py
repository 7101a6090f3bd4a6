"""Hostile requests and images, built in code: each is refused with its own error, never a 500.

The request rules (``chalicelib.api.http``: body, JSON, parameters, headers) are tested on the
functions the route wrapper calls; the image rules on ``chalicelib.kernel.images`` and on every place
that opens an untrusted image (uploads, liveness frames, previews, face photos).
"""

from __future__ import annotations

import functools
import io
import struct
import time
from typing import Any

import pytest
from chalice.app import Request
from PIL import Image

from chalicelib.api.http import check_headers, check_parameters, parse_json, read_body
from chalicelib.kernel.errors import BadRequest, DomainError, InvalidField, PayloadTooLarge
from chalicelib.kernel.images import MAX_PIXELS, ImageRefused, open_image
from chalicelib.verification.domain.documents import ImageLimits, validate_image
from chalicelib.verification.domain.faces import photo_size
from chalicelib.verification.domain.liveness import LivenessChallenge, LivenessDirection, check_frames
from tests.unit.test_image_validation import photo, png_bomb


def request(
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    query: dict[str, list[str]] | None = None,
) -> Request:
    """A Chalice request as API Gateway hands it over (body base64-encoded, query multi-valued)."""
    import base64

    return Request(
        {
            "multiValueQueryStringParameters": query,
            "headers": headers or {},
            "pathParameters": {},
            "requestContext": {
                "httpMethod": "POST",
                "resourcePath": "/",
                "identity": {"sourceIp": "10.0.0.1"},
            },
            "body": base64.b64encode(body).decode(),
            "isBase64Encoded": True,
            "stageVariables": {},
        }
    )


def refused(call: Any, *args: Any) -> DomainError:
    with pytest.raises(DomainError) as caught:
        call(*args)
    error = caught.value
    assert error.message_zh
    assert error.message_en
    return error


# --- JSON bodies --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"[" * 100_000, "request.too_deep"),
        (b'{"a":' * 100_000, "request.too_deep"),
        (b'{"a":' * 40 + b"1" + b"}" * 40, "request.too_deep"),
        (b'{"phone": ' + b"1" * 5000 + b"}", "request.number"),
        (b'{"phone": 1e999}', "request.number"),
        (b'{"phone": -1e999}', "request.number"),
        (b'{"phone": NaN}', "request.number"),
        (b'{"phone": Infinity}', "request.number"),
        (b'{"phone": "\xff\xfe"}', "request.encoding"),
        (b'{"phone": "\\ud800"}', "request.json"),
        (b'{"\\udfff": 1}', "request.json"),
        (b"{nope", "request.json"),
        (b"\xef\xbb\xbf{}", "request.json"),
    ],
    ids=[
        "100k-brackets", "100k-objects", "41-levels", "5000-digits", "1e999", "-1e999", "NaN", "Infinity",
        "invalid-utf8", "lone-surrogate", "surrogate-key", "malformed", "bom",
    ],
)  # fmt: skip
def test_hostile_json_is_a_400_with_its_own_code(raw: bytes, code: str) -> None:
    error = refused(parse_json, raw, 32)
    assert isinstance(error, BadRequest)
    assert error.code == code


def test_json_at_the_depth_limit_and_large_finite_numbers_are_taken() -> None:
    doc = parse_json(b'{"a":' * 31 + b"[1e308, 12345678901234567890]" + b"}" * 31, 32)
    inner = doc
    for _ in range(31):
        inner = inner["a"]
    assert inner == [1e308, 12345678901234567890]


def test_a_body_whose_content_length_is_over_the_limit_is_refused_before_it_is_read() -> None:
    class Unread(Request):
        @property
        def raw_body(self) -> bytes:
            raise AssertionError("the body was read")

    big = Unread(request(headers={"content-length": str(50 * 1024 * 1024)}).to_original_event())
    error = refused(read_body, big, 6 * 1024 * 1024)
    assert isinstance(error, PayloadTooLarge)
    assert (error.code, error.details["max_bytes"]) == ("request.too_large", 6 * 1024 * 1024)


@pytest.mark.parametrize("length", ["abc", "-5", "1e3"])
def test_a_content_length_that_is_no_count_is_a_400(length: str) -> None:
    error = refused(read_body, request(b"{}", headers={"content-length": length}), 1024)
    assert (error.status, error.code) == (400, "request.content_length")


def test_a_body_over_the_limit_without_a_content_length_is_a_413() -> None:
    error = refused(read_body, request(b"x" * 2048), 1024)
    assert (error.status, error.code) == (413, "request.too_large")


# --- parameters and headers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "query", "code"),
    [
        ({}, {"limit": ["1", "2"]}, "request.parameter_repeated"),
        ({}, {"cursor": ["x" * 3000]}, "request.parameter"),
        ({}, {"cursor": ["ab\x00cd"]}, "request.parameter"),
        ({}, {"cur\nsor": ["1"]}, "request.parameter"),
        ({"flow_id": "f" * 3000}, None, "request.parameter"),
        ({"flow_id": "a\x00b"}, None, "request.parameter"),
        ({"flow_id": "a\r\nSet-Cookie: x"}, None, "request.parameter"),
    ],
    ids=["repeated", "huge-value", "nul-value", "newline-name", "huge-path", "nul-path", "crlf-path"],
)
def test_hostile_parameters_are_a_400_naming_the_parameter(
    params: dict[str, str], query: dict[str, list[str]] | None, code: str
) -> None:
    error = refused(check_parameters, request(query=query), params, 2000)
    assert (error.status, error.code) == (400, code)
    assert error.field


def test_ordinary_parameters_pass() -> None:
    check_parameters(
        request(query={"limit": ["20"], "cursor": ["eyJrIjoxfQ=="]}), {"flow_id": "fl_12-ab"}, 2000
    )


def test_an_oversized_header_value_is_a_400_before_anything_reads_it() -> None:
    error = refused(check_headers, request(headers={"authorization": "Bearer " + "a" * 20_000}), 8192)
    assert (error.status, error.code, error.field) == (400, "request.header_too_large", "authorization")
    check_headers(request(headers={"authorization": "Bearer " + "a" * 900}), 8192)


# --- images ------------------------------------------------------------------------------------------


def jpeg(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    photo(width, height).save(out, "JPEG")
    return out.getvalue()


def claiming_mpo(data: bytes) -> bytes:
    """``data`` (a JPEG) with an APP2 "MPF" segment claiming a second picture, and the marker after it
    one no JPEG has (0xFF01): Pillow's JPEG opener fails on it, and asking Pillow for the "MPO" format
    next raised ``KeyError: 'MPO'``."""
    entries = [(0xB000, 7, 4, 0x30303130), (0xB001, 4, 1, 2), (0xB002, 7, 32, 50)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries)
    table = struct.pack("<IIIHH", 0x20030000, 100, 0, 0, 0) + struct.pack("<IIIHH", 0, 100, 99999, 0, 0)
    mpf = b"MPF\x00II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + table
    return data[:2] + b"\xff\xe2" + struct.pack(">H", len(mpf) + 2) + mpf + b"\xff\x01" + data[4:]


@functools.cache
def bomb() -> bytes:
    """A 1-bit PNG of 20,000 × 20,000 pixels (about 160 KB; 1.2 GB once decoded as RGB)."""
    return png_bomb(20_000, 20_000)


def test_a_jpeg_claiming_mpo_pictures_it_lacks_is_an_unreadable_upload_not_a_key_error() -> None:
    bad = claiming_mpo(jpeg(800, 600))
    with pytest.raises(DomainError) as caught:
        validate_image(bad, ImageLimits(min_bytes=0))
    assert (caught.value.status, caught.value.code) == (422, "document.corrupt")


def test_a_png_bomb_is_refused_from_its_header_in_milliseconds() -> None:
    data = bomb()
    assert len(data) < 200_000
    started = time.perf_counter()
    with pytest.raises(ImageRefused) as caught, open_image(data, max_pixels=MAX_PIXELS) as image:
        image.load()
    assert time.perf_counter() - started < 0.5
    assert caught.value.reason == "too_many_pixels"


def test_the_header_check_names_the_size_and_pillows_own_ceiling_stands_behind_it() -> None:
    with pytest.raises(ImageRefused) as caught, open_image(png_bomb(8_000, 6_000), max_pixels=MAX_PIXELS):
        pass
    assert (caught.value.reason, caught.value.width, caught.value.height) == ("too_many_pixels", 8_000, 6_000)
    with pytest.raises(ImageRefused) as caught, open_image(bomb(), max_pixels=10**12):
        pass
    assert caught.value.reason == "too_many_pixels"
    assert Image.MAX_IMAGE_PIXELS is not None
    assert Image.MAX_IMAGE_PIXELS > MAX_PIXELS


@pytest.mark.parametrize(
    "data",
    [jpeg()[:200], jpeg()[:-400], b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"\xff\xd8\xff" + b"\x00" * 64, b""],
    ids=["truncated-head", "truncated-scan", "png-garbage", "jpeg-garbage", "empty"],
)
def test_truncated_and_garbage_images_are_unreadable(data: bytes) -> None:
    with pytest.raises(ImageRefused) as caught, open_image(data, max_pixels=MAX_PIXELS) as image:
        image.load()
    assert caught.value.reason == "unreadable"


def challenge() -> LivenessChallenge:
    return LivenessChallenge(direction=LivenessDirection.LEFT, nonce="n" * 22)


def test_a_164kb_png_frame_of_20000_by_20000_pixels_is_refused_before_decoding() -> None:
    frames = [jpeg(640, 480), bomb(), jpeg(640, 480)]
    error = refused(check_frames, challenge(), frames)
    assert isinstance(error, InvalidField)
    assert (error.code, error.field, error.details["frame"]) == (
        "liveness.frame_too_many_pixels",
        "frames",
        1,
    )


@pytest.mark.parametrize(
    "bad",
    [claiming_mpo(jpeg(640, 480)), jpeg(640, 480)[:150], b"GIF89a" + bytes(50)],
    ids=["mpo-claim", "truncated", "gif"],
)
def test_an_unreadable_frame_is_refused_with_its_index(bad: bytes) -> None:
    error = refused(check_frames, challenge(), [jpeg(640, 480), jpeg(640, 480), bad])
    assert (error.code, error.details["frame"]) == ("liveness.frame_unreadable", 2)


def test_a_face_photo_bomb_or_malformed_mpo_is_an_unreadable_photo() -> None:
    for bad in (bomb(), claiming_mpo(jpeg(640, 480))):
        assert refused(photo_size, bad).code == "face.image_unreadable"


def test_a_preview_frame_bomb_or_malformed_mpo_is_refused_as_a_preview() -> None:
    from chalicelib.verification.face import _brightness, _preview_size

    assert refused(_preview_size, bomb()).code == "liveness.preview_unreadable"
    assert refused(_preview_size, claiming_mpo(jpeg(320, 240))).code == "liveness.preview_unreadable"
    assert refused(_brightness, claiming_mpo(jpeg(320, 240)), None).code == "liveness.preview_unreadable"
