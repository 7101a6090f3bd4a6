"""Captcha challenges, pure: the answer's alphabet, its keyed digest, and the distorted picture.

A challenge is five characters drawn server-side into a PNG (pixels only: neither text nor the strokes'
coordinates reach the client, so no script reads the answer back from the payload). Each character is
turned, slanted, scaled and moved on its own, the picture is bent as a whole, and lines and dots in the
characters' own colours cross them. It is valid ``captcha_ttl_seconds`` (5 minutes) and may be answered
once: a wrong answer spends it too. The answer is kept only as a keyed hash of the challenge's id and
the answer; answers compare case-insensitively and ignore spaces.
"""

from __future__ import annotations

import base64
import hmac
import math
import random
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

#: Characters a challenge uses: none that look alike (0/O, 1/I/L, 5/S, 2/Z, 8/B).
ALPHABET = "34679ACEFHKPRTUXY"
LENGTH = 5
WIDTH, HEIGHT = 160, 60

_Stroke = tuple[tuple[float, float], ...]
#: Each character as polylines on a 4 × 6 grid (x right, y down).
_GLYPHS: dict[str, tuple[_Stroke, ...]] = {
    "3": (((0, 0), (4, 0), (2, 2.5), (4, 3.5), (4, 5), (3, 6), (0, 6)),),
    "4": (((3, 6), (3, 0), (0, 4), (4, 4)),),
    "6": (((4, 0), (1, 0), (0, 1), (0, 5), (1, 6), (3, 6), (4, 5), (4, 3.5), (3, 2.5), (0, 2.5)),),
    "7": (((0, 0), (4, 0), (1.5, 6)),),
    "9": (((4, 3.5), (1, 3.5), (0, 2.5), (0, 1), (1, 0), (3, 0), (4, 1), (4, 5), (3, 6), (0, 6)),),
    "A": (((0, 6), (2, 0), (4, 6)), ((1, 3.5), (3, 3.5))),
    "C": (((4, 0), (1, 0), (0, 1), (0, 5), (1, 6), (4, 6)),),
    "E": (((4, 0), (0, 0), (0, 6), (4, 6)), ((0, 3), (3, 3))),
    "F": (((4, 0), (0, 0), (0, 6)), ((0, 3), (3, 3))),
    "H": (((0, 0), (0, 6)), ((4, 0), (4, 6)), ((0, 3), (4, 3))),
    "K": (((0, 0), (0, 6)), ((4, 0), (0, 3.5)), ((1.3, 2.6), (4, 6))),
    "P": (((0, 6), (0, 0), (3, 0), (4, 1), (4, 2), (3, 3), (0, 3)),),
    "R": (((0, 6), (0, 0), (3, 0), (4, 1), (4, 2), (3, 3), (0, 3)), ((2, 3), (4, 6))),
    "T": (((0, 0), (4, 0)), ((2, 0), (2, 6))),
    "U": (((0, 0), (0, 5), (1, 6), (3, 6), (4, 5), (4, 0)),),
    "X": (((0, 0), (4, 6)), ((4, 0), (0, 6))),
    "Y": (((0, 0), (2, 3), (4, 0)), ((2, 3), (2, 6))),
}


class Challenge(BaseModel):
    """What a client is shown: the challenge's id, its picture (a data URL) and when it expires."""

    model_config = ConfigDict(frozen=True)

    challenge_id: str = Field(description="Give it back with the answer (captcha_id)")
    image: str = Field(description="The picture, a PNG data URL (data:image/png;base64,…)")
    expires_in: int = Field(description="Seconds the challenge may be answered (once)")


class StoredChallenge(BaseModel):
    """A challenge as stored: its answer only as a keyed hash."""

    model_config = ConfigDict(frozen=True)

    challenge_id: str
    answer_hash: str
    expires_at: AwareDatetime


def new_answer(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(LENGTH))


def normalise(answer: str) -> str:
    """What a typed answer is compared as: upper case, no spaces."""
    return "".join(answer.split()).upper()


def answer_digest_input(challenge_id: str, answer: str) -> str:
    """What the keyed hash of an answer is computed over."""
    return f"captcha:{challenge_id}:{normalise(answer)}"


def is_valid(stored: StoredChallenge | None, given_hash: str, now: datetime) -> bool:
    """Whether an answer (its keyed hash) answers ``stored``, still unexpired."""
    if stored is None or stored.expires_at <= now:
        return False
    return hmac.compare_digest(stored.answer_hash.encode(), given_hash.encode())


def _glyph_tile(char: str, rng: random.Random, colour: tuple[int, int, int]) -> Any:
    """One character drawn alone on a transparent tile: its strokes jittered, slanted and thickened, the
    tile then scaled and turned (Pillow's ``Image``)."""
    from PIL import Image, ImageDraw

    size = 64
    tile = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(tile)
    scale = rng.uniform(5.4, 6.4)
    slant = rng.uniform(-0.35, 0.35)
    width = rng.randint(3, 5)
    for stroke in _GLYPHS[char]:
        points = [
            (
                size / 2 + (gx - 2 + rng.uniform(-0.3, 0.3) + slant * (gy - 3)) * scale * 0.8,
                size / 2 + (gy - 3 + rng.uniform(-0.3, 0.3)) * scale,
            )
            for gx, gy in stroke
        ]
        draw.line(points, fill=(*colour, 255), width=width, joint="curve")
        for x, y in (points[0], points[-1]):  # round ends
            r = width / 2
            draw.ellipse((x - r, y - r, x + r, y + r), fill=(*colour, 255))
    factor = rng.uniform(0.85, 1.05)
    tile = tile.resize((round(size * factor), round(size * factor)), Image.Resampling.BICUBIC)
    return tile.rotate(rng.uniform(-25, 25), resample=Image.Resampling.BICUBIC, expand=True)


def _warp(image: Any, rng: random.Random) -> Any:
    """The picture bent as a whole: a mesh of cells whose corners are each moved a few pixels."""
    from PIL import Image

    cols, rows, cell_w, cell_h = 8, 3, WIDTH / 8, HEIGHT / 3

    def moved(x: float, y: float) -> tuple[float, float]:
        inner_x = 0 < x < WIDTH
        inner_y = 0 < y < HEIGHT
        return (
            x + (rng.uniform(-4, 4) if inner_x else 0.0),
            y + (rng.uniform(-4, 4) if inner_y else 0.0),
        )

    corners = {(i, j): moved(i * cell_w, j * cell_h) for i in range(cols + 1) for j in range(rows + 1)}
    mesh = []
    for i in range(cols):
        for j in range(rows):
            box = (round(i * cell_w), round(j * cell_h), round((i + 1) * cell_w), round((j + 1) * cell_h))
            quad = (*corners[i, j], *corners[i, j + 1], *corners[i + 1, j + 1], *corners[i + 1, j])
            mesh.append((box, quad))
    return image.transform(image.size, Image.Transform.MESH, mesh, resample=Image.Resampling.BICUBIC)


def render_png(answer: str, rng: random.Random) -> bytes:
    """The distorted picture of ``answer`` as PNG bytes, drawn here with Pillow: each character turned,
    slanted, scaled and moved on its own, the whole picture bent, then lines and dots drawn across the
    characters in their colours. Only pixels leave: no text and no shapes a script could read back.

    Pillow is loaded here, on the first challenge, never on a cold start."""
    import io

    from PIL import Image, ImageDraw, ImageFilter

    background = tuple(rng.randint(226, 246) for _ in range(3))
    image = Image.new("RGB", (WIDTH, HEIGHT), background)
    draw = ImageDraw.Draw(image)
    for _ in range(4):  # faint curves under the characters
        draw.line(_curve(rng), fill=_shade(rng, 150, 205), width=rng.randint(1, 2))
    inks: list[tuple[int, int, int]] = []
    step = (WIDTH - 24) / len(answer)
    for i, char in enumerate(answer):
        ink = (rng.randint(20, 100), rng.randint(20, 90), rng.randint(50, 140))
        inks.append(ink)
        tile = _glyph_tile(char, rng, ink)
        cx = 12 + step * i + step / 2 + rng.uniform(-2, 2)
        cy = HEIGHT / 2 + rng.uniform(-3, 3)
        image.paste(tile, (round(cx - tile.width / 2), round(cy - tile.height / 2)), tile)
    image = _warp(image, rng)
    draw = ImageDraw.Draw(image)
    for _ in range(3):  # lines across the characters, in the characters' own inks
        draw.line(_curve(rng), fill=rng.choice(inks), width=rng.randint(1, 2))
    for _ in range(180):  # dots over everything
        x, y = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)
        r = rng.uniform(0.4, 1.3)
        colour = rng.choice(inks) if rng.random() < 0.4 else _shade(rng, 60, 210)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    image = image.filter(ImageFilter.SMOOTH)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _curve(rng: random.Random) -> list[tuple[float, float]]:
    """A wavy line from the left edge to the right one."""
    y0 = rng.uniform(8, HEIGHT - 8)
    amplitude, period, phase = rng.uniform(3, 12), rng.uniform(50, 140), rng.uniform(0, math.tau)
    drift = rng.uniform(-0.15, 0.15)
    return [
        (float(x), y0 + drift * x + amplitude * math.sin(phase + math.tau * x / period))
        for x in range(0, WIDTH + 1, 4)
    ]


def _shade(rng: random.Random, low: int, high: int) -> tuple[int, int, int]:
    return (rng.randint(low, high), rng.randint(low, high), rng.randint(low, high))


def data_url(png: bytes) -> str:
    """The picture as the ``image`` a client shows (``<img src=…>``; the pages' policy allows ``data:``)."""
    return "data:image/png;base64," + base64.b64encode(png).decode()
