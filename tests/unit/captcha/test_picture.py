"""The captcha's picture: a PNG of the declared size, drawn server-side, whose payload carries pixels only
(no text, no per-character shapes or coordinates a script could read the answer back from), and that
draws the same answer differently every time. Renderings are saved under the test's tmp dir to look at."""

from __future__ import annotations

import base64
import io
import random
import struct
import zlib
from pathlib import Path

from PIL import Image, ImageChops, ImageStat

from chalicelib.captcha.domain import ALPHABET, HEIGHT, LENGTH, WIDTH, new_answer, render_png
from chalicelib.captcha.service import LocalCaptcha
from tests.fakes.crypto import FakeHasher
from tests.fakes.sms import FakeChallengeStore

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """The PNG's chunks (type, data), read by hand: what a script would see in the payload."""
    assert png.startswith(PNG_SIGNATURE)
    found, at = [], len(PNG_SIGNATURE)
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind, data = png[at + 4 : at + 8], png[at + 8 : at + 8 + length]
        found.append((kind, data))
        at += 12 + length
    return found


def test_a_challenge_is_a_png_data_url_of_the_declared_size(tmp_path: Path) -> None:
    captcha = LocalCaptcha(FakeChallengeStore(), FakeHasher(), rng=random.Random(1))
    challenge = captcha.issue()
    prefix = "data:image/png;base64,"
    assert challenge.image.startswith(prefix)
    png = base64.b64decode(challenge.image.removeprefix(prefix), validate=True)
    picture = Image.open(io.BytesIO(png))
    assert (picture.format, picture.size, picture.mode) == ("PNG", (WIDTH, HEIGHT), "RGB")
    (tmp_path / "challenge.png").write_bytes(png)


def test_the_payload_carries_pixels_only_never_the_answer_as_text_or_shapes(tmp_path: Path) -> None:
    for seed in range(4):
        rng = random.Random(seed)
        answer = new_answer(rng)
        assert len(answer) == LENGTH
        assert set(answer) <= set(ALPHABET)
        png = render_png(answer, rng)
        # saved for a person to check that the answer reads (pytest keeps the last runs' tmp dirs)
        (tmp_path / f"captcha-{seed}-{answer}.png").write_bytes(png)
        kinds = [kind for kind, _ in chunks(png)]
        assert kinds[0] == b"IHDR"
        assert kinds[-1] == b"IEND"
        assert set(kinds) <= {b"IHDR", b"IDAT", b"IEND"}  # no tEXt, zTXt, iTXt: no text anywhere
        pixels = zlib.decompress(b"".join(data for kind, data in chunks(png) if kind == b"IDAT"))
        assert len(pixels) == HEIGHT * (1 + WIDTH * 3)  # one filter byte and RGB per pixel: raster only
        for payload in (png, pixels, base64.b64encode(png)):
            assert answer.encode() not in payload
            assert answer.lower().encode() not in payload
            for vector in (b"<svg", b"<path", b"<text", b"M0 ", b"stroke"):
                assert vector not in payload


def test_the_same_answer_is_drawn_differently_every_time() -> None:
    answer = "HK7PE"
    first = Image.open(io.BytesIO(render_png(answer, random.Random(21)))).convert("L")
    second = Image.open(io.BytesIO(render_png(answer, random.Random(22)))).convert("L")
    difference = ImageStat.Stat(ImageChops.difference(first, second)).mean[0]
    assert difference > 25  # another turn, slant, scale, place and noise for every character
